//! The AuthZEN 1.0 certification scenario (github.com/openid/authzen,
//! `certification/authorization-api-1_0-scenario.md`), level by level: Basic, Batch, Search and
//! Discovery, core and properties, against `examples/authzen/certification` (the scenario's
//! fixture) in trusted-caller mode. Each case names its test id in the scenario; requests are
//! the scenario's, expectations its own, plus the status (which its harness also checks).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::authzen::{Example, start_example, zen};
use crate::helpers::{Answer, backends, read};

const KEY: &str = "certification-key";

async fn post(example: &Example, path: &str, body: &Value) -> Answer {
    zen(&example.app, path, Some(KEY), body).await
}

fn alice() -> Value {
    json!({"type": "user", "id": "alice"})
}

fn bob() -> Value {
    json!({"type": "user", "id": "bob"})
}

fn record(id: &str) -> Value {
    json!({"type": "record", "id": id})
}

fn ask(subject: Value, action: &str, resource: Value) -> Value {
    json!({"subject": subject, "action": {"name": action}, "resource": resource})
}

fn context() -> Value {
    json!({"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"})
}

#[tokio::test]
async fn basic_level_access_evaluation() {
    for backend in backends() {
        let example = start_example("certification", &backend, |_| {}).await;
        let archived = json!({"type": "record", "id": "record-2", "properties": {"status": "archived"}});
        let mut with_context = ask(alice(), "read", record("record-1"));
        with_context["context"] = context();
        let mut unknown_fields = ask(alice(), "read", record("record-1"));
        unknown_fields["foo"] = json!("bar");
        unknown_fields["futureField"] = json!({"nested": true});
        let cases = [
            ("C.2.2.1 permit (rule 1)", ask(alice(), "read", record("record-1")), true),
            ("C.2.2.2 deny (rule 4)", ask(bob(), "write", record("record-1")), false),
            ("C.2.2.3 optional context", with_context, true),
            ("C.2.2.4 deny on resource properties (rule 5)", ask(alice(), "write", archived.clone()), false),
            (
                "C.2.2.5 permit on subject properties (rule 6)",
                ask(json!({"type": "user", "id": "bob", "properties": {"role": "admin"}}), "write", archived),
                true,
            ),
            (
                "C.2.2.6 permit on action properties (rule 7)",
                json!({"subject": alice(), "action": {"name": "delete", "properties": {"soft": true}}, "resource": record("record-1")}),
                true,
            ),
            (
                "C.2.2.7 deny on action properties (rule 8)",
                json!({"subject": alice(), "action": {"name": "delete", "properties": {"soft": false}}, "resource": record("record-1")}),
                false,
            ),
            (
                "C.2.2.8 additional properties",
                json!({
                    "subject": {"type": "user", "id": "alice", "properties": {"department": "Sales", "role": "manager"}},
                    "action": {"name": "read", "properties": {"method": "GET"}},
                    "resource": {"type": "record", "id": "record-1", "properties": {"status": "active", "owner": "bob"}},
                }),
                true,
            ),
            ("C.2.2.9 unknown fields", unknown_fields, true),
            // The fixture's decisions without properties, from the data (rules 2 and 3).
            ("rule 2", ask(alice(), "write", record("record-1")), true),
            ("rule 3", ask(bob(), "read", record("record-1")), true),
        ];
        for (id, body, expected) in cases {
            let answer = post(&example, "/access/v1/evaluation", &body).await;
            assert_eq!(answer.status, StatusCode::OK, "{backend:?} {id}: {}", answer.body);
            assert_eq!(answer.headers["content-type"], "application/json", "{id}");
            // C.2.3: a boolean decision; a context, when present, is an object.
            assert_eq!(answer.body["decision"], json!(expected), "{backend:?} {id}: {}", answer.body);
            assert!(answer.body["context"].is_object(), "{id}");
        }

        // C.2.4.1, C.2.4.2, C.2.4.6: missing or mistyped members are 400.
        let without = |field: &str| {
            let mut body = ask(alice(), "read", record("record-1"));
            body.as_object_mut().unwrap().remove(field);
            body
        };
        let invalid = [
            ("C.2.4.1 missing subject", without("subject")),
            ("C.2.4.1 missing action", without("action")),
            ("C.2.4.1 missing resource", without("resource")),
            ("C.2.4.2 subject missing type", ask(json!({"id": "alice"}), "read", record("record-1"))),
            ("C.2.4.2 subject missing id", ask(json!({"type": "user"}), "read", record("record-1"))),
            ("C.2.4.2 action missing name", json!({"subject": alice(), "action": {}, "resource": record("record-1")})),
            ("C.2.4.2 resource missing type", ask(alice(), "read", json!({"id": "record-1"}))),
            ("C.2.4.2 resource missing id", ask(alice(), "read", json!({"type": "record"}))),
            (
                "C.2.4.6 subject a string",
                json!({"subject": "alice", "action": {"name": "read"}, "resource": record("record-1")}),
            ),
            (
                "C.2.4.6 action.name a number",
                json!({"subject": alice(), "action": {"name": 123}, "resource": record("record-1")}),
            ),
        ];
        for (id, body) in invalid {
            let answer = post(&example, "/access/v1/evaluation", &body).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{backend:?} {id}: {}", answer.body);
        }
        // C.2.4.3 to C.2.4.5: content type, malformed JSON, empty body.
        let body = ask(alice(), "read", record("record-1")).to_string();
        for (id, content_type, text) in [
            ("C.2.4.3 content type", "text/plain", body.as_str()),
            ("C.2.4.4 malformed JSON", "application/json", "{\"subject\": "),
            ("C.2.4.5 empty body", "application/json", ""),
        ] {
            let response = example
                .app
                .client
                .post(format!("{}/access/v1/evaluation", example.app.address))
                .header("Content-Type", content_type)
                .header("Authorization", KEY)
                .body(text.to_owned())
                .send()
                .await
                .unwrap();
            assert_eq!(read(response).await.status, StatusCode::BAD_REQUEST, "{id}");
        }
        // C.2.5: X-Request-ID echoed, and made when absent.
        let response = example
            .app
            .client
            .post(format!("{}/access/v1/evaluation", example.app.address))
            .header("Content-Type", "application/json")
            .header("Authorization", KEY)
            .header("X-Request-ID", "bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-request-id"], "bfe9eb29-ab87-4ca3-be83-a1d5d8305716");
        let answer = post(&example, "/access/v1/evaluation", &ask(alice(), "read", record("record-1"))).await;
        assert_eq!(answer.status, StatusCode::OK);
        // C.2.6: idempotent.
        for _ in 0..5 {
            let answer = post(&example, "/access/v1/evaluation", &ask(bob(), "write", record("record-1"))).await;
            assert_eq!((answer.status, &answer.body["decision"]), (StatusCode::OK, &json!(false)));
        }
    }
}

