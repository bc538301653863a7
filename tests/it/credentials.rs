//! Target credentials end to end: OAuth 2.0 client credentials against the
//! devkit's token endpoint (client secrets and `private_key_jwt`), tokens
//! cached, refreshed before expiry and once after a revocation; a rotated
//! token file used by the next request; mutual TLS and private CAs.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use scimfleet_devkit::certs::TestCa;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::oauth::{ClientKey, TokenEndpoint, TokenEndpointHandle, TokenEndpointOptions};
use scimfleet_devkit::scim_server::{ScimServer, ScimServerHandle, ScimServerOptions};
use scimfleet_devkit::tls::ServerTls;
use scimfleet_devkit::wait;
use scimfleet_schemas::DeadLetterReason;

const SETTLE: Duration = Duration::from_secs(90);
const SECRET: &str = "client-s3cret";

/// A directory of this test's key, token and certificate files.
fn files() -> PathBuf {
    let dir = std::env::temp_dir().join(scimfleet_devkit::fleet::unique_namespace("scimfleet-creds"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// One `[[apps]]` table: everyone in scope, the standard mapping, `lines` for credentials.
fn app(id: &str, lines: &str) -> String {
    format!("[[apps]]\nid = \"{id}\"\nbase_url = \"https://set-by-fleet\"\n{lines}\n")
}

fn oauth(endpoint: &TokenEndpointHandle, method: &str, client: &str, extra: &str) -> String {
    format!(
        "[apps.auth]\nmethod = \"{method}\"\ntoken_url = \"{}\"\nclient_id = \"{client}\"\nscope = \"scim.write\"\n{extra}",
        endpoint.token_url()
    )
}

/// A plain loopback SCIM server that accepts the tokens `endpoint` issued.
async fn server_for(endpoint: &TokenEndpointHandle) -> ScimServerHandle {
    let options = ScimServerOptions { issuer: Some(endpoint.tokens()), ..ScimServerOptions::default() };
    ScimServer::start_with(options).await.expect("the SCIM test server starts")
}

fn count_users(fleet: &Fleet, app: &str) -> usize {
    fleet.server(app).users().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_client_credentials_provision_people_with_one_cached_token_and_one_refresh_after_a_revocation()
{
    let dir = files();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("EC key");
    std::fs::write(dir.join("client.key"), key.serialize_pem()).expect("key written");
    std::fs::write(dir.join("secret"), SECRET).expect("secret written");
    let clients = vec![
        ("basic-client".to_owned(), ClientKey::Secret(SECRET.into())),
        ("post-client".to_owned(), ClientKey::Secret(SECRET.into())),
        ("jwt-client".to_owned(), ClientKey::PublicKey(key.public_key_pem())),
    ];
    let options = TokenEndpointOptions { clients, lifetime: Duration::from_secs(300), tls: None };
    let endpoint = TokenEndpoint::start(options).await.expect("the token endpoint starts");
    let secret_file = format!("client_secret_file = \"{}\"", dir.join("secret").display());
    let key_file = format!("private_key_file = \"{}\"\nkey_id = \"k1\"", dir.join("client.key").display());
    let policy = [
        app("basic", &oauth(&endpoint, "client_secret_basic", "basic-client", &secret_file)),
        app("post", &oauth(&endpoint, "client_secret_post", "post-client", &secret_file)),
        app("jwt", &oauth(&endpoint, "private_key_jwt", "jwt-client", &key_file)),
    ]
    .concat();
    let mut servers = Vec::new();
    for id in ["basic", "post", "jwt"] {
        servers.push((id, server_for(&endpoint).await));
    }
    let mut fleet = Fleet::start_with_servers(&policy, servers).await.expect("fleet starts");

    fleet.publish_json(&common::hires(5001, 12, "Sales")).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    for id in ["basic", "post", "jwt"] {
        assert_eq!(count_users(&fleet, id), 12, "{id}: everyone provisioned");
        assert_eq!(fleet.server(id).unauthorized_count(), 0, "{id}: never refused");
        assert!(fleet.server(id).requests().len() >= 24, "{id}: a look-up and a create per person");
    }
    let mut methods: Vec<_> = endpoint.tokens().issues().iter().map(|i| i.method).collect();
    methods.sort_unstable();
    assert_eq!(
        methods,
        ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "one token per app, cached for every request"
    );
    assert!(endpoint.tokens().issues().iter().all(|i| i.scope.as_deref() == Some("scim.write")));

    // Revoked at the app: the first request is refused, one new token is
    // fetched per app, and the job goes through.
    endpoint.tokens().revoke_all();
    fleet.publish_json(&common::hires(5101, 1, "Sales")).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    for id in ["basic", "post", "jwt"] {
        assert_eq!(count_users(&fleet, id), 13, "{id}: provisioned after the refresh");
        assert_eq!(fleet.server(id).unauthorized_count(), 1, "{id}: one refusal");
    }
    assert_eq!(endpoint.issued(), 6, "exactly one refresh per app");
    for id in ["basic", "post", "jwt"] {
        assert!(fleet.take_dead_letters(id).await.expect("DLQ").is_empty(), "{id}");
    }
    fleet.stop().await.expect("clean stop");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_refreshed_before_they_expire_with_no_401() {
    let dir = files();
    std::fs::write(dir.join("secret"), SECRET).expect("secret written");
    let clients = vec![("crm-client".to_owned(), ClientKey::Secret(SECRET.into()))];
    let options = TokenEndpointOptions { clients, lifetime: Duration::from_secs(6), tls: None };
    let endpoint = TokenEndpoint::start(options).await.expect("the token endpoint starts");
    let secret_file = format!("client_secret_file = \"{}\"", dir.join("secret").display());
    // Paced, so the run outlives several tokens.
    let lines = format!(
        "rate_per_second = 6.0\n{}",
        oauth(&endpoint, "client_secret_basic", "crm-client", &secret_file)
    );
    let server = server_for(&endpoint).await;
    let mut fleet =
        Fleet::start_with_servers(&app("crm", &lines), vec![("crm", server)]).await.expect("fleet starts");

    fleet.publish_json(&common::hires(5201, 30, "Sales")).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(count_users(&fleet, "crm"), 30);
    assert!(endpoint.issued() >= 2, "a new token every four seconds: {} issued", endpoint.issued());
    assert_eq!(fleet.server("crm").unauthorized_count(), 0, "each token replaced before it expired");
    fleet.stop().await.expect("clean stop");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

/// Writes `token` to `path` the way secret managers do: a new file renamed over the old.
fn rotate(path: &Path, token: &str) {
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, token).expect("token written");
    std::fs::rename(&fresh, path).expect("token renamed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_file_is_used_by_the_next_request_with_no_401() {
    let dir = files();
    let token_file = dir.join("crm.token");
    rotate(&token_file, "tok-before-rotation");
    let options =
        ScimServerOptions { token: Some("tok-before-rotation".into()), ..ScimServerOptions::default() };
    let server = ScimServer::start_with(options).await.expect("the SCIM test server starts");
    let lines = format!("token_file = \"{}\"", token_file.display());
    let mut fleet =
        Fleet::start_with_servers(&app("crm", &lines), vec![("crm", server)]).await.expect("fleet starts");

    fleet.publish_json(&common::hires(5301, 3, "Sales")).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    rotate(&token_file, "tok-after-rotation");
    fleet.server("crm").set_token("tok-after-rotation");
    fleet.publish_json(&common::hires(5311, 3, "Sales")).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    assert_eq!(count_users(&fleet, "crm"), 6, "provisioned before and after the rotation");
    assert_eq!(fleet.server("crm").unauthorized_count(), 0, "the new token was read before any 401");
    fleet.stop().await.expect("clean stop");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_and_private_cas_per_app() {
    let dir = files();
    let ca = TestCa::new(&dir, "creds").expect("test CA");
    let server_cert = ca.server("target").expect("server certificate");
    let client_cert = ca.client("worker").expect("client certificate");
    std::fs::write(dir.join("secret"), SECRET).expect("secret written");
    std::fs::write(dir.join("static.token"), "tok-static").expect("token written");
    let needs_cert = ServerTls::new(&server_cert.cert, &server_cert.key, Some(&ca.ca_pem())).expect("TLS");
    let any_client = ServerTls::new(&server_cert.cert, &server_cert.key, None).expect("TLS");

    // The token endpoint wants the client certificate too.
    let clients = vec![("mtls-client".to_owned(), ClientKey::Secret(SECRET.into()))];
    let options =
        TokenEndpointOptions { clients, lifetime: Duration::from_secs(300), tls: Some(needs_cert.clone()) };
    let endpoint = TokenEndpoint::start(options).await.expect("the token endpoint starts");
    let mtls =
        ScimServerOptions { issuer: Some(endpoint.tokens()), tls: Some(needs_cert.clone()), token: None };
    let cert_only = ScimServerOptions { tls: Some(needs_cert.clone()), ..ScimServerOptions::default() };
    let static_token = |tls: &ServerTls| ScimServerOptions {
        token: Some("tok-static".into()),
        tls: Some(tls.clone()),
        issuer: None,
    };
    let servers = vec![
        ("mtls", ScimServer::start_with(mtls).await.expect("starts")),
        ("certonly", ScimServer::start_with(cert_only).await.expect("starts")),
        ("nocert", ScimServer::start_with(static_token(&needs_cert)).await.expect("starts")),
        ("noca", ScimServer::start_with(static_token(&any_client)).await.expect("starts")),
    ];
    let ca_file = format!("ca_file = \"{}\"\n", ca.ca_cert_path.display());
    let identity = format!(
        "client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
        client_cert.cert_path.display(),
        client_cert.key_path.display()
    );
    let token_file = format!("token_file = \"{}\"", dir.join("static.token").display());
    let secret_file = format!("client_secret_file = \"{}\"", dir.join("secret").display());
    let policy = [
        "[worker]\nretry_tiers_ms = [50, 100]\nmax_attempts = 2\nrequest_retries = 0\n".to_owned(),
        app(
            "mtls",
            &format!(
                "{}\n[apps.tls]\n{ca_file}{identity}",
                oauth(&endpoint, "client_secret_post", "mtls-client", &secret_file)
            ),
        ),
        app("certonly", &format!("[apps.tls]\n{ca_file}{identity}")),
        app("nocert", &format!("{token_file}\n[apps.tls]\n{ca_file}")),
        app("noca", &token_file),
    ]
    .concat();
    let mut fleet = Fleet::start_with_servers(&policy, servers).await.expect("fleet starts");
    fleet.publish_json(&common::hires(5401, 2, "Sales")).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    assert_eq!(
        count_users(&fleet, "mtls"),
        2,
        "OAuth and the SCIM calls over mutual TLS, private CA trusted"
    );
    assert_eq!(endpoint.issued(), 1);
    assert_eq!(count_users(&fleet, "certonly"), 2, "the client certificate alone");
    for (id, cause) in [("nocert", "CertificateRequired"), ("noca", "UnknownIssuer")] {
        assert_eq!(count_users(&fleet, id), 0, "{id}");
        let dead = fleet.take_dead_letters(id).await.expect("DLQ");
        assert_eq!(dead.len(), 2, "{id}: {dead:?}");
        for (envelope, _) in &dead {
            assert_eq!(
                envelope.reason,
                DeadLetterReason::RetriesExhausted,
                "{id}: a TLS failure is transient"
            );
            assert_eq!(envelope.attempts, 2);
            assert!(envelope.detail.contains(cause), "{id}: {}", envelope.detail);
        }
    }
    fleet.stop().await.expect("clean stop");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_outage_is_retried_and_a_refused_client_dead_lettered() {
    let dir = files();
    std::fs::write(dir.join("secret"), SECRET).expect("secret written");
    let clients = vec![("crm-client".to_owned(), ClientKey::Secret(SECRET.into()))];
    let options = TokenEndpointOptions { clients, lifetime: Duration::from_secs(300), tls: None };
    let endpoint = TokenEndpoint::start(options).await.expect("the token endpoint starts");
    let secret_file = format!("client_secret_file = \"{}\"", dir.join("secret").display());
    let policy = format!(
        "[worker]\nretry_tiers_ms = [100, 200]\nmax_attempts = 20\nrequest_retries = 0\n{}",
        app("crm", &oauth(&endpoint, "client_secret_post", "crm-client", &secret_file))
    );
    let server = server_for(&endpoint).await;
    let mut fleet = Fleet::start_with_servers(&policy, vec![("crm", server)]).await.expect("fleet starts");

    endpoint.set_failure(Some(503));
    fleet.publish_json(&common::hires(5501, 1, "Sales")).await.expect("published");
    wait::until("two retries", SETTLE, async || fleet.worker().retried >= 2)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", fleet.worker()));
    assert_eq!(fleet.server("crm").requests().len(), 0, "nothing sent without a token");
    endpoint.set_failure(None);
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(count_users(&fleet, "crm"), 1, "provisioned once the token endpoint is back");

    endpoint.tokens().revoke_all();
    endpoint.set_failure(Some(401));
    fleet.publish_json(&common::hires(5511, 1, "Sales")).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let dead = fleet.take_dead_letters("crm").await.expect("DLQ");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0.reason, DeadLetterReason::PermanentError);
    assert!(dead[0].0.detail.contains("invalid_client"), "{}", dead[0].0.detail);
    assert!(!dead[0].0.detail.contains(SECRET));
    fleet.stop().await.expect("clean stop");
    std::fs::remove_dir_all(&dir).expect("clean up");
}
