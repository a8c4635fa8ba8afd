//! `/v1/filter` and `/v1/resources/search` through real HTTP with real tokens: the seed
//! scenario's list views as plans with their SQL, hostile claims only ever bound, paired mode,
//! the refusals (401, 400, 422), and the search held to `/v1/check` row by row on SQLite and
//! PostgreSQL, pages included, with rows inserted between pages.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Map, Value, json};
use sqlx::{AnyConnection, Connection};
use toml::Table;

use crate::helpers::{Answer, Backend, TestApp, World, ask, backends, copy_policies, eventually, set};

const HOSTILE_ORG: &str = "o1' OR '1'='1";

/// The seed types mapped to tables: `stock.org_id` declared NOT NULL, `wallet.owner` not.
fn mapped(config: &mut Table) {
    set(config, &["resources", "Stock", "table"], "stock");
    set(config, &["resources", "Stock", "attributes", "org_id", "column"], "org_id");
    set(config, &["resources", "Stock", "attributes", "org_id", "nullable"], false);
    set(config, &["resources", "Wallet", "table"], "wallet");
    set(config, &["resources", "Wallet", "attributes", "owner", "column"], "owner");
    set(config, &["resources", "Account", "table"], "account");
}

async fn create_tables(world: &World) {
    for statement in [
        "CREATE TABLE stock (id TEXT PRIMARY KEY, org_id TEXT NOT NULL)",
        "CREATE TABLE wallet (id TEXT PRIMARY KEY, owner TEXT)",
        "CREATE TABLE account (id TEXT PRIMARY KEY)",
    ] {
        world.db.execute(statement).await;
    }
}

async fn grant(world: &World, sub: &str, flag: &str) {
    world
        .db
        .execute(&format!("INSERT INTO principal_flags (pool, subject, flag) VALUES ('merchant', '{sub}', '{flag}')"))
        .await;
}

fn question(action: &str, resource_type: &str) -> Value {
    json!({ "action": action, "resource_type": resource_type, "context": {} })
}

async fn filter(app: &TestApp, token: &str, action: &str, resource_type: &str) -> Answer {
    app.post("/v1/filter", Some(token), question(action, resource_type)).await
}

fn merchant(world: &World, sub: &str, groups: &[&str], org: &str) -> String {
    world.issuer.token("merchant", sub, groups, json!({ "custom:org_id": org }))
}

/// Every page of a search with `limit`, each checked for its size; the ids in order.
async fn search_pages(app: &TestApp, token: &str, action: &str, resource_type: &str, limit: u64) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let mut body = question(action, resource_type);
        body["page"] = json!({ "limit": limit, "cursor": cursor });
        let answer = app.post("/v1/resources/search", Some(token), body).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let results = answer.body["results"].as_array().unwrap();
        assert!(results.len() as u64 <= limit);
        for result in results {
            assert_eq!(result["type"], resource_type);
            ids.push(result["id"].as_str().unwrap().to_owned());
        }
        cursor = answer.body["next_cursor"].clone();
        if cursor.is_null() {
            return ids;
        }
        assert_eq!(results.len() as u64, limit, "only the last page may be short");
    }
}

