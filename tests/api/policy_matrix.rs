//! The seed scenario's decision matrix, kept once, in `policies/tests/*.toml`: every case must
//! pass in process (`poolgate policy test`) and through HTTP, with a real token for the case's
//! principal and its flags in the database.

use std::time::Duration;

use poolgate::config::pool::TokenUse;
use poolgate::decision::policy_tests::{self, Expected};
use poolgate::decision::{Decider, PolicySources};
use serde_json::{Value, json};

use crate::helpers::{World, eventually, repo_path};

#[tokio::test]
async fn every_policy_test_case_passes_in_process() {
    let settings = poolgate::config::load(None).unwrap();
    let mut sources = PolicySources::from(&settings);
    sources.dir = repo_path("policies");
    let decider = Decider::load(&sources).unwrap();
    let results = policy_tests::run(&sources.dir, &decider, &settings.pools).unwrap();
    assert!(results.len() >= 20, "the matrix has {} cases", results.len());
    let failed: Vec<_> = results.iter().filter(|result| !result.passed).collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[tokio::test]
async fn every_policy_test_case_gives_the_same_answer_through_http() {
    let world = World::start().await;
    let cases = policy_tests::cases(&repo_path("policies")).unwrap();
    assert!(cases.len() >= 20, "the matrix has {} cases", cases.len());
    for case in cases {
        let label = &case.name;
        world
            .db
            .execute(&format!("DELETE FROM principal_flags WHERE pool = '{}' AND subject = '{}'", case.pool, case.sub))
            .await;
        for flag in &case.flags {
            world
                .db
                .execute(&format!(
                    "INSERT INTO principal_flags (pool, subject, flag) VALUES ('{}', '{}', '{flag}')",
                    case.pool, case.sub
                ))
                .await;
        }
        let mut claims = match case.token_use {
            TokenUse::Id => world.issuer.id_claims(&case.pool, &case.sub),
            TokenUse::Access => world.issuer.access_claims(&case.pool, &case.sub, &case.scopes.join(" ")),
        };
        if !case.groups.is_empty() {
            claims.insert("cognito:groups".into(), json!(case.groups));
        }
        claims.extend(case.claims.iter().map(|(name, value)| (name.clone(), Value::from(value.as_str()))));
        let token = world.issuer.sign(&case.pool, &claims);
        let body = json!({ "action": case.action, "resource": case.resource, "context": case.context });
        // The flags just written reach the answer once the change poll has flushed the cache.
        let mut expected_flags = case.flags.clone();
        expected_flags.sort();
        let flags_current = eventually(Duration::from_secs(5), || async {
            let answer = world.app.check(&token, body.clone()).await;
            let mut flags: Vec<String> = answer.body["principal"]["flags"]
                .as_array()
                .map(|flags| flags.iter().filter_map(|flag| flag.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            flags.sort();
            flags == expected_flags
        })
        .await;
        assert!(flags_current, "{label}: the flags {expected_flags:?} never reached the answer");
        let answer = world.app.check(&token, body).await;
        assert_eq!(answer.status, 200, "{label}: {}", answer.body);
        let expected = match case.expect {
            Expected::Allow => "allow",
            Expected::Deny => "deny",
        };
        assert_eq!(answer.outcome(), expected, "{label}: {}", answer.body);
        if let Some(mut policies) = case.policies.clone() {
            let mut got: Vec<String> = answer.body["determining_policies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|policy| policy.as_str().unwrap().to_owned())
                .collect();
            policies.sort();
            got.sort();
            assert_eq!(got, policies, "{label}");
        }
        assert_eq!(answer.body["pool"], case.pool.as_str(), "{label}");
    }
}
