//! Traces from HR event to SCIM call, exported over OTLP/HTTP to a real
//! receiver: one event is one trace (scheduler, a job span per app, worker,
//! SCIM client spans, and the same trace id in the apps' `traceparent`), and
//! a job that is retried, dead-lettered and replayed stays in that trace.
//!
//! One test function: the tracing subscriber is global to the process.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Person;
use scimfleet_admin::dlq;
use scimfleet_devkit::fleet::{Fleet, TEST_LOG_LEVELS, test_log_dir};
use scimfleet_devkit::otlp::{OtlpReceiver, ReceivedSpan};
use scimfleet_devkit::scim_server::{ErrorRule, Faults, Resource, Route};
use scimfleet_devkit::wait;
use scimfleet_runtime::broker::{self, Publisher, Topology};
use scimfleet_runtime::config::LogFormat;
use scimfleet_runtime::telemetry::{self, Telemetry, TelemetryOptions, Traces};

const SETTLE: Duration = Duration::from_secs(60);

/// The trace id in a W3C `traceparent` (`00-<trace>-<span>-<flags>`).
fn trace_of(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or_default()
}

/// Flushes, then waits until the receiver holds a span `matching`.
async fn received(telemetry: &Telemetry, receiver: &OtlpReceiver, matching: impl Fn(&ReceivedSpan) -> bool) {
    wait::until("such a span to arrive", SETTLE, async || {
        telemetry.flush().await;
        receiver.spans().iter().any(&matching)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_one_trace_from_intake_to_every_scim_request_and_survives_dead_letter_and_replay() {
    let receiver = OtlpReceiver::start().await.expect("receiver");
    let log = test_log_dir().join(format!("tracing-{}.jsonl", std::process::id()));
    std::fs::create_dir_all(test_log_dir()).expect("log dir");
    let telemetry = telemetry::init(TelemetryOptions {
        service: "scimfleet-test",
        format: LogFormat::Json,
        default_levels: TEST_LOG_LEVELS,
        traces: Traces::Otlp { endpoint: Some(receiver.url().to_owned()) },
        log_file: Some(&log),
    })
    .expect("telemetry");
    let policy = format!(
        "[worker]\nretry_tiers_ms = [100]\nmax_attempts = 2\nrequest_retries = 0\n[verification]\nrecheck = [\"1s\"]\n{}",
        common::POLICY
    );
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");

    let trace = one_event_is_one_trace(&mut fleet, &telemetry, &receiver).await;
    a_replayed_job_stays_in_its_trace(&mut fleet, &telemetry, &receiver).await;
    a_recheck_starts_a_trace_linked_to_the_deprovision(&mut fleet, &telemetry, &receiver).await;

    // Log lines inside a span carry its trace id.
    let logs = std::fs::read_to_string(&log).expect("log file");
    let line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["scimfleet.event_id"] == "trace-hire" && l["target"] == "scimfleet_scheduler::fanout")
        .expect("a log line of the event's fan-out");
    assert_eq!(line["trace_id"], trace.as_str(), "{line}");
    assert!(line["span_id"].as_str().is_some_and(|s| s.len() == 16), "{line}");

    fleet.stop().await.expect("clean stop");
    telemetry.shutdown().await;
    receiver.stop();
}

async fn one_event_is_one_trace(fleet: &mut Fleet, telemetry: &Telemetry, receiver: &OtlpReceiver) -> String {
    let ns = fleet.config.namespace.clone();
    let ada = Person { id: "E8101", department: "Engineering", title: "Dev", location: "Oslo", groups: &[] };
    fleet.publish_json(&[ada.event("trace-hire", "person.hired", 1)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    // The scheduler's span holds the event id; the worker spans end later.
    received(telemetry, receiver, |s| s.attr("scimfleet.event_id") == Some("trace-hire")).await;
    received(telemetry, receiver, |s| {
        s.name == format!("process {ns}.jobs.chat") && s.attr("scimfleet.outcome").is_some()
    })
    .await;
    received(telemetry, receiver, |s| {
        s.name == format!("process {ns}.jobs.git") && s.attr("scimfleet.outcome").is_some()
    })
    .await;

    let spans = receiver.spans();
    let intake = spans
        .iter()
        .find(|s| {
            s.name == format!("process {ns}.events.intake")
                && s.attr("scimfleet.event_id") == Some("trace-hire")
        })
        .expect("the scheduler's span");
    let trace = intake.trace_id.clone();
    assert_eq!(intake.kind, "consumer");
    assert_eq!(intake.attr("messaging.system"), Some("rabbitmq"));
    assert_eq!(intake.attr("messaging.operation.type"), Some("process"));
    assert_eq!(intake.attr("messaging.destination.name"), Some(format!("{ns}.events.intake").as_str()));
    assert_eq!(intake.service, "scimfleet-test");
    let in_trace: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.trace_id == trace).collect();

    // One producer span per app in scope (Engineering: git and chat, not crm).
    let sends: Vec<&&ReceivedSpan> =
        in_trace.iter().filter(|s| s.name == format!("send {ns}.jobs")).collect();
    let apps: BTreeSet<&str> = sends.iter().filter_map(|s| s.attr("scimfleet.app")).collect();
    assert_eq!(apps, BTreeSet::from(["chat", "git"]), "a job span per app in scope");
    for send in &sends {
        assert_eq!(send.kind, "producer");
        assert_eq!(send.parent_span_id, intake.span_id, "job spans hang under the event");
        assert_eq!(send.attr("scimfleet.action"), Some("upsert"));
        let app = send.attr("scimfleet.app").expect("app");
        let worker = in_trace
            .iter()
            .find(|s| s.name == format!("process {ns}.jobs.{app}"))
            .unwrap_or_else(|| panic!("the worker span of {app}"));
        assert_eq!(worker.kind, "consumer");
        assert_eq!(worker.parent_span_id, send.span_id, "the worker continues the job's span");
        assert_eq!(worker.attr("scimfleet.app"), Some(app));
        assert_eq!(worker.attr("scimfleet.action"), Some("upsert"));
        assert_eq!(worker.attr("scimfleet.attempt"), Some("1"));
        assert_eq!(worker.attr("scimfleet.event_id"), Some("trace-hire"));
        assert_eq!(worker.attr("scimfleet.outcome"), Some("converged"));
        assert!(worker.attr("scimfleet.person").is_some_and(|p| p.starts_with("p-")), "a pseudonym");
    }
    // SCIM client spans with the HTTP semantic conventions, one per request.
    let clients: Vec<&&ReceivedSpan> = in_trace.iter().filter(|s| s.kind == "client").collect();
    let create = clients.iter().find(|s| s.name == "POST /Users").expect("a create span");
    assert_eq!(create.attr("http.request.method"), Some("POST"));
    assert_eq!(create.attr("http.response.status_code"), Some("201"));
    assert_eq!(create.attr("url.template"), Some("/Users"));
    assert_eq!(create.attr("server.address"), Some("127.0.0.1"));
    assert!(create.attr("server.port").is_some_and(|p| p.parse::<u16>().is_ok()));
    for app in ["git", "chat"] {
        let server = fleet.server(app);
        let requests = server.requests();
        assert!(!requests.is_empty());
        assert_eq!(
            clients.iter().filter(|s| s.attr("scimfleet.app") == Some(app)).count(),
            requests.len(),
            "one client span per request to {app}"
        );
        for request in &requests {
            let sent = request.traceparent.as_deref().expect("every SCIM request carries traceparent");
            assert_eq!(trace_of(sent), trace, "{} {} is in the event's trace", request.method, request.path);
        }
    }
    assert!(fleet.server("crm").requests().is_empty());
    // No attribute of any span carries the person's id or e-mail address.
    for span in &spans {
        for (key, value) in &span.attributes {
            assert!(!value.contains('@') && !value.contains("E8101"), "{} {key} = {value}", span.name);
        }
    }
    trace
}

async fn a_recheck_starts_a_trace_linked_to_the_deprovision(
    fleet: &mut Fleet,
    telemetry: &Telemetry,
    receiver: &OtlpReceiver,
) {
    let ns = fleet.config.namespace.clone();
    let ada = Person { id: "E8101", department: "Engineering", title: "Dev", location: "Oslo", groups: &[] };
    fleet.publish_json(&[ada.event("trace-leave", "person.terminated", 2)]).await.expect("published");
    let lane = format!("process {ns}.jobs.git.leavers");
    let recheck = |s: &ReceivedSpan| s.name == lane && s.attr("scimfleet.action") == Some("verify");
    received(telemetry, receiver, |s| recheck(s) && s.attr("scimfleet.outcome").is_some()).await;
    let spans = receiver.spans();
    let deprovision = spans
        .iter()
        .find(|s| s.name == lane && s.attr("scimfleet.action") == Some("deactivate"))
        .expect("the deactivation's span");
    let verify = spans.iter().find(|s| recheck(s)).expect("the re-check's span");
    assert_eq!(verify.attr("scimfleet.outcome"), Some("verified"));
    assert_eq!(verify.attr("scimfleet.event_id"), Some("trace-leave"));
    assert_ne!(verify.trace_id, deprovision.trace_id, "a re-check runs in a trace of its own");
    assert!(verify.parent_span_id.is_empty(), "it is that trace's root");
    assert_eq!(
        verify.links,
        std::slice::from_ref(&deprovision.trace_id),
        "linked to the deprovision's trace"
    );
}

async fn a_replayed_job_stays_in_its_trace(
    fleet: &mut Fleet,
    telemetry: &Telemetry,
    receiver: &OtlpReceiver,
) {
    let ns = fleet.config.namespace.clone();
    fleet.server("chat").set_faults(Faults {
        errors: vec![ErrorRule::new(Route::MethodOn("POST", Resource::Users), 1.0, 503)],
        ..Faults::default()
    });
    let bob = Person { id: "E8102", department: "Ops", title: "Clerk", location: "Rome", groups: &[] };
    fleet.publish_json(&[bob.event("trace-retry", "person.hired", 1)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let topology = Topology::of(&fleet.config);
    let connection = broker::connect(&fleet.config.broker, "tracing-test").await.expect("broker");
    let target = dlq::Target::App(scimfleet_schemas::AppId::parse("chat").expect("id"));
    let peek = dlq::peek(&connection, &topology, &target, 10).await.expect("peek");
    assert_eq!(peek.messages.len(), 1, "two attempts, then the dead-letter queue");
    fleet.server("chat").clear_faults();
    let publisher = Publisher::open(&connection).await.expect("publisher");
    let replayed = peek.replay(&publisher, &topology, |_| true).await.expect("replayed");
    assert_eq!(replayed.done, 1);
    fleet
        .wait_drained(SETTLE, || fleet.server("chat").user_by_external_id("E8102").is_some())
        .await
        .expect("the replay converges");
    let _closed = connection.close(200, "done".into()).await;

    let worker = format!("process {ns}.jobs.chat");
    received(telemetry, receiver, |s| s.name == worker && s.attr("scimfleet.outcome") == Some("converged"))
        .await;
    let spans = receiver.spans();
    let intake = spans
        .iter()
        .find(|s| s.attr("scimfleet.event_id") == Some("trace-retry") && s.name.ends_with(".events.intake"))
        .expect("the scheduler's span");
    let attempts: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.name == worker && s.attr("scimfleet.event_id") == Some("trace-retry"))
        .collect();
    let outcomes: Vec<(&str, &str)> = attempts
        .iter()
        .map(|s| (s.attr("scimfleet.attempt").unwrap_or("?"), s.attr("scimfleet.outcome").unwrap_or("?")))
        .collect();
    assert_eq!(outcomes, [("1", "retried"), ("2", "dead_lettered"), ("1", "converged")], "{attempts:#?}");
    for attempt in &attempts {
        assert_eq!(
            attempt.trace_id, intake.trace_id,
            "every attempt, the replay included, is in the event's trace"
        );
    }
    assert!(attempts[1].error, "the dead-lettering attempt is marked as an error");
    let created = fleet
        .server("chat")
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.resource == Resource::Users && r.status == 201)
        .find(|r| r.body.as_ref().is_some_and(|b| b["externalId"] == "E8102"))
        .expect("the replay's create");
    assert_eq!(trace_of(created.traceparent.as_deref().expect("traceparent")), intake.trace_id);
}
