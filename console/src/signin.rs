//! `GET /signin`, `POST /signin`, `POST /signout`: the static admin's
//! sign-in (`console.auth = "static"`).
//!
//! A failed sign-in says only that it failed, and is logged without what
//! was typed. Signing in and out is audited (`signed_in`, `signed_out`).

use axum::Form;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use scimfleet_runtime::config::ConsoleAuth;
use serde::Deserialize;

use scimfleet_schemas::audit::{AuditEntry, AuditKind};

use crate::audited;
use crate::page::{csrf_field, esc, frame};
use crate::session::Role;
use crate::{Shared, Signed, refused};

/// The sign-in form's fields.
#[derive(Deserialize)]
pub(crate) struct Credentials {
    #[serde(default)]
    credential: String,
}

pub(crate) async fn form(State(console): Shared) -> Response {
    match console.config.console.auth {
        ConsoleAuth::None => Redirect::to("/").into_response(),
        ConsoleAuth::Oidc => {
            crate::oidc::page(console.config.console.oidc.as_ref().map_or("", |o| o.issuer.as_str()))
                .into_response()
        }
        ConsoleAuth::Static => sign_in_page(StatusCode::OK, None),
    }
}

pub(crate) async fn oidc_start(State(console): Shared) -> Response {
    match &console.oidc {
        Some(oidc) => crate::oidc::start(&console, oidc).await,
        None => refused(StatusCode::NOT_FOUND, "this console does not sign in with OpenID Connect"),
    }
}

fn sign_in_page(status: StatusCode, error: Option<&str>) -> Response {
    let error = error.map_or_else(String::new, |e| format!("<p class=\"error\">{}</p>", esc(e)));
    let body = format!(
        "{error}<form method=\"post\" action=\"/signin\"><label>Admin credential \
         <input type=\"password\" name=\"credential\" autocomplete=\"current-password\" required autofocus></label> \
         <button>Sign in</button></form>"
    );
    (status, Html(frame("Sign in", None, &body))).into_response()
}

pub(crate) async fn submit(State(console): Shared, Form(form): Form<Credentials>) -> Response {
    let Some(credential) = &console.credential else {
        return refused(StatusCode::NOT_FOUND, "this console has no sign-in (console.auth = \"none\")");
    };
    if !credential.matches(&form.credential) {
        tracing::warn!("console sign-in refused: wrong admin credential");
        return sign_in_page(StatusCode::UNAUTHORIZED, Some("That is not the admin credential."));
    }
    let name = &console.config.console.admin_name;
    let role = Role::Approver;
    if let Err(refusal) = audited::record(&console, audited::signed_in(name, role.as_str(), "static")).await {
        return refusal.into_response();
    }
    let (_, cookie) = console.sessions.open(name, role, chrono::Utc::now().timestamp());
    tracing::info!("console sign-in: the static admin");
    ([(header::SET_COOKIE, console.sessions.cookie_header(Some(&cookie)))], Redirect::to("/")).into_response()
}

/// The sign-out form's fields.
#[derive(Deserialize)]
pub(crate) struct Token {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn signout(State(console): Shared, signed: Signed, Form(form): Form<Token>) -> Response {
    if let Err(refusal) = signed.check_csrf(&console, &form.csrf) {
        return refusal.into_response();
    }
    let entry = AuditEntry::new(AuditKind::SignedOut, &signed.session.name);
    if let Err(refusal) = audited::record(&console, entry).await {
        return refusal.into_response();
    }
    let to = if console.config.console.auth == ConsoleAuth::None { "/" } else { "/signin" };
    ([(header::SET_COOKIE, console.sessions.cookie_header(None))], Redirect::to(to)).into_response()
}

/// A form posting to `action` with `csrf` and `fields` (already HTML), under a `button` label.
pub(crate) fn post_form(action: &str, csrf: &str, fields: &str, button: &str) -> String {
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{}\">{}{fields}<button>{}</button></form>",
        esc(action),
        csrf_field(csrf),
        esc(button)
    )
}
