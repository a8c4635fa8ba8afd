//! The attack corpus: crafted tokens and requests, one table, each case with the status and
//! code it must get. Across the whole table: zero allows, no 5xx, no URL named by a token is
//! ever contacted (a canary listener counts connections), forged key ids cost at most one JWKS
//! fetch per pool, and every other case none.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::EncodePublicKey;
use serde_json::{Map, Value, json};

use crate::fake_issuer::{KEYS, POOLS, now};
use crate::helpers::{Answer, Backend, World, ask, read, set};
use Expect::{Denied, Refused, Status};

/// What a case must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// This status and error code.
    Refused(u16, &'static str),
    /// A `200` deny: the request is well formed, but what it smuggles grants nothing.
    Denied,
    /// This status, whoever answers: for a 100 KB header that is actix-web's HTTP parser (a bare
    /// `431`) or poolgate's header limit (`431 headers_too_large`), depending on how the bytes
    /// arrive.
    Status(u16),
}

/// One crafted request to `POST /v1/check` (or another path).
struct Attack {
    label: String,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
    expect: Expect,
}

/// A question the wallet user `wil` may ask: any refusal below is the attack's doing.
fn wallet_read() -> Value {
    ask("read", "Wallet", "w-1", json!({ "owner": "wil" }))
}

