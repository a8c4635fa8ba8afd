//! poolgate's gRPC listener (`server.grpc_bind`), called as Envoy calls it: Envoy's ext_authz
//! (`envoy.service.auth.v3.Authorization/Check`) with tonic's client, once with grpcurl, and
//! the gRPC health service. A real Envoy in front of it is in `gateways`.
//!
//! An allow is `OK` with the identity headers to set and the client's other `x-poolgate-*`
//! headers to remove; a `401` or `403` is a denial with the status, body and challenge
//! `/v1/forward-auth` answers; an error is a `503` or `500` denial, never `OK`.

use std::path::PathBuf;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, attribute_context};
use serde_json::{Value, json};
use toml::Table;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::fake_issuer::{FakeIssuer, Mode};
use crate::helpers::{
    Backend, ProcessApp, TestDatabase, backends, base_config, eventually, repo_path, require_binary, set,
};

/// A poolgate with its gRPC listener on port 0, and a channel to it.
struct GrpcApp {
    issuer: FakeIssuer,
    db: TestDatabase,
    /// The HTTP listener, for comparing answers with `/v1/forward-auth`.
    http: String,
    grpc_port: u16,
    channel: Channel,
    dir: tempfile::TempDir,
}

impl GrpcApp {
    /// Starts poolgate on SQLite with the base configuration edited by `edit`, once `prepare`
    /// has set up the issuer.
    async fn start(prepare: impl FnOnce(&FakeIssuer), edit: impl FnOnce(&mut Table, &std::path::Path)) -> Self {
        Self::start_on(&Backend::Sqlite, prepare, edit).await
    }

    /// [`GrpcApp::start`] on `backend`.
    async fn start_on(
        backend: &Backend,
        prepare: impl FnOnce(&FakeIssuer),
        edit: impl FnOnce(&mut Table, &std::path::Path),
    ) -> Self {
        let issuer = FakeIssuer::start();
        prepare(&issuer);
        let db = TestDatabase::create(backend).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = base_config(&issuer, &db.url);
        set(&mut config, &["server", "grpc_bind"], "127.0.0.1:0");
        edit(&mut config, dir.path());
        let path = dir.path().join("poolgate.toml");
        std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
        let settings = poolgate::config::load(Some(&path)).unwrap();
        let listener = std::net::TcpListener::bind(settings.server.bind).unwrap();
        let app = poolgate::startup::build(settings, listener).await.unwrap();
        let grpc_port = app.grpc_port().expect("server.grpc_bind is set");
        assert_ne!(grpc_port, 0, "port 0 is replaced by the port bound");
        let http = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let channel = Channel::from_shared(format!("http://127.0.0.1:{grpc_port}")).unwrap().connect().await.unwrap();
        Self { issuer, db, http, grpc_port, channel, dir }
    }

    /// `Check` for `method path` with the client's `headers`.
    async fn check(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Verdict {
        let headers = headers.iter().map(|(name, value)| (name.to_ascii_lowercase(), value.to_string())).collect();
        self.check_request(request(method, path, |http| http.headers = headers)).await
    }

    async fn check_request(&self, request: CheckRequest) -> Verdict {
        let answer = AuthorizationClient::new(self.channel.clone()).check(request).await.unwrap().into_inner();
        let code = answer.status.map(|status| status.code).unwrap_or_default();
        let header = |option: &envoy_types::pb::envoy::config::core::v3::HeaderValueOption| {
            let header = option.header.clone().unwrap();
            (header.key, header.value)
        };
        match answer.http_response {
            Some(HttpResponse::OkResponse(ok)) => {
                assert_eq!(code, 0, "an allow is OK");
                for option in &ok.headers {
                    assert_eq!(option.append_action, 2, "identity headers overwrite: {option:?}");
                    assert!(option.keep_empty_value, "{option:?}");
                }
                Verdict::Allow { set: ok.headers.iter().map(header).collect(), remove: ok.headers_to_remove }
            }
            Some(HttpResponse::DeniedResponse(denied)) => {
                assert_ne!(code, 0, "a denial is never OK");
                Verdict::Deny {
                    status: denied.status.unwrap().code as u16,
                    headers: denied.headers.iter().map(header).collect(),
                    body: serde_json::from_str(&denied.body).unwrap(),
                }
            }
            other => panic!("neither an allow nor a denial: {other:?}"),
        }
    }

    /// What `/v1/forward-auth` answers for the same request, Traefik's way.
    async fn over_http(&self, method: &str, path: &str, token: Option<&str>) -> (u16, Option<String>, Value) {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut request = client
            .get(format!("{}/v1/forward-auth", self.http))
            .header("X-Forwarded-Method", method)
            .header("X-Forwarded-Uri", path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await.unwrap();
        let challenge = answer.headers().get("www-authenticate").map(|value| value.to_str().unwrap().to_owned());
        let status = answer.status().as_u16();
        (status, challenge, serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap_or(Value::Null))
    }
}

/// A check request as Envoy sends it, `edit` filling in the proxied request.
fn request(method: &str, path: &str, edit: impl FnOnce(&mut attribute_context::HttpRequest)) -> CheckRequest {
    let mut http = attribute_context::HttpRequest {
        id: "grpc-test".into(),
        method: method.into(),
        path: path.into(),
        host: "app.example".into(),
        scheme: "http".into(),
        protocol: "HTTP/1.1".into(),
        ..Default::default()
    };
    edit(&mut http);
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request { time: None, http: Some(http) }),
            ..Default::default()
        }),
    }
}

