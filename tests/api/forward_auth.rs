//! `/v1/forward-auth` as proxies call it: Traefik/Caddy headers, nginx headers, Envoy paths,
//! and a real nginx in front of a tiny upstream running the shipped example configuration.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Answer, World, read, repo_path};

async fn forward(world: &World, method: &str, uri: &str, token: Option<&str>, style: &str) -> Answer {
    let client = &world.app.client;
    let mut request = match style {
        "envoy" => client.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}/v1/forward-auth{uri}", world.app.address),
        ),
        "nginx" => client
            .get(format!("{}/v1/forward-auth", world.app.address))
            .header("X-Original-Method", method)
            .header("X-Original-URI", uri),
        _ => client
            .get(format!("{}/v1/forward-auth", world.app.address))
            .header("X-Forwarded-Method", method)
            .header("X-Forwarded-Uri", uri),
    };
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn each_proxy_style_gets_allow_401_and_403() {
    let world = World::start().await;
    let admin = world.issuer.token("admin", "ada", &["admins"], json!({}));
    let support = world.issuer.token("admin", "sam", &["support"], json!({}));
    for style in ["traefik", "nginx", "envoy"] {
        let allow = forward(&world, "GET", "/accounts/acct-1?verbose=1", Some(&admin), style).await;
        assert_eq!(allow.status, 200, "{style}: {}", allow.body);
        assert_eq!(allow.headers["x-poolgate-pool"], "admin");
        assert_eq!(allow.headers["x-poolgate-sub"], "ada");
        assert_eq!(allow.headers["x-poolgate-groups"], "admins");

        let deny = forward(&world, "DELETE", "/accounts/acct-1", Some(&support), style).await;
        assert_eq!(deny.status, 403, "{style}: {}", deny.body);
        assert!(deny.headers.get("x-poolgate-sub").is_none());

        let missing = forward(&world, "GET", "/accounts/acct-1", None, style).await;
        assert_eq!((missing.status.as_u16(), missing.outcome()), (401, "missing_token"), "{style}");
        assert_eq!(missing.headers["www-authenticate"], r#"Bearer error="invalid_token""#);
    }
}

#[tokio::test]
async fn unmatched_non_canonical_and_foreign_routes_are_denied_and_public_ones_need_no_token() {
    let world = World::start().await;
    let admin = world.issuer.token("admin", "ada", &["admins"], json!({}));
    for uri in ["/nowhere", "/accounts", "/accounts/a/b", "/public/../accounts/1", "/accounts/%2e%2e", "//accounts/1"] {
        let answer = forward(&world, "GET", uri, Some(&admin), "nginx").await;
        assert_eq!(answer.status, 403, "{uri}: {}", answer.body);
    }
    let public = forward(&world, "POST", "/public/docs/index.html", None, "nginx").await;
    assert_eq!(public.status, 200);
    assert!(public.headers.get("x-poolgate-sub").is_none());
    // The route names `Account`, which the wallet pool's namespace does not have: deny.
    let wallet = world.issuer.token("wallet", "wil", &[], json!({}));
    assert_eq!(forward(&world, "GET", "/accounts/acct-1", Some(&wallet), "nginx").await.status, 403);
    // Half a pair, or both pairs at once, is a malformed request.
    let url = format!("{}/v1/forward-auth", world.app.address);
    let half = world.app.client.get(&url).header("X-Original-URI", "/accounts/acct-1").bearer_auth(&admin);
    assert_eq!(read(half.send().await.unwrap()).await.status, 400);
    let both = world
        .app
        .client
        .get(&url)
        .header("X-Original-Method", "GET")
        .header("X-Original-URI", "/accounts/acct-1")
        .header("X-Forwarded-Method", "GET")
        .header("X-Forwarded-Uri", "/public/x")
        .bearer_auth(&admin);
    assert_eq!(read(both.send().await.unwrap()).await.status, 400);
}

#[tokio::test]
async fn an_invalid_route_table_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::copy_policies(dir.path());
    std::fs::write(
        dir.path().join("routes.toml"),
        "[[route]]\nmethods = [\"GET\"]\npath = \"/x/{id}\"\naction = \"fly\"\nresource = \"Account\"\n",
    )
    .unwrap();
    let issuer = crate::fake_issuer::FakeIssuer::start();
    let db = crate::helpers::TestDatabase::create(&crate::helpers::Backend::Sqlite).await;
    let mut config = crate::helpers::base_config(&issuer, &db.url);
    crate::helpers::set(&mut config, &["policies", "dir"], dir.path().display().to_string());
    let error = crate::helpers::try_spawn_app(&config).await.err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(error.contains("route[0]") && error.contains("fly"), "{error}");
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn upstream(request: HttpRequest) -> HttpResponse {
    let sub = request.headers().get("x-poolgate-sub").and_then(|v| v.to_str().ok()).unwrap_or("-");
    HttpResponse::Ok().body(format!("upstream saw {sub}"))
}

#[tokio::test]
async fn nginx_auth_request_with_the_shipped_example_allows_401s_and_403s() {
    let Ok(nginx) = which_nginx() else {
        eprintln!("skipped: nginx is not installed (.ci/run installs it)");
        return;
    };
    let world = World::start().await;
    let app_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app_port = app_listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| App::new().default_service(web::to(upstream)))
        .workers(1)
        .disable_signals()
        .listen(app_listener)
        .unwrap()
        .run();
    tokio::spawn(server);

    let dir = tempfile::tempdir().unwrap();
    let nginx_port = free_port();
    let poolgate = world.app.address.trim_start_matches("http://").to_owned();
    let site = std::fs::read_to_string(repo_path("examples/nginx/poolgate.conf"))
        .unwrap()
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{app_port}"))
        .replace("127.0.0.1:8180", &poolgate)
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{nginx_port}"));
    std::fs::write(dir.path().join("poolgate.conf"), site).unwrap();
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             include {d}/poolgate.conf;\n}}\n"
        ),
    )
    .unwrap();
    let child = Command::new(nginx)
        .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _nginx = Nginx(child);
    let base = format!("http://127.0.0.1:{nginx_port}");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if client.get(format!("{base}/public/ping")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "nginx did not start: {}", std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default());

    let admin = world.issuer.token("admin", "ada", &["admins"], json!({}));
    let support = world.issuer.token("admin", "sam", &["support"], json!({}));
    let allowed = client.get(format!("{base}/accounts/acct-1")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.text().await.unwrap(), "upstream saw ada");

    let forged = client
        .get(format!("{base}/accounts/acct-1"))
        .bearer_auth(&support)
        .header("X-Poolgate-Sub", "ada")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.text().await.unwrap(), "upstream saw sam", "the client cannot choose the identity");

    let smuggled = client
        .delete(format!("{base}/accounts/acct-1"))
        .bearer_auth(&support)
        .header("X-Forwarded-Method", "GET")
        .header("X-Forwarded-Uri", "/public/x")
        .header("X-Original-URI", "/public/x")
        .send()
        .await
        .unwrap();
    assert_eq!(smuggled.status(), 403, "the client cannot choose the request poolgate judges");

    let denied = client.delete(format!("{base}/accounts/acct-1")).bearer_auth(&support).send().await.unwrap();
    assert_eq!(denied.status(), 403);
    let anonymous = client.get(format!("{base}/accounts/acct-1")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let challenges: Vec<_> = anonymous.headers().get_all("www-authenticate").iter().collect();
    assert_eq!(challenges, [r#"Bearer error="invalid_token""#], "one challenge, passed on by auth_request");
    let unrouted = client.get(format!("{base}/admin/secrets")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(unrouted.status(), 403);
}

fn which_nginx() -> Result<String, ()> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .find(|path| std::path::Path::new(path).exists())
        .map(|p| p.to_string())
        .ok_or(())
}

#[tokio::test]
async fn resource_attributes_come_from_the_configured_query_and_follow_changes() {
    for backend in crate::helpers::backends() {
        let dir = tempfile::tempdir().unwrap();
        crate::helpers::copy_policies(dir.path());
        std::fs::write(
            dir.path().join("routes.toml"),
            "[[route]]\nmethods = [\"PATCH\"]\npath = \"/stock/{sku}\"\nid = \"sku\"\naction = \"update\"\nresource = \"Stock\"\n",
        )
        .unwrap();
        let policies = dir.path().display().to_string();
        // Without a query for `Stock`, the route cannot be decided: refused at start-up.
        let issuer = crate::fake_issuer::FakeIssuer::start();
        let db = crate::helpers::TestDatabase::create(&backend).await;
        let mut config = crate::helpers::base_config(&issuer, &db.url);
        crate::helpers::set(&mut config, &["policies", "dir"], policies.clone());
        crate::helpers::set(&mut config, &["cache", "flags_ttl"], "1h");
        let error = crate::helpers::try_spawn_app(&config).await.err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(error.contains("resources.Stock.query"), "{error}");

        crate::helpers::set(&mut config, &["resources", "Stock", "query"], "SELECT org_id FROM stock WHERE sku = $1");
        let app = crate::helpers::spawn_app(&config).await;
        db.execute("CREATE TABLE stock (sku TEXT PRIMARY KEY, org_id TEXT NOT NULL)").await;
        if matches!(backend, crate::helpers::Backend::Postgres(_)) {
            db.execute("CREATE TRIGGER stock_notify AFTER INSERT OR UPDATE OR DELETE ON stock FOR EACH ROW EXECUTE FUNCTION poolgate_notify_row('resource', 'sku', 'Stock')").await;
        }
        db.execute("INSERT INTO stock (sku, org_id) VALUES ('sku-1', 'o1'), ('sku-2', 'o2')").await;
        db.execute("INSERT INTO principal_flags (pool, subject, flag) VALUES ('merchant', 'mia', 'can_manage_stock')")
            .await;
        let mia = issuer.token("merchant", "mia", &["merchant"], json!({ "custom:org_id": "o1" }));
        let patch = |sku: &str| {
            let request = app.client.patch(format!("{}/v1/forward-auth/stock/{sku}", app.address)).bearer_auth(&mia);
            async move { read(request.send().await.unwrap()).await }
        };
        assert_eq!(patch("sku-1").await.status, 200, "{backend:?}");
        assert_eq!(patch("sku-2").await.status, 403, "{backend:?}: another org's stock");
        assert_eq!(patch("sku-404").await.status, 403, "{backend:?}: no such row");

        db.execute("UPDATE stock SET org_id = 'o2' WHERE sku = 'sku-1'").await;
        let started = std::time::Instant::now();
        while patch("sku-1").await.status != 403 {
            assert!(started.elapsed() < Duration::from_secs(1), "{backend:?}: the change did not arrive");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn the_filters_table_mapping_also_loads_forward_auths_attributes() {
    for backend in crate::helpers::backends() {
        let dir = tempfile::tempdir().unwrap();
        crate::helpers::copy_policies(dir.path());
        std::fs::write(
            dir.path().join("routes.toml"),
            "[[route]]\nmethods = [\"PATCH\"]\npath = \"/stock/{sku}\"\nid = \"sku\"\naction = \"update\"\nresource = \"Stock\"\n",
        )
        .unwrap();
        let issuer = crate::fake_issuer::FakeIssuer::start();
        let db = crate::helpers::TestDatabase::create(&backend).await;
        let mut config = crate::helpers::base_config(&issuer, &db.url);
        crate::helpers::set(&mut config, &["policies", "dir"], dir.path().display().to_string());
        crate::helpers::set(&mut config, &["resources", "Stock", "table"], "stock");
        crate::helpers::set(&mut config, &["resources", "Stock", "id_column"], "sku");
        crate::helpers::set(&mut config, &["resources", "Stock", "attributes", "org_id", "column"], "org_id");
        let app = crate::helpers::spawn_app(&config).await;
        db.execute("CREATE TABLE stock (sku TEXT PRIMARY KEY, org_id TEXT)").await;
        db.execute("INSERT INTO stock (sku, org_id) VALUES ('sku-1', 'o1'), ('sku-2', 'O1'), ('sku-3', NULL)").await;
        db.execute("INSERT INTO principal_flags (pool, subject, flag) VALUES ('merchant', 'mia', 'can_manage_stock')")
            .await;
        let mia = issuer.token("merchant", "mia", &["merchant"], json!({ "custom:org_id": "o1" }));
        let patch = |sku: &str| {
            let request = app.client.patch(format!("{}/v1/forward-auth/stock/{sku}", app.address)).bearer_auth(&mia);
            async move { read(request.send().await.unwrap()).await.status }
        };
        assert_eq!(patch("sku-1").await, 200, "{backend:?}");
        assert_eq!(patch("sku-2").await, 403, "{backend:?}: another org, by case only");
        assert_eq!(patch("sku-3").await, 403, "{backend:?}: a row without its required org_id");
        assert_eq!(patch("sku-404").await, 403, "{backend:?}: no such row");
    }
}
