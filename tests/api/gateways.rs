//! Real reverse proxies in front of a recording upstream, each running its shipped example
//! (`examples/<proxy>/`) exactly as shipped but for the documented addresses (the application
//! on 127.0.0.1:8080, poolgate on 127.0.0.1:8180 or its gRPC listener on 127.0.0.1:8181, the
//! proxy on 127.0.0.1:8000), with poolgate deciding: nginx (auth_request), Caddy
//! (forward_auth), Traefik (ForwardAuth), Envoy (HTTP ext_authz, and gRPC ext_authz) and
//! HAProxy (a Lua auth subrequest).
//!
//! Every proxy goes through one scenario: an allowed request reaches the upstream with the
//! verified identity; a missing or invalid token gets a 401 with its challenge, a denied one a
//! 403, and neither reaches the upstream; a client's own identity headers never do; and with
//! poolgate down the proxy fails closed.
//!
//! A proxy that is not installed skips its test, unless `CI` is set: then the test fails
//! (`.ci/install-proxies` installs them all).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, World, copy_policies, eventually, repo_path, require_binary, set};
use crate::proxy::{Fault, FaultProxy};

/// One reverse proxy: how to run its shipped example.
struct Gateway {
    name: &'static str,
    binary: &'static str,
    /// Whether the example removes every client `X-Poolgate-*` header, not only the ones it
    /// sets: nginx cannot remove headers by prefix (see its example).
    strips_every_identity_header: bool,
    /// Which of poolgate's listeners the proxy calls.
    listener: Listener,
    /// Writes the example into `dir` with the test's addresses; the command that runs it.
    launch: fn(binary: &Path, dir: &Path, ports: &Ports) -> Command,
}

/// poolgate's HTTP listener (`server.bind`), or its gRPC one (`server.grpc_bind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Http,
    Grpc,
}

/// The ports of the addresses the examples document, as the test chose them (all on 127.0.0.1).
struct Ports {
    app: u16,
    poolgate: u16,
    proxy: u16,
}

const NGINX: Gateway = Gateway {
    name: "nginx",
    binary: "nginx",
    strips_every_identity_header: false,
    listener: Listener::Http,
    launch: launch_nginx,
};
const CADDY: Gateway = Gateway {
    name: "caddy",
    binary: "caddy",
    strips_every_identity_header: true,
    listener: Listener::Http,
    launch: launch_caddy,
};
const TRAEFIK: Gateway = Gateway {
    name: "traefik",
    binary: "traefik",
    strips_every_identity_header: true,
    listener: Listener::Http,
    launch: launch_traefik,
};
const ENVOY_HTTP: Gateway = Gateway {
    name: "envoy",
    binary: "envoy",
    strips_every_identity_header: true,
    listener: Listener::Http,
    launch: launch_envoy_http,
};
/// Envoy's gRPC ext_authz: the client's other `x-poolgate-*` headers go by poolgate's
/// `headers_to_remove`, not by a filter of the example.
const ENVOY_GRPC: Gateway = Gateway {
    name: "envoy-grpc",
    binary: "envoy",
    strips_every_identity_header: true,
    listener: Listener::Grpc,
    launch: launch_envoy_grpc,
};
const HAPROXY: Gateway = Gateway {
    name: "haproxy",
    binary: "haproxy",
    strips_every_identity_header: true,
    listener: Listener::Http,
    launch: launch_haproxy,
};

#[tokio::test]
async fn nginx() {
    scenario(&NGINX).await;
}

#[tokio::test]
async fn caddy() {
    scenario(&CADDY).await;
}

#[tokio::test]
async fn traefik() {
    scenario(&TRAEFIK).await;
}

#[tokio::test]
async fn envoy_http() {
    scenario(&ENVOY_HTTP).await;
}

#[tokio::test]
async fn envoy_grpc() {
    scenario(&ENVOY_GRPC).await;
}

#[tokio::test]
async fn haproxy() {
    scenario(&HAPROXY).await;
}