fn bearer(label: impl Into<String>, token: String, expect: Expect) -> Attack {
    Attack {
        label: label.into(),
        path: "/v1/check",
        headers: vec![("authorization", format!("Bearer {token}"))],
        body: wallet_read().to_string(),
        expect,
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Wallet ID-token claims for `wil`, edited by `edit`.
fn claims(world: &World, edit: impl FnOnce(&mut Map<String, Value>)) -> Map<String, Value> {
    let mut claims = world.issuer.id_claims("wallet", "wil");
    edit(&mut claims);
    claims
}

/// Signs exactly these header and payload texts with the wallet pool's key (RS256).
fn signed(header: &str, payload: &str) -> String {
    KEYS["wallet"].sign_parts(header, payload).unwrap()
}

/// A token of the given header whose signature is computed with `alg` and `key`.
fn signed_with(alg: Algorithm, key: &EncodingKey, header: Value, payload: &Map<String, Value>) -> String {
    let message = format!("{}.{}", b64(header.to_string()), b64(json!(payload).to_string()));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

/// Counts every connection made to it; no test request ever names it except inside tokens.
async fn canary() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/keys", listener.local_addr().unwrap().port());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (url, hits)
}

fn corpus(world: &World, canary: &str) -> Vec<Attack> {
    let malformed = Refused(401, "malformed_token");
    let invalid_claims = Refused(401, "invalid_claims");
    let unknown_issuer = Refused(401, "unknown_issuer");
    let unsupported = Refused(401, "unsupported_algorithm");
    let bad_signature = Refused(401, "invalid_signature");
    let unknown_key = Refused(401, "unknown_key");
    let bad_request = Refused(400, "invalid_request");
    let now = now();

    let wallet = &KEYS["wallet"];
    let header = |extra: Value| {
        let mut header = json!({"alg": "RS256", "typ": "JWT", "kid": "kid-wallet"});
        header.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        header.to_string()
    };
    let valid_claims = claims(world, |_| {});
    let payload = json!(valid_claims).to_string();
    let valid = signed(&header(json!({})), &payload);
    let [h, p, s]: [&str; 3] = valid.split('.').collect::<Vec<_>>().try_into().unwrap();
    let with_header = |extra: Value| signed(&header(extra), &payload);
    let with_payload = |payload: &str| signed(&header(json!({})), payload);
    let with_claim = |name: &str, value: Value| {
        with_payload(&json!(claims(world, |c| drop(c.insert(name.into(), value)))).to_string())
    };
    let without_claim = |name: &str| with_payload(&json!(claims(world, |c| drop(c.remove(name)))).to_string());
    let with_signature = |signature: &str| format!("{h}.{p}.{signature}");
    let signature_of = |token: &str| token.rsplit('.').next().unwrap().to_owned();

    let pem = wallet.to_pem().unwrap();
    let rsa_key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let other_rsa = |alg: Algorithm, name: &str| {
        signed_with(alg, &rsa_key, json!({"alg": name, "kid": "kid-wallet"}), &valid_claims)
    };
    let public = rsa::RsaPrivateKey::from_pkcs1_pem(&pem).unwrap().to_public_key();
    let public_pem = public.to_public_key_pem(Default::default()).unwrap();
    let hmac = |secret: &[u8]| {
        let header = json!({"alg": "HS256", "kid": "kid-wallet"});
        signed_with(Algorithm::HS256, &EncodingKey::from_secret(secret), header, &valid_claims)
    };
    let signature = URL_SAFE_NO_PAD.decode(s).unwrap();
    let flipped = {
        let mut signature = signature.clone();
        signature[17] ^= 0x01;
        b64(signature)
    };
    // The last of 342 characters carries 2 bits of data and 4 bits that must be zero: setting
    // one gives a different text for the same signature bytes.
    let non_canonical = {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = ALPHABET.iter().position(|c| Some(c) == s.as_bytes().last()).unwrap();
        format!("{}{}", &s[..s.len() - 1], ALPHABET[last | 1] as char)
    };
    let tampered = {
        let richer = claims(world, |c| drop(c.insert("cognito:groups".into(), json!(["admins"]))));
        format!("{h}.{}.{s}", b64(json!(richer).to_string()))
    };
    let iss = world.issuer.issuer("wallet");

    let admin_access = |groups: Value| {
        let mut claims = world.issuer.access_claims("admin", "ada", "");
        claims.insert("cognito:groups".into(), groups);
        world.issuer.sign("admin", &claims)
    };
    let admin_read = |label: &str, groups: Value| Attack {
        body: ask("read", "Account", "acct-1", json!({})).to_string(),
        ..bearer(label, admin_access(groups), Denied)
    };
    let asking =
        |label: &str, body: Value, expect| Attack { body: body.to_string(), ..bearer(label, valid.clone(), expect) };
    let sending = |label: &str, headers: Vec<(&'static str, String)>, expect| Attack {
        headers,
        ..bearer(label, valid.clone(), expect)
    };
    let access_of = |pool: &str, sub: &str, edit: fn(&mut Map<String, Value>)| {
        let mut claims = world.issuer.access_claims(pool, sub, "");
        edit(&mut claims);
        world.issuer.sign(pool, &claims)
    };

    Vec::from([
        // Structure.
        bearer("two segments", format!("{h}.{p}"), malformed),
        bearer("four segments", format!("{valid}.{s}"), malformed),
        bearer("five segments (JWE)", format!("{valid}.{s}.{s}"), malformed),
        bearer("empty header segment", format!(".{p}.{s}"), malformed),
        bearer("empty signature segment", format!("{h}.{p}."), malformed),
        bearer("standard base64 alphabet", with_signature(&format!("{}+/", s.replace('-', "+"))), malformed),
        bearer("padding on the header", format!("{h}==.{p}.{s}"), malformed),
        bearer("header not JSON", format!("{}.{p}.{s}", b64("alg=RS256")), malformed),
        bearer("header a JSON array", format!("{}.{p}.{s}", b64(r#"["RS256"]"#)), malformed),
        bearer("payload not JSON", with_payload("sub=admin"), malformed),
        bearer("payload a JSON string", with_payload(r#""admin""#), malformed),
        bearer("header repeats alg", signed(r#"{"alg":"none","alg":"RS256","kid":"kid-wallet"}"#, &payload), malformed),
        bearer("payload repeats sub, signed", with_payload(&payload.replacen('{', r#"{"sub":"admin","#, 1)), malformed),
        bearer("payload repeats iss", with_payload(&payload.replacen('{', r#"{"iss":"https://evil","#, 1)), malformed),
        bearer("payload not UTF-8", format!("{h}.{}.{s}", b64(b"{\"iss\":\"\xff\xfe\"}")), malformed),
        bearer("not a token at all", "not a token".into(), malformed),
        // Time.
        bearer("exp missing", without_claim("exp"), invalid_claims),
        bearer("exp a string", with_claim("exp", json!((now + 300).to_string())), invalid_claims),
        bearer("exp null", with_claim("exp", Value::Null), invalid_claims),
        bearer("exp a float in the past", with_claim("exp", json!(now as f64 - 30.5)), Refused(401, "token_expired")),
        bearer("exp huge", with_claim("exp", json!(1e20)), invalid_claims),
        bearer("exp beyond u64", with_payload(&payload.replacen('{', r#"{"exp":1e400,"#, 1)), malformed),
        bearer("exp negative", with_claim("exp", json!(-1)), invalid_claims),
        bearer("exp exactly at the leeway", with_claim("exp", json!(now - 30)), Refused(401, "token_expired")),
        bearer("nbf past the leeway", with_claim("nbf", json!(now + 40)), Refused(401, "token_not_yet_valid")),
        bearer("nbf a string", with_claim("nbf", json!("0")), invalid_claims),
        bearer("nbf null", with_claim("nbf", Value::Null), invalid_claims),
        bearer("nbf negative", with_claim("nbf", json!(-5)), invalid_claims),
        bearer("iat past the leeway", with_claim("iat", json!(now + 40)), Refused(401, "issued_in_future")),
        bearer("iat a bool", with_claim("iat", json!(true)), invalid_claims),
        bearer("iat huge", with_claim("iat", json!(1e300)), invalid_claims),
        bearer("auth_time a string", with_claim("auth_time", json!("yesterday")), invalid_claims),
        // Algorithm.
        bearer("alg none", signed(r#"{"alg":"none","kid":"kid-wallet"}"#, &payload), unsupported),
        bearer("alg None", signed(r#"{"alg":"None","kid":"kid-wallet"}"#, &payload), unsupported),
        bearer("alg NONE", signed(r#"{"alg":"NONE","kid":"kid-wallet"}"#, &payload), unsupported),
        bearer("alg nOnE", signed(r#"{"alg":"nOnE","kid":"kid-wallet"}"#, &payload), unsupported),
        bearer("alg none, no signature", format!("{}.{p}.", b64(r#"{"alg":"none"}"#)), malformed),
        bearer("alg missing", signed(r#"{"kid":"kid-wallet"}"#, &payload), unsupported),
        bearer("alg null", signed(r#"{"alg":null,"kid":"kid-wallet"}"#, &payload), unsupported),
        bearer("alg in lower case", signed(r#"{"alg":"rs256","kid":"kid-wallet"}"#, &payload), unsupported),
        bearer("RS384 with the pool's key", other_rsa(Algorithm::RS384, "RS384"), unsupported),
        bearer("RS512 with the pool's key", other_rsa(Algorithm::RS512, "RS512"), unsupported),
        bearer("PS256 with the pool's key", other_rsa(Algorithm::PS256, "PS256"), unsupported),
        bearer("HS256 keyed with the public PEM", hmac(public_pem.as_bytes()), unsupported),
        bearer("HS256 keyed with the public DER", hmac(public.to_pkcs1_der().unwrap().as_bytes()), unsupported),
        bearer("HS256 keyed with the JWK text", hmac(wallet.jwk().to_string().as_bytes()), unsupported),
        bearer(
            "RS256 header, HMAC signature",
            with_signature(&signature_of(&hmac(public_pem.as_bytes()))),
            bad_signature,
        ),
        // 4n + 1 characters can never be base64.
        bearer("signature of 169 characters", with_signature(s.get(..169).unwrap()), malformed),
        bearer("signature with non-zero padding bits", with_signature(&non_canonical), malformed),
        bearer("signature cut to 128 bytes", with_signature(&b64(&signature[..128])), bad_signature),
        bearer("signature one bit flipped", with_signature(&flipped), bad_signature),
        bearer("signature all zeros", with_signature(&b64([0u8; 256])), bad_signature),
        bearer(
            "signature of another token",
            with_signature(&signature_of(&with_claim("email", json!("x@y")))),
            bad_signature,
        ),
        bearer("claims tampered after signing", tampered, bad_signature),
        bearer(
            "a foreign key under the pool's kid",
            KEYS["foreign"].sign_parts(&header(json!({})), &payload).unwrap(),
            bad_signature,
        ),
        // Header parameters that would choose the key.
        bearer("jwk header with the attacker's key", with_header(json!({"jwk": KEYS["foreign"].jwk()})), malformed),
        bearer("jku header to the canary", with_header(json!({"jku": canary})), malformed),
        bearer("x5u header to the canary", with_header(json!({"x5u": canary})), malformed),
        bearer("x5c header", with_header(json!({"x5c": ["MIIBIjANBg"]})), malformed),
        bearer("x5t header", with_header(json!({"x5t": "abc"})), malformed),
        bearer("crit header", with_header(json!({"crit": ["exp"]})), malformed),
        // kid.
        bearer("kid path traversal", with_header(json!({"kid": "../../../../etc/passwd"})), unknown_key),
        bearer("kid SQL", with_header(json!({"kid": "' OR '1'='1' --"})), unknown_key),
        bearer("kid shell", with_header(json!({"kid": format!("$(curl {canary})")})), unknown_key),
        bearer("kid a URL", with_header(json!({"kid": canary})), unknown_key),
        bearer("kid numeric", with_header(json!({"kid": 7})), malformed),
        bearer("kid null", with_header(json!({"kid": null})), malformed),
        bearer("kid empty", with_header(json!({"kid": ""})), malformed),
        bearer("kid of another pool", KEYS["admin"].sign(&valid_claims).unwrap(), unknown_key),
        bearer("kid 100 KB long", with_header(json!({"kid": "k".repeat(100 * 1024)})), Status(431)),
        bearer("token over 8 KiB", with_header(json!({"kid": "k".repeat(9 * 1024)})), Refused(401, "token_too_large")),
        // Issuer.
        bearer("iss with a trailing slash", with_claim("iss", json!(format!("{iss}/"))), unknown_issuer),
        bearer("iss in upper case", with_claim("iss", json!(iss.to_uppercase())), unknown_issuer),
        bearer("iss over https", with_claim("iss", json!(iss.replacen("http:", "https:", 1))), unknown_issuer),
        bearer(
            "iss on another host",
            with_claim("iss", json!(iss.replacen("127.0.0.1", "localhost", 1))),
            unknown_issuer,
        ),
        bearer("iss with a trailing space", with_claim("iss", json!(format!("{iss} "))), unknown_issuer),
        bearer("iss untrusted", with_claim("iss", json!("https://evil.example/wallet")), unknown_issuer),
        bearer("iss missing", without_claim("iss"), unknown_issuer),
        bearer("iss a number", with_claim("iss", json!(1)), unknown_issuer),
        // token_use, clients, subject, groups.
        bearer("token_use refresh", with_claim("token_use", json!("refresh")), Refused(401, "wrong_token_use")),
        bearer("token_use missing", without_claim("token_use"), invalid_claims),
        bearer("ID token relabelled as access", with_claim("token_use", json!("access")), invalid_claims),
        bearer(
            "access token on an ID-only pool",
            access_of("merchant", "mia", |_| {}),
            Refused(401, "wrong_token_use"),
        ),
        bearer(
            "ID token on an access-only pool",
            world.issuer.token("admin", "ada", &[], json!({})),
            Refused(401, "wrong_token_use"),
        ),
        bearer("aud not allowed", with_claim("aud", json!("other-client")), Refused(401, "client_not_allowed")),
        bearer(
            "aud a list of foreign clients",
            with_claim("aud", json!(["a", "b"])),
            Refused(401, "client_not_allowed"),
        ),
        bearer("aud missing", without_claim("aud"), invalid_claims),
        bearer("aud a number", with_claim("aud", json!(5)), invalid_claims),
        bearer(
            "client_id not allowed",
            access_of("wallet", "wil", |c| drop(c.insert("client_id".into(), json!("other-client")))),
            Refused(401, "client_not_allowed"),
        ),
        bearer("sub missing", without_claim("sub"), invalid_claims),
        bearer("sub empty", with_claim("sub", json!("")), invalid_claims),
        bearer("groups a string", with_claim("cognito:groups", json!("admins")), invalid_claims),
        bearer("groups numbers", with_claim("cognito:groups", json!([1, 2])), invalid_claims),
        bearer("groups null", with_claim("cognito:groups", Value::Null), invalid_claims),
        bearer("email a number", with_claim("email", json!(1)), invalid_claims),
        admin_read("group differing in case", json!(["Admins"])),
        admin_read("group with a trailing space", json!(["admins "])),
        admin_read("group with a leading space", json!([" admins"])),
        admin_read("group with a zero-width space", json!(["admins\u{200b}"])),
        // Request shape.
        asking("action missing", json!({"resource": {"type": "Wallet", "id": "w-1"}}), bad_request),
        asking("resource missing", json!({"action": "read"}), bad_request),
        asking("body over max_body_bytes", json!("x".repeat(70_000)), Refused(413, "payload_too_large")),
        asking("body not an object", json!(["read", "w-1"]), bad_request),
        asking("a token in the body as well", json!({"token": valid, "action": "read"}), bad_request),
        sending("two Authorization headers", vec![("authorization", format!("Bearer {valid}")); 2], malformed),
        sending("no Authorization header", vec![], Refused(401, "missing_token")),
        sending("Basic credentials", vec![("authorization", "Basic d2lsOnB3".into())], Refused(401, "missing_token")),
        sending("an empty bearer", vec![("authorization", "Bearer ".into())], Refused(401, "missing_token")),
        asking(
            "Cedar syntax in the resource id",
            ask("read", "Wallet", r#"w-1"); permit(principal, action, resource); //"#, json!({"owner": "eve"})),
            Denied,
        ),
        asking(
            "Cedar syntax in the resource type",
            ask("read", r#"Wallet::"w-1" || true || Wallet"#, "w-1", json!({"owner": "wil"})),
            bad_request,
        ),
        asking(
            "Cedar syntax in the action",
            ask(r#"read" || true || ""#, "Wallet", "w-1", json!({"owner": "wil"})),
            bad_request,
        ),
        asking("another pool's namespace", ask("read", "Admin::Account", "acct-1", json!({})), bad_request),
        asking(
            "an entity reference as an attribute",
            ask("read", "Wallet", "w-1", json!({"owner": {"__entity": {"type": "Wallet::User", "id": "wil"}}})),
            bad_request,
        ),
    ])
}

async fn send(world: &World, attack: &Attack) -> Answer {
    let mut request = world.app.client.post(format!("{}{}", world.app.address, attack.path));
    for (name, value) in &attack.headers {
        request = request.header(*name, value);
    }
    let request = request.header("content-type", "application/json").body(attack.body.clone());
    read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn every_crafted_token_and_request_is_refused_and_none_is_allowed() {
    let world = World::start_with(&Backend::Sqlite, |config| {
        set(config, &["pools", "wallet", "leeway"], "30s");
        set(config, &["pools", "merchant", "token_use"], vec!["id"]);
        set(config, &["pools", "admin", "token_use"], vec!["access"]);
    })
    .await;
    let (canary_url, canary_hits) = canary().await;
    let fetches_before: Vec<usize> = POOLS.iter().map(|pool| world.issuer.hits(pool)).collect();
    // The untouched token and a genuine admin are allowed, so each case fails by its own doing.
    let valid = world.issuer.sign("wallet", &world.issuer.id_claims("wallet", "wil"));
    assert_eq!(world.app.check(&valid, wallet_read()).await.outcome(), "allow");
    let mut admin = world.issuer.access_claims("admin", "ada", "");
    admin.insert("cognito:groups".into(), json!(["admins"]));
    let admin = world.issuer.sign("admin", &admin);
    assert_eq!(world.app.check(&admin, ask("read", "Account", "acct-1", json!({}))).await.outcome(), "allow");

    let cases = corpus(&world, &canary_url);
    assert!(cases.len() >= 60, "the corpus holds {} cases", cases.len());
    let mut failures = Vec::new();
    for attack in &cases {
        let fetches = world.issuer.total_hits();
        let answer = send(&world, attack).await;
        if attack.expect != Refused(401, "unknown_key") {
            assert_eq!(world.issuer.total_hits(), fetches, "{}: fetched keys", attack.label);
        }
        let status = answer.status.as_u16();
        assert_ne!(answer.outcome(), "allow", "{}: ALLOWED: {}", attack.label, answer.body);
        assert!(status < 500, "{}: {status} {}", attack.label, answer.body);
        let got = match answer.body["error"].as_str() {
            Some(code) => format!("{status} {code}"),
            None => format!("{status} {}", answer.outcome()),
        };
        let want = match attack.expect {
            Refused(status, code) => format!("{status} {code}"),
            Denied => "200 deny".to_owned(),
            Status(status) => format!("{status} {}", got.split_once(' ').map_or("", |(_, code)| code)),
        };
        if got != want {
            failures.push(format!("{}: got {got}, want {want}: {}", attack.label, answer.body));
        }
        if status == 401 {
            let challenge = answer.headers.get("www-authenticate").map(|v| v.to_str().unwrap_or_default());
            assert_eq!(challenge, Some(r#"Bearer error="invalid_token""#), "{}", attack.label);
        }
    }
    assert!(failures.is_empty(), "{} of {} cases:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert_eq!(canary_hits.load(Ordering::SeqCst), 0, "a URL named in a token was contacted");
    for (pool, before) in POOLS.iter().zip(fetches_before) {
        let extra = world.issuer.hits(pool) - before;
        assert!(extra <= 1, "{pool}: {extra} JWKS fetches for forged key ids within one cooldown");
    }
}
