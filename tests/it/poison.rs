//! Poison jobs: an attempt that hangs is abandoned after `job_timeout_ms`,
//! retried within the budget, then dead-lettered as `poison`; nothing loops
//! and the other apps carry on.

use crate::common;

use std::time::Duration;

use common::{POLICY, Person};
use scimfleet_devkit::fleet::Fleet;
use scimfleet_schemas::DeadLetterReason;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_hanging_is_dead_lettered_as_poison() {
    // The request timeout is far longer than the job timeout: the hang must be
    // cut by the job timeout, not by HTTP.
    let policy = format!(
        "[worker]\nretry_tiers_ms = [50]\nmax_attempts = 2\njob_timeout_ms = 1500\nlease_ttl_ms = 1000\nrequest_timeout_ms = 60000\n{POLICY}"
    );
    let mut fleet = Fleet::start(&policy).await.expect("fleet starts");
    let addr = fleet.stop_server("crm").await.expect("crm down");
    // A black hole where crm was: it accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind the old address");
    let black_hole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let person = Person { id: "E5001", department: "Sales", title: "AE", location: "Oslo", groups: &[] };
    fleet.publish_json(&[person.event("evt-1", "person.hired", 1)]).await.expect("published");
    fleet.wait_settled(Duration::from_secs(60)).await.expect("settled");

    let dead = fleet.take_dead_letters("crm").await.expect("read DLQ");
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0].0.reason, DeadLetterReason::Poison);
    assert_eq!(dead[0].0.attempts, 2);
    assert!(dead[0].0.detail.contains("did not finish within 1500 ms"), "{}", dead[0].0.detail);
    assert!(fleet.server("chat").user_by_user_name(&person.user_name()).is_some(), "chat carried on");
    assert_eq!(fleet.worker().retried, 1);
    black_hole.abort();
    fleet.stop().await.expect("clean stop");
}
