//! The console in a real browser (Debian's headless Chromium over
//! WebDriver, `make browser`) against a running fleet on the real
//! services: the fleet page shows a dead-lettered job and replaying it
//! from its page converges it; an approval with a wrong TOTP code is
//! refused and one with the right code releases the held grant; the leaver
//! page shows a test leaver verified, and their evidence. A screenshot of
//! each page is saved under the test log directory (`screenshots/`).

use crate::common;

use std::time::Duration;

use common::Person;
use common::governance::{Approver, approvers_file};
use scimfleet_devkit::browser::Browser;
use scimfleet_devkit::browser::fantoccini::{Client, Locator};
use scimfleet_devkit::fleet::Fleet;
use scimfleet_devkit::wait;

use crate::console::Served;

const SETTLE: Duration = Duration::from_secs(60);

fn policy(approvers: &std::path::Path) -> String {
    format!(
        "[governance]\napprovers_file = \"{}\"\napprovals_required = 1\n\
         [worker]\nretry_tiers_ms = [50]\nmax_attempts = 1\n\
         [[apps]]\nid = \"git\"\nbase_url = \"https://set-by-fleet\"\ntoken_env = \"UNUSED\"\n\
         high_risk = {{ groups = [\"admins\"] }}\n\
         [[apps.groups]]\nname = \"admins\"\nhr_groups = [\"git-admins\"]\n\
         [[apps]]\nid = \"crm\"\nbase_url = \"https://set-by-fleet\"\ntoken_env = \"UNUSED\"\n",
        approvers.display()
    )
}

fn staff<'a>(id: &'a str, groups: &'a [&'a str]) -> Person<'a> {
    Person { id, department: "Ops", title: "Clerk", location: "Rome", groups }
}

async fn source(client: &Client) -> String {
    client.source().await.expect("the page's HTML")
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .expect("clicked");
}

async fn type_into(client: &Client, css: &str, text: &str) {
    let input = client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    input.send_keys(text).await.expect("typed");
}

/// Loads `path` until its HTML holds `wanted` (the management API's queue
/// figures are sampled every few seconds).
async fn goto_until(client: &Client, url: &str, wanted: &str) {
    let shown = wait::until(&format!("{url} to show {wanted}"), Duration::from_secs(30), async || {
        client.goto(url).await.expect("the page loads");
        source(client).await.contains(wanted)
    })
    .await;
    if let Err(e) = shown {
        panic!("{e}: {}", source(client).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_replays_a_dead_letter_releases_a_held_grant_and_shows_a_verified_leaver_in_chromium() {
    let file = approvers_file("browser");
    let admin = Approver::enroll(&file, "admin", None);
    let mut fleet = Fleet::start(&policy(&file)).await.expect("fleet starts");
    // A leaver, verified in both apps.
    let leaver = staff("E4401", &[]);
    fleet.publish_json(&[leaver.event("hire-1", "person.hired", 1)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("hired");
    fleet.publish_json(&[leaver.event("leave-1", "person.terminated", 2)]).await.expect("published");
    // An admin grant asked for without step-up: held for an approver.
    let admin_hire = staff("E4403", &["git-admins"]);
    let mut event = admin_hire.event("hire-3", "person.hired", 1);
    event["data"]["actor"] = serde_json::json!({ "id": "it-admin", "amr": ["pwd"] });
    fleet.publish_json(&[event]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    // A joiner while crm is down: dead-lettered there.
    let addr = fleet.stop_server("crm").await.expect("crm down");
    let joiner = staff("E4402", &[]);
    fleet.publish_json(&[joiner.event("hire-2", "person.hired", 1)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");

    let console = Served::start(&fleet).await;
    let browser = Browser::start().await.expect("a headless Chromium (run `make browser`)");
    let client = browser.client();
    let base = &console.base;

    // Fleet → crm's dead letters → replay the job once crm is back.
    goto_until(client, &format!("{base}/"), "href=\"/dead-letters?app=crm\">1</a>").await;
    browser.screenshot("console-fleet").await.expect("screenshot");
    click(client, "a[href='/dead-letters?app=crm']").await;
    let page = source(client).await;
    assert!(
        page.contains("1 dead letter(s) in <strong>crm</strong>") && page.contains("retries_exhausted"),
        "{page}"
    );
    browser.screenshot("console-dead-letters").await.expect("screenshot");
    fleet.restart_server("crm", addr).await.expect("crm back");
    click(client, "#dead-letters input[name=id]").await;
    click(client, "form#selection button[name=all][value='']").await;
    let notice = client.wait().for_element(Locator::Css("p.notice")).await.expect("what replay said");
    assert_eq!(notice.text().await.expect("text"), "1 replayed, 0 kept (unreadable)");
    wait::until("the replayed job to converge", SETTLE, async || {
        fleet.server("crm").user_by_user_name(&joiner.user_name()).is_some()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Approvals: a wrong code is refused, the right one releases the grant.
    client.goto(&format!("{base}/approvals")).await.expect("approvals");
    assert!(source(client).await.contains("<td>E4403</td>"), "the held grant is listed");
    browser.screenshot("console-approvals").await.expect("screenshot");
    type_into(client, "form[action$='/approve'] input[name=code]", &admin.wrong_code()).await;
    click(client, "form[action$='/approve'] button").await;
    let refusal = client.wait().for_element(Locator::Css("p.error")).await.expect("the refusal");
    assert!(refusal.text().await.expect("text").contains("code"), "a wrong code is refused");
    browser.screenshot("console-approval-refused").await.expect("screenshot");
    assert_eq!(fleet.store().held().count().await.expect("held"), 1, "still held");
    client.goto(&format!("{base}/approvals")).await.expect("approvals");
    type_into(client, "form[action$='/approve'] input[name=code]", &admin.code()).await;
    click(client, "form[action$='/approve'] button").await;
    let notice = client.wait().for_element(Locator::Css("p.notice")).await.expect("what approve said");
    assert!(notice.text().await.expect("text").contains("approved by admin"));
    wait::until("the released grant to apply", SETTLE, async || {
        let git = fleet.server("git");
        let Some(user) = git.user_by_user_name(&admin_hire.user_name()) else { return false };
        git.group_by_name("admins").is_some_and(|g| g.has_member(&user.id.unwrap_or_default()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Leavers: verified in both apps, with the evidence behind it.
    goto_until(client, &format!("{base}/leavers"), "1 verified in every app").await;
    let row = client.find(Locator::Css("#leavers tbody tr")).await.expect("the leaver's row");
    let text = row.text().await.expect("text");
    assert!(
        text.contains("E4401") && text.contains("crm: verified") && text.contains("git: verified"),
        "{text}"
    );
    browser.screenshot("console-leavers").await.expect("screenshot");
    click(client, "#leavers tbody tr a").await;
    let evidence = client.wait().for_element(Locator::Css("#evidence")).await.expect("the evidence table");
    assert!(evidence.text().await.expect("text").contains("verified"));
    browser.screenshot("console-leaver").await.expect("screenshot");

    browser.close().await;
    console.stop.cancel();
    fleet.stop().await.expect("clean stop");
}
