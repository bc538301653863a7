//! HTML of the console: escaping, the page frame, the style sheet, and the
//! security headers every answer carries.
//!
//! Pages are built as strings; every value that did not come from this
//! file goes through [`esc`]. There is no script at all, so the
//! Content-Security-Policy allows none, and styles come only from
//! `/console.css` (no inline `style`).

use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::session::Session;

/// The Content-Security-Policy of every answer.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// The console's style sheet, served at `/console.css`.
pub const CSS: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}\
header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}\
header a{color:#cfe0ff;text-decoration:none}header .who{margin-left:auto;display:flex;gap:.8em;align-items:center}\
main{padding:1em 1.2em}table{border-collapse:collapse;background:#fff;width:100%}\
th,td{border-bottom:1px solid #e2e5ea;padding:.35em .5em;text-align:left;vertical-align:top}\
th{background:#eef0f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}svg.spark{vertical-align:middle}\
.bad{color:#b00020;font-weight:600}.ok{color:#17703a}.muted{color:#667}\
.notice{background:#e7f3ea;border:1px solid #9bc7a7;padding:.5em .8em;margin-bottom:1em}\
.error{background:#fbe9ec;border:1px solid #e3a1ad;padding:.5em .8em;margin-bottom:1em}\
form.inline{display:inline-flex;gap:.3em;margin:0}input[type=text],input[type=password]{padding:.2em .4em}\
button{padding:.2em .7em;cursor:pointer}";

/// Escapes `text` for HTML text and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: the frame with the navigation, who is signed in (and a
/// sign-out form carrying `csrf`), then `body`.
pub fn frame(title: &str, who: Option<(&Session, &str)>, body: &str) -> String {
    let signed_in = who.map_or_else(String::new, |(session, csrf)| {
        format!(
            "<span class=\"who\"><span>{} ({})</span>\
             <form class=\"inline\" method=\"post\" action=\"/signout\">{}<button>Sign out</button></form></span>",
            esc(&session.name),
            session.role.as_str(),
            csrf_field(csrf)
        )
    });
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · scimfleet</title>\
         <link rel=\"stylesheet\" href=\"/console.css\"></head><body><header><strong>scimfleet</strong>\
         <a href=\"/\">Fleet</a><a href=\"/leavers\">Leavers</a><a href=\"/approvals\">Approvals</a><a href=\"/sweeps\">Sweeps</a>{signed_in}</header><main><h1>{}</h1>{body}</main></body></html>",
        esc(title),
        esc(title)
    )
}

/// The hidden field carrying a form's CSRF token.
pub fn csrf_field(csrf: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(csrf))
}

/// Adds how long the console took to answer as `Server-Timing: app;dur=ms`
/// (W3C Server Timing): what `make bench` measures each page by, and what a
/// browser's developer tools show.
pub async fn timed(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let value = format!("app;dur={:.1}", started.elapsed().as_secs_f64() * 1000.0);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert("server-timing", value);
    }
    response
}

/// Adds the security headers to every answer.
pub async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn markup_in_values_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
