//! AuthZEN 1.0 (`/access/v1/*`): token mode with real tokens from the fake issuer, the API key
//! of trusted callers, the transport rules, batches, the type mapping, subject properties, the
//! SQL groups joined into every principal and kept coherent, and the hostile cases: a subject id
//! that is not the token's `sub`, no key or a wrong one, unknown types, an oversize batch.
//! Every answer's status is checked: a deny is a `200`.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use toml::Table;

use crate::fake_issuer::{CLIENT_ID, FakeIssuer};
use crate::helpers::{
    Answer, Backend, TestApp, TestDatabase, World, backends, eventually, read, repo_path, set, spawn_app, try_spawn_app,
};

/// The API key trusted callers present in these tests.
pub const KEY: &str = "a caller's key";

/// The digest `authzen.api_keys` holds for `key`.
pub fn digest(key: &str) -> String {
    poolgate::authzen::keys::digest_hex(key)
}

/// `POST path` with `body` as JSON and `authorization` as the raw `Authorization` value (the
/// interop clients send the bare key).
pub async fn zen(app: &TestApp, path: &str, authorization: Option<&str>, body: &Value) -> Answer {
    let mut request = app
        .client
        .post(format!("{}{path}", app.address))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    read(request.send().await.unwrap()).await
}

/// `POST path` with raw headers and body bytes.
async fn raw(app: &TestApp, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut request = app.client.post(format!("{}{path}", app.address)).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    read(request.send().await.unwrap()).await
}

/// An example of `examples/authzen/` running against a fresh database, its data migrations
/// applied as `poolgate migrate` applies them.
pub struct Example {
    pub issuer: FakeIssuer,
    pub db: TestDatabase,
    pub app: TestApp,
}

/// The example's configuration with this test's database, and its pool trusting the fake
/// issuer's `admin` keys (tokens signed by them carry `iss` = `issuer.issuer("admin")`).
pub fn example_config(name: &str, issuer: &FakeIssuer, db: &TestDatabase) -> Table {
    let dir = example_dir(name);
    let mut config: Table = toml::from_str(&std::fs::read_to_string(dir.join("poolgate.toml")).unwrap()).unwrap();
    set(&mut config, &["server", "bind"], "127.0.0.1:0");
    set(&mut config, &["database", "url"], db.url.clone());
    set(&mut config, &["database", "data_migrations"], dir.join("data").display().to_string());
    set(&mut config, &["policies", "dir"], dir.join("policies").display().to_string());
    set(&mut config, &["policies", "watch"], false);
    set(&mut config, &["decision_log", "sink"], "/dev/null");
    set(&mut config, &["jwks", "refresh_interval"], "1h");
    let pools = config["pools"].as_table_mut().unwrap();
    for (_, pool) in pools.iter_mut() {
        let pool = pool.as_table_mut().unwrap();
        pool.insert("issuer".into(), issuer.issuer("admin").into());
        pool.insert("client_ids".into(), toml::Value::Array(vec![CLIENT_ID.into()]));
    }
    config
}

pub fn example_dir(name: &str) -> PathBuf {
    repo_path(&format!("examples/authzen/{name}"))
}

