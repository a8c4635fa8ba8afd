//! Start-up refuses bad policies and bad configuration with every problem named, migrations
//! apply on both backends, and the command line works end to end.

use std::process::Command;

use serde_json::json;
use toml::Table;

use crate::fake_issuer::FakeIssuer;
use crate::helpers::{
    Backend, TestDatabase, World, ask, backends, base_config, copy_policies, repo_path, set, try_spawn_app,
};

async fn start_error(edit: impl FnOnce(&mut Table)) -> String {
    let issuer = FakeIssuer::start();
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let mut config = base_config(&issuer, &db.url);
    edit(&mut config);
    match try_spawn_app(&config).await {
        Ok(_) => panic!("start-up should have failed"),
        Err(err) => format!("{err:#}"),
    }
}

#[tokio::test]
async fn invalid_policies_refuse_to_start_with_every_problem_as_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    copy_policies(dir.path());
    std::fs::write(dir.path().join("broken.cedar"), "// a comment\n\npermit (principal, action, resource) when { ;\n")
        .unwrap();
    std::fs::write(
        dir.path().join("typo.cedar"),
        "@id(\"typo\")\npermit (principal, action == Wallet::Action::\"read\", resource is Wallet::Wallet)\nwhen { resource.ownr == principal.sub };\n",
    )
    .unwrap();
    let policies = dir.path().display().to_string();
    let error = start_error(|config| set(config, &["policies", "dir"], policies)).await;
    assert!(error.contains("broken.cedar:3"), "{error}");
    assert!(error.contains("typo.cedar:3"), "{error}");
    assert!(error.contains("2 policy problem(s)"), "{error}");
}

#[tokio::test]
async fn duplicate_policy_ids_across_files_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    copy_policies(dir.path());
    std::fs::write(
        dir.path().join("again.cedar"),
        "@id(\"wallet.read-own-wallet\")\npermit (principal, action == Wallet::Action::\"read\", resource);\n",
    )
    .unwrap();
    let policies = dir.path().display().to_string();
    let error = start_error(|config| set(config, &["policies", "dir"], policies)).await;
    assert!(error.contains("wallet.read-own-wallet"), "{error}");
}

#[tokio::test]
async fn a_mapped_attribute_the_schema_lacks_refuses_to_start() {
    let error = start_error(|config| set(config, &["pools", "wallet", "attributes", "tier"], "custom:tier")).await;
    assert!(error.contains("pools.wallet"), "{error}");
}

/// A configuration edit and the key its error message must name.
type ConfigCase = (fn(&mut Table), &'static str);

#[tokio::test]
async fn bad_configuration_names_the_offending_key() {
    let cases: Vec<ConfigCase> = vec![
        (|c| set(c, &["pools", "wallet", "client_ids"], Vec::<String>::new()), "pools.wallet.client_ids"),
        (|c| set(c, &["pools", "wallet", "leeway"], "90s"), "pools.wallet.leeway"),
        (|c| set(c, &["pools", "wallet", "token_use"], vec!["refresh"]), "refresh"),
        (|c| set(c, &["pools", "wallet", "jwks_uri"], "ftp://keys"), "pools.wallet.jwks_uri"),
        (|c| set(c, &["pools", "wallet", "namespace"], "Not A Name"), "pools.wallet.namespace"),
        (|c| set(c, &["pools", "wallet", "colour"], "blue"), "colour"),
        (|c| set(c, &["pools", "admin", "issuer"], c["pools"]["wallet"]["issuer"].clone()), "pools.wallet.issuer"),
        (|c| set(c, &["database", "url"], "mysql://db"), "database.url"),
        (|c| set(c, &["server", "bind"], "nowhere"), "server.bind"),
        (|c| set(c, &["jwks", "max_stale"], "1s"), "jwks.max_stale"),
        (|c| set(c, &["database", "purge_interval"], "0s"), "database.purge_interval"),
    ];
    for (edit, key) in cases {
        let error = start_error(edit).await;
        assert!(error.contains(key), "expected `{key}` in: {error}");
    }
}

#[tokio::test]
async fn migrations_apply_on_every_backend_and_readyz_reports_ready() {
    for backend in backends() {
        let world = World::start_with(&backend, |_| {}).await;
        let ready = world.app.get("/readyz").await;
        assert_eq!(ready.status, 200, "{backend:?}: {}", ready.body);
        assert_eq!(ready.body["database"], "ok");
        world.db.execute("INSERT INTO principals (pool, subject, disabled) VALUES ('wallet', 'wil', FALSE)").await;
        assert_eq!(world.app.get("/healthz").await.status, 200);
    }
}

fn poolgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_poolgate")).args(args).env_remove("POOLGATE_CONFIG").output().unwrap()
}

