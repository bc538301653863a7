//! `GET /approvals`: held high-risk grants and mass-deprovision waves
//! ([`scimfleet_admin::approvals::gather`]), with who asked, for whom and
//! why. Approvers decide from the page with their current TOTP code, as
//! the signed-in operator (their name in the approvers file): `POST
//! /approvals/{id}/approve` and `/reject`, `/waves/{id}/release` and
//! `/cancel` call `scimfleet approvals …`'s own functions, which check
//! the code, spend it and record the decision in the audit trail.
//!
//! Approvers and operators see the person's HR id (an approver must know
//! whom they let in); read-only users see the pseudonym logs and traces use.

use std::fmt::Write as _;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use scimfleet_admin::AdminError;
use scimfleet_admin::approvals::{self, Listing};
use scimfleet_runtime::Store;
use scimfleet_runtime::telemetry::Pseudonymizer;
use scimfleet_schemas::PersonId;
use serde::Deserialize;

use crate::fleet::{Notice, encode};
use crate::page::esc;
use crate::session::Role;
use crate::signin::post_form;
use crate::{Console, Refusal, Shared, Signed};

pub(crate) async fn page(State(console): Shared, signed: Signed, Query(notice): Query<Notice>) -> Response {
    let config = &console.config;
    let listed = async {
        let store = Store::connect(&config.redis, &config.namespace).await?;
        approvals::gather(&store).await
    };
    let listing = match listed.await {
        Ok(listing) => listing,
        Err(error) => {
            let message = format!("The approvals could not be read: {error}");
            return signed.failed(&console, StatusCode::SERVICE_UNAVAILABLE, "Approvals", &message);
        }
    };
    let pseudonyms = config.pseudonym_key().ok().map(|key| Pseudonymizer::new(&key));
    let mut body = notice.render();
    body.push_str(&render(&listing, &signed, pseudonyms.as_ref()));
    signed.page(&console, "Approvals", &body)
}

fn render(listing: &Listing, signed: &Signed, pseudonyms: Option<&Pseudonymizer>) -> String {
    let approver = signed.session.role >= Role::Approver;
    let named = signed.sees_hr_ids();
    let code = "<input type=\"text\" name=\"code\" inputmode=\"numeric\" pattern=\"[0-9]{6}\" \
                placeholder=\"TOTP code\" required size=\"8\" autocomplete=\"one-time-code\">";
    let reason = "<input type=\"text\" name=\"reason\" placeholder=\"why\" required maxlength=\"200\">";
    let mut html = format!("<h2>Held grants and deprovisions ({})</h2>", listing.held.len());
    html.push_str(
        "<table id=\"held\"><thead><tr><th>Id</th><th>Kind</th><th>App</th><th>Action</th><th>Person</th>\
         <th>Requested by</th><th>Why held</th><th>Approvals</th><th>Held at</th><th>Expires</th><th></th></tr>\
         </thead><tbody>",
    );
    for row in &listing.held {
        let person = if named {
            esc(&row.person)
        } else {
            PersonId::parse(&row.person)
                .ok()
                .zip(pseudonyms)
                .map_or_else(|| "(hidden)".to_owned(), |(p, pseudonyms)| esc(&pseudonyms.person(&p)))
        };
        let decide = if approver && row.kind == "grant" {
            let id = encode(&row.id);
            format!(
                "{} {}",
                post_form(&format!("/approvals/{id}/approve"), &signed.csrf, code, "Approve"),
                post_form(&format!("/approvals/{id}/reject"), &signed.csrf, reason, "Reject")
            )
        } else {
            String::new()
        };
        let _ = write!(
            html,
            "<tr id=\"held-{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{person}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{decide}</td></tr>",
            esc(&row.id),
            esc(&row.id),
            row.kind,
            esc(&row.app),
            row.action,
            esc(&row.actor),
            esc(&row.reasons.join("; ")),
            esc(&row.approvals.join(", ")),
            row.held_at.format("%Y-%m-%d %H:%M"),
            row.expires_at.map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M").to_string()),
        );
    }
    html.push_str("</tbody></table>");
    let _ = write!(html, "<h2>Mass-deprovision waves ({})</h2>", listing.waves.len());
    html.push_str(
        "<table id=\"waves\"><thead><tr><th>Id</th><th>Scope</th><th>State</th><th>Holds</th><th>Limit</th>\
         <th>Approvals</th><th>Opened</th><th></th></tr></thead><tbody>",
    );
    for wave in &listing.waves {
        let decide = if approver && wave.state == "open" {
            let id = encode(&wave.id);
            format!(
                "{} {}",
                post_form(&format!("/waves/{id}/release"), &signed.csrf, code, "Release"),
                post_form(&format!("/waves/{id}/cancel"), &signed.csrf, &format!("{code}{reason}"), "Cancel")
            )
        } else {
            String::new()
        };
        let _ = write!(
            html,
            "<tr id=\"wave-{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{} per {} s</td><td>{}</td>\
             <td>{}</td><td>{decide}</td></tr>",
            esc(&wave.id),
            esc(&wave.id),
            esc(&wave.scope),
            esc(&wave.state),
            wave.held,
            wave.limit,
            wave.window_s,
            esc(&wave.approvals.join(", ")),
            wave.opened_at.format("%Y-%m-%d %H:%M"),
        );
    }
    html.push_str("</tbody></table>");
    html
}