/// Starts `examples/authzen/<name>` on `backend`, with `edit` applied to its configuration.
pub async fn start_example(name: &str, backend: &Backend, edit: impl FnOnce(&mut Table)) -> Example {
    let issuer = FakeIssuer::start();
    let db = TestDatabase::create(backend).await;
    let mut config = example_config(name, &issuer, &db);
    edit(&mut config);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("poolgate.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    let settings = poolgate::config::load(Some(&path)).unwrap();
    let pool = poolgate::db::connect(&settings.database).await.unwrap();
    poolgate::db::migrate(&pool, &settings.database).await.unwrap();
    poolgate::db::migrate_data(&pool, settings.database.data_migrations.as_deref().unwrap()).await.unwrap();
    pool.close().await;
    let app = spawn_app(&config).await;
    Example { issuer, db, app }
}

fn evaluation(token: &str, action: &str, resource_type: &str, id: &str) -> Value {
    json!({
        "subject": {"type": "user", "properties": {"token": token}},
        "action": {"name": action},
        "resource": {"type": resource_type, "id": id},
    })
}

/// `(status, decision)` of an evaluation answer.
fn decided(answer: &Answer) -> (u16, Value) {
    (answer.status.as_u16(), answer.body["decision"].clone())
}

/// `(status, context.error.code)` of a refused evaluation.
fn refused(answer: &Answer) -> (u16, bool, String) {
    let code = answer.body["context"]["error"]["code"].as_str().unwrap_or("<none>").to_owned();
    (answer.status.as_u16(), answer.body["decision"] == json!(false), code)
}

#[tokio::test]
async fn token_mode_decides_as_check_does_with_the_reasons_in_context() {
    let world = World::start().await;
    let app = &world.app;
    let ada = world.issuer.token("admin", "ada", &["admins"], json!({}));
    let sam = world.issuer.token("admin", "sam", &["support"], json!({}));

    let answer = zen(app, "/access/v1/evaluation", None, &evaluation(&ada, "delete", "Account", "a1")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body,
        json!({"decision": true, "context": {"determining_policies": ["admin.admins-manage-accounts"], "errors": []}})
    );
    assert_eq!(answer.headers["content-type"], "application/json");

    // A deny is a 200.
    let answer = zen(app, "/access/v1/evaluation", None, &evaluation(&sam, "delete", "Account", "a1")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, json!({"decision": false, "context": {"determining_policies": [], "errors": []}}));

    // The same questions through /v1/check.
    for (token, action, expected) in [(&ada, "delete", "allow"), (&sam, "delete", "deny"), (&sam, "read", "allow")] {
        let check = app.check(token, json!({"action": action, "resource": {"type": "Account", "id": "a1"}})).await;
        assert_eq!(check.outcome(), expected);
        let zen_answer = zen(app, "/access/v1/evaluation", None, &evaluation(token, action, "Account", "a1")).await;
        assert_eq!(decided(&zen_answer), (200, json!(expected == "allow")), "{action}");
    }

    // Paired mode: the access token in `token`, the ID token beside it.
    let mut access = world.issuer.access_claims("admin", "ada", "openid");
    access.insert("cognito:groups".into(), json!(["admins"]));
    let access = world.issuer.sign("admin", &access);
    let paired = json!({
        "subject": {"type": "user", "id": "ada", "properties": {"token": access, "id_token": ada}},
        "action": {"name": "update"},
        "resource": {"type": "Account", "id": "a1"},
    });
    assert_eq!(decided(&zen(app, "/access/v1/evaluation", None, &paired).await), (200, json!(true)));
    // An ID token of someone else breaks the pair.
    let mut mismatched = paired.clone();
    mismatched["subject"]["properties"]["id_token"] = json!(sam);
    assert_eq!(
        refused(&zen(app, "/access/v1/evaluation", None, &mismatched).await),
        (200, true, "token_pair_mismatch".to_owned())
    );

    // Resource attributes are the resource's properties; the merchant's org comes from its token.
    let mia = world.issuer.token("merchant", "mia", &["merchant"], json!({"custom:org_id": "o1"}));
    let stock = |org: &str| {
        json!({"subject": {"type": "user", "properties": {"token": mia}}, "action": {"name": "read"},
               "resource": {"type": "Stock", "id": "s1", "properties": {"org_id": org, "undeclared": 1}}})
    };
    assert_eq!(decided(&zen(app, "/access/v1/evaluation", None, &stock("o1")).await), (200, json!(true)));
    assert_eq!(decided(&zen(app, "/access/v1/evaluation", None, &stock("o2")).await), (200, json!(false)));
}

#[tokio::test]
async fn a_subject_that_cannot_be_judged_is_a_deny_with_its_reason_and_never_its_token() {
    let world = World::start().await;
    let app = &world.app;
    let ada = world.issuer.token("admin", "ada", &["admins"], json!({}));
    let ask = |subject: Value| json!({"subject": subject, "action": {"name": "read"}, "resource": {"type": "Account", "id": "a1"}});

    // subject.id must be the token's sub.
    let named = |id: &str| ask(json!({"type": "user", "id": id, "properties": {"token": ada}}));
    assert_eq!(decided(&zen(app, "/access/v1/evaluation", None, &named("ada")).await), (200, json!(true)));
    let answer = zen(app, "/access/v1/evaluation", None, &named("root")).await;
    assert_eq!(refused(&answer), (200, true, "subject_mismatch".to_owned()), "{}", answer.body);
    assert_eq!(answer.body["context"]["error"]["status"], 403);

    let mut expired = world.issuer.id_claims("admin", "ada");
    expired.insert("exp".into(), json!(crate::fake_issuer::now() - 600));
    expired.insert("cognito:groups".into(), json!(["admins"]));
    let expired = world.issuer.sign("admin", &expired);
    let foreign = crate::fake_issuer::KEYS["foreign"].sign(&world.issuer.id_claims("admin", "ada")).unwrap();
    for (token, code) in
        [(&expired, "token_expired"), (&foreign, "unknown_key"), (&"not.a.token".to_owned(), "malformed_token")]
    {
        let answer =
            zen(app, "/access/v1/evaluation", None, &ask(json!({"type": "user", "properties": {"token": token}})))
                .await;
        assert_eq!(refused(&answer), (200, true, code.to_owned()), "{}", answer.body);
        assert_eq!(answer.body["context"]["error"]["status"], 401);
        assert!(!answer.body.to_string().contains(token.as_str()), "the answer carries the token");
    }

    world.db.execute("INSERT INTO principals (pool, subject, disabled) VALUES ('admin', 'ada', TRUE)").await;
    let disabled = eventually(Duration::from_secs(3), || async {
        let answer = zen(app, "/access/v1/evaluation", None, &named("ada")).await;
        refused(&answer) == (200, true, "principal_disabled".to_owned())
    })
    .await;
    assert!(disabled, "a disabled principal is a deny with its reason");

    // A search for a subject that cannot be judged finds nothing.
    let search = json!({"subject": {"type": "user", "properties": {"token": expired}}, "resource": {"type": "Account", "id": "a1"}});
    let answer = zen(app, "/access/v1/search/action", None, &search).await;
    assert_eq!((answer.status, &answer.body), (StatusCode::OK, &json!({"results": []})));

    // Token mode never judges a subject named by id alone: that would be an oracle.
    let answer = zen(app, "/access/v1/evaluation", None, &ask(json!({"type": "user", "id": "ada"}))).await;
    assert_eq!((answer.status, answer.outcome()), (StatusCode::BAD_REQUEST, "invalid_request"), "{}", answer.body);
    let subject_search =
        json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "Account", "id": "a1"}});
    let answer = zen(app, "/access/v1/search/subject", None, &subject_search).await;
    assert_eq!((answer.status, answer.outcome()), (StatusCode::FORBIDDEN, "trusted_caller_required"));
    // A token that is not a string is a malformed request.
    let answer =
        zen(app, "/access/v1/evaluation", None, &ask(json!({"type": "user", "properties": {"token": 1}}))).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn without_keys_authorization_is_not_read_and_with_keys_it_gates_every_endpoint() {
    let world = World::start().await;
    let ada = world.issuer.token("admin", "ada", &["admins"], json!({}));
    let body = evaluation(&ada, "read", "Account", "a1");
    // What the interop clients send when they have no key, and a bearer token of no meaning.
    for authorization in [None, Some("undefined"), Some("Bearer whatever"), Some("")] {
        let answer = zen(&world.app, "/access/v1/evaluation", authorization, &body).await;
        assert_eq!(decided(&answer), (200, json!(true)), "{authorization:?}");
    }

    let world = World::start_with(&Backend::Sqlite, |config| {
        set(config, &["authzen", "api_keys"], toml::Value::Array(vec![digest(KEY).into(), digest("second").into()]));
    })
    .await;
    let ada = world.issuer.token("admin", "ada", &["admins"], json!({}));
    let body = evaluation(&ada, "read", "Account", "a1");
    for path in [
        "/access/v1/evaluation",
        "/access/v1/evaluations",
        "/access/v1/search/subject",
        "/access/v1/search/resource",
        "/access/v1/search/action",
    ] {
        let answer = zen(&world.app, path, None, &body).await;
        assert_eq!((answer.status, answer.outcome()), (StatusCode::UNAUTHORIZED, "missing_api_key"), "{path}");
        assert_eq!(answer.headers["www-authenticate"], r#"Bearer realm="poolgate-authzen""#);
        for wrong in ["undefined", "Bearer undefined", "a caller's ke", "Bearer  ", &digest(KEY)] {
            let answer = zen(&world.app, path, Some(wrong), &body).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path} {wrong}");
            assert!(
                answer.headers["www-authenticate"].to_str().unwrap().starts_with(r#"Bearer realm="poolgate-authzen""#)
            );
        }
        let answer = zen(&world.app, path, Some("wrong key"), &body).await;
        assert_eq!(answer.outcome(), "invalid_api_key");
        assert_eq!(answer.headers["www-authenticate"], r#"Bearer realm="poolgate-authzen", error="invalid_token""#);
    }
    for authorization in [KEY.to_owned(), format!("Bearer {KEY}"), "second".to_owned()] {
        let answer = zen(&world.app, "/access/v1/evaluation", Some(&authorization), &body).await;
        assert_eq!(decided(&answer), (200, json!(true)), "{authorization}");
    }
    // Two Authorization headers are ambiguous.
    let answer = raw(
        &world.app,
        "/access/v1/evaluation",
        &[("Content-Type", "application/json"), ("Authorization", KEY), ("Authorization", KEY)],
        &body.to_string(),
    )
    .await;
    assert_eq!((answer.status, answer.outcome()), (StatusCode::UNAUTHORIZED, "invalid_api_key"));
    // The metadata is public.
    assert_eq!(world.app.get("/.well-known/authzen-configuration").await.status, StatusCode::OK);
}

#[tokio::test]
async fn trusted_caller_mode_needs_a_key_and_judges_only_registered_subjects_from_sql() {
    let issuer = FakeIssuer::start();
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let mut config = crate::helpers::base_config(&issuer, &db.url);
    set(&mut config, &["authzen", "subject_mode"], "trusted_caller");
    let error = try_spawn_app(&config).await.err().unwrap().to_string();
    assert!(error.contains("authzen.api_keys: trusted_caller mode needs at least one API key"), "{error}");
    // Three pools may not share the subject type `user`: it is what picks the pool.
    set(&mut config, &["authzen", "api_keys"], toml::Value::Array(vec![digest(KEY).into()]));
    let error = try_spawn_app(&config).await.err().unwrap().to_string();
    assert!(error.contains("authzen.pools.merchant.subject_types: `user` also names pool `admin`"), "{error}");

    for backend in backends() {
        let world = World::start_with(&backend, |config| {
            set(config, &["authzen", "subject_mode"], "trusted_caller");
            set(config, &["authzen", "api_keys"], toml::Value::Array(vec![digest(KEY).into()]));
            set(
                config,
                &["authzen", "pools", "merchant", "subject_types"],
                toml::Value::Array(vec!["merchant".into()]),
            );
            set(config, &["authzen", "pools", "wallet", "subject_types"], toml::Value::Array(vec![]));
        })
        .await;
        world
            .db
            .execute(
                "INSERT INTO principals (pool, subject) VALUES ('admin', 'ada'), ('admin', 'bob'); \
                 INSERT INTO principals (pool, subject, disabled) VALUES ('admin', 'dee', TRUE); \
                 INSERT INTO principal_groups (pool, subject, group_name) VALUES ('admin', 'ada', 'admins'), \
                     ('admin', 'dee', 'admins'), ('merchant', 'bob', 'admins')",
            )
            .await;
        let app = &world.app;
        let ask = |subject: Value| json!({"subject": subject, "action": {"name": "delete"}, "resource": {"type": "Account", "id": "a1"}});
        let by_id = |id: &str| ask(json!({"type": "user", "id": id}));
        assert_eq!(decided(&zen(app, "/access/v1/evaluation", Some(KEY), &by_id("ada")).await), (200, json!(true)));
        // No key, or a wrong one: 401, and nothing about the subject.
        let answer = zen(app, "/access/v1/evaluation", None, &by_id("ada")).await;
        assert_eq!((answer.status, answer.body.get("decision")), (StatusCode::UNAUTHORIZED, None));
        let answer = zen(app, "/access/v1/evaluation", Some("undefined"), &by_id("ada")).await;
        assert_eq!((answer.status, answer.outcome()), (StatusCode::UNAUTHORIZED, "invalid_api_key"));
        // Groups come from SQL in the subject's own pool, never from the request or a token.
        let ada_token = world.issuer.token("admin", "bob", &["admins"], json!({}));
        let forged = ask(json!({"type": "user", "id": "bob",
            "properties": {"groups": ["admins"], "flags": ["can_add_user"], "token": ada_token}}));
        let answer = zen(app, "/access/v1/evaluation", Some(KEY), &forged).await;
        assert_eq!(decided(&answer), (200, json!(false)), "{backend:?}: {}", answer.body);
        // Flags come from SQL too.
        let create = json!({"subject": {"type": "user", "id": "ada"}, "action": {"name": "create"},
                            "resource": {"type": "Account", "id": "a9"}});
        assert_eq!(decided(&zen(app, "/access/v1/evaluation", Some(KEY), &create).await), (200, json!(false)));
        world
            .db
            .execute("INSERT INTO principal_flags (pool, subject, flag) VALUES ('admin', 'ada', 'can_add_user')")
            .await;
        let granted = eventually(Duration::from_secs(3), || async {
            decided(&zen(app, "/access/v1/evaluation", Some(KEY), &create).await) == (200, json!(true))
        })
        .await;
        assert!(granted, "{backend:?}: a flag granted in SQL reaches a named subject");
        // Unregistered or disabled subjects are never judged.
        for (id, code) in [("zed", "principal_not_registered"), ("dee", "principal_disabled")] {
            let answer = zen(app, "/access/v1/evaluation", Some(KEY), &by_id(id)).await;
            assert_eq!(refused(&answer), (200, true, code.to_owned()), "{backend:?}");
        }
        // The subject type picks the pool: `merchant` names the merchant pool, where bob is no admin
        // and there are no accounts; a type naming no pool is a 400.
        let answer = zen(app, "/access/v1/evaluation", Some(KEY), &ask(json!({"type": "merchant", "id": "bob"}))).await;
        assert_eq!(refused(&answer), (200, true, "principal_not_registered".to_owned()), "{}", answer.body);
        let answer = zen(app, "/access/v1/evaluation", Some(KEY), &ask(json!({"type": "identity", "id": "ada"}))).await;
        assert_eq!((answer.status, answer.outcome()), (StatusCode::BAD_REQUEST, "invalid_request"));
        // subject.id is required.
        let answer = zen(app, "/access/v1/evaluation", Some(KEY), &ask(json!({"type": "user"}))).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        // Subject search lists the registered, enabled subjects the policies allow.
        let search = json!({"subject": {"type": "user"}, "action": {"name": "delete"}, "resource": {"type": "Account", "id": "a1"}});
        let answer = zen(app, "/access/v1/search/subject", Some(KEY), &search).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, json!({"results": [{"type": "user", "id": "ada"}]}), "{backend:?}");
    }
}

#[tokio::test]
async fn unknown_types_are_400_in_an_evaluation_a_failed_item_in_a_batch_and_nothing_in_a_search() {
    let world = World::start().await;
    let app = &world.app;
    let ada = world.issuer.token("admin", "ada", &["admins"], json!({}));
    let subject = json!({"type": "user", "properties": {"token": ada}});
    for (subject_type, resource_type, action) in [
        ("person", "Account", "read"),
        ("user", "Stock", "read"),
        ("user", "account", "read"),
        ("user", "Account", "fly"),
    ] {
        let mut subject = subject.clone();
        subject["type"] = json!(subject_type);
        let body =
            json!({"subject": subject, "action": {"name": action}, "resource": {"type": resource_type, "id": "a1"}});
        let answer = zen(app, "/access/v1/evaluation", None, &body).await;
        assert_eq!((answer.status, answer.outcome()), (StatusCode::BAD_REQUEST, "invalid_request"), "{body}");
        assert!(answer.body.get("decision").is_none());

        let batch = json!({"subject": subject, "evaluations": [
            {"action": {"name": action}, "resource": {"type": resource_type, "id": "a1"}}]});
        let answer = zen(app, "/access/v1/evaluations", None, &batch).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body["evaluations"][0]["decision"], false);
        assert_eq!(answer.body["evaluations"][0]["context"]["error"]["status"], 400);

        let search = json!({"subject": subject, "resource": {"type": resource_type, "id": "a1"}});
        let answer = zen(app, "/access/v1/search/action", None, &search).await;
        if action == "read" {
            assert_eq!((answer.status, &answer.body), (StatusCode::OK, &json!({"results": []})), "{search}");
        }
    }
}

