//! Paging a deep dead-letter queue in the console: the first page is read
//! live; the first page past it reads the queue whole and holds that
//! listing, which the next pages come from (the page says when it was
//! read) while the queue's depth stays the same; a new dead letter, or a
//! replay from the console, ends the view, and the next page is read again.

use crate::console::{Served, opened_session};

use chrono::Utc;
use reqwest::StatusCode;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::policy::PolicyBuilder;
use scimfleet_runtime::broker::{self, Outgoing, Publisher, Topology, dead_letter_headers, persistent};
use scimfleet_schemas::{AppId, DeadLetter, DeadLetterReason, Stage};

/// Publishes dead letters `from..to` of `app` to its dead-letter queue, as
/// the worker does.
async fn dead_letters(fleet: &Fleet, app: &str, from: usize, to: usize) {
    let connection = broker::connect(&fleet.config.broker, "console-views-test").await.expect("connect");
    let publisher = Publisher::open(&connection).await.expect("publisher");
    let exchange = Topology::of(&fleet.config).jobs_dlx();
    let app_id = AppId::parse(app).expect("app id");
    let messages: Vec<(Vec<u8>, lapin::BasicProperties)> = (from..to)
        .map(|n| {
            let envelope = DeadLetter {
                reason: DeadLetterReason::RetriesExhausted,
                detail: format!("POST /Users: 503 (dead letter {n})"),
                stage: Stage::Worker,
                app: Some(app_id.clone()),
                job_id: None,
                event_id: Some(format!("dead-{n:04}")),
                last_status: Some(503),
                attempts: 3,
                first_attempt_at: Utc::now(),
                last_attempt_at: Utc::now(),
            };
            let body = serde_json::json!({ "n": n }).to_string().into_bytes();
            (body, dead_letter_headers(&persistent("application/json"), &envelope))
        })
        .collect();
    let outgoing = messages.iter().map(|(body, properties)| Outgoing {
        exchange: &exchange,
        routing_key: app,
        body,
        properties: properties.clone(),
        mandatory: true,
    });
    publisher.publish_all(outgoing).await.expect("dead letters published");
    let _closed = connection.close(200, "done".into()).await;
}

/// The ids of a dead-letter page's rows, in order.
fn ids(html: &str) -> Vec<String> {
    html.split("name=\"id\" value=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_pages_come_from_a_held_view_until_the_queue_changes() {
    let policy = PolicyBuilder::new().settings("[console]\npage_size = 10\n").app("git", "").build();
    let fleet = Fleet::start_idle(&policy).await.expect("fleet starts");
    dead_letters(&fleet, "git", 0, 35).await;
    let console = Served::start(&fleet).await;
    let cookie = opened_session(&console.get("/", None).await);
    let page = async |n: usize| {
        let answer = console.get(&format!("/dead-letters?app=git&page={n}"), Some(&cookie)).await;
        assert_eq!(answer.status(), StatusCode::OK);
        answer.text().await.expect("html")
    };

    let first = page(1).await;
    assert!(first.contains("35 dead letter(s)") && first.contains("page 1 of 4"), "{first}");
    assert_eq!(ids(&first), (0..10).map(|n| format!("dead-{n:04}")).collect::<Vec<_>>());
    assert!(!first.contains("listing read at"), "the first page is read live: {first}");
    let third = page(3).await;
    assert_eq!(ids(&third), (20..30).map(|n| format!("dead-{n:04}")).collect::<Vec<_>>());
    assert!(!third.contains("listing read at"), "read whole just now: {third}");
    for (n, from) in [(2, 10), (4, 30), (1, 0)] {
        let held = page(n).await;
        assert!(held.contains("listing read at"), "page {n} from the held view: {held}");
        let to = (from + 10).min(35);
        assert_eq!(ids(&held), (from..to).map(|n| format!("dead-{n:04}")).collect::<Vec<_>>(), "page {n}");
    }

    // A new dead letter changes the depth: the view ends.
    dead_letters(&fleet, "git", 35, 36).await;
    let fourth = page(4).await;
    assert!(fourth.contains("36 dead letter(s)") && !fourth.contains("listing read at"), "{fourth}");
    assert_eq!(ids(&fourth), (30..36).map(|n| format!("dead-{n:04}")).collect::<Vec<_>>());
    assert!(page(2).await.contains("listing read at"), "held again");

    // A purge from this console ends it too (the depth is checked as well,
    // but the view is dropped first).
    let csrf = crate::console::csrf_of(&page(1).await);
    let purged = console
        .post(
            "/dead-letters/purge",
            Some(&cookie),
            &[("csrf", &csrf), ("app", "git"), ("id", "dead-0000"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(purged.status(), StatusCode::SEE_OTHER);
    let second = page(2).await;
    assert!(second.contains("35 dead letter(s)") && !second.contains("listing read at"), "{second}");
    assert_eq!(ids(&second), (11..21).map(|n| format!("dead-{n:04}")).collect::<Vec<_>>());
    console.stop.cancel();
    fleet.stop().await.expect("clean stop");
}
