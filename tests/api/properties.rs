//! Property tests with proptest, at a fixed case count: arbitrary bytes as the bearer token,
//! and arbitrary mutations of a valid token, never crash the service, never get a 5xx, and
//! never get an allow (unless the "mutation" gave back the very same token).

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::helpers::{Answer, World, ask, read};

/// Cases per property; each is one HTTP request.
const CASES: u32 = 400;

/// One edit of a token's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index, Index),
    Truncate(Index),
    SwapSegments(Index, Index),
    RepeatSegment(Index),
}

/// Bytes that may appear in a header value (visible ASCII and obs-text), weighted towards the
/// JWT alphabet so that mutations stay close to real tokens.
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".to_vec()),
        1 => 0x20u8..0x7f,
        1 => 0x80u8..=0xff,
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        (any::<Index>(), header_byte()).prop_map(|(at, byte)| Mutation::Replace(at, byte)),
        (any::<Index>(), header_byte()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        (any::<Index>(), any::<Index>()).prop_map(|(at, len)| Mutation::Delete(at, len)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapSegments(a, b)),
        any::<Index>().prop_map(Mutation::RepeatSegment),
    ]
}

/// Applies `mutation`; a flipped bit that would leave the header alphabet is dropped instead,
/// so every result can still be sent as a header value.
fn apply(mut bytes: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    let len = bytes.len().max(1);
    let segments = |bytes: &[u8]| bytes.split(|byte| *byte == b'.').map(<[u8]>::to_vec).collect::<Vec<_>>();
    match mutation {
        Mutation::FlipBit(at, bit) if !bytes.is_empty() => {
            let at = at.index(len);
            let flipped = bytes[at] ^ (1 << bit);
            if (0x20..0x7f).contains(&flipped) || flipped >= 0x80 {
                bytes[at] = flipped;
            } else {
                bytes.remove(at);
            }
        }
        Mutation::Replace(at, byte) if !bytes.is_empty() => bytes[at.index(len)] = *byte,
        Mutation::Insert(at, byte) => bytes.insert(at.index(bytes.len() + 1), *byte),
        Mutation::Delete(at, count) if !bytes.is_empty() => {
            let at = at.index(len);
            let end = (at + 1 + count.index(64)).min(bytes.len());
            bytes.drain(at..end);
        }
        Mutation::Truncate(at) => bytes.truncate(at.index(len)),
        Mutation::SwapSegments(a, b) => {
            let mut parts = segments(&bytes);
            let count = parts.len();
            parts.swap(a.index(count), b.index(count));
            bytes = parts.join(&b'.');
        }
        Mutation::RepeatSegment(at) => {
            let mut parts = segments(&bytes);
            let at = at.index(parts.len());
            parts.insert(at, parts[at].clone());
            bytes = parts.join(&b'.');
        }
        _ => {}
    }
    bytes
}

fn wallet_read() -> Value {
    ask("read", "Wallet", "w-1", json!({ "owner": "wil" }))
}

async fn check_raw(world: &World, token: &[u8]) -> Answer {
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(token);
    let value = reqwest::header::HeaderValue::from_bytes(&value).unwrap();
    let request = world.app.client.post(format!("{}/v1/check", world.app.address));
    let request = request.header("authorization", value).header("content-type", "application/json");
    read(request.body(wallet_read().to_string()).send().await.unwrap()).await
}

/// Runs `property` on `CASES` inputs from `strategy`, each through a real HTTP request.
fn run<S: Strategy>(
    world: &World,
    strategy: S,
    property: impl Fn(&S::Value, Answer) -> Result<(), TestCaseError>,
    token_of: impl Fn(&S::Value) -> Vec<u8>,
) {
    let runtime = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
    let result = runner.run(&strategy, |input| {
        let token = token_of(&input);
        let answer = tokio::task::block_in_place(|| runtime.block_on(check_raw(world, &token)));
        prop_assert!(answer.status.as_u16() < 500, "{}: {}", answer.status, answer.body);
        property(&input, answer)
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_bytes_are_never_allowed() {
    let world = World::start().await;
    let bytes = prop::collection::vec(header_byte(), 0..1200);
    run(
        &world,
        bytes,
        |_, answer| {
            prop_assert_eq!(answer.status.as_u16(), 401, "{}", answer.body);
            Ok(())
        },
        Clone::clone,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_of_a_valid_token_are_never_allowed() {
    let world = World::start().await;
    let valid = world.issuer.sign("wallet", &world.issuer.id_claims("wallet", "wil"));
    assert_eq!(check_raw(&world, valid.as_bytes()).await.outcome(), "allow");
    let mutations = prop::collection::vec(mutation(), 1..4);
    let mutate = |mutations: &Vec<Mutation>| mutations.iter().fold(valid.clone().into_bytes(), apply);
    run(
        &world,
        mutations,
        |mutations, answer| {
            if answer.outcome() == "allow" {
                prop_assert_eq!(mutate(mutations), valid.as_bytes(), "a changed token was allowed");
            } else {
                prop_assert_eq!(answer.status.as_u16(), 401, "{}", answer.body);
            }
            Ok(())
        },
        mutate,
    );
}
