//! `GET /leavers`: the leaver report ([`scimfleet_admin::evidence::leavers`],
//! the same lines as `scimfleet report leavers`): per person who left, each
//! app's deprovision as verified, pending or failed, and the time from the
//! HR event to verified. `GET /leavers/{pseudonym}`: one person's evidence
//! per app and their audit trail; `GET /leavers/{pseudonym}/evidence`: their
//! evidence as a signed export (`scimfleet evidence export --person`).
//!
//! People are addressed by pseudonym, the one logs and traces carry.
//! Operators and approvers also see HR ids and may look a person up by HR
//! id (`POST /leavers/find`); read-only users do neither, and may not
//! download an export (it names the person).

use std::fmt::Write as _;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use scimfleet_admin::evidence::{self, LeaverLine};
use scimfleet_runtime::telemetry::Pseudonymizer;
use scimfleet_schemas::audit::{AuditEntry, AuditKind};
use scimfleet_schemas::{EvidenceRecord, EvidenceStatus, PersonId};
use serde::Deserialize;
use serde_json::Value;

use crate::page::{csrf_field, esc};
use crate::session::Role;
use crate::{Console, Refusal, Shared, Signed};

/// The report's query.
#[derive(Deserialize)]
pub(crate) struct Paging {
    #[serde(default)]
    page: Option<usize>,
}

fn pseudonymizer(console: &Console) -> Result<Pseudonymizer, Refusal> {
    let key = console.config.pseudonym_key().map_err(|e| Refusal {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: format!("people cannot be named without the pseudonym key: {e}"),
    })?;
    Ok(Pseudonymizer::new(&key))
}

fn status_cell(status: EvidenceStatus, took_ms: Option<i64>) -> String {
    let (class, label) = match status {
        EvidenceStatus::Verified => ("ok", "verified"),
        EvidenceStatus::Failed => ("bad", "failed"),
        _ => ("muted", "pending"),
    };
    let took = took_ms.map_or_else(String::new, |ms| format!(" in {:.1} s", ms as f64 / 1000.0));
    format!("<span class=\"{class}\">{label}{took}</span>")
}

pub(crate) async fn report(State(console): Shared, signed: Signed, Query(paging): Query<Paging>) -> Response {
    let lines = match evidence::leavers(&console.config, None).await {
        Ok(lines) => lines,
        Err(error) => {
            return signed.failed(&console, StatusCode::SERVICE_UNAVAILABLE, "Leavers", &error.to_string());
        }
    };
    let pseudonyms = match pseudonymizer(&console) {
        Ok(p) => p,
        Err(refusal) => return refusal.into_response(),
    };
    let size = console.config.console.page_size;
    let pages = lines.len().div_ceil(size).max(1);
    let page = paging.page.unwrap_or(1).clamp(1, pages);
    let verified =
        lines.iter().filter(|l| l.apps.values().all(|(s, _)| *s == EvidenceStatus::Verified)).count();
    let label = if signed.sees_hr_ids() { "Pseudonym or HR id" } else { "Pseudonym" };
    let mut body = format!(
        "<form method=\"post\" action=\"/leavers/find\">{}<label>{label} \
         <input type=\"text\" name=\"person\" required maxlength=\"256\" autocomplete=\"off\"></label> \
         <button>Show</button></form>\
         <p>{} leaver(s), {verified} verified in every app · page {page} of {pages}</p>\
         <table id=\"leavers\"><thead><tr><th>Person</th><th>Event time</th><th>Apps</th></tr></thead><tbody>",
        csrf_field(&signed.csrf),
        lines.len()
    );
    for line in lines.iter().skip((page - 1) * size).take(size) {
        row(&mut body, line, &signed, &pseudonyms);
    }
    body.push_str("</tbody></table><p>");
    if page > 1 {
        let _ = write!(body, "<a href=\"/leavers?page={}\">← earlier</a> ", page - 1);
    }
    if page < pages {
        let _ = write!(body, "<a href=\"/leavers?page={}\">later →</a>", page + 1);
    }
    body.push_str("</p>");
    signed.page(&console, "Leavers", &body)
}

fn row(html: &mut String, line: &LeaverLine, signed: &Signed, pseudonyms: &Pseudonymizer) {
    let pseudonym = pseudonyms.person(&line.person);
    let shown = if signed.sees_hr_ids() { line.person.to_string() } else { pseudonym.clone() };
    let apps: Vec<String> = line
        .apps
        .iter()
        .map(|(app, (status, took))| format!("{}: {}", esc(app.as_str()), status_cell(*status, *took)))
        .collect();
    let _ = write!(
        html,
        "<tr id=\"leaver-{p}\"><td><a href=\"/leavers/{p}\">{}</a></td><td>{}</td><td>{}</td></tr>",
        esc(&shown),
        line.event_time.format("%Y-%m-%d %H:%M:%S"),
        apps.join(" · "),
        p = esc(&pseudonym),
    );
}

/// The lookup form's fields.
#[derive(Deserialize)]
pub(crate) struct Lookup {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    person: String,
}

