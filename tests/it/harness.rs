//! The test harness itself: a fleet cleans up after itself even when a test
//! fails before `stop`, so broker and Redis do not fill with leftovers.

use crate::common;

use std::time::Duration;

use scimfleet_devkit::fleet::Fleet;
use scimfleet_runtime::broker::{self, Topology};
use scimfleet_runtime::store::PersonRecord;
use scimfleet_schemas::PersonId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_fleet_removes_its_queues_and_keys() {
    let mut fleet = Fleet::start(common::POLICY).await.expect("fleet starts");
    let ada = common::Person { id: "E1", department: "Sales", title: "AE", location: "Oslo", groups: &[] };
    fleet.publish_json(&[ada.event("evt-1", "person.hired", 1)]).await.expect("published");
    fleet.wait_settled(Duration::from_secs(60)).await.expect("settled");
    let config = fleet.config.clone();
    let store = fleet.store().clone();
    let person = PersonId::parse("E1").expect("valid");
    let known: Option<PersonRecord> = store.registry().get(&person).await.expect("redis");
    assert!(known.is_some(), "the registry holds the person while the fleet runs");

    drop(fleet);

    assert_eq!(store.registry().get(&person).await.expect("redis"), None, "keys removed");
    let connection = broker::connect(&config.broker, "harness-test").await.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let queue = Topology::of(&config).events_queue();
    let declared = broker::inspect::depth(&channel, &queue).await;
    assert!(declared.is_err(), "queue {queue} should be gone");
    let _closed = connection.close(200, "done".into()).await;
}
