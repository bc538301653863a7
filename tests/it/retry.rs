//! Transient failures wait in RabbitMQ delay queues and come back; a job
//! that keeps failing ends in its app's dead-letter queue once its budget
//! is spent, while the other apps are served as usual.

use crate::common;

use std::time::Duration;

use common::{POLICY, Person};
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::wait;
use scimfleet_schemas::DeadLetterReason;

const SETTLE: Duration = Duration::from_secs(60);
const SALES: Person<'static> =
    Person { id: "E3001", department: "Sales", title: "AE", location: "Oslo", groups: &["sales"] };

fn policy(tiers: &str, max_attempts: u32) -> String {
    format!("[worker]\nretry_tiers_ms = {tiers}\nmax_attempts = {max_attempts}\n{POLICY}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_app_spends_its_retry_budget_then_dead_letters_while_others_converge() {
    let mut fleet = Fleet::start(&policy("[50, 100]", 3)).await.expect("fleet starts");
    fleet.stop_server("crm").await.expect("crm down");
    fleet.publish_json(&[SALES.event("evt-1", "person.hired", 1)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    assert!(fleet.server("chat").user_by_user_name(&SALES.user_name()).is_some(), "chat is unaffected");
    let dead = fleet.take_dead_letters("crm").await.expect("read DLQ");
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let (envelope, body) = &dead[0];
    assert_eq!(envelope.reason, DeadLetterReason::RetriesExhausted);
    assert_eq!(envelope.attempts, 3);
    assert!(envelope.detail.contains("could not connect"), "{}", envelope.detail);
    assert!(envelope.first_attempt_at < envelope.last_attempt_at);
    let job = scimfleet_schemas::Job::parse(body).expect("the job travels intact");
    assert_eq!(job.attempt, 2, "two retries before the last attempt");
    assert_eq!(fleet.worker().retried, 2);
    assert_eq!(fleet.worker().dead_lettered, 1);
    fleet.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waits_in_a_delay_queue_and_converges_once_the_app_is_back() {
    let mut fleet = Fleet::start(&policy("[200, 400, 800]", 20)).await.expect("fleet starts");
    let addr = fleet.stop_server("crm").await.expect("crm down");
    fleet.publish_json(&[SALES.event("evt-1", "person.hired", 1)]).await.expect("published");

    wait::until("two retries", SETTLE, async || fleet.worker().retried >= 2)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", fleet.worker()));
    fleet.restart_server("crm", addr).await.expect("crm back");
    fleet.wait_settled(SETTLE).await.expect("settled");

    let crm = fleet.server("crm");
    let user = crm.user_by_user_name(&SALES.user_name()).expect("created after the outage");
    let id = user.id.expect("id");
    assert!(crm.group_by_name("sales-team").is_some_and(|g| g.has_member(&id)));
    assert!(fleet.take_dead_letters("crm").await.expect("read DLQ").is_empty());
    assert_eq!(fleet.worker().dead_lettered, 0);
    fleet.stop().await.expect("clean stop");
}