#[derive(Debug, PartialEq)]
enum Verdict {
    Allow { set: Vec<(String, String)>, remove: Vec<String> },
    Deny { status: u16, headers: Vec<(String, String)>, body: Value },
}

impl Verdict {
    fn header(&self, name: &str) -> Option<&str> {
        let Verdict::Deny { headers, .. } = self else { return None };
        headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

#[tokio::test]
async fn an_allow_sets_the_identity_and_removes_the_clients_other_identity_headers() {
    let app = GrpcApp::start(
        |_| {},
        |config, dir| set(config, &["decision_log", "sink"], dir.join("decisions.jsonl").display().to_string()),
    )
    .await;
    let admin = app.issuer.token("admin", "ada", &["admins"], json!({}));
    let bearer = format!("Bearer {admin}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("X-Poolgate-Sub", "mallory"),
        ("x-poolgate-attr-role", "root"),
        ("x-poolgate-pool", "wallet"),
        ("x-request-id", "not-this-one"),
    ];
    let verdict = app.check("GET", "/accounts/acct-1?verbose=1", &headers).await;
    let expected = Verdict::Allow {
        set: pairs(&[("x-poolgate-pool", "admin"), ("x-poolgate-sub", "ada"), ("x-poolgate-groups", "admins")]),
        remove: vec!["x-poolgate-attr-role".into()],
    };
    assert_eq!(verdict, expected, "the verified identity overwrites the client's; its other header goes");

    // A public route: allowed without a token, with no identity, and every client copy removed.
    let public = app.check("GET", "/public/ping", &[("x-poolgate-sub", "ada"), ("x-poolgate-attr-org_id", "o1")]).await;
    let expected =
        Verdict::Allow { set: Vec::new(), remove: vec!["x-poolgate-attr-org_id".into(), "x-poolgate-sub".into()] };
    assert_eq!(public, expected);

    // Envoy's raw header list (encode_raw_headers) is read too, repeated headers apart.
    let raw = |entries: &[(&str, &str)]| {
        let entries = entries
            .iter()
            .map(|(key, value)| HeaderValue {
                key: key.to_string(),
                value: String::new(),
                raw_value: value.as_bytes().to_vec(),
            })
            .collect();
        request("GET", "/accounts/acct-1", |http| http.header_map = Some(HeaderMap { headers: entries }))
    };
    let verdict = app.check_request(raw(&[("authorization", &bearer), ("x-poolgate-attr-role", "root")])).await;
    assert!(matches!(&verdict, Verdict::Allow { remove, .. } if remove == &["x-poolgate-attr-role"]), "{verdict:?}");
    let twice = app.check_request(raw(&[("authorization", &bearer), ("authorization", &bearer)])).await;
    assert!(
        matches!(&twice, Verdict::Deny { status: 401, body, .. } if body["error"] == "malformed_token"),
        "{twice:?}"
    );

    // The decision is logged under Envoy's request id, as forward-auth logs its own.
    let log = app.dir.path().join("decisions.jsonl");
    let logged = eventually(Duration::from_secs(5), || async {
        std::fs::read_to_string(&log).unwrap_or_default().lines().any(|line| {
            let record: Value = serde_json::from_str(line).unwrap_or_default();
            record["request_id"] == "grpc-test" && record["decision"] == "allow" && record["sub"] == "ada"
        })
    })
    .await;
    assert!(logged, "{}", std::fs::read_to_string(&log).unwrap_or_default());
}

#[tokio::test]
async fn a_401_and_a_403_are_denials_with_the_http_endpoints_status_body_and_challenge() {
    let app = GrpcApp::start(|_| {}, |_, _| {}).await;
    let support = app.issuer.token("admin", "sam", &["support"], json!({}));
    let admin = app.issuer.token("admin", "ada", &["admins"], json!({}));
    let cases = [
        ("no token", "GET", "/accounts/acct-1", None, 401),
        ("an invalid token", "GET", "/accounts/acct-1", Some("garbage"), 401),
        ("a Cedar deny", "DELETE", "/accounts/acct-1", Some(support.as_str()), 403),
        ("an unmatched route", "GET", "/admin/secrets", Some(admin.as_str()), 403),
        ("a non-canonical path", "GET", "/public/../accounts/1", Some(admin.as_str()), 403),
    ];
    for (case, method, path, token, status) in cases {
        let bearer = token.map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = bearer.iter().map(|bearer| ("authorization", bearer.as_str())).collect();
        let verdict = app.check(method, path, &headers).await;
        let (http_status, http_challenge, http_body) = app.over_http(method, path, token).await;
        let Verdict::Deny { status: grpc_status, body, .. } = &verdict else { panic!("{case}: {verdict:?}") };
        assert_eq!((*grpc_status, http_status), (status, status), "{case}: {body}");
        assert_eq!(body, &http_body, "{case}: the body /v1/forward-auth answers");
        assert_eq!(verdict.header("www-authenticate"), http_challenge.as_deref(), "{case}");
        assert_eq!(verdict.header("content-type"), Some("application/json"), "{case}");
        if status == 401 {
            assert_eq!(verdict.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#), "{case}");
        }
    }
    let Verdict::Deny { body, .. } = app.check("GET", "/admin/secrets", &[]).await else { panic!() };
    assert_eq!(
        body,
        json!({ "decision": "deny", "determining_policies": [], "errors": ["no route matches `GET /admin/secrets`"] })
    );

    // A check request without the proxied request is the caller's mistake, not an allow.
    let empty = app.check_request(CheckRequest { attributes: None }).await;
    assert!(
        matches!(&empty, Verdict::Deny { status: 400, body, .. } if body["error"] == "invalid_request"),
        "{empty:?}"
    );
}

#[tokio::test]
async fn an_unavailable_database_or_key_set_is_a_503_denial_never_ok() {
    // The database: the flag query fails, as in an outage.
    for backend in backends() {
        let app = GrpcApp::start_on(&backend, |_| {}, |_, _| {}).await;
        let token = app.issuer.token("admin", "uncached", &["admins"], json!({}));
        app.db.execute("ALTER TABLE principal_flags RENAME TO principal_flags_away").await;
        let bearer = format!("Bearer {token}");
        for _ in 0..3 {
            let verdict = app.check("GET", "/accounts/acct-1", &[("authorization", &bearer)]).await;
            assert!(
                matches!(&verdict, Verdict::Deny { status: 503, body, .. } if body["error"] == "database_unavailable"),
                "{backend:?}: {verdict:?}"
            );
        }
    }

    // The keys: the issuer's JWKS endpoint fails from the start.
    let app = GrpcApp::start(|issuer| issuer.set_mode(Mode::Down), |_, _| {}).await;
    let token = app.issuer.token("admin", "ada", &["admins"], json!({}));
    let verdict = app.check("GET", "/accounts/acct-1", &[("authorization", &format!("Bearer {token}"))]).await;
    assert!(
        matches!(&verdict, Verdict::Deny { status: 503, body, .. } if body["error"] == "jwks_unavailable"),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn an_identity_that_cannot_be_a_header_is_a_500_denial_never_ok() {
    let app = GrpcApp::start(|_| {}, |_, _| {}).await;
    // Cedar allows (the user is in `admins`), but a group name holds a line break.
    let token = app.issuer.token("admin", "ada", &["admins", "x\r\nx-poolgate-sub: root"], json!({}));
    let verdict = app.check("GET", "/accounts/acct-1", &[("authorization", &format!("Bearer {token}"))]).await;
    assert!(
        matches!(&verdict, Verdict::Deny { status: 500, body, .. } if body["error"] == "internal_error"),
        "{verdict:?}"
    );
    let (status, _, body) = app.over_http("GET", "/accounts/acct-1", Some(&token)).await;
    assert_eq!((status, &body["error"]), (500, &json!("internal_error")), "/v1/forward-auth alike");
}

#[tokio::test]
async fn the_health_service_reports_serving() {
    let app = GrpcApp::start(|_| {}, |_, _| {}).await;
    let mut health = HealthClient::new(app.channel.clone());
    for service in ["", "envoy.service.auth.v3.Authorization"] {
        let answer = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32, "`{service}`");
    }
    let unknown = health.check(HealthCheckRequest { service: "nope".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn the_grpc_listener_stops_with_the_process() {
    let issuer = FakeIssuer::start();
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = base_config(&issuer, &db.url);
    set(&mut config, &["server", "grpc_bind"], format!("127.0.0.1:{port}"));
    let mut process = ProcessApp::start(&config).await;
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel);
    let answer = health.check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(answer.status, ServingStatus::Serving as i32);
    // A client keeps its HTTP/2 connection open, as Envoy does; SIGTERM still stops the process.
    process.signal("TERM");
    let status = tokio::task::spawn_blocking(move || process.wait(Duration::from_secs(15))).await.unwrap();
    assert!(status.is_some_and(|status| status.success()), "{status:?}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the gRPC port is closed");
}

#[tokio::test]
async fn grpcurl_gets_an_allow_with_envoy_types_descriptors() {
    let Some(grpcurl) = require_binary("grpcurl") else { return };
    let app = GrpcApp::start(|_| {}, |_, _| {}).await;
    let admin = app.issuer.token("admin", "ada", &["admins"], json!({}));
    let data = json!({ "attributes": { "request": { "http": {
        "method": "GET",
        "path": "/accounts/acct-1",
        "headers": { "authorization": format!("Bearer {admin}"), "x-poolgate-attr-role": "root" },
    } } } });
    let arguments = vec![
        "-plaintext".to_owned(),
        "-protoset".to_owned(),
        envoy_types_descriptors().display().to_string(),
        "-d".to_owned(),
        data.to_string(),
        format!("127.0.0.1:{}", app.grpc_port),
        "envoy.service.auth.v3.Authorization/Check".to_owned(),
    ];
    let output = tokio::task::spawn_blocking(move || std::process::Command::new(grpcurl).args(arguments).output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["status"].get("code"), None, "OK: {answer}");
    let set: Vec<_> = answer["okResponse"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|option| (option["header"]["key"].as_str().unwrap(), option["header"]["value"].as_str().unwrap()))
        .collect();
    assert_eq!(set, [("x-poolgate-pool", "admin"), ("x-poolgate-sub", "ada"), ("x-poolgate-groups", "admins")]);
    assert_eq!(answer["okResponse"]["headersToRemove"], json!(["x-poolgate-attr-role"]), "{answer}");
}

/// The compiled descriptors envoy-types ships (`src/generated/types.bin`), as grpcurl's
/// `-protoset`: found through `cargo metadata`, for the host only (other platforms'
/// dependencies may not be downloaded).
fn envoy_types_descriptors() -> PathBuf {
    let cargo = |arguments: &[&str]| {
        let output = std::process::Command::new(env!("CARGO")).args(arguments).output().unwrap();
        assert!(output.status.success(), "cargo {arguments:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let version = cargo(&["-vV"]);
    let host = version.lines().find_map(|line| line.strip_prefix("host: ")).unwrap();
    let manifest = repo_path("Cargo.toml");
    let output = cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--locked",
        "--offline",
        "--filter-platform",
        host,
        "--manifest-path",
        manifest.to_str().unwrap(),
    ]);
    let metadata: Value = serde_json::from_str(&output).unwrap();
    let package = metadata["packages"].as_array().unwrap().iter().find(|package| package["name"] == "envoy-types");
    let manifest = PathBuf::from(package.unwrap()["manifest_path"].as_str().unwrap());
    manifest.parent().unwrap().join("src/generated/types.bin")
}
