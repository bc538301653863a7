//! Credential tests: configuration errors name the field; OAuth client
//! credentials against the devkit's token endpoint (every client
//! authentication method, caching, single flight, errors).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};
use scimfleet_devkit::oauth::{ClientKey, TokenEndpoint, TokenEndpointHandle, TokenEndpointOptions};
use scimfleet_runtime::Config;

use super::oauth::refresh_in;
use super::*;
use crate::error::Disposition;

const SECRET: &str = "s3cr3t:/+ &=";
const RSA_KEY: &str = include_str!("fixtures/rsa-test-key.pem");
const RSA_PUBLIC: &str = include_str!("fixtures/rsa-test-key.pub.pem");

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scimfleet-auth-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A configuration with one app whose credentials are `credentials` (TOML lines).
fn load(dir: &Path, credentials: &str) -> Result<Config, ConfigError> {
    let text = format!(
        "namespace = \"auth-test\"\n[[apps]]\nid = \"crm\"\nbase_url = \"https://crm.example.com/scim/v2\"\n\
         allow_insecure_loopback = true\n{credentials}\n"
    );
    Config::from_toml(&text, "test.toml", dir.to_owned(), Vec::new())
}

fn auth(dir: &Path, credentials: &str) -> Result<Auth, ConfigError> {
    let config = load(dir, credentials)?;
    Auth::from_config(&config, 0, &config.apps[0])
}

fn oauth(token_url: &str, lines: &str) -> String {
    format!("[apps.auth]\ntoken_url = \"{token_url}\"\n{lines}")
}