#[tokio::test]
async fn policy_validate_lists_problems_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    copy_policies(dir.path());
    let config = dir.path().join("poolgate.toml");
    let write_config = |policies: &std::path::Path| {
        let toml = format!(
            "[policies]\ndir = \"{}\"\n[pools.wallet]\nissuer = \"https://i/wallet\"\ntoken_use = [\"id\"]\nclient_ids = [\"c\"]\n",
            policies.display()
        );
        std::fs::write(&config, toml).unwrap();
    };
    write_config(dir.path());
    let ok = poolgate(&["policy", "validate", "--config", config.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    std::fs::write(dir.path().join("bad.cedar"), "\npermit (principal, action, resource) when { principal.nope };\n")
        .unwrap();
    let bad = poolgate(&["policy", "validate", "--config", config.to_str().unwrap()]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("bad.cedar:2"), "{stderr}");
}

#[tokio::test]
async fn dev_tokens_minted_by_the_cli_are_accepted_by_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let mut config: Table = toml::from_str(&format!(
        r#"
        [server]
        bind = "127.0.0.1:0"
        [database]
        url = "{db}"
        [policies]
        dir = "{policies}"
        [dev]
        keys_dir = "{keys}"
        [decision_log]
        sink = "/dev/null"
        [pools.wallet]
        issuer = "https://dev.example/wallet"
        dev_key = true
        token_use = ["id", "access"]
        client_ids = ["dev-client"]
        [pools.admin]
        issuer = "https://dev.example/admin"
        dev_key = true
        token_use = ["id"]
        client_ids = ["dev-client"]
        [pools.merchant]
        issuer = "https://dev.example/merchant"
        dev_key = true
        token_use = ["id"]
        client_ids = ["dev-client"]
        attributes = {{ org_id = "custom:org_id" }}
        "#,
        db = db.url,
        policies = repo_path("policies").display(),
        keys = keys.display(),
    ))
    .unwrap();
    let app = crate::helpers::spawn_app(&config).await;
    set(&mut config, &["server", "bind"], "127.0.0.1:0");
    let path = dir.path().join("poolgate.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();

    let mint = |sub: &str, extra: &[&str]| {
        let mut args = vec!["dev", "token", "--config", path.to_str().unwrap(), "--pool", "wallet", "--sub", sub];
        args.extend_from_slice(extra);
        let out = poolgate(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let read = ask("read", "Wallet", "w", json!({ "owner": "wil" }));
    assert_eq!(app.check(&mint("wil", &[]), read.clone()).await.outcome(), "allow");
    assert_eq!(app.check(&mint("bob", &[]), read.clone()).await.outcome(), "deny");
    let recharge = ask("recharge", "Wallet", "w", json!({ "owner": "wil" }));
    let access = mint("wil", &["--token-use", "access", "--claim", "scope=write:recharge"]);
    assert_eq!(app.check(&access, recharge).await.outcome(), "allow");
    let expired = mint("wil", &["--ttl", "0s"]);
    assert_eq!(app.check(&expired, read).await.outcome(), "token_expired");
}

#[tokio::test]
async fn policy_test_runs_the_shipped_cases_and_fails_on_a_wrong_expectation() {
    let dir = tempfile::tempdir().unwrap();
    copy_policies(dir.path());
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    for entry in std::fs::read_dir(repo_path("policies/tests")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join("tests").join(path.file_name().unwrap())).unwrap();
    }
    let config = dir.path().join("poolgate.toml");
    let toml = format!(
        "[policies]\ndir = \"{}\"\n[pools.admin]\nissuer = \"https://i/admin\"\ntoken_use = [\"id\"]\nclient_ids = [\"c\"]\n\
         [pools.merchant]\nissuer = \"https://i/merchant\"\ntoken_use = [\"id\"]\nclient_ids = [\"c\"]\n\
         attributes = {{ org_id = \"custom:org_id\" }}\n\
         [pools.wallet]\nissuer = \"https://i/wallet\"\ntoken_use = [\"id\", \"access\"]\nclient_ids = [\"c\"]\n",
        dir.path().display()
    );
    std::fs::write(&config, toml).unwrap();
    let ok = poolgate(&["policy", "test", "--config", config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(stdout.contains("23 passed, 0 failed"), "{stdout}");

    std::fs::write(
        dir.path().join("tests/wrong.toml"),
        "[[case]]\nname = \"wrong\"\npool = \"wallet\"\nsub = \"wil\"\naction = \"read\"\n\
         resource = { type = \"Wallet\", id = \"w\", attributes = { owner = \"bob\" } }\nexpect = \"allow\"\n",
    )
    .unwrap();
    let failing = poolgate(&["policy", "test", "--config", config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&failing.stdout);
    assert!(!failing.status.success());
    assert!(stdout.contains("FAIL  wrong: wrong") && stdout.contains("23 passed, 1 failed"), "{stdout}");
}

#[tokio::test]
async fn check_explains_one_decision_from_the_command_line() {
    let world = World::start_with(&Backend::Sqlite, |_| {}).await;
    world.db.execute("INSERT INTO principal_flags (pool, subject, flag) VALUES ('admin', 'ada', 'can_add_user')").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("poolgate.toml");
    std::fs::write(&config, toml::to_string(&base_config(&world.issuer, &world.db.url)).unwrap()).unwrap();
    let token = world.issuer.token("admin", "ada", &["admins"], json!({}));
    let run = |action: &str| {
        let args = ["check", "--config", config.to_str().unwrap(), "--token", &token, "--action", action];
        let mut args: Vec<&str> = args.to_vec();
        args.extend(["--resource-type", "Account", "--resource-id", "acct-1"]);
        poolgate(&args)
    };
    let allowed = run("create");
    let explanation: serde_json::Value = serde_json::from_slice(&allowed.stdout).unwrap();
    assert!(allowed.status.success(), "{}", String::from_utf8_lossy(&allowed.stderr));
    assert_eq!(explanation["decision"], "allow");
    assert_eq!(explanation["determining_policies"], json!(["admin.create-needs-can-add-user"]));
    assert_eq!(explanation["principal"]["flags"], json!(["can_add_user"]));

    let bad = poolgate(&[
        "check",
        "--config",
        config.to_str().unwrap(),
        "--token",
        "x.y.z",
        "--action",
        "read",
        "--resource-type",
        "Account",
        "--resource-id",
        "a",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("malformed_token"));
}

#[test]
fn dev_token_count_prints_one_token_a_line_spread_over_users() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("poolgate.toml");
    let toml = format!(
        "[dev]\nkeys_dir = \"{}\"\n[pools.wallet]\nissuer = \"https://dev.example/wallet\"\ndev_key = true\ntoken_use = [\"id\"]\nclient_ids = [\"c\"]\n",
        dir.path().join("keys").display()
    );
    std::fs::write(&config, toml).unwrap();
    let config = config.to_str().unwrap();
    let claims = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec!["dev", "token", "--config", config, "--pool", "wallet", "--sub", "u"];
        args.extend(extra);
        let out = poolgate(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|token| {
                let payload = token.split('.').nth(1).unwrap();
                serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
                    .unwrap()
            })
            .collect()
    };
    let subs =
        |claims: &[serde_json::Value]| claims.iter().map(|c| c["sub"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(subs(&claims(&["--count", "3"])), ["u-0", "u-1", "u-2"]);
    let spread = claims(&["--count", "5", "--users", "2"]);
    assert_eq!(subs(&spread), ["u-0", "u-1", "u-0", "u-1", "u-0"]);
    let ids: std::collections::HashSet<&str> = spread.iter().map(|c| c["jti"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5, "every token has its own jti");
}
