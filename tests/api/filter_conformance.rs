//! List filtering, differentially: for every (principal, action, resource type) of the
//! fixtures, the ids the generated SQL selects from a table of hostile rows equal the ids
//! `Decider::decide` allows row by row (the in-process `/v1/check`), on SQLite and, when
//! `POOLGATE_TEST_POSTGRES_URL` is set, on PostgreSQL. Then the same equality for policies
//! generated from a small grammar, on SQLite.

use std::collections::BTreeSet;
use std::sync::Arc;

use poolgate::config::pool::TokenUse;
use poolgate::decision::request::{AccessRequest, ResourceRef};
use poolgate::decision::{Decider, PolicySources};
use poolgate::filter::mapping::RawResource;
use poolgate::filter::{Dialect, FilterQuestion, Plan, ResourceMapping, SqlParam, plan, to_sql};
use poolgate::principal::Principal;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use sqlx::{AnyConnection, Connection, Row};

use crate::helpers::{Backend, TestDatabase, backends, repo_path};

/// One hostile row: id and nullable columns, in the order of [`COLUMNS`].
#[derive(Debug, Clone)]
struct Item {
    id: String,
    org_id: Option<String>,
    name: Option<String>,
    qty: Option<i64>,
    live: Option<bool>,
    code: Option<String>,
}

const TABLE: &str =
    "CREATE TABLE items (id TEXT PRIMARY KEY, org_id TEXT, name TEXT, qty BIGINT, live BOOLEAN, code TEXT)";

const SCHEMA: &str = r#"
namespace Shop {
  entity Group;
  entity User in [Group] {
    sub: String, pool: String, token_use: String, email?: String,
    flags: Set<String>, scopes: Set<String>, org_id?: String,
  };
  entity Item { org_id: String, name?: String, qty?: Long, live?: Bool, code?: String };
  action read, update, remove, audit, search appliesTo { principal: User, resource: Item };
}
"#;

const POLICIES: &str = r#"
@id("read-own-org")
permit (principal in Shop::Group::"staff", action == Shop::Action::"read", resource)
when { principal has org_id && resource.org_id == principal.org_id };

@id("read-public-names")
permit (principal, action == Shop::Action::"read", resource)
when { resource has name && resource.name like "pub_*" };

@id("hide-dead")
forbid (principal, action == Shop::Action::"read", resource)
when { resource has live && !resource.live };

@id("update-qty")
permit (principal, action == Shop::Action::"update", resource)
when { principal.flags.contains("edit") && resource has qty && resource.qty > 0 && resource.qty <= 100 };

@id("update-not-locked")
forbid (principal, action == Shop::Action::"update", resource)
when { resource has code && resource.code == "LOCKED" };

@id("remove-odd")
permit (principal, action == Shop::Action::"remove", resource)
when {
  if resource has qty then resource.qty < 0 || resource.qty == 9223372036854775807
  else resource.org_id != "o1"
};

@id("audit-codes")
permit (principal, action == Shop::Action::"audit", resource)
when {
  ["A%", "a_b", "x\\y", "Ünï", ""].contains(resource.org_id) ||
  (resource has code && resource.code like "*\*")
};

@id("search-like")
permit (principal, action == Shop::Action::"search", resource)
when {
  resource has name &&
  (resource.name like "%*" || resource.name like "*_" || resource.name like "*\\" || principal.scopes.containsAny(["all"]))
};

@id("search-not-case")
forbid (principal, action == Shop::Action::"search", resource)
when { resource has name && resource.name == "Caps" };
"#;

fn strings(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|value| Some((*value).to_owned())).chain([None]).collect()
}