#[test]
fn bad_credentials_fail_at_start_up_naming_the_field() {
    let dir = temp_dir();
    std::fs::write(dir.join("secret"), SECRET).expect("write");
    std::fs::write(
        dir.join("garbage.pem"),
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let url = "https://idp.example.com/token";
    let cases = [
        (
            oauth(
                url,
                "method = \"client_secret_basic\"\nclient_id = \"c\"\nclient_secret_env = \"SCIMFLEET_UNSET_VAR_1\"",
            ),
            "apps[0].auth.client_secret_env",
        ),
        (
            oauth(url, "method = \"private_key_jwt\"\nclient_id = \"c\"\nprivate_key_file = \"missing.pem\""),
            "apps[0].auth.private_key_file",
        ),
        (
            oauth(url, "method = \"private_key_jwt\"\nclient_id = \"c\"\nprivate_key_file = \"garbage.pem\""),
            "apps[0].auth.private_key_file",
        ),
        (
            oauth(
                "http://idp.example.com/token",
                "method = \"client_secret_post\"\nclient_id = \"c\"\nclient_secret_file = \"secret\"",
            ),
            "apps[0].auth.token_url",
        ),
        (oauth(url, "method = \"password\"\nclient_id = \"c\"\nclient_secret_file = \"secret\""), "method"),
        (
            oauth(url, "method = \"private_key_jwt\"\nclient_id = \"c\"\nclient_secret_file = \"secret\""),
            "apps[0].auth.client_secret_env",
        ),
        (
            "token_file = \"secret\"\n[apps.tls]\nclient_cert_file = \"secret\"".into(),
            "apps[0].tls.client_key_file",
        ),
        ("token_file = \"secret\"\n[apps.tls]\nca_file = \"secret\"".into(), "apps[0].tls.ca_file"),
        (
            format!(
                "token_file = \"secret\"\n{}",
                oauth(
                    url,
                    "method = \"client_secret_post\"\nclient_id = \"c\"\nclient_secret_file = \"secret\""
                )
            ),
            "apps[0].token_env",
        ),
        (String::new(), "apps[0].token_env"),
    ];
    for (credentials, field) in cases {
        let error = auth(&dir, &credentials).expect_err(&credentials).to_string();
        assert!(error.contains(field), "{field} not named in: {error}");
        assert!(!error.contains(SECRET), "{error}");
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn tokens_are_used_until_a_margin_before_they_expire() {
    assert_eq!(refresh_in(Duration::from_secs(3)), Duration::from_secs(2));
    assert_eq!(refresh_in(Duration::from_secs(3600)), Duration::from_secs(3540));
    assert_eq!(refresh_in(Duration::ZERO), Duration::ZERO);
}

/// A token endpoint knowing `clients`, and a directory with the client's files.
async fn endpoint(clients: Vec<(String, ClientKey)>) -> (TokenEndpointHandle, PathBuf) {
    let options = TokenEndpointOptions { clients, lifetime: Duration::from_secs(300), tls: None };
    let endpoint = TokenEndpoint::start(options).await.expect("the token endpoint starts");
    let dir = temp_dir();
    std::fs::write(dir.join("secret"), SECRET).expect("write");
    (endpoint, dir)
}

#[tokio::test]
async fn client_secrets_get_one_cached_token_for_many_concurrent_requests() {
    let clients = vec![
        ("crm-basic".to_owned(), ClientKey::Secret(SECRET.into())),
        ("crm-post".to_owned(), ClientKey::Secret(SECRET.into())),
    ];
    let (endpoint, dir) = endpoint(clients).await;
    let http = reqwest::Client::new();
    for (method, client) in [("client_secret_basic", "crm-basic"), ("client_secret_post", "crm-post")] {
        let lines = format!(
            "method = \"{method}\"\nclient_id = \"{client}\"\nclient_secret_file = \"secret\"\nscope = \"scim\"\nresource = \"https://crm.example.com\""
        );
        let auth = auth(&dir, &oauth(&endpoint.token_url(), &lines)).expect("valid");
        let before = endpoint.issued();
        let headers = futures_util::future::join_all((0..20).map(|_| auth.header(&http))).await;
        let headers: Vec<_> = headers.into_iter().map(|h| h.expect("a token").expect("a header")).collect();
        assert!(headers.iter().all(|h| h == &headers[0]), "one token for all");
        assert_eq!(endpoint.issued(), before + 1, "{method}: fetched once (single flight, then cached)");
        let issue = endpoint.tokens().issues().pop().expect("an issue");
        assert_eq!((issue.client_id.as_str(), issue.method), (client, method));
        assert_eq!(issue.scope.as_deref(), Some("scim"));
        assert_eq!(issue.resource.as_deref(), Some("https://crm.example.com"));
        assert!(!format!("{auth:?}").contains(SECRET));
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[tokio::test]
async fn private_key_jwt_signs_with_rsa_ec_and_ed25519_keys() {
    let ec = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("EC key");
    let ed = KeyPair::generate_for(&PKCS_ED25519).expect("Ed25519 key");
    let keys = [
        ("rsa", RSA_KEY.to_owned(), RSA_PUBLIC.to_owned()),
        ("ec", ec.serialize_pem(), ec.public_key_pem()),
        ("ed", ed.serialize_pem(), ed.public_key_pem()),
    ];
    let clients =
        keys.iter().map(|(id, _, public)| ((*id).to_owned(), ClientKey::PublicKey(public.clone()))).collect();
    let (endpoint, dir) = endpoint(clients).await;
    let http = reqwest::Client::new();
    for (id, private, _) in &keys {
        std::fs::write(dir.join(format!("{id}.pem")), private).expect("write");
        let lines = format!(
            "method = \"private_key_jwt\"\nclient_id = \"{id}\"\nprivate_key_file = \"{id}.pem\"\nkey_id = \"k1\""
        );
        let auth = auth(&dir, &oauth(&endpoint.token_url(), &lines)).expect("valid");
        let (generation, _) = auth.header(&http).await.expect("a token").expect("a header");
        // A refusal fetches anew with a fresh assertion (a new jti, which the endpoint requires).
        assert!(auth.refresh(&http, generation).await.expect("a second token"));
        let methods: Vec<_> =
            endpoint.tokens().issues().iter().filter(|i| i.client_id == *id).map(|i| i.method).collect();
        assert_eq!(methods, ["private_key_jwt"; 2], "{id}");
    }
    assert_eq!(endpoint.tokens().refused(), 0);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[tokio::test]
async fn concurrent_refusals_of_one_token_fetch_one_new_token() {
    let (endpoint, dir) = endpoint(vec![("crm".to_owned(), ClientKey::Secret(SECRET.into()))]).await;
    let lines = "method = \"client_secret_basic\"\nclient_id = \"crm\"\nclient_secret_file = \"secret\"";
    let auth = auth(&dir, &oauth(&endpoint.token_url(), lines)).expect("valid");
    let http = reqwest::Client::new();
    let (generation, first) = auth.header(&http).await.expect("a token").expect("a header");
    let refreshed = futures_util::future::join_all((0..10).map(|_| auth.refresh(&http, generation))).await;
    assert!(refreshed.into_iter().all(|r| r.expect("refreshed")), "each may send again once");
    assert_eq!(endpoint.issued(), 2, "one refresh for all of them");
    let (newer, second) = auth.header(&http).await.expect("a token").expect("a header");
    assert!(newer > generation && second != first);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[tokio::test]
async fn token_endpoint_failures_are_clear_and_classified() {
    let (endpoint, dir) = endpoint(vec![("crm".to_owned(), ClientKey::Secret(SECRET.into()))]).await;
    let lines = "method = \"client_secret_post\"\nclient_id = \"crm\"\nclient_secret_file = \"secret\"";
    let creds = auth(&dir, &oauth(&endpoint.token_url(), lines)).expect("valid");
    let http = reqwest::Client::new();
    endpoint.set_failure(Some(503));
    let error = creds.header(&http).await.expect_err("unavailable");
    assert_eq!(error.disposition(), Disposition::Retry { after: None });
    endpoint.set_failure(Some(401));
    let error = creds.header(&http).await.expect_err("refused");
    assert_eq!(error.disposition(), Disposition::DeadLetter { reason: "unauthorized" });
    let text = scimfleet_runtime::telemetry::error_chain(&error);
    assert!(text.contains("invalid_client") && !text.contains(SECRET), "{text}");
    endpoint.set_failure(None);
    creds.header(&http).await.expect("a token once the endpoint is back");

    let wrong =
        auth(&dir, &oauth(&endpoint.token_url(), &lines.replace("\"crm\"", "\"nobody\""))).expect("valid");
    let error = wrong.header(&http).await.expect_err("an unknown client");
    assert!(error.to_string().contains("invalid_client"), "{error}");
    let gone = auth(&dir, &oauth("http://127.0.0.1:1/token", lines)).expect("valid");
    let error = gone.header(&http).await.expect_err("nobody listens");
    assert_eq!(error.disposition(), Disposition::Retry { after: None });
    std::fs::remove_dir_all(&dir).expect("clean up");
}
