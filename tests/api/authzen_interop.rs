//! Every published decision of the OpenID AuthZEN interop scenarios, replayed against a real
//! poolgate running the matching example under `examples/authzen/`, in trusted-caller mode with
//! the example's API key sent as the interop clients send it (the bare key in `Authorization`).
//! The published decisions are restated as facts in `tests/fixtures/authzen/*.toml` (who asks
//! what, and the expected answer); [`published`] turns them back into AuthZEN requests.
//!
//! - Todo 1.0 (drafts 01 and 02, the latter with its batch) and the API gateway scenario, on
//!   `examples/authzen/todo`: the gateway names subjects `identity`, the Todo app `user`.
//! - Search (subject, resource, action), on `examples/authzen/search`.
//!
//! As the interop clients do, batch items and search results are compared as exact JSON;
//! unlike them, every status is checked too (a deny is a `200`).

use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use crate::authzen::{start_example, zen};
use crate::helpers::{backends, repo_path};

/// `type:id` as an AuthZEN entity; the id may itself hold `:`.
fn entity(typed: &str) -> Value {
    let (type_name, id) = typed.split_once(':').unwrap();
    json!({ "type": type_name, "id": id })
}

fn entities(list: &toml::Value) -> Vec<Value> {
    list.as_array().unwrap().iter().map(|item| entity(item.as_str().unwrap())).collect()
}

fn text(table: &toml::Value, key: &str) -> String {
    table[key].as_str().unwrap().to_owned()
}

/// A resource entity, with its properties when the case gives some.
fn resource(table: &toml::Value) -> Value {
    let mut resource = entity(table["resource"].as_str().unwrap());
    if let Some(properties) = table.get("properties") {
        resource["properties"] = serde_json::to_value(properties).unwrap();
    }
    resource
}

