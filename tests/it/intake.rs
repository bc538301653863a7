//! The HTTP event intake (`scimfleet intake`) against the real RabbitMQ and
//! Redis: a signed event provisioned end to end; every refusal with its
//! status and nothing published; a broker outage answered 503 and nothing
//! lost once the broker is back; secret rotation; binary mode and NDJSON;
//! the CloudEvents webhook handshake.

use crate::common::{self, Person, rabbit::RabbitNode};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use scimfleet_devkit::fleet::{Fleet, unique_namespace};
use scimfleet_devkit::wait;
use scimfleet_intake::Key;
use scimfleet_runtime::broker::Topology;
use scimfleet_runtime::config::{IntakeSource, SecretRef};
use scimfleet_runtime::ops::Ops;
use scimfleet_runtime::{Config, Store};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const OLD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW_SECRET: &str = "whsec_c2NpbWZsZWV0LWludGFrZS1zZWNyZXQtMg==";
const UNKNOWN_SECRET: &str = "whsec_dW5rbm93bi1zZW5kZXItc2VjcmV0LTEyMzQ=";

/// An in-process intake on a free port, stopped on drop.
struct Intake {
    url: String,
    ops: Ops,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
    dir: PathBuf,
}

impl Intake {
    /// Starts an intake on `base` with one source `hr` holding both secrets
    /// (a rotation in progress), allowed origin `hr.example.com`.
    async fn start(base: &Config) -> Self {
        Self::start_with(base, |_| {}).await
    }

    /// Like [`Intake::start`], with `adjust` applied to the configuration last.
    async fn start_with(base: &Config, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = std::env::temp_dir().join(unique_namespace("sf-intake"));
        std::fs::create_dir_all(&dir).expect("secret directory");
        std::fs::write(dir.join("old"), OLD_SECRET).expect("old secret");
        std::fs::write(dir.join("new"), format!("{NEW_SECRET}\n")).expect("new secret");
        let mut config = base.clone();
        config.base_dir = dir.clone();
        let file = |name: &str| SecretRef { env: None, file: Some(name.to_owned()) };
        config.intake.sources = vec![IntakeSource {
            id: "hr".to_owned(),
            secrets: vec![file("old"), file("new")],
            event_types: vec!["person.hired".to_owned(), "person.terminated".to_owned()],
            rate_per_second: 1000.0,
            burst: 1000,
            allowed_origins: vec!["hr.example.com".to_owned()],
        }];
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("free port");
        let scheme = if config.intake.tls_cert_file.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://localhost:{}/v1/events", listener.local_addr().expect("bound").port());
        let (ops, stop) = (Ops::default(), CancellationToken::new());
        let (task_ops, task_stop) = (ops.clone(), stop.clone());
        let task = tokio::spawn(async move {
            scimfleet_intake::serve(Arc::new(config), listener, task_ops, task_stop)
                .await
                .expect("intake serves");
        });
        let intake = Self { url, ops, stop, task: Some(task), dir };
        wait::until("the intake is connected", Duration::from_secs(30), async || {
            intake.ops.health.check().await.is_ok()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        intake
    }

    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("intake task");
        }
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A request signed with `secret` (a fresh `webhook-id` unless given).
struct Signed<'a> {
    secret: &'a str,
    id: String,
    timestamp: i64,
    content_type: &'a str,
    body: Vec<u8>,
    client: reqwest::Client,
}

impl<'a> Signed<'a> {
    fn new(content_type: &'a str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: OLD_SECRET,
            id: unique_namespace("msg"),
            timestamp: chrono::Utc::now().timestamp(),
            content_type,
            body: body.into(),
            client: reqwest::Client::new(),
        }
    }

    fn json(event: &Value) -> Self {
        Self::new("application/cloudevents+json", event.to_string())
    }

    async fn send(&self, url: &str) -> (u16, Value) {
        self.send_with(url, &[]).await
    }

