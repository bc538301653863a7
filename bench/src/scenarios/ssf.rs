//! A RISC `account-disabled` Security Event Token against a native leaver
//! event: the same deprovision, reached two ways, timed the same way.
//!
//! One fleet (the workload's apps) with an in-process `scimfleet intake`
//! serving a `kind = "ssf"` source, and the devkit's test transmitter.
//! `2 × BENCH_SSF_LEAVERS` people are hired and settled first; the SET half
//! are also given an HR view and subject (their e-mail) as an HR import
//! keeps them, so a SET naming them finds them. Then, one at a time and
//! alternating (so both see the same idle fleet):
//!
//! - **native**: `person.terminated` published to the events exchange →
//!   deactivated and verified in every app (`mixed::probe_leaver`);
//! - **SET**: the signed SET pushed to `/v1/sources/{id}` (RFC 8935; the
//!   intake verifies it, claims its `jti`, keeps it with confirms and
//!   answers 202; the source's consumer finds the person by the subject and
//!   publishes `person.terminated`) → deactivated and verified in every app.
//!
//! Each latency runs from just before the publish (or the push) to the
//! slowest app's first verified read-back, from the evidence records. A
//! first SET about nobody is pushed untimed, so the one-off fetch of the
//! transmitter's keys is not counted. `BENCH_SSF_LEAVERS`: 300 (40 with
//! `BENCH_QUICK=1`; 0 skips the scenario).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::idp::ssf::{self, Transmitter};
use scimfleet_runtime::broker::{self, Publisher, Topology};
use scimfleet_runtime::ops::Ops;
use scimfleet_runtime::people::View;
use scimfleet_runtime::store::Kept;
use scimfleet_schemas::{PersonId, PersonStatus};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::mixed::{probe_leaver, until_verified};
use super::{clear_logs, inject_latency, publish};
use crate::measure::Percentiles;
use crate::params::{Params, number};
use crate::sys::{Cost, Meter};
use crate::workload::{self, Kind};

const SOURCE: &str = "signals";
const AUDIENCE: &str = "https://scimfleet-bench.example.com/ssf";
const PUSH_TOKEN: &str = "bench-ssf-push-token";
/// The source whose view of the SET half the SET's status applies to.
const HR_SOURCE: &str = "hr-bench";
const SETTLE_WITHIN: Duration = Duration::from_secs(600);

/// Figures of the scenario.
#[derive(Debug)]
pub struct Signals {
    /// Native leaver probes: `person.terminated` published → verified in every app.
    pub native: Percentiles,
    /// SET probes: RISC account-disabled pushed → verified in every app.
    pub set: Percentiles,
    /// What the probes cost.
    pub cost: Cost,
}

impl Signals {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "native_leaver_publish_to_verified_all_apps": self.native.to_json(),
            "risc_set_push_to_verified_all_apps": self.set.to_json(),
            "set_over_native_p50": ratio(self.set.p50_ms, self.native.p50_ms),
            "set_over_native_p99": ratio(self.set.p99_ms, self.native.p99_ms),
            "cost": self.cost.to_json(),
        })
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    (a / b.max(0.001) * 1000.0).round() / 1000.0
}

/// `BENCH_SSF_LEAVERS`: people probed each way (0: skipped).
pub fn leavers(params: &Params) -> anyhow::Result<usize> {
    let lookup = |name: &str| std::env::var(name).ok();
    Ok(number(&lookup, "BENCH_SSF_LEAVERS", if params.quick { 40 } else { 300 }, 0, 100_000)?)
}