/// The behaviour every gateway must show; see the module documentation.
async fn scenario(gateway: &Gateway) {
    let Some(binary) = require_binary(gateway.binary) else { return };
    let name = gateway.name;
    let grpc_port = (gateway.listener == Listener::Grpc).then(free_port);
    let (world, _policies) = poolgate_with_stock(grpc_port).await;
    let poolgate: SocketAddr = match grpc_port {
        Some(port) => SocketAddr::from(([127, 0, 0, 1], port)),
        None => world.app.address.trim_start_matches("http://").parse().unwrap(),
    };
    // The proxy reaches poolgate through a TCP relay that can take it down (e).
    let relay = FaultProxy::start(poolgate).await;
    let upstream = Upstream::start();
    let proxy = RunningProxy::start(gateway, &binary, upstream.port, relay.port());
    proxy.wait_until_it_serves(&upstream).await;
    let base = format!("http://127.0.0.1:{}", proxy.port);
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().unwrap();
    let context = |what: &str| format!("{name}: {what}\n--- {name} log:\n{}", proxy.log());

    let admin = world.issuer.token("admin", "ada", &["admins"], json!({}));
    let support = world.issuer.token("admin", "sam", &["support"], json!({}));
    let merchant = world.issuer.token("merchant", "mia", &["merchant"], json!({ "custom:org_id": "o1" }));

    // a. Allowed: the upstream gets the request with the identity poolgate verified.
    let allowed = client.get(format!("{base}/accounts/acct-1?verbose=1")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(allowed.status(), 200, "{}", context("an allowed request"));
    let seen = upstream.take_one(&context("an allowed request"));
    assert_eq!((seen.method.as_str(), seen.uri.as_str()), ("GET", "/accounts/acct-1?verbose=1"), "{name}");
    assert_eq!(seen.values("x-poolgate-sub"), ["ada"], "{name}: {seen:?}");
    assert_eq!(seen.values("x-poolgate-pool"), ["admin"], "{name}: {seen:?}");
    assert_eq!(seen.values("x-poolgate-groups"), ["admins"], "{name}: {seen:?}");

    // b. No token, or a token that is no token: 401 with the challenge, nothing upstream.
    for (case, authorization) in [("no token", None), ("an invalid token", Some("Bearer garbage"))] {
        let mut request = client.get(format!("{base}/accounts/acct-1"));
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 401, "{}", context(case));
        let challenges: Vec<_> = answer.headers().get_all("www-authenticate").iter().collect();
        assert_eq!(challenges, [r#"Bearer error="invalid_token""#], "{}", context(case));
        upstream.assert_untouched(&context(case));
    }

    // c. Denied: 403, nothing upstream; a client cannot choose the request poolgate judges, and
    // an unrouted path is denied too.
    let denied = client.delete(format!("{base}/accounts/acct-1")).bearer_auth(&support).send().await.unwrap();
    assert_eq!(denied.status(), 403, "{}", context("a denied request"));
    let smuggled = client
        .delete(format!("{base}/accounts/acct-1"))
        .bearer_auth(&support)
        .header("X-Forwarded-Method", "GET")
        .header("X-Forwarded-Uri", "/public/x")
        .header("X-Original-Method", "GET")
        .header("X-Original-URI", "/public/x")
        .send()
        .await
        .unwrap();
    assert_eq!(smuggled.status(), 403, "{}", context("a denied request naming another one"));
    let unrouted = client.get(format!("{base}/admin/secrets")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(unrouted.status(), 403, "{}", context("an unrouted path"));
    upstream.assert_untouched(&context("denied requests"));

    // d. A client's own identity headers never reach the upstream: not beside the verified ones,
    // not on a public route (poolgate answers no identity there), not as attributes.
    let forged = client
        .get(format!("{base}/accounts/acct-1"))
        .bearer_auth(&support)
        .header("X-Poolgate-Sub", "ada")
        .header("X-Poolgate-Pool", "wallet")
        .header("X-Poolgate-Groups", "admins")
        .header("X-Poolgate-Attr-org_id", "x")
        .header("X-Poolgate-Attr-Role", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 200, "{}", context("forged identity headers"));
    let seen = upstream.take_one(&context("forged identity headers"));
    assert_eq!(seen.values("x-poolgate-sub"), ["sam"], "{name}: the client cannot choose the identity: {seen:?}");
    assert_eq!(seen.values("x-poolgate-pool"), ["admin"], "{name}: {seen:?}");
    assert_eq!(seen.values("x-poolgate-groups"), ["support"], "{name}: {seen:?}");
    assert_eq!(seen.values("x-poolgate-attr-org_id"), Vec::<String>::new(), "{name}: {seen:?}");
    if gateway.strips_every_identity_header {
        assert_eq!(seen.values("x-poolgate-attr-role"), Vec::<String>::new(), "{name}: {seen:?}");
    }

    let public = client
        .get(format!("{base}/public/ping"))
        .header("X-Poolgate-Sub", "ada")
        .header("X-Poolgate-Attr-org_id", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 200, "{}", context("forged identity headers on a public route"));
    let seen = upstream.take_one(&context("forged identity headers on a public route"));
    assert_eq!(seen.identity(), Vec::<(String, String)>::new(), "{name}: no identity on a public route: {seen:?}");

    let attributed = client
        .get(format!("{base}/stock/sku-1"))
        .bearer_auth(&merchant)
        .header("X-Poolgate-Attr-org_id", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(attributed.status(), 200, "{}", context("a merchant reading its stock"));
    let seen = upstream.take_one(&context("a merchant reading its stock"));
    assert_eq!(seen.values("x-poolgate-sub"), ["mia"], "{name}: {seen:?}");
    assert_eq!(seen.values("x-poolgate-attr-org_id"), ["o1"], "{name}: the verified attribute only: {seen:?}");

    // e. poolgate down (its port closed, open connections cut): the proxy fails closed.
    relay.set(Fault::Down);
    for path in ["/accounts/acct-1", "/public/ping"] {
        let answer = client.get(format!("{base}{path}")).bearer_auth(&admin).send().await.unwrap();
        let status = answer.status();
        assert!(!status.is_success(), "{}", context(&format!("{path} with poolgate down: {status}")));
        eprintln!("{name}: {path} with poolgate down: {status}");
    }
    upstream.assert_untouched(&context("requests with poolgate down"));
}

/// A poolgate whose routes also send `GET /stock/{sku}` to the merchant pool's `Stock`, whose
/// `org_id` comes from a table: stock `sku-1` belongs to organisation `o1`. The merchant pool
/// maps `custom:org_id` to the `org_id` attribute, so its tokens carry `X-Poolgate-Attr-org_id`.
/// With `grpc_port`, its gRPC listener is on that port too.
async fn poolgate_with_stock(grpc_port: Option<u16>) -> (World, tempfile::TempDir) {
    let policies = tempfile::tempdir().unwrap();
    copy_policies(policies.path());
    let routes = policies.path().join("routes.toml");
    let mut table = std::fs::read_to_string(&routes).unwrap();
    table.push_str(
        "\n[[route]]\nmethods = [\"GET\"]\npath = \"/stock/{sku}\"\nid = \"sku\"\naction = \"read\"\nresource = \"Stock\"\n",
    );
    std::fs::write(&routes, table).unwrap();
    let dir = policies.path().display().to_string();
    let world = World::start_with(&Backend::Sqlite, |config| {
        set(config, &["policies", "dir"], dir);
        set(config, &["resources", "Stock", "query"], "SELECT org_id FROM stock WHERE sku = $1");
        if let Some(port) = grpc_port {
            set(config, &["server", "grpc_bind"], format!("127.0.0.1:{port}"));
        }
    })
    .await;
    world.db.execute("CREATE TABLE stock (sku TEXT PRIMARY KEY, org_id TEXT NOT NULL)").await;
    world.db.execute("INSERT INTO stock (sku, org_id) VALUES ('sku-1', 'o1')").await;
    (world, policies)
}

/// One request as the upstream received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    /// Every value of header `name` (lower case), in order.
    fn values(&self, name: &str) -> Vec<String> {
        self.headers.iter().filter(|(header, _)| header == name).map(|(_, value)| value.clone()).collect()
    }

    /// Every `x-poolgate-*` header.
    fn identity(&self) -> Vec<(String, String)> {
        self.headers.iter().filter(|(header, _)| header.starts_with("x-poolgate-")).cloned().collect()
    }
}

/// The application behind the proxy: answers 200 to everything and records what it saw.
struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = web::Data::from(seen.clone());
        let server = HttpServer::new(move || App::new().app_data(recorded.clone()).default_service(web::to(record)))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
        tokio::spawn(server);
        Self { port, seen }
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    /// The one request the upstream saw since the last look.
    fn take_one(&self, context: &str) -> Seen {
        let mut seen = self.take();
        assert_eq!(seen.len(), 1, "{context}\n--- the upstream saw: {seen:?}");
        seen.remove(0)
    }

    fn assert_untouched(&self, context: &str) {
        let seen = self.take();
        assert!(seen.is_empty(), "{context}\n--- yet the upstream saw: {seen:?}");
    }
}

async fn record(request: HttpRequest, seen: web::Data<Mutex<Vec<Seen>>>) -> HttpResponse {
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    seen.lock().unwrap().push(Seen { method: request.method().to_string(), uri: request.uri().to_string(), headers });
    HttpResponse::Ok().body("upstream")
}

/// A proxy process running an example from a temporary folder; killed on drop.
struct RunningProxy {
    name: &'static str,
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl RunningProxy {
    /// Runs `gateway`'s example on a free port, in front of the application on port `app`
    /// and poolgate on port `poolgate`.
    fn start(gateway: &Gateway, binary: &Path, app: u16, poolgate: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let ports = Ports { app, poolgate, proxy: port };
        let log = std::fs::File::create(dir.path().join("proxy.log")).unwrap();
        let mut command = (gateway.launch)(binary, dir.path(), &ports);
        for variable in ["http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            command.env_remove(variable);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("{}: cannot run {}: {err}", gateway.name, binary.display()));
        Self { name: gateway.name, port, child, dir }
    }

    /// Waits until a request to a public route goes through the proxy and poolgate to the
    /// upstream (Traefik, say, answers 404 until it has read its routes), then forgets it.
    async fn wait_until_it_serves(&self, upstream: &Upstream) {
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().unwrap();
        let url = format!("http://127.0.0.1:{}/public/ping", self.port);
        let serving = eventually(Duration::from_secs(30), || async {
            client.get(&url).send().await.is_ok_and(|answer| answer.status() == StatusCode::OK)
        })
        .await;
        assert!(serving, "{} did not start serving within 30 s\n--- log:\n{}", self.name, self.log());
        upstream.take();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Copies `examples/<example>` to `dir/<file name>`, each documented address replaced; every
/// one must be in the file, so that an edited example cannot silently keep its own.
fn ship(example: &str, dir: &Path, replacements: &[(&str, String)]) -> PathBuf {
    let mut text = std::fs::read_to_string(repo_path(&format!("examples/{example}"))).unwrap();
    for (documented, chosen) in replacements {
        assert!(text.contains(documented), "examples/{example} no longer mentions {documented}");
        text = text.replace(documented, chosen);
    }
    let path = dir.join(Path::new(example).file_name().unwrap());
    std::fs::write(&path, text).unwrap();
    path
}

/// The three loopback addresses as `127.0.0.1:<port>`.
fn addresses(ports: &Ports) -> Vec<(&'static str, String)> {
    vec![
        ("127.0.0.1:8080", format!("127.0.0.1:{}", ports.app)),
        ("127.0.0.1:8180", format!("127.0.0.1:{}", ports.poolgate)),
        ("127.0.0.1:8000", format!("127.0.0.1:{}", ports.proxy)),
    ]
}

/// nginx: the example is a `server` block; a minimal main configuration around it keeps every
/// file nginx writes in `dir`.
fn launch_nginx(binary: &Path, dir: &Path, ports: &Ports) -> Command {
    let site = ship("nginx/poolgate.conf", dir, &addresses(ports));
    let d = dir.display();
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log stderr;\nevents {{}}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             include {site};\n}}\n",
            site = site.display()
        ),
    )
    .unwrap();
    let mut command = Command::new(binary);
    command.args(["-p", &d.to_string(), "-e", "stderr", "-c", &format!("{d}/nginx.conf")]);
    command
}

/// Caddy: its data and autosaved configuration stay in `dir` too.
fn launch_caddy(binary: &Path, dir: &Path, ports: &Ports) -> Command {
    let mut replacements = addresses(ports);
    replacements.retain(|(documented, _)| *documented != "127.0.0.1:8000");
    replacements.push(("http://:8000", format!("http://:{}", ports.proxy)));
    replacements.push(("admin 127.0.0.1:2019", format!("admin 127.0.0.1:{}", free_port())));
    let caddyfile = ship("caddy/Caddyfile", dir, &replacements);
    let mut command = Command::new(binary);
    command
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(caddyfile)
        .env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir);
    command
}

/// Traefik: run from `dir`, where its static configuration finds dynamic.yml.
fn launch_traefik(binary: &Path, dir: &Path, ports: &Ports) -> Command {
    let addresses = addresses(ports);
    let (services, listen) = addresses.split_at(2);
    let static_configuration = ship("traefik/traefik.yml", dir, listen);
    ship("traefik/dynamic.yml", dir, services);
    let mut command = Command::new(binary);
    command.arg(format!("--configFile={}", static_configuration.display())).current_dir(dir);
    command
}

/// Envoy with HTTP ext_authz.
fn launch_envoy_http(binary: &Path, dir: &Path, ports: &Ports) -> Command {
    let configuration = ship(
        "envoy-http/envoy.yaml",
        dir,
        &[
            ("port_value: 8080", format!("port_value: {}", ports.app)),
            ("port_value: 8180", format!("port_value: {}", ports.poolgate)),
            ("uri: http://127.0.0.1:8180", format!("uri: http://127.0.0.1:{}", ports.poolgate)),
            ("port_value: 8000", format!("port_value: {}", ports.proxy)),
        ],
    );
    run_envoy(binary, &configuration)
}

/// Envoy with gRPC ext_authz: poolgate's gRPC listener is 127.0.0.1:8181 in the example.
fn launch_envoy_grpc(binary: &Path, dir: &Path, ports: &Ports) -> Command {
    let configuration = ship(
        "envoy-grpc/envoy.yaml",
        dir,
        &[
            ("port_value: 8080", format!("port_value: {}", ports.app)),
            ("port_value: 8181", format!("port_value: {}", ports.poolgate)),
            ("port_value: 8000", format!("port_value: {}", ports.proxy)),
        ],
    );
    run_envoy(binary, &configuration)
}

/// Envoy on `configuration`: started by this process itself (it stops when the shell that
/// started it exits), with hot restart off and a base id of its own, so no shared memory is
/// shared with another Envoy.
fn run_envoy(binary: &Path, configuration: &Path) -> Command {
    let base_id = (uuid::Uuid::new_v4().as_u128() % 1_000_000).to_string();
    let mut command = Command::new(binary);
    command.arg("-c").arg(configuration).args([
        "--base-id",
        &base_id,
        "--disable-hot-restart",
        "--concurrency",
        "1",
        "--log-level",
        "warning",
    ]);
    command
}

/// HAProxy: in the foreground, its Lua script beside its configuration.
fn launch_haproxy(binary: &Path, dir: &Path, ports: &Ports) -> Command {
    let configuration = ship("haproxy/haproxy.cfg", dir, &addresses(ports));
    ship("haproxy/auth-request.lua", dir, &[]);
    let mut command = Command::new(binary);
    command.arg("-db").arg("-f").arg(configuration);
    command
}