/// `POST /leavers/find`: to a person's page by pseudonym, or by HR id for
/// the roles that see HR ids. A form post, not a query, so the HR id stays
/// out of URLs (history, proxies' logs); the answer names only the pseudonym.
pub(crate) async fn find_person(
    State(console): Shared,
    signed: Signed,
    Form(form): Form<Lookup>,
) -> Response {
    if let Err(refusal) = signed.check_csrf(&console, &form.csrf) {
        return refusal.into_response();
    }
    let wanted = form.person.trim();
    let is_pseudonym = wanted.len() == 18
        && wanted.starts_with("p-")
        && wanted[2..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    let pseudonym = if is_pseudonym {
        wanted.to_owned()
    } else if !signed.sees_hr_ids() {
        return Refusal {
            status: StatusCode::FORBIDDEN,
            message: "read-only users look people up by pseudonym".to_owned(),
        }
        .into_response();
    } else {
        let pseudonyms = match pseudonymizer(&console) {
            Ok(p) => p,
            Err(refusal) => return refusal.into_response(),
        };
        match PersonId::parse(wanted) {
            Ok(person) => pseudonyms.person(&person),
            Err(_) => {
                let message = "that is neither a pseudonym (p- and 16 hex digits) nor an HR id".to_owned();
                return Refusal { status: StatusCode::BAD_REQUEST, message }.into_response();
            }
        }
    };
    Redirect::to(&format!("/leavers/{pseudonym}")).into_response()
}

/// The leaver whose pseudonym is `pseudonym`, and their evidence records.
async fn find(console: &Console, pseudonym: &str) -> Result<(PersonId, Vec<EvidenceRecord>), Refusal> {
    let pseudonyms = pseudonymizer(console)?;
    evidence::records_by_pseudonym(&console.config, &pseudonyms, pseudonym)
        .await
        .map_err(|e| Refusal { status: StatusCode::SERVICE_UNAVAILABLE, message: e.to_string() })?
        .ok_or_else(|| Refusal {
            status: StatusCode::NOT_FOUND,
            message: format!("no leaver with pseudonym {pseudonym}"),
        })
}

pub(crate) async fn person(
    State(console): Shared,
    signed: Signed,
    Path(pseudonym): Path<String>,
) -> Response {
    let (person, records) = match find(&console, &pseudonym).await {
        Ok(found) => found,
        Err(refusal) => return refusal.into_response(),
    };
    let failed = |error: scimfleet_admin::AdminError| {
        signed.failed(&console, StatusCode::SERVICE_UNAVAILABLE, "Leaver", &error.to_string())
    };
    let mut trail = Vec::new();
    let exported =
        scimfleet_admin::audit::export(&console.config, None, Some(person.as_str()), None, &mut trail);
    if let Err(error) = exported.await {
        return failed(error);
    }
    let shown = if signed.sees_hr_ids() { format!("{person} ({pseudonym})") } else { pseudonym.clone() };
    let mut body = format!("<p>Person <strong>{}</strong></p>", esc(&shown));
    if signed.sees_hr_ids() {
        let _ = write!(
            body,
            "<p><a href=\"/leavers/{}/evidence\">Download the signed evidence export</a></p>",
            esc(&pseudonym)
        );
    }
    body.push_str(
        "<h2>Evidence</h2><table id=\"evidence\"><thead><tr><th>App</th><th>Sequence</th><th>Status</th>\
         <th>Event</th><th>Applied</th><th>First verification</th><th>Last re-check</th><th>Failures</th>\
         <th>Signed by key</th></tr></thead><tbody>",
    );
    evidence_rows(&mut body, &records);
    body.push_str(
        "</tbody></table><h2>Audit trail</h2><table id=\"audit\"><thead><tr><th>Seq</th><th>At</th>\
                   <th>Kind</th><th>Actor</th><th>App</th><th>Detail</th></tr></thead><tbody>",
    );
    for line in String::from_utf8_lossy(&trail).lines() {
        let Ok(record) = serde_json::from_str::<Value>(line) else { continue };
        let text = |name: &str| {
            record
                .get(name)
                .map_or_else(String::new, |v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        };
        let _ = write!(
            body,
            "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&text("seq")),
            esc(&text("at")),
            esc(&text("kind")),
            esc(&text("actor")),
            esc(&text("app")),
            esc(&text("detail")),
        );
    }
    body.push_str("</tbody></table>");
    signed.page(&console, "Leaver", &body)
}

/// One row per evidence record: where the deprovision stands in its app.
fn evidence_rows(body: &mut String, records: &[scimfleet_schemas::EvidenceRecord]) {
    for record in records {
        let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        };
        let check = |c: &Option<scimfleet_schemas::Check>| {
            c.as_ref().map_or_else(String::new, |c| {
                format!("{} {}", time(Some(c.at)), if c.verified { "verified" } else { "not verified" })
            })
        };
        let took = record.verified_at().map(|at| (at - record.event_time).num_milliseconds());
        let _ = write!(
            body,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"n\">{}</td><td>{}</td></tr>",
            esc(record.app.as_str()),
            record.sequence,
            status_cell(record.status(), took),
            time(Some(record.event_time)),
            time(record.applied_at),
            check(&record.first_verification),
            check(&record.last_recheck),
            record.failures,
            esc(record.key_id.as_deref().unwrap_or("unsigned")),
        );
    }
}

pub(crate) async fn export(
    State(console): Shared,
    signed: Signed,
    Path(pseudonym): Path<String>,
) -> Response {
    let result = async {
        signed.require(Role::Operator)?;
        let (person, _) = find(&console, &pseudonym).await?;
        let failed = |e: scimfleet_admin::AdminError| Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: e.to_string(),
        };
        let key = evidence::export_key(&console.config, None).map_err(failed)?;
        let mut out = Vec::new();
        evidence::export(&console.config, None, Some(person.as_str()), key, None, &mut out)
            .await
            .map_err(failed)?;
        let entry = AuditEntry::new(AuditKind::EvidenceExported, &signed.session.name)
            .person(pseudonym.as_str())
            .detail("bytes", out.len());
        crate::audited::record(&console, entry).await?;
        Ok::<_, Refusal>(out)
    };
    match result.await {
        Ok(out) => {
            let disposition = format!("attachment; filename=\"evidence-{pseudonym}.jsonl\"");
            (
                [
                    (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                out,
            )
                .into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}