/// Runs the scenario with `count` probes each way.
pub async fn run(params: &Params, count: usize) -> anyhow::Result<Signals> {
    let transmitter = Transmitter::start(AUDIENCE, "bench-ssf-transmitter").await?;
    let source = format!(
        "[[sources]]\nkind = \"ssf\"\nid = \"{SOURCE}\"\nissuer = \"{}\"\naudience = \"{AUDIENCE}\"\npush_token = {{ file = \"ssf-push-token\" }}\n",
        transmitter.issuer()
    );
    let worker = format!("concurrency = {}", params.concurrency);
    let policy = workload::policy(params.apps, params.teams, &worker, None) + &source;
    let mut fleet = Fleet::start(&policy).await.map_err(anyhow::Error::msg)?;
    std::fs::write(fleet.config_path().with_file_name("ssf-push-token"), PUSH_TOKEN)?;
    inject_latency(&fleet, params.latency_ms);
    let hires: Vec<_> =
        (0..count * 2).map(|n| workload::event(&format!("S{n}"), Kind::Hire, "ssf", params.teams)).collect();
    publish(&mut fleet, &hires).await.map_err(anyhow::Error::msg)?;
    fleet.wait_settled(SETTLE_WITHIN).await.map_err(anyhow::Error::msg)?;
    let kept: Vec<Kept> = hires.iter().skip(1).step_by(2).map(|hire| kept(&hire.event)).collect();
    fleet.store().sources().keep(HR_SOURCE, &kept).await?;
    clear_logs(&fleet);

    let intake = Intake::start(fleet.config().clone()).await?;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/sources/{SOURCE}", intake.base);
    // Untimed: the receiver fetches the transmitter's configuration and keys once.
    let warm_up =
        transmitter.sign(&transmitter.claims(ssf::ACCOUNT_DISABLED, "nobody@example.com", json!({})));
    anyhow::ensure!(
        ssf::push(&http, &url, PUSH_TOKEN, &warm_up).await?.0 == 202,
        "the warm-up SET was refused"
    );

    let meter = Meter::start();
    let (mut native, mut set) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for n in 0..count {
        let leaver = workload::event(&format!("S{}", 2 * n), Kind::Leaver, "ssf", params.teams);
        native.push(probe_leaver(&mut fleet, &leaver).await.map_err(anyhow::Error::msg)?);
        let person = PersonId::parse(format!("S{}", 2 * n + 1))?;
        let claims = transmitter.claims(ssf::ACCOUNT_DISABLED, &email(person.as_str()), json!({}));
        let signed = transmitter.sign(&claims);
        // The SET's time is the termination's sequence (ms), above the hire's.
        let sequence = claims["iat"].as_u64().context("iat")? * 1000;
        let (started, pushed_at) = (Instant::now(), chrono::Utc::now());
        let (status, body) = ssf::push(&http, &url, PUSH_TOKEN, &signed).await?;
        anyhow::ensure!(status == 202, "the SET was refused: {status} {body}");
        set.push(
            until_verified(&fleet, &person, sequence, pushed_at, started)
                .await
                .map_err(anyhow::Error::msg)?,
        );
        clear_logs(&fleet);
    }
    let cost = meter.finish().await;
    intake.stop().await;
    fleet.stop().await.map_err(anyhow::Error::msg)?;
    Ok(Signals { native: Percentiles::of(&native), set: Percentiles::of(&set), cost })
}

fn email(person: &str) -> String {
    format!("{}@example.com", person.to_lowercase())
}

/// What an HR import keeps of the person `hire` brought in: the view and their e-mail as subject.
fn kept(hire: &Value) -> Kept {
    let data = &hire["data"];
    let attributes: BTreeMap<String, String> =
        serde_json::from_value(data["attributes"].clone()).unwrap_or_default();
    let groups: Vec<String> = serde_json::from_value(data["groups"].clone()).unwrap_or_default();
    let person = data["person_id"].as_str().unwrap_or_default().to_owned();
    let view = View::new(PersonStatus::Active, attributes, groups, None);
    Kept {
        subjects: vec![email(&person)],
        person,
        user: None,
        view: serde_json::to_string(&view).unwrap_or_default(),
    }
}

/// An in-process intake serving the fleet's configuration.
struct Intake {
    base: String,
    config: Arc<scimfleet_runtime::Config>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), scimfleet_intake::IntakeError>>,
}

impl Intake {
    async fn start(config: Arc<scimfleet_runtime::Config>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (ops, stop) = (Ops::default(), CancellationToken::new());
        let task = tokio::spawn(scimfleet_intake::serve(config.clone(), listener, ops.clone(), stop.clone()));
        let ready = Instant::now();
        while ops.health.check().await.is_err() {
            anyhow::ensure!(ready.elapsed().as_secs() < 60, "the intake did not connect within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { base, config, stop, task })
    }

    /// Stops it and deletes its source queues (the fleet deletes the rest).
    async fn stop(self) {
        self.stop.cancel();
        let _served = self.task.await;
        if let Ok(connection) = broker::connect(&self.config.broker, "bench-ssf-cleanup").await {
            if let Ok(publisher) = Publisher::open(&connection).await {
                let _deleted =
                    Topology::of(&self.config).delete_sources(publisher.channel(), &[SOURCE]).await;
                let _closed = publisher.channel().close(200, "bench done".into()).await;
            }
            let _closed = connection.close(200, "bench done".into()).await;
        }
    }
}
