//! `GET /dead-letters?app=A&page=N`: one dead-letter queue, a page at a
//! time ([`scimfleet_admin::dlq::browse`], deep pages from a held view:
//! [`crate::views`]): why each message ended there,
//! the app's last status and error, attempts, and its trace (a link when
//! `console.trace_url` is set). `POST /dead-letters/replay` and `/purge`:
//! `scimfleet dlq replay` / `purge` of the ticked messages or of all,
//! under the signed-in operator's name (audited by them); a purge needs
//! its confirmation box ticked, there being no script to ask.

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use scimfleet_admin::dlq::{self, Batch, Listed, Selection};
use serde::Deserialize;

use crate::fleet::encode;
use crate::page::{csrf_field, esc};
use crate::session::Role;
use crate::{Console, Refusal, Shared, Signed};

/// Most dead letters one replay or purge reads from its queue (as the CLI's `--limit`).
const BATCH_LIMIT: usize = 10_000;

/// The page's query.
#[derive(Deserialize)]
pub(crate) struct Which {
    app: String,
    #[serde(default)]
    page: Option<usize>,
    #[serde(default)]
    notice: Option<String>,
}

pub(crate) async fn page(State(console): Shared, signed: Signed, Query(which): Query<Which>) -> Response {
    let size = console.config.console.page_size;
    let page = which.page.unwrap_or(1).max(1);
    let (listing, read_at) =
        match console.views.page(&console.config, &which.app, (page - 1) * size, size).await {
            Ok(page) => (page.listing, (page.read_at, page.changed_to)),
            Err(error) => {
                return signed.failed(&console, StatusCode::BAD_REQUEST, "Dead letters", &error.to_string());
            }
        };
    let (read_at, changed_to) = read_at;
    if page == 1 && read_at.is_none() && listing.total > size as u64 {
        console.views.warm(console.config.clone(), &which.app);
    }
    let app = esc(&which.app);
    let mut body = String::new();
    if let Some(notice) = which.notice.filter(|n| !n.is_empty()) {
        let _ = write!(body, "<p class=\"notice\">{}</p>", esc(&notice));
    }
    let pages = usize::try_from(listing.total).unwrap_or(usize::MAX).div_ceil(size).max(1);
    let _ = write!(
        body,
        "<p>{} dead letter(s) in <strong>{app}</strong> · page {page} of {pages}{}</p>",
        listing.total,
        match (read_at, changed_to) {
            (None, _) => String::new(),
            (Some(at), None) => format!(
                " <span class=\"muted\">(listing read at {}, the depth unchanged since)</span>",
                at.format("%H:%M:%S")
            ),
            (Some(at), Some(now)) => format!(
                " <span class=\"muted\">(listing read at {}; the queue holds {now} now and is being read again)</span>",
                at.format("%H:%M:%S")
            ),
        }
    );
    let operator = signed.session.role >= Role::Operator;
    if operator {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/dead-letters/replay\" id=\"selection\">{}\
             <input type=\"hidden\" name=\"app\" value=\"{app}\">",
            csrf_field(&signed.csrf)
        );
    }
    body.push_str(&table(&listing.rows, operator, &console.config.console.trace_url));
    if operator {
        body.push_str(
            "<p><button name=\"all\" value=\"\">Replay ticked</button> \
             <button formaction=\"/dead-letters/purge\">Purge ticked</button> \
             <button name=\"all\" value=\"yes\">Replay all</button> \
             <button formaction=\"/dead-letters/purge\" name=\"all\" value=\"yes\">Purge all</button> \
             <label><input type=\"checkbox\" name=\"confirm\" value=\"yes\"> I understand a purge deletes \
             these dead letters for good</label></p></form>",
        );
    }
    let link = |p: usize, label: &str| {
        format!("<a href=\"/dead-letters?app={}&amp;page={p}\">{label}</a>", encode(&which.app))
    };
    let mut nav = Vec::new();
    if page > 1 {
        nav.push(link(page - 1, "← newer"));
    }
    if page < pages {
        nav.push(link(page + 1, "older →"));
    }
    let _ = write!(body, "<p>{}</p>", nav.join(" · "));
    signed.page(&console, &format!("Dead letters · {}", which.app), &body)
}

