//! `GET /sweeps`: each app's latest sweep (periodic or on demand: orphans,
//! unknown accounts, drift, missing accounts, fixing jobs queued or held,
//! or why it failed), and the changes waiting for their effective date.
//! `POST /apps/{app}/sweep`: `scimfleet verify sweep --app A [--remediate]`
//! in the background (a sweep reads every account of the app, which can
//! take minutes); its record shows on the page when it ends. One sweep per
//! app at a time from this console.

use std::fmt::Write as _;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use scimfleet_admin::scheduled;
use scimfleet_admin::sweep::{self, Options};
use scimfleet_runtime::Store;
use scimfleet_runtime::store::SweepRecord;
use scimfleet_schemas::audit::{AuditEntry, AuditKind};
use serde::Deserialize;

use crate::fleet::{Notice, encode};
use crate::page::esc;
use crate::session::Role;
use crate::signin::post_form;
use crate::{Refusal, Shared, Signed};

pub(crate) async fn page(State(console): Shared, signed: Signed, Query(notice): Query<Notice>) -> Response {
    let config = &console.config;
    let read = async {
        let store = Store::connect(&config.redis, &config.namespace).await?;
        let sweeps = store.sweeps().latest().await?;
        let waiting = scheduled::gather(config, &store, None).await?;
        Ok::<_, scimfleet_admin::AdminError>((sweeps, waiting))
    };
    let (sweeps, waiting) = match read.await {
        Ok(read) => read,
        Err(error) => {
            return signed.failed(&console, StatusCode::SERVICE_UNAVAILABLE, "Sweeps", &error.to_string());
        }
    };
    let running = console.sweeping.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let operator = signed.session.role >= Role::Operator;
    let mut body = notice.render();
    body.push_str(
        "<table id=\"sweeps\"><thead><tr><th>App</th><th>Latest sweep</th><th>Seen</th><th>Ok</th><th>Orphan</th>\
         <th>Unknown</th><th>Drift</th><th>Missing</th><th>Fixes queued</th><th>Fixes held</th><th></th></tr></thead><tbody>",
    );
    for app in &console.config.apps {
        let id = app.id.as_str();
        let record = sweeps.iter().find(|r| r.app == app.id);
        let actions = if running.contains(id) {
            "<span class=\"muted\">sweeping…</span>".to_owned()
        } else if operator {
            let action = format!("/apps/{}/sweep", encode(id));
            format!(
                "{} {}",
                post_form(&action, &signed.csrf, "", "Sweep"),
                post_form(
                    &action,
                    &signed.csrf,
                    "<input type=\"hidden\" name=\"remediate\" value=\"yes\">",
                    "Sweep and fix"
                )
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            "<tr id=\"sweep-{}\"><td>{}</td>{}<td>{actions}</td></tr>",
            esc(id),
            esc(id),
            cells(record)
        );
    }
    body.push_str("</tbody></table>");
    let _ = write!(body, "<h2>Scheduled changes ({})</h2>", waiting.len());
    body.push_str(
        "<table id=\"scheduled\"><thead><tr><th>Event</th><th>Type</th><th>Person</th><th>Sequence</th>\
         <th>Takes effect</th><th>Received</th></tr></thead><tbody>",
    );
    for row in &waiting {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&row.id),
            esc(&row.kind),
            esc(&row.person),
            row.sequence,
            row.effective_at.format("%Y-%m-%d %H:%M:%SZ"),
            row.scheduled_at.format("%Y-%m-%d %H:%M:%SZ"),
        );
    }
    body.push_str("</tbody></table>");
    signed.page(&console, "Sweeps and scheduled changes", &body)
}

fn cells(record: Option<&SweepRecord>) -> String {
    let Some(r) = record else { return "<td class=\"muted\" colspan=\"9\">never swept</td>".to_owned() };
    let when = format!(
        "{} ({}{})",
        r.finished_at.format("%Y-%m-%d %H:%M:%SZ"),
        esc(&r.trigger),
        if r.remediate { ", fixing" } else { "" }
    );
    if let Some(error) = &r.error {
        return format!("<td>{when}</td><td colspan=\"8\" class=\"bad\">failed: {}</td>", esc(error));
    }
    let n = |v: u64, alarm: bool| {
        let class = if alarm && v > 0 { "n bad" } else { "n" };
        format!("<td class=\"{class}\">{v}</td>")
    };
    format!(
        "<td>{when}</td>{}{}{}{}{}{}{}{}",
        n(r.counts.seen, false),
        n(r.counts.ok, false),
        n(r.counts.orphan, true),
        n(r.counts.unknown, true),
        n(r.counts.drift, true),
        n(r.counts.missing, true),
        n(r.counts.remediations, false),
        n(r.counts.held, true)
    )
}

/// The sweep form's fields.
#[derive(Deserialize)]
pub(crate) struct SweepForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    remediate: Option<String>,
}

pub(crate) async fn start(
    State(console): Shared,
    signed: Signed,
    Path(app): Path<String>,
    Form(form): Form<SweepForm>,
) -> Response {
    let checked = signed.require(Role::Operator).and_then(|()| signed.check_csrf(&console, &form.csrf));
    if let Err(refusal) = checked {
        return refusal.into_response();
    }
    if console.config.app(&app).is_none() {
        let message = format!("app `{app}` is not in the configuration");
        return Refusal { status: StatusCode::BAD_REQUEST, message }.into_response();
    }
    let started =
        console.sweeping.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(app.clone());
    if !started {
        return Redirect::to(&format!("/sweeps?notice={}", encode(&format!("{app} is being swept already"))))
            .into_response();
    }
    let remediate = form.remediate.as_deref() == Some("yes");
    let entry = AuditEntry::new(AuditKind::SweepStarted, &signed.session.name)
        .app(app.as_str())
        .detail("remediate", remediate);
    if let Err(refusal) = crate::audited::record(&console, entry).await {
        console.sweeping.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&app);
        return refusal.into_response();
    }
    let (config, sweeping, id) = (console.config.clone(), console.clone(), app.clone());
    tokio::spawn(async move {
        let options = Options { app: Some(id.clone()), remediate, json: None };
        // The page shows the sweep's record; the table it writes is not needed.
        if let Err(error) = sweep::run(&config, &options, &mut std::io::sink()).await {
            tracing::warn!(scimfleet.app = %id, %error, "a sweep started from the console failed");
        }
        sweeping.sweeping.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
    });
    let said = format!(
        "sweep of {app} started{}; its result shows here when it ends",
        if remediate { " (fixing)" } else { "" }
    );
    Redirect::to(&format!("/sweeps?notice={}", encode(&said))).into_response()
}
