//! `GET /`: the fleet, one row per app, from `scimfleet status`'s own
//! report ([`scimfleet_admin::status::gather`]); `POST /apps/{app}/pause`
//! and `/resume`: `scimfleet pause` / `resume` under the signed-in
//! operator's name (audited by them), then back to the fleet with what they said.

use std::fmt::Write as _;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use scimfleet_admin::pause::{self, Request};
use scimfleet_admin::status::{AppStatus, BreakerState, StatusReport, gather};
use serde::Deserialize;

use crate::page::esc;
use crate::session::Role;
use crate::signin::post_form;
use crate::sparkline::Activity;
use crate::{Shared, Signed, refused};

/// Most dead-letter queues the fleet page has read ahead at once.
const READ_AHEAD: usize = 4;

/// What a page shows at its top after an action: what the action said.
#[derive(Deserialize, Default)]
pub(crate) struct Notice {
    #[serde(default)]
    notice: Option<String>,
}

impl Notice {
    /// The notice as HTML, or nothing.
    pub(crate) fn render(&self) -> String {
        let notice = self.notice.as_deref().unwrap_or_default();
        if notice.is_empty() { String::new() } else { format!("<p class=\"notice\">{}</p>", esc(notice)) }
    }
}

pub(crate) async fn page(State(console): Shared, signed: Signed, Query(notice): Query<Notice>) -> Response {
    let report = match gather(&console.config, None).await {
        Ok(report) => report,
        Err(error) => {
            tracing::warn!(%error, "the console could not gather the fleet's status");
            let message = format!("The status could not be read: {error}");
            return signed.failed(&console, StatusCode::SERVICE_UNAVAILABLE, "Fleet", &message);
        }
    };
    // Queues longer than a page are read ahead, the longest first: their
    // deep pages are then ready when the operator opens them.
    let mut long: Vec<&AppStatus> =
        report.apps.iter().filter(|a| a.dlq > console.config.console.page_size as u64).collect();
    long.sort_by_key(|a| std::cmp::Reverse(a.dlq));
    for app in long.into_iter().take(READ_AHEAD) {
        console.views.warm(console.config.clone(), app.app.as_str());
    }
    let apps: Vec<&str> = report.apps.iter().map(|a| a.app.as_str()).collect();
    let activity = Activity::read(&console.config, &apps).await.unwrap_or_default();
    let mut body = notice.render();
    body.push_str(&render(&report, &activity, &signed));
    signed.page(&console, "Fleet", &body)
}

/// The fleet table, with each app's sparkline; pause and resume forms for operators.
pub fn render(report: &StatusReport, activity: &Activity, signed: &Signed) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<p class=\"muted\">Namespace {} · {} · queue figures from {:?}{}</p>",
        esc(&report.namespace),
        report.generated_at.format("%Y-%m-%d %H:%M:%SZ"),
        report.source,
        report.note.as_deref().map_or_else(String::new, |n| format!(" ({})", esc(n)))
    );
    let _ = write!(
        html,
        "<p>Events waiting {} · events dead-lettered <a href=\"/dead-letters?app=events\" class=\"{}\">{}</a> · grants held {} · \
         deprovisions held in waves {} · changes scheduled {}</p>",
        report.events.intake.ready,
        if report.events.dlq > 0 { "bad" } else { "ok" },
        report.events.dlq,
        report.approvals.held_grants,
        report.approvals.held_in_waves,
        report.scheduled.events
    );
    html.push_str(
        "<table id=\"apps\"><thead><tr><th>App</th><th>Last hour (done/failed)</th><th>Queued</th><th>Leavers queued</th><th>In flight</th>\
         <th>Retry backlog</th><th>Re-checks</th><th>Dead letters</th><th>Rate-limit waits (1 h)</th><th>Breaker</th><th>Unsupported</th>\
         <th>Last error</th><th>Paused</th></tr></thead><tbody>",
    );
    for app in &report.apps {
        row(&mut html, app, activity, signed);
    }
    html.push_str("</tbody></table>");
    html
}