/// Hostile rows: NULLs, `%`, `_`, `\`, `*`, unicode, case-only differences, empty and long
/// strings, the ends of i64; picked so every value meets every other often enough.
fn hostile_items() -> Vec<Item> {
    let long = "ü%_\\*".repeat(2_000);
    let org_ids = strings(&["o1", "O1", "o1 ", "", "A%", "Ab", "a_b", "axb", "x\\y", "Ünï", "ünï", &long, "o2"]);
    let names =
        strings(&["pub_x", "pubax", "pub_", "%", "%abc", "a_", "_", "x*", "x\\", "Caps", "caps", "", "PUB_X", &long]);
    let qtys: Vec<Option<i64>> = [i64::MIN, i64::MIN + 1, -1, 0, 1, 100, 101, i64::MAX - 1, i64::MAX]
        .into_iter()
        .map(Some)
        .chain([None])
        .collect();
    let lives = [Some(true), Some(false), None];
    let codes = strings(&["LOCKED", "locked", "a*", "a\\*", "*", "", "LOCKED "]);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut pick = |len: usize| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % len
    };
    (0..700)
        .map(|index| Item {
            id: format!("item-{index:04}"),
            org_id: org_ids[pick(org_ids.len())].clone(),
            name: names[pick(names.len())].clone(),
            qty: qtys[pick(qtys.len())],
            live: lives[pick(lives.len())],
            code: codes[pick(codes.len())].clone(),
        })
        .collect()
}

fn attributes(item: &Item) -> Map<String, Value> {
    let mut attributes = Map::new();
    for (name, value) in [
        ("org_id", item.org_id.clone().map(Value::from)),
        ("name", item.name.clone().map(Value::from)),
        ("qty", item.qty.map(Value::from)),
        ("live", item.live.map(Value::from)),
        ("code", item.code.clone().map(Value::from)),
    ] {
        if let Some(value) = value {
            attributes.insert(name.to_owned(), value);
        }
    }
    attributes
}

fn items_mapping() -> ResourceMapping {
    let raw: RawResource = toml::from_str(
        r#"
        table = "items"
        [attributes]
        org_id = { column = "org_id" }
        name = { column = "name" }
        qty = { column = "qty" }
        live = { column = "live" }
        code = { column = "code" }
        "#,
    )
    .unwrap();
    raw.check("Item").unwrap().1.unwrap()
}

fn principal(namespace: &str, sub: &str, groups: &[&str], flags: &[&str], org: Option<&str>) -> Principal {
    Principal {
        pool: namespace.to_lowercase(),
        namespace: namespace.into(),
        sub: sub.into(),
        token_use: TokenUse::Access,
        groups: groups.iter().map(|group| (*group).to_owned()).collect(),
        email: None,
        scopes: if flags.contains(&"all") { vec!["all".into()] } else { Vec::new() },
        attributes: org.map(|org| vec![("org_id".to_owned(), org.to_owned())]).unwrap_or_default(),
        flags: Arc::from(flags.iter().map(|flag| (*flag).to_owned()).collect::<Vec<_>>()),
    }
}

fn load(dir: &std::path::Path) -> Decider {
    Decider::load(&PolicySources { dir: dir.to_owned(), pools: Vec::new(), resource_queries: Vec::new() }).unwrap()
}

fn policy_dir(schema: &str, policies: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.cedarschema"), schema).unwrap();
    std::fs::write(dir.path().join("policies.cedar"), policies).unwrap();
    dir
}

/// A connection to a fresh database of `backend`, and its dialect.
async fn connect(database: &TestDatabase, backend: &Backend) -> (AnyConnection, Dialect) {
    sqlx::any::install_default_drivers();
    match backend {
        Backend::Sqlite => {
            (AnyConnection::connect(&format!("{}?mode=rwc", database.url)).await.unwrap(), Dialect::Sqlite)
        }
        Backend::Postgres(_) => (AnyConnection::connect(&database.url).await.unwrap(), Dialect::Postgres),
    }
}

