//! The HTTP intake's throughput: signed events per second accepted *and
//! confirmed by RabbitMQ* (a 202 is only answered after every confirm),
//! through an in-process `scimfleet intake` on the real broker and Redis,
//! with many concurrent HTTP clients; once with one event per request and
//! once with batches. It is read next to the broker's publish limit
//! measured in the same run (limit (b), its publishing part), which is the
//! ceiling: the intake adds HTTP, HMAC, parsing and a Redis replay mark and
//! rate check per request on top of the same confirmed publishes.
//!
//! A namespace of its own; nothing consumes the events, and its queues and
//! Redis keys are deleted afterwards (the queues also expire on their own).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use scimfleet_devkit::fleet::unique_namespace;
use scimfleet_intake::Key;
use scimfleet_runtime::broker::{self, Publisher, Topology};
use scimfleet_runtime::ops::Ops;
use scimfleet_runtime::{Config, Store};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::measure::round;
use crate::workload::{self, Kind};

const SECRET: &str = "whsec_c2NpbWZsZWV0LWJlbmNoLWludGFrZS1zZWNyZXQ=";

/// One phase: events sent `batch` to a request by `clients` clients.
#[derive(Debug)]
pub struct Phase {
    /// Events per request.
    pub batch: usize,
    /// Events accepted (202) and confirmed.
    pub events: usize,
    /// Seconds from the first request to the last 202.
    pub seconds: f64,
}

impl Phase {
    /// Events per second.
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.seconds
    }
}

/// The intake measurement.
#[derive(Debug)]
pub struct IntakeLimit {
    /// Concurrent HTTP clients.
    pub clients: usize,
    /// One event per request.
    pub single: Phase,
    /// Batches.
    pub batched: Phase,
}

impl IntakeLimit {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        let phase = |p: &Phase| {
            json!({
                "events_per_request": p.batch, "events": p.events,
                "seconds": round(p.seconds * 1000.0) / 1000.0, "events_per_s": round(p.events_per_s()),
            })
        };
        json!({ "clients": self.clients, "single": phase(&self.single), "batched": phase(&self.batched) })
    }
}

/// Runs both phases against the broker at `url`.
pub async fn run(url: &str, events: usize, clients: usize, batch: usize) -> anyhow::Result<IntakeLimit> {
    let dir = std::env::temp_dir().join(unique_namespace("bench-intake"));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("secret"), SECRET)?;
    let toml = format!(
        "namespace = \"{}\"\n[broker]\nurl = \"{url}\"\nqueue_expires_ms = 900000\nmanagement_url = \"http://127.0.0.1:15672\"\n\
         [intake]\nmax_events = {batch}\n[[intake.sources]]\nid = \"bench\"\nsecrets = [{{ file = \"secret\" }}]\n\
         rate_per_second = 1000000.0\nburst = 1000000\n{}",
        unique_namespace("bench-intake"),
        workload::policy(1, 1, "", None)
    );
    let config = Arc::new(Config::from_toml(&toml, "bench", dir.clone(), Vec::new())?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}/v1/events", listener.local_addr()?);
    let (ops, stop) = (Ops::default(), CancellationToken::new());
    let serving = tokio::spawn(scimfleet_intake::serve(config.clone(), listener, ops.clone(), stop.clone()));
    let ready = Instant::now();
    while ops.health.check().await.is_err() {
        anyhow::ensure!(ready.elapsed().as_secs() < 60, "the intake did not connect within 60 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let measured = async {
        let single = phase(&endpoint, events, 1, clients, "s").await.context("single events")?;
        let batched = phase(&endpoint, events, batch, clients, "b").await.context("batches")?;
        Ok::<_, anyhow::Error>(IntakeLimit { clients, single, batched })
    }
    .await;
    stop.cancel();
    let _served = serving.await;
    cleanup(&config).await;
    let _ = std::fs::remove_dir_all(&dir);
    measured
}

/// Sends `events` hires, `batch` per request, from `clients` concurrent clients.
async fn phase(
    endpoint: &str,
    events: usize,
    batch: usize,
    clients: usize,
    tag: &str,
) -> anyhow::Result<Phase> {
    let key = Key::from_secret(SECRET).map_err(anyhow::Error::msg)?;
    let bodies: Vec<Vec<u8>> = (0..events)
        .map(|n| workload::event(&format!("I{n}"), Kind::Hire, tag, 1).event.to_string())
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(|chunk| {
            if batch == 1 {
                chunk[0].clone().into_bytes()
            } else {
                format!("[{}]", chunk.join(",")).into_bytes()
            }
        })
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(bodies.into_iter().enumerate().collect::<Vec<_>>()));
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (queue, http, key, endpoint, tag) =
            (queue.clone(), http.clone(), key.clone(), endpoint.to_owned(), tag.to_owned());
        tasks.spawn(async move {
            loop {
                let next = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
                let Some((n, body)) = next else { return Ok::<_, anyhow::Error>(()) };
                let id = format!("bench-{tag}-{n}");
                let timestamp = chrono::Utc::now().timestamp();
                let response = http
                    .post(&endpoint)
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", key.sign(&id, timestamp, &body))
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status().as_u16() == 202,
                    "the intake answered {}",
                    response.status()
                );
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(Phase { batch, events, seconds: started.elapsed().as_secs_f64() })
}

async fn cleanup(config: &Config) {
    if let Ok(connection) = broker::connect(&config.broker, "bench-intake-cleanup").await {
        if let Ok(publisher) = Publisher::open(&connection).await {
            let apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
            let _deleted = Topology::of(config).delete(publisher.channel(), &apps).await;
            let _closed = publisher.channel().close(200, "bench done".into()).await;
        }
        let _closed = connection.close(200, "bench done".into()).await;
    }
    if let Ok(store) = Store::connect(&config.redis, &config.namespace).await {
        let _deleted = store.delete_namespace().await;
    }
}
