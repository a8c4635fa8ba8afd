//! `/v1/forward-auth` as proxies call it: Traefik/Caddy headers, nginx headers, Envoy paths.
//! Real proxies running the shipped examples are in `gateways`.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Answer, World, read};

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
        let arrived =
            crate::helpers::eventually(Duration::from_secs(3), || async { patch("sku-1").await.status == 403 });
        assert!(arrived.await, "{backend:?}: the change did not arrive");
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
