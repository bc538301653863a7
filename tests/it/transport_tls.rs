//! TLS to RabbitMQ and Redis (issue 16, "TLS everywhere"): the fleet runs
//! against a RabbitMQ node and a redis-server of the test's own that speak
//! TLS only and require a client certificate, with certificates made by the
//! test; clients without a certificate, or not trusting the CA, are
//! refused; and a plaintext URL to a non-loopback host stops start-up with
//! a message naming the field and `allow_plaintext`.

use crate::common;
use crate::common::rabbit::{NodeTls, RabbitNode, free_port};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Person;
use scimfleet_devkit::certs::{Pem, TestCa};
use scimfleet_devkit::expect;
use scimfleet_devkit::fleet::{Fleet, unique_namespace};
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_devkit::wait;
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_runtime::{Config, Store, broker};

const JOINERS: usize = 20;

/// A redis-server of the test's own speaking TLS only, requiring client
/// certificates; killed on drop.
struct TlsRedis {
    port: u16,
    child: Child,
}

impl TlsRedis {
    async fn start(ca: &Path, server: &Pem) -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--tls-cert-file")
            .arg(&server.cert_path)
            .arg("--tls-key-file")
            .arg(&server.key_path)
            .arg("--tls-ca-cert-file")
            .arg(ca)
            .args(["--tls-auth-clients", "yes", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed by deploy/services.sh");
        let what = format!("TLS redis on {port} to start");
        wait::until(&what, Duration::from_secs(20), async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        Self { port, child }
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `[broker]` and `[redis]` tables for these servers; `identity` adds the
/// client certificate, `trust` the CA bundle.
fn connection_settings(
    node: &RabbitNode,
    redis: &TlsRedis,
    ca: &Path,
    identity: Option<&Pem>,
    trust: bool,
) -> String {
    let mut files = String::new();
    if trust {
        files.push_str(&format!("ca_file = {:?}\n", ca.display().to_string()));
    }
    if let Some(pem) = identity {
        files.push_str(&format!(
            "client_cert_file = {:?}\nclient_key_file = {:?}\n",
            pem.cert_path.display().to_string(),
            pem.key_path.display().to_string()
        ));
    }
    format!("[broker]\nurl = \"{}\"\n{files}[redis]\nurl = \"{}\"\n{files}", node.url(), redis.url())
}

fn config(text: &str, dir: &Path) -> Result<Config, String> {
    Config::from_toml(text, "tls-test", dir.to_owned(), Vec::new()).map_err(|e| e.to_string())
}

/// Connecting with `settings` fails for RabbitMQ and for Redis, for the
/// TLS reason `expected` (the handshake's alert or verification error).
async fn assert_refused(settings: &str, dir: &Path, why: &str, expected: &str) {
    let config = config(&PolicyBuilder::new().settings(settings).apps_toml(common::POLICY).build(), dir)
        .unwrap_or_else(|e| panic!("{why}: config: {e}"));
    match broker::connect(&config.broker, "tls-test-refused").await {
        Ok(connection) => {
            // A handshake that completed must still not give a usable connection.
            assert!(connection.create_channel().await.is_err(), "RabbitMQ accepted a client {why}");
        }
        Err(error) => {
            let text = error_chain(&error);
            assert!(
                refused_for(&text, expected),
                "RabbitMQ refused a client {why} for another reason: {text}"
            );
        }
    }
    match Store::connect(&config.redis, "t-tls-refused").await {
        Ok(store) => assert!(store.ping().await.is_err(), "Redis answered a client {why}"),
        Err(error) => {
            let text = error_chain(&error);
            assert!(refused_for(&text, expected), "Redis refused a client {why} for another reason: {text}");
        }
    }
}

/// Whether `error` is the refusal `expected`. In TLS 1.3 a client has
/// finished its side of the handshake before the server checks its
/// certificate, so the server's `certificate_required` alert can be lost to
/// the reset that follows: for that refusal a reset or an early end counts.
fn refused_for(error: &str, expected: &str) -> bool {
    let lost_alert = ["Connection reset by peer", "UnexpectedEof", "unexpected end of file", "Broken pipe"];
    error.contains(expected)
        || (expected == "CertificateRequired" && lost_alert.iter().any(|e| error.contains(e)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_converges_over_mutual_tls_and_clients_without_a_certificate_are_refused() {
    let dir = std::env::temp_dir().join(unique_namespace("t-tls"));
    let ca = TestCa::new(&dir, "transport").expect("test CA");
    let rabbit_cert = ca.server("rabbit").expect("broker certificate");
    let redis_cert = ca.server("redis").expect("redis certificate");
    let fleet_cert = ca.client("fleet").expect("client certificate");
    let mut node = RabbitNode::with_tls(&NodeTls {
        ca: &ca.ca_cert_path,
        cert: &rabbit_cert.cert_path,
        key: &rabbit_cert.key_path,
        require_client_cert: true,
    });
    let redis = TlsRedis::start(&ca.ca_cert_path, &redis_cert).await;
    node.wait_ready(Duration::from_secs(120)).await;

    let settings = connection_settings(&node, &redis, &ca.ca_cert_path, Some(&fleet_cert), true);
    let policy = PolicyBuilder::new().settings(&settings).apps_toml(common::POLICY).build();
    let mut fleet = Fleet::start(&policy).await.expect("the fleet starts over TLS");
    let mut events = common::hires(7100, JOINERS, "Engineering");
    let leaver =
        Person { id: "E7100", department: "Engineering", title: "Clerk", location: "Rome", groups: &[] };
    fleet.publish_json(&events).await.expect("joiners published over TLS");
    fleet.wait_settled(Duration::from_secs(120)).await.expect("joiners settled");
    let terminated = leaver.event("leave-E7100", "person.terminated", 2);
    fleet.publish_json(std::slice::from_ref(&terminated)).await.expect("leaver published");
    events.push(terminated);
    fleet.wait_settled(Duration::from_secs(120)).await.expect("leaver settled");

    let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
    let people = expect::final_states(bodies.iter().map(Vec::as_slice));
    let mismatches = expect::mismatches(&fleet.config, &people, fleet.servers());
    assert!(mismatches.is_empty(), "apps differ from the desired state: {mismatches:#?}");
    for app in ["git", "chat"] {
        let server = fleet.server(app);
        let gone = server.user_by_user_name(&leaver.user_name()).expect("the leaver's account");
        assert_eq!(gone.active, Some(false), "{app}: the leaver is deactivated");
        let joined =
            (7101..7100 + JOINERS).filter(|n| server.user_by_external_id(&format!("E{n}")).is_some());
        assert_eq!(joined.count(), JOINERS - 1, "{app}: every other joiner has an account");
    }
    // An operator command over the same TLS links: queue figures by AMQP
    // (this node has no management API) and Redis's ops records.
    let status = common::keep_log(
        Command::new(env!("CARGO_BIN_EXE_scimfleet"))
            .args(["status", "--json", "--config"])
            .arg(fleet.config_path())
            .env("SCIMFLEET_BROKER__MANAGEMENT_URL", format!("http://127.0.0.1:{}", free_port()))
            .output()
            .expect("scimfleet status runs"),
    );
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "status over TLS: {stdout}{}", String::from_utf8_lossy(&status.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(report["source"], "amqp", "{report:#}");
    assert_eq!(report["missing_queues"], serde_json::json!([]), "the fleet's queues are on the TLS node");
    let w = fleet.worker();
    let joiners = u64::try_from(JOINERS).expect("a small number");
    assert!(w.converged >= joiners * 2 && w.dead_lettered == 0, "worker: {w:?}");
    fleet.stop().await.expect("fleet stops");

    let anonymous = connection_settings(&node, &redis, &ca.ca_cert_path, None, true);
    assert_refused(&anonymous, &dir, "without a certificate", "CertificateRequired").await;
    let untrusting = connection_settings(&node, &redis, &ca.ca_cert_path, Some(&fleet_cert), false);
    assert_refused(&untrusting, &dir, "that does not trust the CA", "UnknownIssuer").await;

    drop(node);
    drop(redis);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

fn refusal(text: &str) -> String {
    config(text, Path::new(".")).expect_err("refused")
}

#[test]
fn a_plaintext_url_to_a_non_loopback_host_is_refused_unless_allowed() {
    let with = |settings: &str| PolicyBuilder::new().settings(settings).apps_toml(common::POLICY).build();
    let broker = "[broker]\nurl = \"amqp://scim:hunter2@rabbit.internal:5672/%2f\"\n";
    let text = refusal(&with(broker));
    assert!(text.contains("broker.url") && text.contains("allow_plaintext"), "{text}");
    assert!(!text.contains("hunter2"), "the password leaked: {text}");
    config(&with(&format!("{broker}allow_plaintext = true")), Path::new(".")).expect("allowed");

    let redis = "[redis]\nurl = \"redis://:hunter2@10.0.0.5:6379/\"\n";
    let text = refusal(&with(redis));
    assert!(text.contains("redis.url") && text.contains("allow_plaintext"), "{text}");
    assert!(!text.contains("hunter2"), "the password leaked: {text}");
    config(&with(&format!("{redis}allow_plaintext = true")), Path::new(".")).expect("allowed");

    let management = "[broker]\nmanagement_url = \"http://rabbit.internal:15672\"\n";
    let text = refusal(&with(management));
    assert!(text.contains("broker.management_url") && text.contains("allow_plaintext"), "{text}");
    config(&with("[broker]\nmanagement_url = \"https://rabbit.internal:15671\"\n"), Path::new("."))
        .expect("HTTPS management API");

    // Loopback stays allowed (the shipped defaults), and TLS needs no flag.
    config(&with(""), Path::new(".")).expect("loopback defaults");
    let local =
        "[broker]\nurl = \"amqp://guest:guest@localhost:5672/%2f\"\n[redis]\nurl = \"redis://[::1]:6379/\"\n";
    config(&with(local), Path::new(".")).expect("loopback names");
    let tls = "[broker]\nurl = \"amqps://scim:pw@rabbit.internal:5671/%2f\"\n[redis]\nurl = \"rediss://10.0.0.5:6380/\"\n";
    config(&with(tls), Path::new(".")).expect("TLS to remote hosts");
}

#[test]
fn tls_files_load_relative_to_the_config_and_unusable_ones_are_named() {
    let dir = std::env::temp_dir().join(unique_namespace("t-tls-files"));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("garbage.pem"), "not PEM").expect("write");
    let with = |settings: &str| PolicyBuilder::new().settings(settings).apps_toml(common::POLICY).build();
    let cases = [
        ("[broker]\nurl = \"amqps://h:5671\"\nca_file = \"absent.pem\"", "broker.ca_file", "cannot read"),
        (
            "[redis]\nurl = \"rediss://h:6380\"\nca_file = \"garbage.pem\"",
            "redis.ca_file",
            "no PEM certificate",
        ),
        (
            "[redis]\nurl = \"rediss://h:6380\"\nclient_cert_file = \"garbage.pem\"",
            "redis.client_key_file",
            "both",
        ),
        (
            "[broker]\nurl = \"amqps://h:5671\"\nclient_cert_file = \"garbage.pem\"\nclient_key_file = \"garbage.pem\"",
            "broker.client_cert_file",
            "no PEM certificate",
        ),
        ("[redis]\nca_file = \"garbage.pem\"", "redis.ca_file", "nothing in [redis] uses TLS"),
    ];
    for (settings, field, reason) in cases {
        let text = config(&with(settings), &dir).expect_err(settings);
        assert!(text.contains(field) && text.contains(reason), "{settings}: {text}");
    }

    // Good files load, and the HTTPS client of `scimfleet status` takes
    // them (an https:// management API trusts the broker's CA bundle).
    let ca = TestCa::new(&dir, "files").expect("test CA");
    let client = ca.client("status").expect("client certificate");
    let good = "[broker]\nurl = \"amqps://h:5671\"\nmanagement_url = \"https://h:15671\"\nca_file = \"ca.pem\"\n\
                client_cert_file = \"status.pem\"\nclient_key_file = \"status.key\"";
    let config = config(&with(good), &dir).expect("good TLS files");
    assert_eq!(config.broker.ca_file.as_deref(), Some(ca.ca_cert_path.as_path()), "relative to the config");
    let material = config.broker.tls_files().load().expect("loaded");
    assert_eq!(material.ca_pem.as_deref(), Some(ca.ca_pem().as_str()));
    assert!(!format!("{material:?}").contains(&client.key), "the key never prints");
    material
        .apply_to(reqwest::Client::builder())
        .and_then(reqwest::ClientBuilder::build)
        .expect("HTTPS client");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn a_worker_given_a_plaintext_remote_broker_stops_at_start_up_naming_the_field() {
    let dir = std::env::temp_dir().join(unique_namespace("t-tls-start"));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("scimfleet.toml");
    let text = PolicyBuilder::new()
        .settings("[broker]\nurl = \"amqp://scim:hunter2@rabbit.internal:5672/%2f\"")
        .apps_toml(common::POLICY)
        .build();
    std::fs::write(&path, text).expect("config written");
    let output = common::keep_log(
        Command::new(env!("CARGO_BIN_EXE_scimfleet"))
            .args(["worker", "--config"])
            .arg(&path)
            .env_remove("SCIMFLEET_BROKER__URL")
            .output()
            .expect("scimfleet runs"),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the worker started: {stderr}");
    assert!(stderr.contains("broker.url") && stderr.contains("allow_plaintext"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn the_compose_settings_pass_the_plaintext_rule_only_because_they_allow_it() {
    let deploy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let compose: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(deploy.join("docker-compose.yml")).expect("compose"),
    )
    .expect("compose parses");
    let env: Vec<(String, String)> = compose["x-scimfleet-env"]
        .as_mapping()
        .expect("x-scimfleet-env")
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
        .filter(|(k, _)| k.starts_with("SCIMFLEET_BROKER__") || k.starts_with("SCIMFLEET_REDIS__"))
        .collect();
    let example = deploy.join("examples/scimfleet.toml");
    let text = std::fs::read_to_string(&example).expect("example config");
    let load = |env: Vec<(String, String)>| Config::from_toml(&text, "example", deploy.join("examples"), env);
    let config = load(env.clone()).unwrap_or_else(|e| panic!("compose settings refused: {e}"));
    assert!(config.broker.allow_plaintext && config.redis.allow_plaintext);
    let strict: Vec<_> = env.into_iter().filter(|(k, _)| !k.ends_with("__ALLOW_PLAINTEXT")).collect();
    let refused = load(strict).expect_err("compose's plaintext URLs are non-loopback").to_string();
    assert!(refused.contains("allow_plaintext"), "{refused}");
}