#[tokio::test]
async fn the_seed_list_views_are_plans_with_their_sql_and_are_logged() {
    let log = tempfile::tempdir().unwrap();
    let sink = log.path().join("decisions.jsonl");
    let world = World::start_with(&Backend::Sqlite, |config| {
        mapped(config);
        set(config, &["decision_log", "sink"], sink.display().to_string());
    })
    .await;
    create_tables(&world).await;
    grant(&world, "mia", "can_manage_stock").await;
    let app = &world.app;
    let mia = merchant(&world, "mia", &["merchant"], "o1");
    let version =
        app.check(&mia, ask("read", "Stock", "sku-1", json!({ "org_id": "o1" }))).await.body["policy_version"].clone();

    let update = filter(app, &mia, "update", "Stock").await;
    assert_eq!(update.status, 200, "{}", update.body);
    assert_eq!(
        update.body,
        json!({
            "kind": "conditional",
            "condition": { "op": "eq", "attr": "org_id", "value": "o1" },
            "sql": {
                "postgres": { "where": r#"("org_id" = $1)"#, "params": ["o1"] },
                "sqlite": { "where": r#"("org_id" COLLATE BINARY = $1)"#, "params": ["o1"] },
            },
            "pool": "merchant",
            "principal": "mia",
            "policy_version": version,
            "policies": ["merchant.update-own-org-stock"],
        })
    );

    let stu = merchant(&world, "stu", &["merchant-staff"], "o2");
    let denied = filter(app, &stu, "update", "Stock").await;
    assert_eq!(denied.body["kind"], "always_deny", "{}", denied.body);
    assert!(denied.body.get("condition").is_none() && denied.body.get("sql").is_none());
    assert_eq!(denied.body["principal"], "stu");
    let read = filter(app, &stu, "read", "Stock").await;
    assert_eq!(read.body["condition"], json!({ "op": "eq", "attr": "org_id", "value": "o2" }));

    let ada = world.issuer.token("admin", "ada", &["admins"], json!({}));
    let accounts = filter(app, &ada, "read", "Account").await;
    assert_eq!(accounts.body["kind"], "always_allow", "{}", accounts.body);
    assert_eq!(accounts.body["policies"], json!(["admin.admins-manage-accounts"]));
    assert!(accounts.body.get("sql").is_none());
    let sam = world.issuer.token("admin", "sam", &["support"], json!({}));
    assert_eq!(filter(app, &sam, "read", "Account").await.body["kind"], "always_allow");
    assert_eq!(filter(app, &sam, "delete", "Account").await.body["kind"], "always_deny");

    // `owner` is required, and its column may hold NULL: such a row is no valid Wallet.
    let wil = world.issuer.token("wallet", "wil", &[], json!({}));
    let wallets = filter(app, &wil, "read", "Wallet").await;
    assert_eq!(
        (&wallets.body["kind"], &wallets.body["condition"], &wallets.body["sql"]["postgres"]),
        (
            &json!("conditional"),
            &json!({ "op": "and", "args": [{ "op": "has", "attr": "owner" }, { "op": "eq", "attr": "owner", "value": "wil" }] }),
            &json!({ "where": r#"(("owner" IS NOT NULL) AND ("owner" = $1))"#, "params": ["wil"] }),
        ),
        "{}",
        wallets.body
    );
    assert_eq!(filter(app, &wil, "recharge", "Wallet").await.body["kind"], "always_deny", "an ID token has no scope");
    let access = world.issuer.sign("wallet", &world.issuer.access_claims("wallet", "wil", "write:recharge"));
    assert_eq!(
        filter(app, &access, "recharge", "Wallet").await.body["policies"],
        json!(["wallet.recharge-own-wallet-with-scope"])
    );

    let lines = || std::fs::read_to_string(&sink).unwrap_or_default();
    let logged = eventually(Duration::from_secs(5), || async { lines().contains(r#""action":"delete""#) }).await;
    assert!(logged, "{}", lines());
    let records: Vec<Value> = lines().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let update = records.iter().find(|record| record["action"] == "update" && record["sub"] == "mia").unwrap();
    assert_eq!(update["decision"], "conditional");
    assert_eq!(update["resource_type"], "Stock");
    assert_eq!(update["resource_id"], Value::Null);
    assert_eq!(update["determining_policies"], json!(["merchant.update-own-org-stock"]));
    assert_eq!(update["error"], Value::Null);
    let outcomes: BTreeSet<&str> = records.iter().filter_map(|record| record["decision"].as_str()).collect();
    assert_eq!(outcomes, BTreeSet::from(["allow", "conditional", "deny"]));
}

#[tokio::test]
async fn a_type_without_a_table_mapping_gets_its_condition_without_sql_and_cannot_be_searched() {
    let world = World::start().await;
    let wil = world.issuer.token("wallet", "wil", &[], json!({}));
    let answer = filter(&world.app, &wil, "read", "Wallet").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body["condition"],
        json!({ "op": "and", "args": [{ "op": "has", "attr": "owner" }, { "op": "eq", "attr": "owner", "value": "wil" }] })
    );
    assert!(answer.body.get("sql").is_none(), "{}", answer.body);
    let search = world.app.post("/v1/resources/search", Some(&wil), question("read", "Wallet")).await;
    assert_eq!((search.status.as_u16(), search.outcome()), (400, "invalid_request"), "{}", search.body);
    assert!(search.body["message"].as_str().unwrap().contains("resources.Wallet.table"), "{}", search.body);
}

#[tokio::test]
async fn a_hostile_claim_is_only_ever_a_bound_parameter() {
    for backend in backends() {
        let world = World::start_with(&backend, mapped).await;
        create_tables(&world).await;
        world
            .db
            .execute(&format!(
                "INSERT INTO stock (id, org_id) VALUES ('sku-1', 'o1'), ('sku-2', 'o2'), ('sku-3', '{}')",
                HOSTILE_ORG.replace('\'', "''")
            ))
            .await;
        let eve = merchant(&world, "eve", &["merchant"], HOSTILE_ORG);
        let answer = filter(&world.app, &eve, "read", "Stock").await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        for dialect in ["postgres", "sqlite"] {
            let sql = &answer.body["sql"][dialect];
            assert_eq!(sql["params"], json!([HOSTILE_ORG]), "{dialect}");
            let clause = sql["where"].as_str().unwrap();
            assert!(!clause.contains('\'') && !clause.contains("OR") && !clause.contains("o1"), "{dialect}: {clause}");
        }
        let found = search_pages(&world.app, &eve, "read", "Stock", 10).await;
        assert_eq!(found, ["sku-3"], "{backend:?}");
    }
}

#[tokio::test]
async fn paired_mode_joins_the_tokens_for_filter_and_search() {
    let world = World::start_with(&Backend::Sqlite, mapped).await;
    create_tables(&world).await;
    world.db.execute("INSERT INTO stock (id, org_id) VALUES ('sku-1', 'o1'), ('sku-2', 'o2')").await;
    let mut access = world.issuer.access_claims("merchant", "mia", "");
    access.insert("origin_jti".into(), json!("sign-in-1"));
    access.insert("cognito:groups".into(), json!(["merchant"]));
    let mut id = world.issuer.id_claims("merchant", "mia");
    id.insert("origin_jti".into(), json!("sign-in-1"));
    id.insert("custom:org_id".into(), json!("o1"));
    let (access, id) = (world.issuer.sign("merchant", &access), world.issuer.sign("merchant", &id));
    let paired = |path: &str, body: Value| {
        let request = world
            .app
            .client
            .post(format!("{}{path}", world.app.address))
            .bearer_auth(&access)
            .header("X-Id-Token", &id)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        async move { crate::helpers::read(request.send().await.unwrap()).await }
    };
    let answer = paired("/v1/filter", question("read", "Stock")).await;
    assert_eq!(answer.body["condition"], json!({ "op": "eq", "attr": "org_id", "value": "o1" }), "{}", answer.body);
    let found = paired("/v1/resources/search", question("read", "Stock")).await;
    assert_eq!(found.body["results"], json!([{ "type": "Stock", "id": "sku-1" }]), "{}", found.body);
    assert_eq!(found.body["pool"], "merchant");
    assert_eq!(found.body["next_cursor"], Value::Null);
    assert_eq!(filter(&world.app, &access, "read", "Stock").await.body["kind"], "always_deny", "no org_id alone");
    let mismatch = world.issuer.token("merchant", "bob", &["merchant"], json!({ "origin_jti": "sign-in-1" }));
    let request = world
        .app
        .client
        .post(format!("{}/v1/filter", world.app.address))
        .bearer_auth(&access)
        .header("X-Id-Token", &mismatch)
        .body(question("read", "Stock").to_string());
    let refused = crate::helpers::read(request.send().await.unwrap()).await;
    assert_eq!((refused.status.as_u16(), refused.outcome()), (401, "token_pair_mismatch"));
}

#[tokio::test]
async fn refusals_are_401_400_and_422_naming_the_policy_and_the_construct() {
    let dir = tempfile::tempdir().unwrap();
    copy_policies(dir.path());
    std::fs::write(
        dir.path().join("odd.cedar"),
        r#"@id("merchant.same-org-twice")
permit (principal, action == Merchant::Action::"read", resource is Merchant::Stock)
when { resource.org_id == resource.org_id };
"#,
    )
    .unwrap();
    let world = World::start_with(&Backend::Sqlite, |config| {
        mapped(config);
        set(config, &["policies", "dir"], dir.path().display().to_string());
    })
    .await;
    create_tables(&world).await;
    let app = &world.app;
    for path in ["/v1/filter", "/v1/resources/search"] {
        let missing = app.post(path, None, question("read", "Stock")).await;
        assert_eq!((missing.status.as_u16(), missing.outcome()), (401, "missing_token"), "{path}");
        assert_eq!(missing.headers["www-authenticate"], r#"Bearer error="invalid_token""#);
    }
    let mia = merchant(&world, "mia", &["merchant"], "o1");
    let bodies = [
        question("read", "Nope"),
        question("fly", "Stock"),
        question("read", "Account"),
        json!({ "action": "read", "resource_type": "Stock", "extra": 1 }),
        json!({ "action": "read", "resource_type": "Stock", "context": { "x": 1 } }),
        json!({ "action": "read" }),
    ];
    for path in ["/v1/filter", "/v1/resources/search"] {
        for body in &bodies {
            let answer = app.post(path, Some(&mia), body.clone()).await;
            assert_eq!((answer.status.as_u16(), answer.outcome()), (400, "invalid_request"), "{path} {body}");
        }
    }
    for page in [
        json!({ "limit": 0 }),
        json!({ "limit": 1001 }),
        json!({ "limit": -1 }),
        json!({ "limit": "7" }),
        json!({ "cursor": "!!" }),
        json!({ "cursor": "" }),
        json!({ "cursor": "c2t1LTE" }),
        json!({ "size": 5 }),
    ] {
        let mut body = question("update", "Stock");
        body["page"] = page.clone();
        let answer = app.post("/v1/resources/search", Some(&mia), body).await;
        assert_eq!((answer.status.as_u16(), answer.outcome()), (400, "invalid_request"), "{page}: {}", answer.body);
    }
    for path in ["/v1/filter", "/v1/resources/search"] {
        let answer = app.post(path, Some(&mia), question("read", "Stock")).await;
        assert_eq!((answer.status.as_u16(), answer.outcome()), (422, "unsupported_policy"), "{path}");
        let message = answer.body["message"].as_str().unwrap();
        assert!(message.contains("merchant.same-org-twice") && message.contains("two attributes"), "{message}");
        let unaffected = app.post(path, Some(&mia), question("update", "Stock")).await;
        assert_eq!(unaffected.status, 200, "{path}: {}", unaffected.body);
    }
}

/// A schema where Stock has optional attributes, and list policies that read them.
fn list_policies() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_policies(dir.path());
    let schema = std::fs::read_to_string(dir.path().join("schema.cedarschema")).unwrap();
    let extended = schema.replace(
        "entity Stock {\n    org_id: String,\n  };",
        "entity Stock {\n    org_id: String,\n    name?: String,\n    qty?: Long,\n    live?: Bool,\n  };",
    );
    assert_ne!(schema, extended, "the shipped schema's Stock changed");
    std::fs::write(dir.path().join("schema.cedarschema"), extended).unwrap();
    std::fs::write(
        dir.path().join("lists.cedar"),
        r#"@id("merchant.read-public-names")
permit (principal, action == Merchant::Action::"read", resource is Merchant::Stock)
when { resource has name && resource.name like "pub_*" };

@id("merchant.hide-dead")
forbid (principal, action == Merchant::Action::"read", resource is Merchant::Stock)
when { resource has live && !resource.live };

@id("merchant.no-huge-or-negative-updates")
forbid (principal, action == Merchant::Action::"update", resource is Merchant::Stock)
when { resource has qty && (resource.qty > 1000 || resource.qty < 0) };

@id("merchant.staff-update-other-orgs-unnamed")
permit (principal in Merchant::Group::"merchant-staff", action == Merchant::Action::"update", resource is Merchant::Stock)
when { principal has org_id && resource.org_id != principal.org_id && !(resource has name) };
"#,
    )
    .unwrap();
    dir
}

fn list_mapping(config: &mut Table) {
    for column in ["org_id", "name", "qty", "live"] {
        set(config, &["resources", "Stock", "attributes", column, "column"], column);
    }
    set(config, &["resources", "Stock", "table"], "stock");
}

/// Hostile rows: NULLs, SQL quotes, `%`, `_`, `\`, unicode, case and space differences, empty
/// and long strings, the ends of i64.
fn hostile_rows() -> Vec<(String, Map<String, Value>)> {
    let long = "ü%_\\*'".repeat(500);
    let org_ids: Vec<Option<&str>> = vec![
        Some("o1"),
        Some("O1"),
        Some("o1 "),
        Some(""),
        Some(HOSTILE_ORG),
        Some("%"),
        Some("o_"),
        Some("o\\1"),
        Some("ünï"),
        Some(&long),
        None,
    ];
    let names: Vec<Option<&str>> = vec![Some("pub_x"), Some("pubax"), Some("pub_"), Some("PUB_X"), Some("%"), None];
    let qtys = [Some(i64::MIN), Some(-1), Some(0), Some(1000), Some(1001), Some(i64::MAX), None];
    let lives = [Some(true), Some(false), None];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut pick = |len: usize| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % len
    };
    (0..60)
        .map(|index| {
            let mut attributes = Map::new();
            if let Some(org) = org_ids[index % org_ids.len()] {
                attributes.insert("org_id".into(), json!(org));
            }
            if let Some(name) = names[pick(names.len())] {
                attributes.insert("name".into(), json!(name));
            }
            if let Some(qty) = qtys[pick(qtys.len())] {
                attributes.insert("qty".into(), json!(qty));
            }
            if let Some(live) = lives[pick(lives.len())] {
                attributes.insert("live".into(), json!(live));
            }
            (format!("item-{index:03}"), attributes)
        })
        .collect()
}

async fn insert_rows(url: &str, rows: &[(String, Map<String, Value>)]) {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(url).await.unwrap();
    sqlx::query("CREATE TABLE stock (id TEXT PRIMARY KEY, org_id TEXT, name TEXT, qty BIGINT, live BOOLEAN)")
        .execute(&mut conn)
        .await
        .unwrap();
    for (id, attributes) in rows {
        sqlx::query("INSERT INTO stock (id, org_id, name, qty, live) VALUES ($1, $2, $3, $4, $5)")
            .bind(id.clone())
            .bind(attributes.get("org_id").and_then(Value::as_str).map(str::to_owned))
            .bind(attributes.get("name").and_then(Value::as_str).map(str::to_owned))
            .bind(attributes.get("qty").and_then(Value::as_i64))
            .bind(attributes.get("live").and_then(Value::as_bool))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn search_returns_exactly_the_rows_check_allows_on_both_backends() {
    let rows = hostile_rows();
    for backend in backends() {
        let dir = list_policies();
        let world = World::start_with(&backend, |config| {
            list_mapping(config);
            set(config, &["policies", "dir"], dir.path().display().to_string());
        })
        .await;
        insert_rows(&world.db.url, &rows).await;
        for sub in ["mia", "mo", "stu"] {
            grant(&world, sub, "can_manage_stock").await;
        }
        let principals = [
            ("mia", merchant(&world, "mia", &["merchant"], "o1")),
            ("mo", merchant(&world, "mo", &["merchant"], "%")),
            ("stu", merchant(&world, "stu", &["merchant-staff"], "o_")),
            ("eve", merchant(&world, "eve", &["merchant"], HOSTILE_ORG)),
            ("nobody", world.issuer.token("merchant", "nobody", &[], json!({}))),
        ];
        let mut split = 0;
        for (sub, token) in &principals {
            for action in ["read", "update"] {
                let mut allowed = BTreeSet::new();
                for (id, attributes) in &rows {
                    let answer =
                        world.app.check(token, ask(action, "Stock", id, Value::Object(attributes.clone()))).await;
                    // A row without its required org_id is no valid Stock: the check refuses it.
                    let expected_status = if attributes.contains_key("org_id") { 200 } else { 400 };
                    assert_eq!(answer.status, expected_status, "{}", answer.body);
                    if answer.outcome() == "allow" {
                        allowed.insert(id.clone());
                    }
                }
                let found = search_pages(&world.app, token, action, "Stock", 7).await;
                let unique: BTreeSet<String> = found.iter().cloned().collect();
                assert_eq!(unique.len(), found.len(), "{backend:?} {sub} {action}: duplicates in {found:?}");
                assert_eq!(unique, allowed, "{backend:?} {sub} {action}");
                split += usize::from(!allowed.is_empty() && allowed.len() < rows.len());
            }
        }
        assert!(split >= 6, "{backend:?}: the rows should split for most questions, split {split}");
    }
}

#[tokio::test]
async fn pages_return_every_row_allowed_before_the_search_once_while_rows_are_inserted() {
    for backend in backends() {
        let world = World::start_with(&backend, mapped).await;
        create_tables(&world).await;
        let mut before = BTreeSet::new();
        let mut values = Vec::new();
        for index in 0..60 {
            let org = if index % 3 == 0 { "o2" } else { "o1" };
            let id = format!("sku-{index:03}");
            if org == "o1" {
                before.insert(id.clone());
            }
            values.push(format!("('{id}', '{org}')"));
        }
        world.db.execute(&format!("INSERT INTO stock (id, org_id) VALUES {}", values.join(", "))).await;
        let mia = merchant(&world, "mia", &["merchant"], "o1");
        let mut seen = Vec::new();
        let mut inserted_after = BTreeSet::new();
        let mut cursor = Value::Null;
        for round in 0.. {
            let mut body = question("read", "Stock");
            body["page"] = json!({ "limit": 7, "cursor": cursor });
            let answer = world.app.post("/v1/resources/search", Some(&mia), body).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            let page: Vec<String> = answer.body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect();
            let last = page.last().cloned();
            seen.extend(page);
            cursor = answer.body["next_cursor"].clone();
            if cursor.is_null() {
                break;
            }
            // Between pages: rows that sort after the cursor, before it, and a denied one.
            let last = last.unwrap();
            let after = format!("{last}-new-{round}");
            let behind = format!("sku-000-new-{round}");
            world
                .db
                .execute(&format!(
                    "INSERT INTO stock (id, org_id) VALUES ('{after}', 'o1'), ('{behind}', 'o1'), ('{last}-o2-{round}', 'o2')"
                ))
                .await;
            inserted_after.insert(after);
        }
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "{backend:?}: duplicates in {seen:?}");
        assert!(before.is_subset(&unique), "{backend:?}: missing {:?}", before.difference(&unique).collect::<Vec<_>>());
        assert!(inserted_after.is_subset(&unique), "{backend:?}: rows inserted after the cursor are read");
        assert!(unique.iter().all(|id| !id.contains("-o2-") && !id.starts_with("sku-000-new")), "{seen:?}");
        if matches!(backend, Backend::Sqlite) {
            // Byte order on SQLite; PostgreSQL orders by the id column's collation.
            assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "ascending ids {seen:?}");
        }
    }
}

#[tokio::test]
async fn the_default_page_holds_100_and_the_largest_1000() {
    let world = World::start_with(&Backend::Sqlite, mapped).await;
    create_tables(&world).await;
    let values: Vec<String> = (0..1_050).map(|index| format!("('a-{index:05}')")).collect();
    world.db.execute(&format!("INSERT INTO account (id) VALUES {}", values.join(", "))).await;
    let ada = world.issuer.token("admin", "ada", &["admins"], json!({}));
    let first = world.app.post("/v1/resources/search", Some(&ada), question("read", "Account")).await;
    assert_eq!(first.body["results"].as_array().unwrap().len(), 100, "{}", first.body);
    assert_eq!(first.body["results"][99]["id"], "a-00099");
    let mut body = question("read", "Account");
    body["page"] = json!({ "limit": 1000, "cursor": first.body["next_cursor"] });
    let rest = world.app.post("/v1/resources/search", Some(&ada), body.clone()).await;
    assert_eq!(rest.body["results"].as_array().unwrap().len(), 950, "{}", rest.body["next_cursor"]);
    assert_eq!(rest.body["next_cursor"], Value::Null);
    body["page"] = json!({ "limit": 1000 });
    let largest = world.app.post("/v1/resources/search", Some(&ada), body).await;
    assert_eq!(largest.body["results"].as_array().unwrap().len(), 1000);
    let sam = world.issuer.token("admin", "sam", &["support"], json!({}));
    let none = world.app.post("/v1/resources/search", Some(&sam), question("delete", "Account")).await;
    assert_eq!((none.body["results"].clone(), none.body["next_cursor"].clone()), (json!([]), Value::Null));
}

/// The shipped policies, with `Stock` in an `Org`, catalogue policies on the organisation, and
/// forward-auth routes for stock.
fn catalogue_policies() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_policies(dir.path());
    let schema = std::fs::read_to_string(dir.path().join("schema.cedarschema")).unwrap();
    let extended = schema.replace("  entity Stock {", "  entity Org;\n  entity Stock in [Org] {");
    assert_ne!(schema, extended, "the shipped schema's Stock changed");
    std::fs::write(dir.path().join("schema.cedarschema"), extended).unwrap();
    std::fs::write(
        dir.path().join("catalogue.cedar"),
        r#"@id("merchant.staff-read-o1-catalogue")
permit (principal in Merchant::Group::"merchant-staff", action == Merchant::Action::"read", resource in Merchant::Org::"o1");

@id("merchant.staff-update-o2-catalogue")
permit (principal in Merchant::Group::"merchant-staff", action == Merchant::Action::"update", resource)
when { resource is Merchant::Stock && (resource in Merchant::Org::"o2" || resource in [Merchant::Org::""]) };

@id("merchant.nobody-touches-the-frozen-org")
forbid (principal, action, resource in Merchant::Org::"frozen");
"#,
    )
    .unwrap();
    let mut routes = std::fs::read_to_string(dir.path().join("routes.toml")).unwrap();
    routes.push_str(
        "\n[[route]]\nmethods = [\"GET\"]\npath = \"/stock/{sku}\"\nid = \"sku\"\naction = \"read\"\nresource = \"Stock\"\n\
         \n[[route]]\nmethods = [\"PATCH\"]\npath = \"/stock/{sku}\"\nid = \"sku\"\naction = \"update\"\nresource = \"Stock\"\n",
    );
    std::fs::write(dir.path().join("routes.toml"), routes).unwrap();
    dir
}

#[tokio::test]
async fn resource_in_a_mapped_parent_is_filtered_searched_checked_and_forwarded_alike() {
    for backend in backends() {
        let dir = catalogue_policies();
        let world = World::start_with(&backend, |config| {
            set(config, &["policies", "dir"], dir.path().display().to_string());
            set(config, &["resources", "Stock", "table"], "stock");
            set(config, &["resources", "Stock", "id_column"], "sku");
            set(config, &["resources", "Stock", "attributes", "org_id", "column"], "org_id");
            set(config, &["resources", "Stock", "parent", "type"], "Org");
            set(config, &["resources", "Stock", "parent", "column"], "org");
        })
        .await;
        world.db.execute("CREATE TABLE stock (sku TEXT PRIMARY KEY, org_id TEXT, org TEXT)").await;
        let mut rows = Vec::new();
        for org in [Some("o1"), Some("o2"), Some("O1"), Some(""), Some("frozen"), Some("o1 "), None] {
            for org_id in [Some("o1"), Some("o2"), None] {
                let sku = format!("sku-{:02}", rows.len());
                let text = |value: Option<&str>| value.map_or("NULL".to_owned(), |value| format!("'{value}'"));
                world
                    .db
                    .execute(&format!(
                        "INSERT INTO stock (sku, org_id, org) VALUES ('{sku}', {}, {})",
                        text(org_id),
                        text(org)
                    ))
                    .await;
                rows.push((sku, org_id, org));
            }
        }
        for sub in ["mia", "stu"] {
            grant(&world, sub, "can_manage_stock").await;
        }
        let principals = [
            ("mia", merchant(&world, "mia", &["merchant"], "o1")),
            ("stu", merchant(&world, "stu", &["merchant-staff"], "o2")),
            ("sal", merchant(&world, "sal", &["merchant", "merchant-staff"], "o1")),
        ];
        let stu = &principals[1].1;
        let plan = filter(&world.app, stu, "read", "Stock").await;
        assert!(plan.body["condition"].to_string().contains(r#"{"op":"parent_in","ids":["o1"]}"#), "{}", plan.body);
        let mut split = 0;
        for (sub, token) in &principals {
            for (action, method) in [("read", "GET"), ("update", "PATCH")] {
                let mut allowed = BTreeSet::new();
                for (sku, org_id, org) in &rows {
                    let mut body =
                        ask(action, "Stock", sku, org_id.map_or(json!({}), |org_id| json!({ "org_id": org_id })));
                    if let Some(org) = org {
                        body["resource"]["parents"] = json!([{ "type": "Org", "id": org }]);
                    }
                    let checked = world.app.check(token, body).await;
                    let forwarded = world
                        .app
                        .client
                        .request(
                            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                            format!("{}/v1/forward-auth/stock/{sku}", world.app.address),
                        )
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap()
                        .status();
                    let allow = checked.outcome() == "allow";
                    assert_eq!(forwarded == 200, allow, "{backend:?} {sub} {action} {sku}: check {}", checked.body);
                    if allow {
                        allowed.insert(sku.clone());
                    }
                }
                let found: BTreeSet<String> =
                    search_pages(&world.app, token, action, "Stock", 5).await.into_iter().collect();
                assert_eq!(found, allowed, "{backend:?} {sub} {action}");
                split += usize::from(!allowed.is_empty() && allowed.len() < rows.len());
            }
        }
        assert!(split >= 5, "{backend:?}: the rows should split for most questions, split {split}");
        let wrong = ask("read", "Stock", "sku-00", json!({ "org_id": "o1" }));
        let mut wrong_parent = wrong.clone();
        wrong_parent["resource"]["parents"] = json!([{ "type": "Group", "id": "merchant" }]);
        let refused = world.app.check(stu, wrong_parent).await;
        assert_eq!((refused.status.as_u16(), refused.outcome()), (400, "invalid_request"), "{}", refused.body);
    }
}

/// `filter::search_all`, as the AuthZEN resource search calls it: in process, following the
/// cursors up to its bound, continuing where a caller's `search` would.
#[tokio::test]
async fn search_all_follows_the_cursors_up_to_its_bound() {
    use poolgate::filter::{Dialect, FilterQuestion, PageRequest, SearchDb, search, search_all};

    let dir = tempfile::tempdir().unwrap();
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("search.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE account (id TEXT PRIMARY KEY)").execute(&pool).await.unwrap();
    let values: Vec<String> = (0..2_500).map(|index| format!("('acct-{index:05}')")).collect();
    sqlx::query(&format!("INSERT INTO account (id) VALUES {}", values.join(", "))).execute(&pool).await.unwrap();
    let decider = poolgate::decision::Decider::load(&poolgate::decision::PolicySources {
        dir: crate::helpers::repo_path("policies"),
        pools: Vec::new(),
        resource_queries: Vec::new(),
    })
    .unwrap();
    let mapping =
        poolgate::filter::mapping::RawResource::check(toml::from_str("table = \"account\"").unwrap(), "Account")
            .unwrap()
            .1
            .unwrap();
    let db = SearchDb::new(pool, Dialect::Sqlite, Duration::from_secs(10));
    let ada = poolgate::principal::Principal {
        pool: "admin".into(),
        namespace: "Admin".into(),
        sub: "ada".into(),
        token_use: poolgate::config::pool::TokenUse::Id,
        groups: vec!["admins".into()],
        email: None,
        scopes: Vec::new(),
        attributes: Vec::new(),
        flags: std::sync::Arc::from(Vec::<String>::new()),
    };
    let context = Map::new();
    let question = FilterQuestion { action: "read", resource_type: "Account", context: &context };
    let first = search_all(&db, &decider, &ada, &mapping, &question, 2_000).await.unwrap();
    assert_eq!(first.ids.len(), 2_000);
    assert_eq!(first.planned.policies, ["admin.admins-manage-accounts"]);
    let cursor = first.next_cursor.expect("more remain");
    let page = PageRequest::new(Some(1_000), Some(&cursor.encode())).unwrap();
    let rest = search(&db, &decider, &ada, &mapping, &question, &page).await.unwrap();
    assert_eq!((rest.ids.len(), rest.next_cursor), (500, None));
    let all = search_all(&db, &decider, &ada, &mapping, &question, 10_000).await.unwrap();
    assert_eq!(all.next_cursor, None);
    assert_eq!(all.ids, [first.ids, rest.ids].concat());
    let denied = FilterQuestion { action: "create", ..question };
    assert!(search_all(&db, &decider, &ada, &mapping, &denied, 10).await.unwrap().ids.is_empty());
}