fn row(html: &mut String, app: &AppStatus, activity: &Activity, signed: &Signed) {
    let in_flight = match (app.work.unacked, app.leavers.unacked) {
        (Some(work), Some(leavers)) => (work + leavers).to_string(),
        _ => "?".to_owned(),
    };
    let breaker = match app.breaker.state {
        BreakerState::Closed => "<span class=\"ok\">closed</span>".to_owned(),
        BreakerState::Open => format!("<span class=\"bad\">open ({})</span>", app.breaker.open_instances),
    };
    let last_error = app.last_error.as_ref().map_or_else(String::new, |e| {
        let status = e.status.map_or_else(String::new, |s| format!(" {s}"));
        format!("{} {}{status}: {}", e.at.format("%H:%M:%S"), esc(&e.reason), esc(&e.detail))
    });
    let id = app.app.as_str();
    let operator = signed.session.role >= Role::Operator;
    let paused = match (&app.paused, operator) {
        (Some(p), true) => format!(
            "<span class=\"bad\">by {} since {}: {}</span> {}",
            esc(&p.by),
            p.at.format("%Y-%m-%d %H:%M"),
            esc(&p.reason),
            post_form(&format!("/apps/{id}/resume"), &signed.csrf, "", "Resume")
        ),
        (Some(p), false) => format!(
            "<span class=\"bad\">by {} since {}: {}</span>",
            esc(&p.by),
            p.at.format("%Y-%m-%d %H:%M"),
            esc(&p.reason)
        ),
        (None, true) => post_form(
            &format!("/apps/{id}/pause"),
            &signed.csrf,
            "<input type=\"text\" name=\"reason\" placeholder=\"why (no personal data)\" required maxlength=\"200\">",
            "Pause",
        ),
        (None, false) => "no".to_owned(),
    };
    let dlq_class = if app.dlq > 0 { "n bad" } else { "n" };
    let sparkline = activity.svg(id);
    let waits = activity.waits(id).map_or_else(|| "?".to_owned(), |w| w.to_string());
    let _ = write!(
        html,
        "<tr id=\"app-{}\"><td>{}</td><td>{sparkline}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{in_flight}</td>\
         <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"{dlq_class}\"><a href=\"/dead-letters?app={}\">{}</a></td><td class=\"n\">{waits}</td><td>{breaker}</td><td>{}</td>\
         <td>{last_error}</td><td>{paused}</td></tr>",
        esc(id),
        esc(id),
        app.work.ready,
        app.leavers.ready,
        app.retry_backlog,
        app.rechecks_pending,
        esc(id),
        app.dlq,
        esc(&app.unsupported_attributes.join(", ")),
    );
}

/// The pause form's fields.
#[derive(Deserialize)]
pub(crate) struct PauseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub(crate) async fn pause(
    State(console): Shared,
    signed: Signed,
    Path(app): Path<String>,
    Form(form): Form<PauseForm>,
) -> Response {
    act(&console, &signed, &form.csrf, async |out: &mut Vec<u8>| {
        let request = Request { app: &app, operator: &signed.session.name, reason: &form.reason };
        pause::pause(&console.config, request, out).await
    })
    .await
}

pub(crate) async fn resume(
    State(console): Shared,
    signed: Signed,
    Path(app): Path<String>,
    Form(form): Form<PauseForm>,
) -> Response {
    act(&console, &signed, &form.csrf, async |out: &mut Vec<u8>| {
        let request = Request { app: &app, operator: &signed.session.name, reason: "" };
        pause::resume(&console.config, request, out).await
    })
    .await
}

/// Runs an operator action after the role and CSRF checks; back to the
/// fleet with what it said, or a refusal page with its error.
async fn act(
    console: &crate::Console,
    signed: &Signed,
    csrf: &str,
    action: impl AsyncFnOnce(&mut Vec<u8>) -> Result<(), scimfleet_admin::AdminError>,
) -> Response {
    if let Err(refusal) = signed.require(Role::Operator).and_then(|()| signed.check_csrf(console, csrf)) {
        return refusal.into_response();
    }
    let mut out = Vec::new();
    match action(&mut out).await {
        Ok(()) => {
            let said = String::from_utf8_lossy(&out).trim().to_owned();
            Redirect::to(&format!("/?notice={}", encode(&said))).into_response()
        }
        Err(error) => refused(StatusCode::BAD_REQUEST, &error.to_string()),
    }
}

/// `text` percent-encoded for a query value.
pub(crate) fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