#[tokio::test]
async fn batches_take_defaults_answer_in_order_stop_as_asked_and_have_a_cap() {
    let world = World::start().await;
    let app = &world.app;
    let sam = world.issuer.token("admin", "sam", &["support"], json!({}));
    let subject = json!({"type": "user", "properties": {"token": sam}});
    let item = |action: &str| json!({"action": {"name": action}});
    let batch = |semantic: Option<&str>| {
        let mut body = json!({"subject": subject, "resource": {"type": "Account", "id": "a1"},
                              "evaluations": [item("read"), item("delete"), item("read"), item("update")]});
        if let Some(semantic) = semantic {
            body["options"] = json!({"evaluations_semantic": semantic});
        }
        body
    };
    let decisions = |answer: &Answer| answer.body["evaluations"].clone();
    let t = json!({"decision": true});
    let f = json!({"decision": false});
    for (semantic, expected) in [
        (None, json!([t, f, t, f])),
        (Some("execute_all"), json!([t, f, t, f])),
        (Some("deny_on_first_deny"), json!([t, f])),
        (Some("permit_on_first_permit"), json!([t])),
    ] {
        let answer = zen(app, "/access/v1/evaluations", None, &batch(semantic)).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, json!({"evaluations": expected}), "{semantic:?}: exactly {{\"decision\": bool}} each");
    }
    let answer = zen(app, "/access/v1/evaluations", None, &batch(Some("all_of_them"))).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);

    // Reasons on request; an item overriding a default entity replaces it whole.
    let mut with_reasons = batch(None);
    with_reasons["options"] = json!({"poolgate_reasons": true});
    with_reasons["evaluations"][3] = json!({"action": {"name": "read"}, "resource": {"type": "Account", "id": "a2"}});
    let answer = zen(app, "/access/v1/evaluations", None, &with_reasons).await;
    assert_eq!(
        decisions(&answer)[0],
        json!({"decision": true, "context": {"determining_policies": ["admin.support-reads-accounts"], "errors": []}})
    );
    assert_eq!(decisions(&answer)[3]["decision"], true);

    // A failed item is a deny with its reason, the others still decided, in order.
    let mut broken = batch(None);
    broken["evaluations"][1] = json!({"action": {}});
    broken["evaluations"][2] = json!("not an object");
    let answer = zen(app, "/access/v1/evaluations", None, &broken).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(decisions(&answer)[0], t);
    assert_eq!(decisions(&answer)[1]["decision"], false);
    assert_eq!(decisions(&answer)[1]["context"]["error"]["code"], "invalid_request");
    assert!(
        decisions(&answer)[1]["context"]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("evaluations[1].action.name")
    );
    assert_eq!(decisions(&answer)[2]["context"]["error"]["status"], 400);
    assert_eq!(decisions(&answer)[3], f);

    // Without items, or with none, the request is one evaluation.
    let mut single = batch(None);
    single["action"] = json!({"name": "read"});
    for items in [None, Some(json!([]))] {
        match &items {
            None => single.as_object_mut().unwrap().remove("evaluations"),
            Some(items) => single.as_object_mut().unwrap().insert("evaluations".into(), items.clone()),
        };
        let answer = zen(app, "/access/v1/evaluations", None, &single).await;
        assert_eq!(decided(&answer), (200, json!(true)), "{items:?}");
    }

    // 100 items are answered, 101 refused whole.
    let mut full = batch(None);
    full["evaluations"] = json!(vec![item("read"); 100]);
    let answer = zen(app, "/access/v1/evaluations", None, &full).await;
    assert_eq!((answer.status, decisions(&answer).as_array().unwrap().len()), (StatusCode::OK, 100));
    full["evaluations"] = json!(vec![item("read"); 101]);
    let answer = zen(app, "/access/v1/evaluations", None, &full).await;
    assert_eq!((answer.status, answer.outcome()), (StatusCode::BAD_REQUEST, "invalid_request"));
    assert!(answer.body["message"].as_str().unwrap().contains("at most 100"));
}