#[tokio::test]
async fn batch_level_access_evaluations() {
    for backend in backends() {
        let example = start_example("certification", &backend, |_| {}).await;
        let archived = json!({"type": "record", "id": "record-2", "properties": {"status": "archived"}});
        let t = json!({"decision": true});
        let f = json!({"decision": false});
        let cases = [
            (
                "C.3.2.2 fixture decisions, in order",
                json!({"subject": bob(), "resource": record("record-1"),
                       "evaluations": [{"action": {"name": "read"}}, {"action": {"name": "write"}}]}),
                json!([t, f]),
            ),
            (
                "C.3.2.3 resource properties per item",
                json!({"subject": alice(), "action": {"name": "write"}, "evaluations": [
                    {"resource": {"type": "record", "id": "record-1", "properties": {"status": "active"}}},
                    {"resource": archived}]}),
                json!([t, f]),
            ),
            (
                "C.3.2.4 subject properties per item",
                json!({"action": {"name": "write"}, "resource": archived, "evaluations": [
                    {"subject": alice()},
                    {"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}}}]}),
                json!([f, t]),
            ),
            (
                "C.3.2.5 no defaults",
                json!({"evaluations": [
                    ask(alice(), "read", record("record-1")),
                    ask(bob(), "write", record("record-1"))]}),
                json!([t, f]),
            ),
            (
                "C.3.2.7 default inheritance, whole-entity override",
                json!({"subject": alice(), "action": {"name": "write"},
                       "resource": {"type": "record", "id": "record-1", "properties": {"status": "active"}},
                       "evaluations": [{}, {"resource": archived}]}),
                json!([t, f]),
            ),
        ];
        for (id, body, expected) in cases {
            let answer = post(&example, "/access/v1/evaluations", &body).await;
            assert_eq!(answer.status, StatusCode::OK, "{backend:?} {id}");
            assert_eq!(answer.body, json!({ "evaluations": expected }), "{backend:?} {id}");
        }
        // C.3.2.1 and C.3.2.6: structure only (two items, each a boolean decision).
        let mut inherited = json!({"subject": alice(), "action": {"name": "read"},
            "evaluations": [{"resource": record("record-1")}, {"resource": record("record-2")}]});
        for id in ["C.3.2.1 evaluations array", "C.3.2.6 context inheritance"] {
            if id.starts_with("C.3.2.6") {
                inherited["context"] = json!({"time": "2025-06-27T18:03-07:00"});
                inherited["evaluations"][1]["context"] =
                    json!({"time": "2025-06-27T19:00-07:00", "source": "batch-override"});
            }
            let answer = post(&example, "/access/v1/evaluations", &inherited).await;
            assert_eq!(answer.status, StatusCode::OK, "{id}");
            let items = answer.body["evaluations"].as_array().unwrap();
            assert_eq!(items.len(), 2, "{id}");
            assert!(items.iter().all(|item| item["decision"].is_boolean()), "{id}");
            assert!(answer.body.get("decision").is_none(), "C.3.3.4: no top-level decision");
        }
        // C.3.4.1: a failed item under execute_all is a deny, with its reason in context.
        let body = json!({"subject": alice(), "action": {"name": "read"},
                          "options": {"evaluations_semantic": "execute_all"},
                          "evaluations": [{"resource": record("record-1")}, {}]});
        let answer = post(&example, "/access/v1/evaluations", &body).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body["evaluations"][0], t);
        assert_eq!(answer.body["evaluations"][1]["decision"], false);
        assert!(answer.body["evaluations"][1]["context"].is_object());
        // C.3.4.2 and C.3.4.3: without items, or with none, one evaluation.
        for evaluations in [None, Some(json!([]))] {
            let mut body = ask(alice(), "read", record("record-1"));
            if let Some(evaluations) = evaluations {
                body["evaluations"] = evaluations;
            }
            let answer = post(&example, "/access/v1/evaluations", &body).await;
            assert_eq!((answer.status, &answer.body["decision"]), (StatusCode::OK, &json!(true)));
        }
    }
}

#[tokio::test]
async fn search_level_subject_resource_and_action_search() {
    for backend in backends() {
        let example = start_example("certification", &backend, |_| {}).await;
        let users = |ids: &[&str]| json!({"results": ids.iter().map(|id| json!({"type": "user", "id": id})).collect::<Vec<_>>()});
        let records = |ids: &[&str]| json!({"results": ids.iter().map(|id| json!({"type": "record", "id": id})).collect::<Vec<_>>()});
        let actions =
            |names: &[&str]| json!({"results": names.iter().map(|name| json!({"name": name})).collect::<Vec<_>>()});
        let with_context = |mut body: Value| {
            body["context"] = context();
            body
        };
        let subject_search =
            json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": record("record-1")});
        let resource_search = json!({"subject": alice(), "action": {"name": "read"}, "resource": {"type": "record"}});
        let action_search = json!({"subject": alice(), "resource": record("record-1")});
        let cases = [
            ("C.4.2.1 subject search (S1)", "subject", subject_search.clone(), users(&["alice", "bob"])),
            ("C.4.2.2 with context", "subject", with_context(subject_search.clone()), users(&["alice", "bob"])),
            (
                "C.4.2.3 subject.id ignored",
                "subject",
                json!({"subject": alice(), "action": {"name": "read"}, "resource": record("record-1")}),
                users(&["alice", "bob"]),
            ),
            (
                "C.4.2.4 resource properties (S4)",
                "subject",
                json!({"subject": {"type": "user"}, "action": {"name": "write"},
                       "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}}),
                users(&["bob"]),
            ),
            ("C.4.3.1 resource search (S2)", "resource", resource_search.clone(), records(&["record-1", "record-2"])),
            ("C.4.3.2 with context", "resource", with_context(resource_search), records(&["record-1", "record-2"])),
            (
                "C.4.3.3 resource.id ignored",
                "resource",
                json!({"subject": alice(), "action": {"name": "read"}, "resource": record("record-1")}),
                records(&["record-1", "record-2"]),
            ),
            (
                "C.4.3.4 subject properties (S5)",
                "resource",
                json!({"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}},
                       "action": {"name": "write"}, "resource": {"type": "record"}}),
                records(&["record-2"]),
            ),
            ("C.4.4.1 action search (S3)", "action", action_search.clone(), actions(&["read", "write"])),
            ("C.4.4.2 with context", "action", with_context(action_search), actions(&["read", "write"])),
            (
                "C.4.4.3 properties (S6)",
                "action",
                json!({"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}},
                       "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}}),
                actions(&["read", "write"]),
            ),
            (
                "C.4.6.1 unknown subject id",
                "action",
                json!({"subject": {"type": "user", "id": "nonexistent-user"}, "resource": record("record-1")}),
                json!({"results": []}),
            ),
            (
                "C.4.6.2 unknown subject type",
                "subject",
                json!({"subject": {"type": "spaceship"}, "action": {"name": "read"}, "resource": record("record-1")}),
                json!({"results": []}),
            ),
            (
                "C.4.6 unknown resource type",
                "resource",
                json!({"subject": alice(), "action": {"name": "read"}, "resource": {"type": "spaceship"}}),
                json!({"results": []}),
            ),
            (
                "C.4.6 unknown resource id",
                "subject",
                json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": record("record-9")}),
                json!({"results": []}),
            ),
            (
                "C.4.6 unknown action",
                "resource",
                json!({"subject": alice(), "action": {"name": "fly"}, "resource": {"type": "record"}}),
                json!({"results": []}),
            ),
        ];
        for (id, kind, body, expected) in cases {
            let answer = post(&example, &format!("/access/v1/search/{kind}"), &body).await;
            assert_eq!(answer.status, StatusCode::OK, "{backend:?} {id}: {}", answer.body);
            assert_eq!(answer.headers["content-type"], "application/json");
            assert_eq!(answer.body, expected, "{backend:?} {id}");
        }

        // C.4.5: pagination with a limit, then the token, to the empty next_token.
        let mut paged = json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": record("record-1"),
                               "page": {"limit": 1}});
        let first = post(&example, "/access/v1/search/subject", &paged).await;
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(first.body["results"], json!([{"type": "user", "id": "alice"}]));
        let token = first.body["page"]["next_token"].as_str().unwrap();
        assert!(!token.is_empty(), "C.4.5.1: more results follow");
        paged["page"] = json!({"limit": 1, "token": token});
        let second = post(&example, "/access/v1/search/subject", &paged).await;
        assert_eq!(second.status, StatusCode::OK);
        assert_eq!(second.body, json!({"page": {"next_token": ""}, "results": [{"type": "user", "id": "bob"}]}));
        // C.4.5.4: a page on action search is accepted; every action comes at once.
        let answer = post(
            &example,
            "/access/v1/search/action",
            &json!({"subject": alice(), "resource": record("record-1"), "page": {"limit": 1}}),
        )
        .await;
        assert_eq!(answer.body, json!({"page": {"next_token": ""}, "results": [{"name": "read"}, {"name": "write"}]}));

        // C.4.7: missing members and sub-members are 400.
        let invalid = [
            (
                "C.4.7.1 subject search without action",
                "subject",
                json!({"subject": {"type": "user"}, "resource": record("record-1")}),
            ),
            (
                "C.4.7.1 resource search without subject",
                "resource",
                json!({"action": {"name": "read"}, "resource": {"type": "record"}}),
            ),
            ("C.4.7.1 action search without resource", "action", json!({"subject": alice()})),
            (
                "C.4.7.2 subject search, resource without id",
                "subject",
                json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record"}}),
            ),
            (
                "C.4.7.2 resource search, subject without id",
                "resource",
                json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record"}}),
            ),
            (
                "C.4.7.2 action search, subject without id",
                "action",
                json!({"subject": {"type": "user"}, "resource": record("record-1")}),
            ),
        ];
        for (id, kind, body) in invalid {
            let answer = post(&example, &format!("/access/v1/search/{kind}"), &body).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{backend:?} {id}: {}", answer.body);
        }
    }
}

#[tokio::test]
async fn discovery_level_pdp_metadata() {
    let example = start_example("certification", &crate::helpers::Backend::Sqlite, |_| {}).await;
    let answer = example.app.get("/.well-known/authzen-configuration").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/json");
    // Behind TLS the identifier is `authzen.base_url`; here, the URL the test discovered.
    let base = &example.app.address;
    assert_eq!(answer.body["policy_decision_point"], json!(base));
    for (key, path) in [
        ("access_evaluation_endpoint", "/access/v1/evaluation"),
        ("access_evaluations_endpoint", "/access/v1/evaluations"),
        ("search_subject_endpoint", "/access/v1/search/subject"),
        ("search_resource_endpoint", "/access/v1/search/resource"),
        ("search_action_endpoint", "/access/v1/search/action"),
    ] {
        assert_eq!(answer.body[key], json!(format!("{base}{path}")), "{key}");
        // Each named endpoint answers (a 400 for an empty object, not a 404).
        let path = answer.body[key].as_str().unwrap().trim_start_matches(base.as_str()).to_owned();
        assert_eq!(post(&example, &path, &json!({})).await.status, StatusCode::BAD_REQUEST, "{path}");
    }
    assert!(answer.body.get("capabilities").is_none(), "parameters without values are omitted");
    assert!(answer.body.get("signed_metadata").is_none());

    let example = start_example("certification", &crate::helpers::Backend::Sqlite, |config| {
        crate::helpers::set(config, &["authzen", "base_url"], "https://pdp.example.com");
    })
    .await;
    let answer = example.app.get("/.well-known/authzen-configuration").await;
    assert_eq!(answer.body["policy_decision_point"], "https://pdp.example.com");
    for key in ["access_evaluation_endpoint", "access_evaluations_endpoint", "search_subject_endpoint"] {
        assert!(answer.body[key].as_str().unwrap().starts_with("https://pdp.example.com/access/v1/"), "{key}");
    }
}
