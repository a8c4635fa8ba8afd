//! `GET /metrics` in Prometheus text format: decisions, latency, key fetches, cache lookups and
//! database errors, each moving when it should.

use serde_json::json;

use crate::helpers::{World, ask};

fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_decisions_fetches_cache_lookups_and_database_errors() {
    let world = World::start().await;
    let token = world.issuer.token("wallet", "wil", &[], json!({}));
    let mine = ask("read", "Wallet", "w-1", json!({ "owner": "wil" }));
    let theirs = ask("read", "Wallet", "w-2", json!({ "owner": "bob" }));
    world.app.check(&token, mine.clone()).await;
    world.app.check(&token, mine.clone()).await;
    world.app.check(&token, theirs).await;
    world.app.check("garbage", mine.clone()).await;
    world.db.execute("ALTER TABLE principal_flags RENAME TO away").await;
    let other = world.issuer.token("wallet", "uncached", &[], json!({}));
    assert_eq!(world.app.check(&other, mine).await.outcome(), "database_unavailable");

    let page = world.app.client.get(format!("{}/metrics", world.app.address)).send().await.unwrap();
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let metrics = page.text().await.unwrap();
    let decisions = |decision: &str, code: &str, pool: &str| {
        value(&metrics, &format!(r#"poolgate_decisions_total{{code="{code}",decision="{decision}",pool="{pool}"}}"#))
    };
    assert_eq!(decisions("allow", "", "wallet"), 2.0, "{metrics}");
    assert_eq!(decisions("deny", "", "wallet"), 1.0);
    assert_eq!(decisions("error", "malformed_token", ""), 1.0);
    assert_eq!(decisions("error", "database_unavailable", ""), 1.0);
    assert_eq!(value(&metrics, r#"poolgate_request_duration_seconds_count{decision="allow"}"#), 2.0);
    assert_eq!(value(&metrics, r#"poolgate_jwks_fetches_total{pool="wallet",result="ok"}"#), 1.0);
    assert_eq!(value(&metrics, r#"poolgate_cache_lookups_total{cache="principal",result="hit"}"#), 2.0);
    assert_eq!(value(&metrics, r#"poolgate_cache_lookups_total{cache="principal",result="miss"}"#), 2.0);
    assert_eq!(value(&metrics, "poolgate_database_errors_total"), 1.0);
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_served_routes() {
    let world = World::start().await;
    let document = world.app.get("/openapi.json").await.body;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."), "{document}");
    let paths = document["paths"].as_object().unwrap();
    let mut listed: Vec<&str> = paths.keys().map(String::as_str).collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "/.well-known/authzen-configuration",
            "/access/v1/evaluation",
            "/access/v1/evaluations",
            "/access/v1/search/action",
            "/access/v1/search/resource",
            "/access/v1/search/subject",
            "/healthz",
            "/metrics",
            "/readyz",
            "/v1/check",
            "/v1/check/batch",
            "/v1/filter",
            "/v1/forward-auth",
            "/v1/forward-auth/{original}",
            "/v1/permissions",
            "/v1/resources/search",
        ]
    );
    assert!(document["components"]["schemas"]["AccessRequest"].is_object(), "request bodies are described");
    // Every documented operation is served: no 404, no 405.
    for (path, operations) in paths {
        for method in operations.as_object().unwrap().keys() {
            let url = format!("{}{}", world.app.address, path.replace("{original}", "accounts/1"));
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let status = world.app.client.request(method.clone(), url).send().await.unwrap().status();
            assert!(status != 404 && status != 405, "{method} {path}: {status}");
        }
    }
    // Each operation has an operationId of its own, one handler serving several methods too,
    // and documents the limits' answers.
    let mut ids = std::collections::HashSet::new();
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "{method} {path}: `{id}` again");
            assert!(operation["responses"]["431"].is_object(), "{method} {path}");
            let has_body = operation.get("requestBody").is_some();
            assert_eq!(operation["responses"]["413"].is_object(), has_body, "{method} {path}");
        }
    }
    assert_eq!(paths["/v1/forward-auth"]["delete"]["operationId"], "forward_auth_delete");
}

#[tokio::test]
async fn oversized_headers_are_refused_before_any_handler_runs() {
    let world = World::start().await;
    let huge = "a".repeat(64 * 1024);
    let status = world
        .app
        .client
        .post(format!("{}/v1/check", world.app.address))
        .header("X-Padding", huge)
        .body("{}")
        .send()
        .await
        .map(|response| response.status().as_u16())
        .unwrap_or(0);
    assert_eq!(status, 431);
    let many = (0..80).fold(world.app.client.get(format!("{}/healthz", world.app.address)), |request, n| {
        request.header(format!("x-h{n}"), "v")
    });
    let answer = crate::helpers::read(many.send().await.unwrap()).await;
    assert_eq!((answer.status.as_u16(), answer.outcome()), (431, "headers_too_large"));
    assert_eq!(world.app.get("/healthz").await.status, 200, "the server keeps serving");
}