#[tokio::test]
async fn the_transport_rules_hold_on_every_endpoint() {
    let world = World::start().await;
    let app = &world.app;
    let ada = world.issuer.token("admin", "ada", &["admins"], json!({}));
    let body = evaluation(&ada, "read", "Account", "a1");
    let json_type = ("Content-Type", "application/json");
    for path in [
        "/access/v1/evaluation",
        "/access/v1/evaluations",
        "/access/v1/search/subject",
        "/access/v1/search/resource",
        "/access/v1/search/action",
    ] {
        for (headers, text, why) in [
            (vec![("Content-Type", "text/plain")], body.to_string(), "wrong content type"),
            (vec![], body.to_string(), "no content type"),
            (vec![json_type], String::new(), "empty body"),
            (vec![json_type], "subject=alice".to_owned(), "not JSON"),
            (vec![json_type], "[]".to_owned(), "not an object"),
            (vec![json_type], r#"{"subject": {}, "subject": {}}"#.to_owned(), "repeated member"),
        ] {
            let mut headers = headers;
            headers.push(("X-Request-ID", "req-42"));
            let answer = raw(app, path, &headers, &text).await;
            assert_eq!(
                (answer.status, answer.outcome()),
                (StatusCode::BAD_REQUEST, "invalid_request"),
                "{path}: {why}"
            );
            assert_eq!(answer.headers["x-request-id"], "req-42", "{path}: {why}");
        }
    }
    // A repeated member deep inside is refused too, however it is escaped.
    let nested = format!(
        r#"{{"subject": {{"type": "user", "properties": {{"token": "{ada}"}}}}, "action": {{"name": "read"}},
            "resource": {{"type": "Account", "id": "a1", "\u0069d": "a2"}}}}"#
    );
    let answer = raw(app, "/access/v1/evaluation", &[json_type], &nested).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body["message"].as_str().unwrap().contains("appears twice"), "{}", answer.body);

    // Unknown members are ignored; the content type may carry parameters; the request id is echoed.
    let mut extended = body.clone();
    extended["futureField"] = json!({"nested": true});
    extended["subject"]["extra"] = json!(1);
    extended["context"] = json!({"time": "2025-06-27T18:03-07:00"});
    let answer = raw(
        app,
        "/access/v1/evaluation",
        &[("Content-Type", "application/json; charset=utf-8"), ("X-Request-ID", "bfe9eb29")],
        &extended.to_string(),
    )
    .await;
    assert_eq!(decided(&answer), (200, json!(true)), "{}", answer.body);
    assert_eq!(answer.headers["x-request-id"], "bfe9eb29");
    // Without a request id, one is made.
    let answer = zen(app, "/access/v1/evaluation", None, &body).await;
    assert!(!answer.headers["x-request-id"].is_empty());
    // A body past server.max_body_bytes is a 413.
    let mut big = body.clone();
    big["context"] = json!({"padding": "x".repeat(70_000)});
    assert_eq!(zen(app, "/access/v1/evaluation", None, &big).await.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn groups_granted_in_sql_join_the_tokens_groups_and_reach_every_replica_at_once() {
    for backend in backends() {
        let issuer = FakeIssuer::start();
        let db = TestDatabase::create(&backend).await;
        let mut config = crate::helpers::base_config(&issuer, &db.url);
        // Only a change notice (PostgreSQL) or the change poll (SQLite) can refresh the cache.
        set(&mut config, &["cache", "flags_ttl"], "1h");
        let replicas = [spawn_app(&config).await, spawn_app(&config).await];
        let gus = issuer.token("admin", "gus", &["support"], json!({}));
        let delete = json!({"action": "delete", "resource": {"type": "Account", "id": "a1"}});
        let zen_delete = evaluation(&gus, "delete", "Account", "a1");
        for replica in &replicas {
            assert_eq!(replica.check(&gus, delete.clone()).await.outcome(), "deny");
            assert_eq!(decided(&zen(replica, "/access/v1/evaluation", None, &zen_delete).await), (200, json!(false)));
        }
        db.execute("INSERT INTO principal_groups (pool, subject, group_name) VALUES ('admin', 'gus', 'admins')").await;
        for replica in &replicas {
            let allowed = eventually(Duration::from_secs(2), || async {
                replica.check(&gus, delete.clone()).await.outcome() == "allow"
            })
            .await;
            assert!(allowed, "{backend:?}: the granted group never arrived");
            let answer = replica.check(&gus, delete.clone()).await;
            assert_eq!(answer.body["principal"]["groups"], json!(["support", "admins"]), "token's, then SQL's");
            assert_eq!(decided(&zen(replica, "/access/v1/evaluation", None, &zen_delete).await), (200, json!(true)));
        }
        db.execute("DELETE FROM principal_groups WHERE pool = 'admin' AND subject = 'gus'").await;
        for replica in &replicas {
            let denied = eventually(Duration::from_secs(2), || async {
                replica.check(&gus, delete.clone()).await.outcome() == "deny"
            })
            .await;
            assert!(denied, "{backend:?}: the revoked group stayed");
        }
        // A group granted in another pool is not this pool's.
        db.execute("INSERT INTO principal_groups (pool, subject, group_name) VALUES ('merchant', 'gus', 'admins')")
            .await;
        // Nothing can be awaited: this checks that nothing changes.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(replicas[0].check(&gus, delete.clone()).await.outcome(), "deny");
    }
}

#[tokio::test]
async fn request_subject_properties_count_only_where_allowed_and_declared() {
    // Token mode on the certification example: alice's token, `role` allowed and declared.
    let example = start_example("certification", &Backend::Sqlite, |config| {
        set(config, &["authzen", "subject_mode"], "token");
        set(config, &["authzen", "api_keys"], toml::Value::Array(vec![]));
    })
    .await;
    let alice = example.issuer.token("admin", "alice", &["writers"], json!({}));
    let write_archived = |properties: Value| {
        json!({"subject": {"type": "user", "properties": properties}, "action": {"name": "write"},
               "resource": {"type": "record", "id": "record-2"}})
    };
    let app = &example.app;
    let answer = zen(app, "/access/v1/evaluation", None, &write_archived(json!({"token": alice}))).await;
    assert_eq!(decided(&answer), (200, json!(false)), "{}", answer.body);
    let answer =
        zen(app, "/access/v1/evaluation", None, &write_archived(json!({"token": alice, "role": "admin"}))).await;
    assert_eq!(decided(&answer), (200, json!(true)), "{}", answer.body);
    let answer = zen(app, "/access/v1/evaluation", None, &write_archived(json!({"token": alice, "role": 1}))).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    // Resource search in token mode, from the token's principal.
    let search = json!({"subject": {"type": "user", "properties": {"token": alice}}, "action": {"name": "write"},
                        "resource": {"type": "record"}});
    let answer = zen(app, "/access/v1/search/resource", None, &search).await;
    assert_eq!(
        (answer.status, &answer.body),
        (StatusCode::OK, &json!({"results": [{"type": "record", "id": "record-1"}]}))
    );

    // Not allowed by the configuration: ignored.
    let example = start_example("certification", &Backend::Sqlite, |config| {
        set(config, &["authzen", "pools", "cert", "subject_properties"], toml::Value::Array(vec![]));
    })
    .await;
    let body = json!({"subject": {"type": "user", "id": "alice", "properties": {"role": "admin"}},
                      "action": {"name": "write"}, "resource": {"type": "record", "id": "record-2"}});
    let answer = zen(&example.app, "/access/v1/evaluation", Some("certification-key"), &body).await;
    assert_eq!(decided(&answer), (200, json!(false)), "{}", answer.body);

    // Allowed but not declared by the schema: not even read (a number would otherwise be a 400).
    let example = start_example("certification", &Backend::Sqlite, |config| {
        set(config, &["authzen", "pools", "cert", "subject_properties"], toml::Value::Array(vec!["clearance".into()]));
    })
    .await;
    let body = json!({"subject": {"type": "user", "id": "alice", "properties": {"clearance": 7}},
                      "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}});
    let answer = zen(&example.app, "/access/v1/evaluation", Some("certification-key"), &body).await;
    assert_eq!(decided(&answer), (200, json!(true)), "{}", answer.body);
}

#[tokio::test]
async fn attributes_changed_in_sql_reach_a_trusted_callers_decisions_at_once() {
    for backend in backends() {
        let example =
            start_example("certification", &backend, |config| set(config, &["cache", "flags_ttl"], "1h")).await;
        let body = json!({"subject": {"type": "user", "id": "bob"}, "action": {"name": "write"},
                          "resource": {"type": "record", "id": "record-2"}});
        let ask = || zen(&example.app, "/access/v1/evaluation", Some("certification-key"), &body);
        assert_eq!(decided(&ask().await), (200, json!(true)), "{backend:?}: bob's role is admin in SQL");
        example
            .db
            .execute("UPDATE principal_attributes SET value = 'auditor' WHERE pool = 'cert' AND subject = 'bob'")
            .await;
        let changed =
            eventually(Duration::from_secs(2), || async { decided(&ask().await) == (200, json!(false)) }).await;
        assert!(changed, "{backend:?}: the attribute change never arrived");
    }
}

#[tokio::test]
async fn an_invalid_authzen_section_is_refused_with_every_problem() {
    let issuer = FakeIssuer::start();
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let mut config = crate::helpers::base_config(&issuer, &db.url);
    set(&mut config, &["authzen", "api_keys"], toml::Value::Array(vec!["secret-in-clear".into()]));
    set(&mut config, &["authzen", "base_url"], "ftp://pdp.example.com");
    set(&mut config, &["authzen", "pools", "nowhere", "subject_types"], toml::Value::Array(vec![]));
    set(&mut config, &["authzen", "pools", "admin", "subject_properties"], toml::Value::Array(vec!["flags".into()]));
    set(
        &mut config,
        &["authzen", "pools", "merchant", "subject_properties"],
        toml::Value::Array(vec!["org_id".into()]),
    );
    set(
        &mut config,
        &["authzen", "pools", "wallet", "resource_types"],
        toml::from_str::<Table>("w = \"Not::Ident\"").unwrap(),
    );
    let error = try_spawn_app(&config).await.err().unwrap().to_string();
    for problem in [
        "authzen.api_keys[0]: not a SHA-256 digest",
        "authzen.base_url:",
        "authzen.pools.nowhere: no pool `nowhere`",
        "authzen.pools.admin.subject_properties: `flags` is reserved",
        "authzen.pools.merchant.subject_properties: `org_id` comes from the token",
        "authzen.pools.wallet.resource_types:",
    ] {
        assert!(error.contains(problem), "missing `{problem}` in: {error}");
    }
}

#[tokio::test]
async fn the_metadata_names_the_endpoints_this_mode_serves() {
    let world = World::start().await;
    let answer = world.app.get("/.well-known/authzen-configuration").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/json");
    let base = world.app.address.clone();
    assert_eq!(
        answer.body,
        json!({
            "policy_decision_point": base,
            "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
            "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
            "search_resource_endpoint": format!("{base}/access/v1/search/resource"),
            "search_action_endpoint": format!("{base}/access/v1/search/action"),
        }),
        "token mode offers no subject search"
    );
    let world = World::start_with(&Backend::Sqlite, |config| {
        set(config, &["authzen", "base_url"], "https://pdp.example.com/");
        set(config, &["authzen", "subject_mode"], "trusted_caller");
        set(config, &["authzen", "api_keys"], toml::Value::Array(vec![digest(KEY).into()]));
        for pool in ["merchant", "wallet"] {
            set(config, &["authzen", "pools", pool, "subject_types"], toml::Value::Array(vec![]));
        }
    })
    .await;
    let answer = world.app.get("/.well-known/authzen-configuration").await;
    assert_eq!(answer.body["policy_decision_point"], "https://pdp.example.com");
    assert_eq!(answer.body["search_subject_endpoint"], "https://pdp.example.com/access/v1/search/subject");
    // The OpenAPI document lists the endpoints.
    let openapi = world.app.get("/openapi.json").await;
    for path in [
        "/access/v1/evaluation",
        "/access/v1/evaluations",
        "/access/v1/search/subject",
        "/.well-known/authzen-configuration",
    ] {
        assert!(openapi.body["paths"].get(path).is_some(), "{path}");
    }
}

#[tokio::test]
async fn every_authzen_decision_and_refusal_is_in_the_decision_log_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("decisions.jsonl");
    let sink_path = sink.display().to_string();
    let world = World::start_with(&Backend::Sqlite, |config| set(config, &["decision_log", "sink"], sink_path)).await;
    let ada = world.issuer.token("admin", "ada", &["admins"], json!({}));
    let send = |request_id: &'static str, body: Value| {
        let app = &world.app;
        async move {
            let response = app
                .client
                .post(format!("{}/access/v1/evaluations", app.address))
                .header("Content-Type", "application/json")
                .header("X-Request-ID", request_id)
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            read(response).await
        }
    };
    let batch = json!({"subject": {"type": "user", "properties": {"token": ada}}, "resource": {"type": "Account", "id": "a1"},
                       "evaluations": [{"action": {"name": "read"}}, {"action": {"name": "create"}}, {"action": {}}]});
    assert_eq!(send("zen-batch", batch).await.status, StatusCode::OK);
    let records = || {
        std::fs::read_to_string(&sink)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|record| record["request_id"] == "zen-batch")
            .collect::<Vec<_>>()
    };
    assert!(eventually(Duration::from_secs(5), || async { records().len() == 3 }).await, "{:?}", records());
    let records = records();
    let outcome = |record: &Value| (record["action"].clone(), record["decision"].clone(), record["error"].clone());
    assert_eq!(outcome(&records[0]), (json!("read"), json!("allow"), Value::Null));
    assert_eq!(outcome(&records[1]), (json!("create"), json!("deny"), Value::Null));
    assert_eq!(outcome(&records[2]), (Value::Null, json!("error"), json!("invalid_request")));
    assert_eq!(records[0]["determining_policies"], json!(["admin.admins-manage-accounts"]));
    let text = std::fs::read_to_string(&sink).unwrap();
    assert!(!text.contains(&ada), "the decision log carries the token");
}
