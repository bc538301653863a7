//! devkit's `Browser` drives a real headless Chromium: a page served here is
//! loaded, a form is filled and submitted, the page the server answers is
//! read back and a screenshot is saved. Needs `make browser`.

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use scimfleet_devkit::browser::Browser;
use scimfleet_devkit::browser::fantoccini::Locator;

/// The first bytes of every PNG file.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

const FORM: &str = r#"<!doctype html>
<title>form</title>
<form id="greet" method="post" action="/greet">
  <input name="who" type="text">
  <button type="submit">Greet</button>
</form>"#;

/// The form's answer, naming what was posted (`who=...`, URL-encoded).
async fn greet(body: String) -> Html<String> {
    let who = url::form_urlencoded::parse(body.as_bytes())
        .find(|(key, _)| key == "who")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    // Escaped: the value is put into HTML.
    let who = who.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    Html(format!(r#"<!doctype html><title>greeted</title><p id="greeting">Hello, {who}!</p>"#))
}

#[tokio::test]
async fn chromium_submits_a_form_reads_the_answer_and_takes_a_screenshot() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let address = listener.local_addr().expect("the listener's address");
    let app =
        Router::new().route("/", get(|| async { Html(FORM) })).route("/greet", axum::routing::post(greet));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let browser = Browser::start().await.expect("a headless Chromium (run `make browser`)");
    let client = browser.client();
    client.goto(&format!("http://{address}/")).await.expect("the form page loads");
    let input = client.find(Locator::Css("form#greet input[name=who]")).await.expect("the form's input");
    input.send_keys("widget <42>").await.expect("typing into the input");
    client
        .find(Locator::Css("form#greet button[type=submit]"))
        .await
        .expect("the submit button")
        .click()
        .await
        .expect("clicking submit");

    // The answer is a new page: wait for its element rather than for a time.
    let greeting = client.wait().for_element(Locator::Css("#greeting")).await.expect("the answer page");
    assert_eq!(greeting.text().await.expect("the greeting's text"), "Hello, widget <42>!");
    assert_eq!(client.current_url().await.expect("the URL").path(), "/greet");

    let path = browser.screenshot("devkit-browser-form").await.expect("a screenshot");
    let png = std::fs::read(&path).expect("the screenshot file");
    assert!(png.starts_with(PNG_SIGNATURE), "{} is not a PNG", path.display());
    browser.close().await;
}