async fn insert_items(conn: &mut AnyConnection, items: &[Item]) {
    sqlx::query(TABLE).execute(&mut *conn).await.unwrap();
    for item in items {
        sqlx::query("INSERT INTO items (id, org_id, name, qty, live, code) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(item.id.clone())
            .bind(item.org_id.clone())
            .bind(item.name.clone())
            .bind(item.qty)
            .bind(item.live)
            .bind(item.code.clone())
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}

/// The ids the filter selects from `mapping`'s table.
async fn selected(
    conn: &mut AnyConnection,
    decider: &Decider,
    who: &Principal,
    action: &str,
    resource_type: &str,
    mapping: &ResourceMapping,
    dialect: Dialect,
) -> BTreeSet<String> {
    let context = Map::new();
    let question = FilterQuestion { action, resource_type, context: &context };
    let planned = plan(decider, who, Some(mapping), &question).unwrap();
    let (clause, params) = match planned.plan {
        Plan::AlwaysDeny => return BTreeSet::new(),
        Plan::AlwaysAllow => ("(1 = 1)".to_owned(), Vec::new()),
        Plan::Conditional { condition } => {
            let sql = to_sql(&condition, mapping, dialect, 1).unwrap();
            (sql.clause, sql.params)
        }
    };
    let text = format!("SELECT {} FROM {} WHERE {clause}", mapping.id_sql(), mapping.table_sql());
    let mut query = sqlx::query(&text);
    for param in params {
        query = match param {
            SqlParam::Text(text) => query.bind(text),
            SqlParam::Long(number) => query.bind(number),
            SqlParam::Bool(flag) => query.bind(flag),
        };
    }
    let rows = query.fetch_all(&mut *conn).await.unwrap_or_else(|err| panic!("{text}: {err}"));
    rows.iter().map(|row| row.get::<String, _>(0)).collect()
}

/// The ids `decide` allows, one row at a time; a question it refuses counts as a deny.
fn allowed(
    decider: &Decider,
    who: &Principal,
    action: &str,
    resource_type: &str,
    rows: &[(String, Map<String, Value>)],
) -> BTreeSet<String> {
    rows.iter()
        .filter(|(id, attributes)| {
            let ask = AccessRequest {
                action: action.to_owned(),
                resource: ResourceRef {
                    type_name: resource_type.to_owned(),
                    id: id.clone(),
                    attributes: attributes.clone(),
                    parents: Vec::new(),
                },
                context: Map::new(),
            };
            decider.decide(who, &ask).is_ok_and(|decision| decision.allow)
        })
        .map(|(id, _)| id.clone())
        .collect()
}

#[tokio::test]
async fn the_filter_selects_exactly_the_hostile_rows_the_check_allows() {
    let dir = policy_dir(SCHEMA, POLICIES);
    let decider = load(dir.path());
    let items = hostile_items();
    let rows: Vec<(String, Map<String, Value>)> =
        items.iter().map(|item| (item.id.clone(), attributes(item))).collect();
    let mapping = items_mapping();
    let principals = [
        principal("Shop", "staff-o1", &["staff"], &[], Some("o1")),
        principal("Shop", "staff-pct", &["staff"], &["edit"], Some("A%")),
        principal("Shop", "staff-long", &["staff"], &[], Some(&"ü%_\\*".repeat(2_000))),
        principal("Shop", "editor", &[], &["edit", "all"], None),
        principal("Shop", "nobody", &[], &[], None),
    ];
    for backend in backends() {
        let database = TestDatabase::create(&backend).await;
        let (mut conn, dialect) = connect(&database, &backend).await;
        insert_items(&mut conn, &items).await;
        let mut nonempty = 0;
        for who in &principals {
            for action in ["read", "update", "remove", "audit", "search"] {
                let expected = allowed(&decider, who, action, "Item", &rows);
                let got = selected(&mut conn, &decider, who, action, "Item", &mapping, dialect).await;
                assert_eq!(
                    got.symmetric_difference(&expected).collect::<Vec<_>>(),
                    Vec::<&String>::new(),
                    "{backend:?} {} {action}",
                    who.sub
                );
                nonempty += usize::from(!expected.is_empty() && expected.len() < rows.len());
            }
        }
        assert!(nonempty >= 15, "the fixtures should mostly split the rows, split {nonempty}");
    }
}

#[tokio::test]
async fn the_seed_scenarios_list_views_match_the_check_row_by_row() {
    let decider = load(&repo_path("policies"));
    let stock = RawResource::check(
        toml::from_str("table = \"stock\"\nattributes = { org_id = { column = \"org_id\" } }").unwrap(),
        "Stock",
    )
    .unwrap()
    .1
    .unwrap();
    let wallet = RawResource::check(
        toml::from_str("table = \"wallet\"\nattributes = { owner = { column = \"owner\" } }").unwrap(),
        "Wallet",
    )
    .unwrap()
    .1
    .unwrap();
    let account = RawResource::check(toml::from_str("table = \"account\"").unwrap(), "Account").unwrap().1.unwrap();
    let values = ["o1", "O1", "o2", "", "wil", "Wil", "%", "o_", "o\\1"];
    let mut stock_rows = Vec::new();
    let mut wallet_rows = Vec::new();
    for (index, value) in values.iter().map(|value| Some(*value)).chain([None]).enumerate() {
        let attributes = |name: &str| match value {
            Some(value) => json!({ name: value }).as_object().cloned().unwrap(),
            None => Map::new(),
        };
        stock_rows.push((format!("sku-{index}"), value, attributes("org_id")));
        wallet_rows.push((format!("w-{index}"), value, attributes("owner")));
    }
    let cases: Vec<(Principal, &str, &str, &ResourceMapping)> = vec![
        (principal("Merchant", "mia", &["merchant"], &["can_manage_stock"], Some("o1")), "read", "Stock", &stock),
        (principal("Merchant", "mia", &["merchant"], &["can_manage_stock"], Some("o1")), "update", "Stock", &stock),
        (principal("Merchant", "mo", &["merchant"], &[], Some("%")), "update", "Stock", &stock),
        (principal("Merchant", "stu", &["merchant-staff"], &[], Some("o_")), "read", "Stock", &stock),
        (principal("Merchant", "eve", &["admins"], &[], Some("o1")), "read", "Stock", &stock),
        (principal("Admin", "ada", &["admins"], &[], None), "read", "Account", &account),
        (principal("Admin", "ada", &["admins"], &[], None), "create", "Account", &account),
        (principal("Admin", "sam", &["support"], &[], None), "update", "Account", &account),
        (principal("Wallet", "wil", &[], &[], None), "read", "Wallet", &wallet),
        (principal("Wallet", "o\\1", &[], &[], None), "recharge", "Wallet", &wallet),
    ];
    for backend in backends() {
        let database = TestDatabase::create(&backend).await;
        let (mut conn, dialect) = connect(&database, &backend).await;
        for statement in [
            "CREATE TABLE stock (id TEXT PRIMARY KEY, org_id TEXT)",
            "CREATE TABLE wallet (id TEXT PRIMARY KEY, owner TEXT)",
            "CREATE TABLE account (id TEXT PRIMARY KEY)",
        ] {
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        }
        for ((stock_id, value, _), (wallet_id, _, _)) in stock_rows.iter().zip(&wallet_rows) {
            let value = value.map(str::to_owned);
            sqlx::query("INSERT INTO stock (id, org_id) VALUES ($1, $2)")
                .bind(stock_id.clone())
                .bind(value.clone())
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query("INSERT INTO wallet (id, owner) VALUES ($1, $2)")
                .bind(wallet_id.clone())
                .bind(value)
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query("INSERT INTO account (id) VALUES ($1)")
                .bind(format!("acct-{stock_id}"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        for (who, action, resource_type, mapping) in &cases {
            let rows: Vec<(String, Map<String, Value>)> = match *resource_type {
                "Stock" => stock_rows.iter().map(|(id, _, attributes)| (id.clone(), attributes.clone())).collect(),
                "Wallet" => wallet_rows.iter().map(|(id, _, attributes)| (id.clone(), attributes.clone())).collect(),
                _ => stock_rows.iter().map(|(id, _, _)| (format!("acct-{id}"), Map::new())).collect(),
            };
            let expected = allowed(&decider, who, action, resource_type, &rows);
            let got = selected(&mut conn, &decider, who, action, resource_type, mapping, dialect).await;
            assert_eq!(got, expected, "{backend:?} {} {action} {resource_type}", who.sub);
        }
    }
}

/// A boolean expression of the grammar, written as Cedar; optional attributes are always
/// guarded, as strict validation demands.
fn expression() -> impl Strategy<Value = String> {
    let text = prop::sample::select(vec!["o1", "O1", "", "a%", "a_b", "x\\\\y", "Ünï", "LOCKED"]);
    let pattern = prop::sample::select(vec!["*", "o*", "*1", "a%*", "*_*", "*\\*", "\\**", "x\\\\*", ""]);
    let number = prop::sample::select(vec![i64::MIN, -1, 0, 1, 100, i64::MAX]);
    let comparison = prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]);
    let leaf = prop_oneof![
        (prop::bool::ANY, text.clone())
            .prop_map(|(equal, value)| { format!("resource.org_id {} \"{value}\"", if equal { "==" } else { "!=" }) }),
        pattern.prop_map(|pattern| format!("(resource has name && resource.name like \"{pattern}\")")),
        (comparison, number).prop_map(|(op, value)| { format!("(resource has qty && resource.qty {op} {value})") }),
        Just("(resource has live && resource.live)".to_owned()),
        Just("resource has code".to_owned()),
        prop::collection::vec(text, 1..3).prop_map(|values| {
            let values: Vec<String> = values.iter().map(|value| format!("\"{value}\"")).collect();
            format!("(resource has code && [{}].contains(resource.code))", values.join(", "))
        }),
        Just("principal.flags.contains(\"edit\")".to_owned()),
    ];
    leaf.prop_recursive(3, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
            inner.clone().prop_map(|a| format!("!({a})")),
            (inner.clone(), inner.clone(), inner).prop_map(|(c, a, b)| format!("(if {c} then {a} else {b})")),
        ]
    })
}

fn policy_set() -> impl Strategy<Value = String> {
    (prop::collection::vec(expression(), 1..3), prop::collection::vec(expression(), 0..3)).prop_map(|(permits, forbids)| {
        let mut text = String::new();
        for (index, body) in permits.iter().enumerate() {
            text += &format!("@id(\"p{index}\") permit (principal, action == Shop::Action::\"read\", resource) when {{ {body} }};\n");
        }
        for (index, body) in forbids.iter().enumerate() {
            text += &format!("@id(\"f{index}\") forbid (principal, action == Shop::Action::\"read\", resource) when {{ {body} }};\n");
        }
        text
    })
}

#[test]
fn generated_policies_filter_exactly_what_they_allow_on_sqlite() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let items: Vec<Item> = hostile_items().into_iter().take(150).collect();
    let rows: Vec<(String, Map<String, Value>)> =
        items.iter().map(|item| (item.id.clone(), attributes(item))).collect();
    let conn = runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect("sqlite::memory:").await.unwrap();
        insert_items(&mut conn, &items).await;
        std::cell::RefCell::new(conn)
    });
    let mapping = items_mapping();
    let who = [principal("Shop", "ed", &[], &["edit"], None), principal("Shop", "no", &[], &[], None)];
    let mut runner = TestRunner::new(Config { cases: 48, failure_persistence: None, ..Config::default() });
    let result = runner.run(&policy_set(), |policies| {
        let dir = policy_dir(SCHEMA, &policies);
        let decider = load(dir.path());
        for who in &who {
            let expected = allowed(&decider, who, "read", "Item", &rows);
            let got = runtime.block_on(selected(
                &mut conn.borrow_mut(),
                &decider,
                who,
                "read",
                "Item",
                &mapping,
                Dialect::Sqlite,
            ));
            prop_assert_eq!(&got, &expected, "{}\n{}", who.sub, policies);
        }
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

#[tokio::test]
async fn set_attributes_filter_as_postgresql_arrays_exactly() {
    let Some(admin_url) = crate::helpers::postgres_url() else { return };
    let schema = r#"
namespace Tagged {
  entity Group;
  entity User in [Group] {
    sub: String, pool: String, token_use: String, email?: String,
    flags: Set<String>, scopes: Set<String>,
  };
  entity Doc { tags?: Set<String>, ns?: Set<Long> };
  action read appliesTo { principal: User, resource: Doc };
}
"#;
    let policies = r#"
@id("t1") permit (principal, action == Tagged::Action::"read", resource)
when { resource has tags && (resource.tags.contains("a") || resource.tags.containsAll(["b", "c"])) };
@id("t2") permit (principal, action == Tagged::Action::"read", resource)
when { resource has ns && resource.ns.containsAny([1, 9223372036854775807]) };
@id("t3") forbid (principal, action == Tagged::Action::"read", resource)
when { resource has tags && resource.tags.isEmpty() };
@id("t4") permit (principal, action == Tagged::Action::"read", resource)
when { resource has tags && principal.flags.containsAll(resource.tags) };
"#;
    let dir = policy_dir(schema, policies);
    let decider = load(dir.path());
    let mapping = RawResource::check(
        toml::from_str("table = \"docs\"\nattributes = { tags = { column = \"tags\" }, ns = { column = \"ns\" } }")
            .unwrap(),
        "Doc",
    )
    .unwrap()
    .1
    .unwrap();
    let tag_sets: [Option<&[&str]>; 7] =
        [None, Some(&[]), Some(&["a"]), Some(&["b", "c"]), Some(&["A"]), Some(&["b"]), Some(&["a", "b", "c"])];
    let number_sets: [Option<&[i64]>; 5] = [None, Some(&[]), Some(&[1]), Some(&[i64::MAX]), Some(&[2, 3])];
    let database = TestDatabase::create(&Backend::Postgres(admin_url)).await;
    let (mut conn, dialect) = connect(&database, &Backend::Postgres(String::new())).await;
    sqlx::query("CREATE TABLE docs (id TEXT PRIMARY KEY, tags TEXT[], ns BIGINT[])").execute(&mut conn).await.unwrap();
    let mut rows = Vec::new();
    for tags in tag_sets {
        for numbers in number_sets {
            let id = format!("doc-{}", rows.len());
            let tags_sql = match tags {
                Some(tags) => format!(
                    "ARRAY[{}]::text[]",
                    tags.iter().map(|tag| format!("'{tag}'")).collect::<Vec<_>>().join(", ")
                ),
                None => "NULL".to_owned(),
            };
            let numbers_sql = match numbers {
                Some(numbers) => format!(
                    "ARRAY[{}]::bigint[]",
                    numbers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                ),
                None => "NULL".to_owned(),
            };
            sqlx::query(&format!("INSERT INTO docs (id, tags, ns) VALUES ('{id}', {tags_sql}, {numbers_sql})"))
                .execute(&mut conn)
                .await
                .unwrap();
            let mut attributes = Map::new();
            if let Some(tags) = tags {
                attributes.insert("tags".into(), json!(tags));
            }
            if let Some(numbers) = numbers {
                attributes.insert("ns".into(), json!(numbers));
            }
            rows.push((id, attributes));
        }
    }
    for flags in [&[][..], &["a"][..], &["b", "c"][..], &["a", "b", "c", "A"][..]] {
        let who = principal("Tagged", "reader", &[], flags, None);
        let expected = allowed(&decider, &who, "read", "Doc", &rows);
        let got = selected(&mut conn, &decider, &who, "read", "Doc", &mapping, dialect).await;
        assert_eq!(got, expected, "flags {flags:?}");
        assert!(!expected.is_empty() && expected.len() < rows.len(), "flags {flags:?} should split the rows");
    }
}