/// The cases of one fixture file's `kind`, as `{"request", "expected"}` pairs; for decisions,
/// only those of `scenario`.
fn published(file: &str, kind: &str, scenario: Option<&str>) -> Vec<Value> {
    let path = repo_path(&format!("tests/fixtures/authzen/{file}"));
    let data: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let cases = data.get(kind).and_then(toml::Value::as_array).cloned().unwrap_or_default();
    let in_scenario = |case: &toml::Value| scenario.is_none_or(|scenario| case["scenario"].as_str() == Some(scenario));
    cases
        .iter()
        .filter(|case| in_scenario(case))
        .map(|case| {
            let (request, expected) = match kind {
                "decision" => (
                    json!({ "subject": entity(&text(case, "subject")), "action": { "name": text(case, "action") },
                            "resource": resource(case) }),
                    json!(case["allow"].as_bool().unwrap()),
                ),
                "batch" => {
                    let items: Vec<Value> =
                        case["items"].as_array().unwrap().iter().map(|item| json!({ "resource": resource(item) })).collect();
                    let allow: Vec<Value> = case["allow"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|allow| json!({ "decision": allow.as_bool().unwrap() }))
                        .collect();
                    (
                        json!({ "subject": entity(&text(case, "subject")), "action": { "name": text(case, "action") },
                                "evaluations": items }),
                        Value::Array(allow),
                    )
                }
                "subject_search" => (
                    json!({ "subject": { "type": text(case, "subject_type") }, "action": { "name": text(case, "action") },
                            "resource": entity(&text(case, "resource")) }),
                    json!({ "results": entities(&case["subjects"]) }),
                ),
                "resource_search" => (
                    json!({ "subject": entity(&text(case, "subject")), "action": { "name": text(case, "action") },
                            "resource": { "type": text(case, "resource_type") } }),
                    json!({ "results": entities(&case["resources"]) }),
                ),
                _ => {
                    let actions: Vec<Value> = case["actions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|action| json!({ "name": action.as_str().unwrap() }))
                        .collect();
                    (
                        json!({ "subject": entity(&text(case, "subject")), "resource": entity(&text(case, "resource")) }),
                        json!({ "results": actions }),
                    )
                }
            };
            let mut pair = Map::new();
            pair.insert("request".into(), request);
            pair.insert("expected".into(), expected);
            Value::Object(pair)
        })
        .collect()
}

#[tokio::test]
async fn every_published_todo_and_api_gateway_decision_is_replayed() {
    for backend in backends() {
        let example = start_example("todo", &backend, |_| {}).await;
        let mut replayed = Vec::new();
        for file in ["todo-1.0-01", "todo-1.0-02", "gateway"] {
            let mut singles = 0;
            for case in published("todo.toml", "decision", Some(file)) {
                let answer =
                    zen(&example.app, "/access/v1/evaluation", Some("todo-interop-key"), &case["request"]).await;
                assert_eq!(answer.status, StatusCode::OK, "{backend:?} {file}: {}: {}", case["request"], answer.body);
                assert_eq!(
                    answer.body["decision"], case["expected"],
                    "{backend:?} {file}: {}: {}",
                    case["request"], answer.body
                );
                assert_eq!(answer.body["context"]["error"], Value::Null, "{file}: decided, not refused");
                singles += 1;
            }
            let mut batched = 0;
            for case in published("todo.toml", "batch", Some(file)) {
                let answer =
                    zen(&example.app, "/access/v1/evaluations", Some("todo-interop-key"), &case["request"]).await;
                assert_eq!(answer.status, StatusCode::OK, "{backend:?} {file}: {}", case["request"]);
                // Exactly what the interop client compares: the items, `{"decision": bool}` each.
                assert_eq!(
                    answer.body,
                    json!({ "evaluations": case["expected"] }),
                    "{backend:?} {file}: {}",
                    case["request"]
                );
                batched += case["expected"].as_array().unwrap().len();
            }
            replayed.push((file, singles, batched));
        }
        assert_eq!(
            replayed,
            [("todo-1.0-01", 40, 0), ("todo-1.0-02", 40, 6), ("gateway", 25, 0)],
            "every published decision, and no other"
        );
    }
}

#[tokio::test]
async fn the_same_user_answers_to_both_subject_types_of_the_todo_example() {
    let example = start_example("todo", &crate::helpers::Backend::Sqlite, |_| {}).await;
    let beth = "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
    for subject_type in ["user", "identity"] {
        for (action, expected) in [("GET", true), ("POST", false)] {
            let body = json!({"subject": {"type": subject_type, "id": beth}, "action": {"name": action},
                              "resource": {"type": "route", "id": "/todos"}});
            let answer = zen(&example.app, "/access/v1/evaluation", Some("todo-interop-key"), &body).await;
            assert_eq!(
                (answer.status, &answer.body["decision"]),
                (StatusCode::OK, &json!(expected)),
                "{subject_type} {action}"
            );
        }
    }
    // Another type is no subject type of the pool.
    let body = json!({"subject": {"type": "person", "id": beth}, "action": {"name": "GET"},
                      "resource": {"type": "route", "id": "/todos"}});
    let answer = zen(&example.app, "/access/v1/evaluation", Some("todo-interop-key"), &body).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn every_published_search_result_is_replayed() {
    for backend in backends() {
        let example = start_example("search", &backend, |_| {}).await;
        let mut replayed = Vec::new();
        for kind in ["subject", "resource", "action"] {
            let mut count = 0;
            for case in published("search.toml", &format!("{kind}_search"), None) {
                let path = format!("/access/v1/search/{kind}");
                let answer = zen(&example.app, &path, Some("search-interop-key"), &case["request"]).await;
                assert_eq!(answer.status, StatusCode::OK, "{backend:?} {kind}: {}: {}", case["request"], answer.body);
                let keys: Vec<&String> = answer.body.as_object().unwrap().keys().collect();
                assert_eq!(keys, ["results"], "{kind}: no page for a search of a few results");
                // The harness sorts both sides and compares exact JSON.
                assert_eq!(
                    sorted(&answer.body["results"]),
                    sorted(&case["expected"]["results"]),
                    "{backend:?} {kind}: {}",
                    case["request"]
                );
                count += 1;
            }
            replayed.push((kind, count));
        }
        assert_eq!(replayed, [("subject", 60), ("resource", 18), ("action", 120)]);
    }
}

fn sorted(results: &Value) -> Vec<String> {
    let mut items: Vec<String> = results.as_array().unwrap().iter().map(Value::to_string).collect();
    items.sort();
    items
}

#[tokio::test]
async fn search_pages_follow_their_tokens_and_refuse_a_changed_request() {
    for backend in backends() {
        let example = start_example("search", &backend, |_| {}).await;
        let app = &example.app;
        let key = Some("search-interop-key");
        // alice (a manager) views all 20 records: 7 pages of 3.
        let mut request = json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "view"},
                                 "resource": {"type": "record"}, "page": {"limit": 3}});
        let mut ids = Vec::new();
        for page in 0.. {
            let answer = zen(app, "/access/v1/search/resource", key, &request).await;
            assert_eq!(answer.status, StatusCode::OK, "{backend:?}: {}", answer.body);
            let results = answer.body["results"].as_array().unwrap();
            assert!(results.len() <= 3);
            ids.extend(results.iter().map(|result| result["id"].as_str().unwrap().to_owned()));
            let token = answer.body["page"]["next_token"].as_str().unwrap().to_owned();
            if token.is_empty() {
                assert_eq!(page, 6, "{backend:?}");
                break;
            }
            // A token is for the request it came from.
            let mut changed = request.clone();
            changed["action"]["name"] = json!("edit");
            changed["page"]["token"] = json!(token);
            let refused = zen(app, "/access/v1/search/resource", key, &changed).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST);
            request["page"]["token"] = json!(token);
        }
        let expected: Vec<String> = (101..=120).map(|id: u32| id.to_string()).collect();
        assert_eq!(ids, expected, "{backend:?}: every record once, in id order");

        // Subject search pages too: who can view 105 (five users), two at a time.
        let mut request = json!({"subject": {"type": "user"}, "action": {"name": "view"},
                                 "resource": {"type": "record", "id": "105"}, "page": {"limit": 2}});
        let mut users = Vec::new();
        loop {
            let answer = zen(app, "/access/v1/search/subject", key, &request).await;
            assert_eq!(answer.status, StatusCode::OK);
            users.extend(answer.body["results"].as_array().unwrap().iter().map(|user| user["id"].clone()));
            let token = answer.body["page"]["next_token"].as_str().unwrap().to_owned();
            if token.is_empty() {
                break;
            }
            request["page"]["token"] = json!(token);
        }
        assert_eq!(json!(users), json!(["alice", "bob", "carol", "dan", "erin"]), "{backend:?}");
        // A token this server never issued.
        request["page"]["token"] = json!("bm90IGEgdG9rZW4");
        assert_eq!(zen(app, "/access/v1/search/subject", key, &request).await.status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn a_search_page_holds_at_most_1000_results_and_the_next_token_brings_the_rest() {
    let example = start_example("certification", &crate::helpers::Backend::Sqlite, |_| {}).await;
    // 1100 more registered users, all readers, and 1100 more records.
    example
        .db
        .execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1100) \
             INSERT INTO principals (pool, subject) SELECT 'cert', 'user-' || (10000 + i) FROM n; \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1100) \
             INSERT INTO cert_records (id, status) SELECT 'record-x' || (10000 + i), 'active' FROM n",
        )
        .await;
    for (kind, body, total) in [
        (
            "subject",
            json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}),
            1102,
        ),
        (
            "resource",
            json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record"}}),
            1102,
        ),
    ] {
        let path = format!("/access/v1/search/{kind}");
        let first = zen(&example.app, &path, Some("certification-key"), &body).await;
        assert_eq!(first.status, StatusCode::OK, "{kind}: {}", first.body);
        assert_eq!(first.body["results"].as_array().unwrap().len(), 1000, "{kind}: a page holds 1000 without a limit");
        let token = first.body["page"]["next_token"].as_str().unwrap().to_owned();
        assert!(!token.is_empty(), "{kind}");
        let mut rest = body.clone();
        rest["page"] = json!({"token": token});
        let second = zen(&example.app, &path, Some("certification-key"), &rest).await;
        assert_eq!(second.status, StatusCode::OK, "{kind}: {}", second.body);
        assert_eq!(second.body["page"]["next_token"], "", "{kind}");
        assert_eq!(second.body["results"].as_array().unwrap().len(), total - 1000, "{kind}");
        // A larger limit is lowered to the cap.
        let mut large = body.clone();
        large["page"] = json!({"limit": 5000});
        let answer = zen(&example.app, &path, Some("certification-key"), &large).await;
        assert_eq!(answer.body["results"].as_array().unwrap().len(), 1000, "{kind}");
    }
}
