//! An unreachable collector costs nothing but the spans: with the OTLP
//! endpoint on a closed port the pipeline converges every account exactly,
//! and shutdown's flush gives up by itself instead of hanging.
//!
//! One test function: the tracing subscriber is global to the process.

use crate::common;

use std::time::Duration;

use scimfleet_devkit::expect;
use scimfleet_devkit::fleet::{Fleet, TEST_LOG_LEVELS, test_log_dir};
use scimfleet_runtime::config::LogFormat;
use scimfleet_runtime::telemetry::{self, TelemetryOptions, Traces};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_collector_port_never_slows_or_stops_the_pipeline() {
    // A port that was free a moment ago and has no listener now.
    let closed = common::rabbit::free_port();
    std::fs::create_dir_all(test_log_dir()).expect("log dir");
    let log = test_log_dir().join(format!("trace-export-down-{}.jsonl", std::process::id()));
    let telemetry = telemetry::init(TelemetryOptions {
        service: "scimfleet-test",
        format: LogFormat::Json,
        default_levels: TEST_LOG_LEVELS,
        traces: Traces::Otlp { endpoint: Some(format!("http://127.0.0.1:{closed}/v1/traces")) },
        log_file: Some(&log),
    })
    .expect("telemetry");
    let mut fleet = Fleet::start(common::POLICY).await.expect("fleet starts");
    let mut events = common::hires(9300, 150, "Engineering");
    events.extend(common::hires(9450, 150, "Sales"));
    fleet.publish_json(&events).await.expect("published");
    fleet.wait_settled(Duration::from_secs(180)).await.expect("settled with the collector down");

    let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
    let people = expect::final_states(bodies.iter().map(Vec::as_slice));
    let mismatches = expect::mismatches(&fleet.config, &people, fleet.servers());
    assert!(mismatches.is_empty(), "{} wrong, e.g. {:?}", mismatches.len(), mismatches.first());
    let (s, w) = (fleet.scheduler(), fleet.worker());
    assert_eq!(s.accepted, 300);
    assert_eq!(w.converged, s.jobs_published, "every job converged");
    assert_eq!(w.dead_lettered, 0);
    println!("{} events, {} jobs converged with the collector unreachable", s.accepted, w.converged);
    fleet.stop().await.expect("clean stop");
    // Bounded by the flush deadline; the guard only turns a hang into a failure.
    tokio::time::timeout(Duration::from_secs(60), telemetry.shutdown()).await.expect("shutdown returns");
}