fn table(rows: &[Listed], operator: bool, trace_url: &str) -> String {
    let mut html = String::from(
        "<table id=\"dead-letters\"><thead><tr><th></th><th>Id</th><th>Reason</th><th>Stage</th><th>Last status</th>\
         <th>Attempts</th><th>First attempt</th><th>Last attempt</th><th>Detail</th><th>Trace</th></tr></thead><tbody>",
    );
    for row in rows {
        let id = esc(&row.id);
        let tick = if operator {
            format!("<input type=\"checkbox\" name=\"id\" value=\"{id}\" aria-label=\"select {id}\">")
        } else {
            String::new()
        };
        let trace = match (&row.trace_id, trace_url.is_empty()) {
            (Some(t), false) => format!("<a href=\"{}\">{t}</a>", esc(&trace_url.replace("{trace_id}", t))),
            (Some(t), true) => t.clone(),
            (None, _) => String::new(),
        };
        let cells = row.envelope.as_ref().map_or_else(
            || "<td colspan=\"7\" class=\"muted\">no envelope (dead-lettered by the broker)</td>".to_owned(),
            |e| {
                format!(
                    "<td>{}</td><td>{:?}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td>",
                    esc(&serde_label(&e.reason)),
                    e.stage,
                    e.last_status.map_or_else(String::new, |s| s.to_string()),
                    e.attempts,
                    e.first_attempt_at.format("%Y-%m-%d %H:%M:%S"),
                    e.last_attempt_at.format("%Y-%m-%d %H:%M:%S"),
                    esc(&e.detail)
                )
            },
        );
        let _ = write!(html, "<tr id=\"dl-{id}\"><td>{tick}</td><td>{id}</td>{cells}<td>{trace}</td></tr>");
    }
    html.push_str("</tbody></table>");
    html
}

/// A reason as its wire label (`retries_exhausted`, ...).
fn serde_label(reason: &scimfleet_schemas::DeadLetterReason) -> String {
    serde_json::to_value(reason).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The replay and purge forms: urlencoded, `id` repeated once per ticked row.
struct Posted {
    csrf: String,
    app: String,
    ids: Vec<String>,
    all: bool,
    confirm: bool,
}

impl Posted {
    fn parse(body: &[u8]) -> Self {
        let mut posted =
            Self { csrf: String::new(), app: String::new(), ids: Vec::new(), all: false, confirm: false };
        for (name, value) in url::form_urlencoded::parse(body) {
            match name.as_ref() {
                "csrf" => posted.csrf = value.into_owned(),
                "app" => posted.app = value.into_owned(),
                "id" if !value.is_empty() => posted.ids.push(value.into_owned()),
                "all" => posted.all = value == "yes",
                "confirm" => posted.confirm = value == "yes",
                _ => {}
            }
        }
        posted
    }

    fn selection(&self) -> Result<Selection, Refusal> {
        if self.all {
            return Ok(Selection::All);
        }
        if self.ids.is_empty() {
            let message = "tick at least one dead letter, or use the \"all\" button".to_owned();
            return Err(Refusal { status: StatusCode::BAD_REQUEST, message });
        }
        Ok(Selection::Ids(self.ids.clone()))
    }
}

pub(crate) async fn replay(State(console): Shared, signed: Signed, body: Bytes) -> Response {
    settle(&console, &signed, &Posted::parse(&body), false).await.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn purge(State(console): Shared, signed: Signed, body: Bytes) -> Response {
    settle(&console, &signed, &Posted::parse(&body), true).await.unwrap_or_else(IntoResponse::into_response)
}

async fn settle(
    console: &Console,
    signed: &Signed,
    posted: &Posted,
    purge: bool,
) -> Result<Response, Refusal> {
    signed.require(Role::Operator)?;
    signed.check_csrf(console, &posted.csrf)?;
    let selection = posted.selection()?;
    if purge && !posted.confirm {
        let message = "a purge deletes dead letters for good: tick the confirmation box".to_owned();
        return Err(Refusal { status: StatusCode::BAD_REQUEST, message });
    }
    let batch =
        Batch { app: &posted.app, selection: &selection, limit: BATCH_LIMIT, operator: &signed.session.name };
    let mut out = Vec::new();
    let done = if purge {
        dlq::purge(&console.config, batch, &mut out).await
    } else {
        dlq::replay(&console.config, batch, &mut out).await
    };
    console.views.forget(&posted.app).await;
    done.map_err(|error| Refusal { status: StatusCode::BAD_REQUEST, message: error.to_string() })?;
    let said = String::from_utf8_lossy(&out).trim().to_owned();
    let to = format!("/dead-letters?app={}&notice={}", encode(&posted.app), encode(&said));
    Ok(Redirect::to(&to).into_response())
}