    async fn send_with(&self, url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let key = Key::from_secret(self.secret).expect("test secret");
        let mut request = self
            .client
            .post(url)
            .header("content-type", self.content_type)
            .header("webhook-id", &self.id)
            .header("webhook-timestamp", self.timestamp.to_string())
            .header("webhook-signature", key.sign(&self.id, self.timestamp, &self.body))
            .body(self.body.clone());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("intake answers");
        let status = response.status().as_u16();
        if status != 202 {
            let content_type = response.headers().get("content-type").cloned();
            assert_eq!(
                content_type.as_ref().map(|v| v.to_str().unwrap_or_default()),
                Some("application/problem+json")
            );
        }
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn person(n: usize) -> (String, Value) {
    let id = format!("E{n}");
    let p = Person { id: &id, department: "Engineering", title: "Engineer", location: "Rome", groups: &[] };
    let event = p.event(&format!("hire-{id}"), "person.hired", 1);
    (id, event)
}

/// Messages waiting in the events intake queue of `config` on `url`.
async fn queued(url: &str, config: &Config) -> u32 {
    let connection =
        lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let queue = Topology::of(config).events_queue();
    let count = channel
        .queue_declare(queue.as_str().into(), passive, FieldTable::default())
        .await
        .expect("queue")
        .message_count();
    let _closed = connection.close(200, "counted".into()).await;
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_event_posted_to_the_intake_is_provisioned_end_to_end() {
    let fleet = Fleet::start(common::POLICY).await.expect("fleet starts");
    let intake = Intake::start(&fleet.config).await;
    let (id, event) = person(16_001);
    let (status, body) = Signed::json(&event)
        .send_with(&intake.url, &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])
        .await;
    assert_eq!((status, body["accepted"].as_u64()), (202, Some(1)), "{body}");
    let user_name = format!("{}@example.com", id.to_lowercase());
    wait::until("the hire is provisioned in git", Duration::from_secs(60), async || {
        fleet.server("git").user_by_user_name(&user_name).is_some()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let metrics = intake.ops.metrics.render();
    assert!(metrics.contains(r#"scimfleet_intake_requests_total{source="hr",status="202"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"scimfleet_intake_events_total{source="hr"} 1"#), "{metrics}");
    intake.stop().await;
    fleet.stop().await.expect("fleet stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_status_and_nothing_is_published() {
    let fleet = Fleet::start_without_scheduler(common::POLICY).await.expect("fleet starts");
    let broker = fleet.config.broker.url.first().expose().to_owned();
    let intake = Intake::start(&fleet.config).await;
    let url = intake.url.as_str();
    let (_, event) = person(16_100);

    let mut bad_signature = Signed::json(&event);
    bad_signature.secret = UNKNOWN_SECRET;
    let (status, problem) = bad_signature.send(url).await;
    assert_eq!((status, problem["field"].as_str()), (401, Some("webhook-signature")), "{problem}");

    let mut stale = Signed::json(&event);
    stale.timestamp -= 6 * 60;
    let (status, problem) = stale.send(url).await;
    assert_eq!((status, problem["field"].as_str()), (401, Some("webhook-timestamp")), "{problem}");

    let mut invalid = event.clone();
    invalid["data"]["sequence"] = json!("one");
    let batch = json!([event.clone(), invalid]).to_string();
    let (status, problem) = Signed::new("application/cloudevents-batch+json", batch).send(url).await;
    assert_eq!(
        (status, problem["field"].as_str(), problem["index"].as_u64()),
        (400, Some("/1/data/sequence"), Some(1)),
        "{problem}"
    );
    assert!(!problem.to_string().contains("example.com"), "no personal data echoed: {problem}");

    let padding = " ".repeat(1024 * 1024);
    let (status, problem) = Signed::new("application/json", format!("{event}{padding}")).send(url).await;
    assert_eq!((status, problem["status"].as_u64()), (413, Some(413)), "{problem}");

    let (status, problem) = Signed::new("text/plain", event.to_string()).send(url).await;
    assert_eq!((status, problem["field"].as_str()), (415, Some("content-type")), "{problem}");

    let mut suspended = event.clone();
    suspended["type"] = json!("person.suspended");
    suspended["data"]["status"] = json!("suspended");
    let (status, problem) = Signed::json(&suspended).send(url).await;
    assert_eq!((status, problem["field"].as_str()), (403, Some("type")), "{problem}");

    assert_eq!(queued(&broker, &fleet.config).await, 0, "no refused request published anything");

    let first = Signed::json(&event);
    let traceparent = ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert_eq!(first.send_with(url, &[traceparent]).await.0, 202);
    let (status, problem) = first.send(url).await;
    assert_eq!((status, problem["field"].as_str()), (409, Some("webhook-id")), "replayed: {problem}");
    assert_eq!(queued(&broker, &fleet.config).await, 1, "only the first of the replayed pair");

    // Published as `scimfleet publish` does, the sender's trace carried on.
    let connection =
        lapin::Connection::connect(&broker, lapin::ConnectionProperties::default()).await.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let queue = Topology::of(&fleet.config).events_queue();
    let message = channel
        .basic_get(queue.as_str().into(), lapin::options::BasicGetOptions::default())
        .await
        .expect("basic.get")
        .expect("the accepted event");
    let properties = &message.delivery.properties;
    assert_eq!(message.delivery.routing_key.as_str(), "person.hired");
    assert_eq!(properties.message_id().as_ref().map(|id| id.as_str()), Some("hire-E16100"));
    assert_eq!(properties.delivery_mode(), &Some(2));
    let header = |name: &str| scimfleet_runtime::broker::header_str(properties, name);
    let carried = header("traceparent").expect("traceparent header");
    assert!(carried.contains("0af7651916cd43dd8448eb211c80319c"), "same trace: {carried}");
    assert_eq!(header("scimfleet-intake-source").as_deref(), Some("hr"));
    assert_eq!(serde_json::from_slice::<Value>(&message.delivery.data).expect("JSON body"), event);
    let _closed = connection.close(200, "checked".into()).await;
    intake.stop().await;
    fleet.stop().await.expect("fleet stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_secrets_work_during_a_rotation_and_binary_mode_and_ndjson_are_read() {
    let fleet = Fleet::start_without_scheduler(common::POLICY).await.expect("fleet starts");
    let broker = fleet.config.broker.url.first().expose().to_owned();
    let intake = Intake::start(&fleet.config).await;
    let url = intake.url.as_str();
    let (_, one) = person(16_200);
    let (_, two) = person(16_201);
    assert_eq!(Signed::json(&one).send(url).await.0, 202, "old secret");
    let mut rotated = Signed::json(&two);
    rotated.secret = NEW_SECRET;
    assert_eq!(rotated.send(url).await.0, 202, "new secret");

    let lines: String = (16_210..16_213).map(|n| format!("{}\n", person(n).1)).collect();
    let (status, body) = Signed::new("application/x-ndjson", lines).send(url).await;
    assert_eq!((status, body["accepted"].as_u64()), (202, Some(3)), "{body}");

    let (_, binary) = person(16_220);
    let signed = Signed::new("application/json", binary["data"].to_string());
    let headers = [
        ("ce-specversion", "1.0"),
        ("ce-id", "hire-E16220"),
        ("ce-source", "hr/test"),
        ("ce-type", "person.hired"),
        ("ce-subject", "E16220"),
        ("ce-time", "2026-11-22T10:00:00Z"),
    ];
    let (status, body) = signed.send_with(url, &headers).await;
    assert_eq!(status, 202, "binary mode: {body}");
    assert_eq!(queued(&broker, &fleet.config).await, 6);

    let client = reqwest::Client::new();
    let handshake = client
        .request(reqwest::Method::OPTIONS, url)
        .header("WebHook-Request-Origin", "hr.example.com")
        .send()
        .await
        .expect("answered");
    assert_eq!(handshake.status().as_u16(), 200);
    assert_eq!(handshake.headers()["webhook-allowed-origin"], "hr.example.com");
    let refused = client
        .request(reqwest::Method::OPTIONS, url)
        .header("WebHook-Request-Origin", "evil.example.net")
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status().as_u16(), 403);
    intake.stop().await;
    fleet.stop().await.expect("fleet stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_stopped_the_intake_answers_503_and_nothing_is_lost_once_it_is_back() {
    let mut node = RabbitNode::new();
    node.wait_ready(Duration::from_secs(60)).await;
    let namespace = unique_namespace("t");
    let toml = format!(
        "namespace = \"{namespace}\"\n[broker]\nurl = \"{}\"\nmanagement_url = \"http://127.0.0.1:15672\"\n{}",
        node.url(),
        common::chat_only("concurrency = 1")
    );
    let config = Config::from_toml(&toml, "test", PathBuf::from("."), Vec::new()).expect("config");
    let intake = Intake::start(&config).await;
    let url = intake.url.as_str();
    let (_, before) = person(16_300);
    assert_eq!(Signed::json(&before).send(url).await.0, 202);

    node.stop();
    let (_, during) = person(16_301);
    let retried = Signed::json(&during);
    let answer = wait::until("the intake notices the outage", Duration::from_secs(30), async || {
        let (status, problem) = retried.send(url).await;
        (status != 202).then_some((status, problem))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.0, 503, "{}", answer.1);

    node.spawn();
    node.wait_ready(Duration::from_secs(60)).await;
    // The sender retries the same message (same webhook-id): accepted once the link is back.
    wait::until("the retry is accepted", Duration::from_secs(60), async || retried.send(url).await.0 == 202)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(queued(&node.url(), &config).await, 2, "the event before the outage and the retried one");
    intake.stop().await;
    let store = Store::connect(&config.redis, &namespace).await.expect("redis");
    store.delete_namespace().await.expect("namespace removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scimfleet_intake_process_serves_events_and_its_ops_endpoints_and_refuses_a_bad_secret() {
    let dir = std::env::temp_dir().join(unique_namespace("sf-intake-proc"));
    std::fs::create_dir_all(&dir).expect("secret directory");
    std::fs::write(dir.join("secret"), OLD_SECRET).expect("secret");
    std::fs::write(dir.join("bad"), "not-a-webhook-secret").expect("bad secret");
    let (port, ops_port) = (common::rabbit::free_port(), common::rabbit::free_port());
    let intake = |secret: &str| {
        format!(
            "[telemetry]\nintake_listen = \"127.0.0.1:{ops_port}\"\n[intake]\nlisten = \"127.0.0.1:{port}\"\n\
             [[intake.sources]]\nid = \"hr\"\nsecrets = [{{ file = \"{}\" }}]\nrate_per_second = 100.0\nburst = 100\n{}",
            dir.join(secret).display(),
            common::POLICY
        )
    };
    let fleet = Fleet::start(&intake("secret")).await.expect("fleet starts");
    let log = scimfleet_devkit::fleet::test_log_dir().join(format!("{}-intake.log", fleet.config.namespace));
    let mut process = common::process::FleetProcess::start("intake", &fleet.config_path(), &log);
    let ops = format!("http://127.0.0.1:{ops_port}");
    wait::until("the intake process is ready", Duration::from_secs(60), async || {
        process.assert_running();
        let ready = reqwest::get(format!("{ops}/readyz")).await;
        ready.is_ok_and(|r| r.status().is_success())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (id, event) = person(16_400);
    let (status, body) = Signed::json(&event).send(&format!("http://127.0.0.1:{port}/v1/events")).await;
    assert_eq!(status, 202, "{body}");
    let user_name = format!("{}@example.com", id.to_lowercase());
    wait::until("the hire is provisioned", Duration::from_secs(60), async || {
        fleet.server("chat").user_by_user_name(&user_name).is_some()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let metrics = reqwest::get(format!("{ops}/metrics")).await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains(r#"scimfleet_intake_requests_total{source="hr",status="202"} 1"#), "{metrics}");
    process.kill();

    // A secret that is not `whsec_<base64>` stops start-up, naming the field and not the value.
    let bad = dir.join("bad.toml");
    let text = std::fs::read_to_string(fleet.config_path())
        .expect("config")
        .replace(&*dir.join("secret").to_string_lossy(), &dir.join("bad").to_string_lossy());
    std::fs::write(&bad, text).expect("bad config");
    let output = common::keep_log(
        std::process::Command::new(env!("CARGO_BIN_EXE_scimfleet"))
            .args(["intake", "--config"])
            .arg(&bad)
            .output()
            .expect("runs"),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("intake.sources[0].secrets[0]") && !stderr.contains("not-a-webhook-secret"),
        "{stderr}"
    );
    fleet.stop().await.expect("fleet stops");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intake_serves_https_with_its_own_certificate() {
    let fleet = Fleet::start_without_scheduler(common::POLICY).await.expect("fleet starts");
    let dir = std::env::temp_dir().join(unique_namespace("sf-intake-tls"));
    let ca = scimfleet_devkit::certs::TestCa::new(&dir, "intake-ca").expect("test CA");
    let server = ca.server("intake").expect("server certificate");
    let intake = Intake::start_with(&fleet.config, |config| {
        config.intake.tls_cert_file = Some(server.cert_path.display().to_string());
        config.intake.tls_key_file = Some(server.key_path.display().to_string());
    })
    .await;
    assert!(intake.url.starts_with("https://"));
    let root = reqwest::Certificate::from_pem(ca.ca_pem().as_bytes()).expect("CA certificate");
    let mut signed = Signed::json(&person(16_500).1);
    signed.client = reqwest::Client::builder().add_root_certificate(root).build().expect("TLS client");
    let (status, body) = signed.send(&intake.url).await;
    assert_eq!(status, 202, "{body}");
    let plain = intake.url.replace("https://", "http://");
    assert!(reqwest::Client::new().post(&plain).send().await.is_err(), "no plain HTTP on a TLS listener");
    intake.stop().await;
    fleet.stop().await.expect("fleet stops");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_over_its_rate_gets_429_with_retry_after_and_nothing_is_published() {
    let fleet = Fleet::start_without_scheduler(common::POLICY).await.expect("fleet starts");
    let broker = fleet.config.broker.url.first().expose().to_owned();
    let intake = Intake::start_with(&fleet.config, |config| {
        config.intake.sources[0].rate_per_second = 0.1;
        config.intake.sources[0].burst = 2;
    })
    .await;
    for n in 0..2 {
        assert_eq!(Signed::json(&person(16_600 + n).1).send(&intake.url).await.0, 202, "within the burst");
    }
    let signed = Signed::json(&person(16_610).1);
    let key = Key::from_secret(signed.secret).expect("secret");
    let response = reqwest::Client::new()
        .post(&intake.url)
        .header("content-type", signed.content_type)
        .header("webhook-id", &signed.id)
        .header("webhook-timestamp", signed.timestamp.to_string())
        .header("webhook-signature", key.sign(&signed.id, signed.timestamp, &signed.body))
        .body(signed.body.clone())
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 =
        response.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=10).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(queued(&broker, &fleet.config).await, 2);
    intake.stop().await;
    fleet.stop().await.expect("fleet stops");
}
