//! Paging a deep dead-letter queue in the console: the first page is read
//! live and has the queue read whole behind it, as the fleet page does;
//! the deep pages come from that listing and say when it was read; a new
//! dead letter shows as the depth now
//! while the queue is read again behind the page; a purge from the console
//! drops the view, and the next deep page reads the queue again.

use crate::console::{Served, opened_session};

use reqwest::StatusCode;
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::policy::PolicyBuilder;

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
    fleet.dead_letter("git", 0..35).await.expect("dead letters");
    let console = Served::start(&fleet).await;
    let cookie = opened_session(&console.get("/", None).await);
    let page = async |n: usize| {
        let answer = console.get(&format!("/dead-letters?app=git&page={n}"), Some(&cookie)).await;
        assert_eq!(answer.status(), StatusCode::OK);
        answer.text().await.expect("html")
    };

    let first = page(1).await;
    assert!(first.contains("35 dead letter(s)") && first.contains("page 1 of 4"), "{first}");
    assert_eq!(ids(&first), (0..10).map(|n| format!("dead-{n:06}")).collect::<Vec<_>>());
    assert!(!first.contains("listing read at"), "the first page is read live: {first}");
    for (n, from) in [(3, 20), (2, 10), (4, 30), (1, 0)] {
        let held = page(n).await;
        assert!(held.contains("listing read at"), "page {n} from the held view: {held}");
        let to = (from + 10).min(35);
        assert_eq!(ids(&held), (from..to).map(|n| format!("dead-{n:06}")).collect::<Vec<_>>(), "page {n}");
    }

    // A new dead letter changes the depth: the page comes from the listing
    // as read and says so, and the queue is read again behind it.
    fleet.dead_letter("git", 35..36).await.expect("a dead letter");
    let stale = page(4).await;
    assert!(stale.contains("35 dead letter(s)") && stale.contains("the queue holds 36 now"), "{stale}");
    assert_eq!(ids(&stale), (30..35).map(|n| format!("dead-{n:06}")).collect::<Vec<_>>());
    let fourth = page(4).await;
    assert!(fourth.contains("36 dead letter(s)") && fourth.contains("the depth unchanged since"), "{fourth}");
    assert_eq!(ids(&fourth), (30..36).map(|n| format!("dead-{n:06}")).collect::<Vec<_>>());

    // A purge from this console drops the view: the next deep page reads
    // the queue again.
    let csrf = crate::console::csrf_of(&page(1).await);
    let purged = console
        .post(
            "/dead-letters/purge",
            Some(&cookie),
            &[("csrf", &csrf), ("app", "git"), ("id", "dead-000000"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(purged.status(), StatusCode::SEE_OTHER);
    let second = page(2).await;
    assert!(second.contains("35 dead letter(s)") && !second.contains("listing read at"), "{second}");
    assert_eq!(ids(&second), (11..21).map(|n| format!("dead-{n:06}")).collect::<Vec<_>>());

    // The fleet page reads a long queue ahead: on a console holding nothing,
    // the deep page that follows it comes from a view.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let fresh = Served::start_on(listener, fleet.config.clone()).await;
    let cookie = opened_session(&fresh.get("/", None).await);
    fresh.until_fleet_shows(&cookie, "href=\"/dead-letters?app=git\">3").await;
    let deep = fresh.get("/dead-letters?app=git&page=3", Some(&cookie)).await.text().await.expect("html");
    assert!(deep.contains("listing read at"), "read ahead by the fleet page: {deep}");
    assert_eq!(ids(&deep), (21..31).map(|n| format!("dead-{n:06}")).collect::<Vec<_>>());
    fresh.stop.cancel();
    console.stop.cancel();
    fleet.stop().await.expect("clean stop");
}