/// The decision forms' fields.
#[derive(Deserialize)]
pub(crate) struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    reason: String,
}

/// What is decided.
#[derive(Clone, Copy)]
enum Decide {
    Approve,
    Reject,
    Release,
    Cancel,
}

pub(crate) async fn approve(
    console: Shared,
    signed: Signed,
    id: Path<String>,
    form: Form<DecisionForm>,
) -> Response {
    decide(console, signed, id, form, Decide::Approve).await
}

pub(crate) async fn reject(
    console: Shared,
    signed: Signed,
    id: Path<String>,
    form: Form<DecisionForm>,
) -> Response {
    decide(console, signed, id, form, Decide::Reject).await
}

pub(crate) async fn release(
    console: Shared,
    signed: Signed,
    id: Path<String>,
    form: Form<DecisionForm>,
) -> Response {
    decide(console, signed, id, form, Decide::Release).await
}

pub(crate) async fn cancel(
    console: Shared,
    signed: Signed,
    id: Path<String>,
    form: Form<DecisionForm>,
) -> Response {
    decide(console, signed, id, form, Decide::Cancel).await
}

async fn decide(
    State(console): Shared,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
    what: Decide,
) -> Response {
    match run(&console, &signed, &id, &form, what).await {
        Ok(said) => Redirect::to(&format!("/approvals?notice={}", encode(&said))).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn run(
    console: &Console,
    signed: &Signed,
    id: &str,
    form: &DecisionForm,
    what: Decide,
) -> Result<String, Refusal> {
    signed.require(Role::Approver)?;
    signed.check_csrf(console, &form.csrf)?;
    let (config, name, mut out) = (&console.config, signed.session.name.as_str(), Vec::new());
    let (code, reason) = (form.code.trim(), form.reason.trim());
    if matches!(what, Decide::Reject | Decide::Cancel) && reason.is_empty() {
        let message = "say why, for the audit trail".to_owned();
        return Err(Refusal { status: StatusCode::BAD_REQUEST, message });
    }
    let done: Result<_, AdminError> = match what {
        Decide::Approve => approvals::approve(config, id, name, code, &mut out).await,
        Decide::Reject => approvals::reject(config, id, name, reason, &mut out).await,
        Decide::Release => approvals::release_wave(config, id, name, code, &mut out).await,
        Decide::Cancel => approvals::cancel_wave(config, id, name, code, reason, &mut out).await,
    };
    match done {
        Ok(_) => Ok(String::from_utf8_lossy(&out).trim().to_owned()),
        Err(error) => {
            let status = if matches!(error, AdminError::Refused(_)) {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::BAD_REQUEST
            };
            Err(Refusal { status, message: error.to_string() })
        }
    }
}
