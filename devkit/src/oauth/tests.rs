//! The token endpoint refuses what a real one would: a replayed, expired
//! or misaddressed assertion, a wrong secret, another grant type.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{KeyPair, PKCS_ED25519};

use super::*;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn post(url: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

fn assertion(key: &KeyPair, aud: &str, exp_in: i64, jti: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({ "iss": "c", "sub": "c", "aud": aud, "jti": jti, "iat": now, "exp": now + exp_in });
    let key = EncodingKey::from_ed_pem(key.serialize_pem().as_bytes()).expect("key");
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &key).expect("signed")
}

#[tokio::test]
async fn assertions_are_checked_and_never_accepted_twice() {
    let key = KeyPair::generate_for(&PKCS_ED25519).expect("key");
    let clients = vec![
        ("c".to_owned(), ClientKey::PublicKey(key.public_key_pem())),
        ("s".to_owned(), ClientKey::Secret("pw".into())),
    ];
    let options = TokenEndpointOptions { clients, lifetime: Duration::from_secs(60), tls: None };
    let endpoint = TokenEndpoint::start(options).await.expect("starts");
    let url = endpoint.token_url();
    let grant = |assertion: &str| {
        let assertion = assertion.to_owned();
        let url = url.clone();
        async move {
            let form = [
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion.as_str()),
            ];
            post(&url, &form).await
        }
    };
    let good = assertion(&key, &url, 60, "j1");
    let (status, body) = grant(&good).await;
    assert_eq!(status, 200, "{body}");
    assert!(endpoint.tokens().is_valid(body["access_token"].as_str().expect("a token")));
    assert_eq!(grant(&good).await.0, 401, "a replayed jti");
    assert_eq!(grant(&assertion(&key, "https://elsewhere/token", 60, "j2")).await.0, 401, "wrong aud");
    assert_eq!(grant(&assertion(&key, &url, -600, "j3")).await.0, 401, "expired");
    let other = KeyPair::generate_for(&PKCS_ED25519).expect("key");
    assert_eq!(grant(&assertion(&other, &url, 60, "j4")).await.0, 401, "another key");

    let wrong = [("grant_type", "client_credentials"), ("client_id", "s"), ("client_secret", "nope")];
    assert_eq!(post(&url, &wrong).await, (401, serde_json::json!({ "error": "invalid_client" })));
    let password = [("grant_type", "password"), ("client_id", "s"), ("client_secret", "pw")];
    assert_eq!(post(&url, &password).await.1["error"], "unsupported_grant_type");
    assert_eq!(endpoint.issued(), 1);
    endpoint.tokens().revoke_all();
    assert!(!endpoint.tokens().is_valid(body["access_token"].as_str().expect("a token")));
}
