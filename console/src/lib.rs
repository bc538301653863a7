#![doc = include_str!("../README.md")]

pub mod approvals;
mod audited;
pub mod dead_letters;
pub mod fleet;
pub mod leavers;
pub mod oidc;
pub mod page;
pub mod session;
mod signin;
pub mod sparkline;
pub mod sweeps;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use scimfleet_runtime::Config;
use scimfleet_runtime::config::{ConsoleAuth, MIN_CREDENTIAL_CHARS};
use tokio_util::sync::CancellationToken;

use crate::session::{COOKIE, Credential, Role, Session, Sessions, cookie_value};

/// Why the console did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// `console.listen` is `off`.
    #[error("console.listen is off: set host:port to serve the console")]
    Off,
    /// The credential file is missing, unreadable or too short.
    #[error("console.credential_file: {0}")]
    Credential(String),
    /// The session key file is unreadable or too short.
    #[error("console.session_key_file: {0}")]
    SessionKey(String),
    /// The OpenID Connect client could not be set up.
    #[error("{0}")]
    Oidc(String),
    /// The listener could not be bound or failed.
    #[error("console.listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// What every handler shares.
#[derive(Debug)]
pub struct Console {
    config: Arc<Config>,
    sessions: Sessions,
    /// The static admin's credential (`auth = "static"`).
    credential: Option<Credential>,
    /// The OpenID Connect client (`auth = "oidc"`).
    oidc: Option<oidc::Oidc>,
    /// Apps a sweep started from this console is running for.
    sweeping: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Dead-letter queues read whole for paging.
    views: views::Views,
}

impl Console {
    /// The console of `config`: reads the admin credential when signing in needs one.
    pub fn new(config: Arc<Config>) -> Result<Self, ConsoleError> {
        let credential = match config.console.auth {
            ConsoleAuth::None | ConsoleAuth::Oidc => None,
            ConsoleAuth::Static => Some(read_credential(&config)?),
        };
        let oidc = match (config.console.auth, &config.console.oidc) {
            (ConsoleAuth::Oidc, Some(settings)) => {
                let secret = settings
                    .client_secret_file
                    .as_ref()
                    .map(|file| {
                        let path = config.base_dir.join(file);
                        std::fs::read_to_string(&path)
                            .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
                            .map_err(|e| {
                                ConsoleError::Oidc(format!(
                                    "console.oidc.client_secret_file: cannot read {}: {e}",
                                    path.display()
                                ))
                            })
                    })
                    .transpose()?;
                let client = oidc::Oidc::new(settings.clone(), secret)
                    .map_err(|e| ConsoleError::Oidc(format!("console.oidc: {e}")))?;
                Some(client)
            }
            _ => None,
        };
        let sessions = match config.console.session_key_path(&config.base_dir) {
            Some(path) => Sessions::keyed(
                &read_secret(&path).map_err(ConsoleError::SessionKey)?,
                config.console.session_ttl,
            ),
            None => Sessions::new(config.console.session_ttl),
        };
        Ok(Self {
            config,
            sessions,
            credential,
            oidc,
            sweeping: std::sync::Mutex::default(),
            views: views::Views::default(),
        })
    }
}

fn read_credential(config: &Config) -> Result<Credential, ConsoleError> {
    let path = config
        .console
        .credential_path(&config.base_dir)
        .ok_or_else(|| ConsoleError::Credential("not set".to_owned()))?;
    Ok(Credential::new(&read_secret(&path).map_err(ConsoleError::Credential)?))
}

/// The one line of at least [`MIN_CREDENTIAL_CHARS`] characters in `path`.
/// An error names the file, never what it holds.
fn read_secret(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.chars().count() < MIN_CREDENTIAL_CHARS || text.contains('\n') {
        return Err(format!(
            "{} must hold one line of at least {MIN_CREDENTIAL_CHARS} characters",
            path.display()
        ));
    }
    Ok(text.to_owned())
}

/// Serves the console on `console.listen` until `stop`.
pub async fn run(config: Arc<Config>, stop: CancellationToken) -> Result<(), ConsoleError> {
    let address = config.console.listen.ok_or(ConsoleError::Off)?;
    let console = Console::new(config)?;
    let listener = tokio::net::TcpListener::bind(address).await?;
    serve(listener, console, stop).await
}

/// Serves `console` on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    console: Console,
    stop: CancellationToken,
) -> Result<(), ConsoleError> {
    let bound: SocketAddr = listener.local_addr()?;
    tracing::info!(server.address = %bound, "serving the console on http://{bound}");
    axum::serve(listener, router(Arc::new(console))).with_graceful_shutdown(stop.cancelled_owned()).await?;
    tracing::info!("console stopped");
    Ok(())
}

/// Every route of the console.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(fleet::page))
        .route("/apps/{app}/pause", post(fleet::pause))
        .route("/apps/{app}/resume", post(fleet::resume))
        .route("/dead-letters", get(dead_letters::page))
        .route("/dead-letters/replay", post(dead_letters::replay))
        .route("/dead-letters/purge", post(dead_letters::purge))
        .route("/leavers", get(leavers::report))
        .route("/leavers/find", post(leavers::find_person))
        .route("/leavers/{pseudonym}", get(leavers::person))
        .route("/leavers/{pseudonym}/evidence", get(leavers::export))
        .route("/sweeps", get(sweeps::page))
        .route("/apps/{app}/sweep", post(sweeps::start))
        .route("/approvals", get(approvals::page))
        .route("/approvals/{id}/approve", post(approvals::approve))
        .route("/approvals/{id}/reject", post(approvals::reject))
        .route("/waves/{id}/release", post(approvals::release))
        .route("/waves/{id}/cancel", post(approvals::cancel))
        .route("/signin", get(signin::form).post(signin::submit))
        .route("/signout", post(signin::signout))
        .route("/oidc/start", get(signin::oidc_start))
        .route("/oidc/callback", get(oidc::callback))
        .route("/console.css", get(|| async { ([(header::CONTENT_TYPE, "text/css")], page::CSS) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(axum::middleware::map_response(page::secure))
        .layer(axum::middleware::from_fn(page::timed))
        .with_state(console)
}

/// The signed-in user of a request, and their CSRF token. Pages answer a
/// request without a session with the sign-in page; with `auth = "none"`
/// a session is opened for the admin instead.
#[derive(Debug)]
pub struct Signed {
    /// Who.
    pub session: Session,
    /// Their forms' CSRF token.
    pub csrf: String,
    /// A cookie to set with the answer (a session just opened).
    pub set_cookie: Option<String>,
}

impl Signed {
    /// Refuses with 403 unless the user has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), Refusal> {
        if self.session.role >= role {
            return Ok(());
        }
        let message =
            format!("this needs the {} role; you are {}", role.as_str(), self.session.role.as_str());
        Err(Refusal { status: StatusCode::FORBIDDEN, message })
    }

    /// Refuses with 403 unless `token` is this session's CSRF token.
    pub fn check_csrf(&self, console: &Console, token: &str) -> Result<(), Refusal> {
        if console.sessions.csrf_matches(&self.session, token) {
            return Ok(());
        }
        let message = "the form's CSRF token is missing or not this session's: reload the page".to_owned();
        Err(Refusal { status: StatusCode::FORBIDDEN, message })
    }

    /// Whether the user may see HR ids (operators and approvers act on
    /// people's accounts); read-only users see pseudonyms.
    pub fn sees_hr_ids(&self) -> bool {
        self.session.role >= Role::Operator
    }

    /// A page for this user saying `message` went wrong, answered with `status`.
    pub fn failed(&self, console: &Console, status: StatusCode, title: &str, message: &str) -> Response {
        let body = format!("<p class=\"error\">{}</p>", page::esc(message));
        (status, self.page(console, title, &body)).into_response()
    }

    /// `body` as a whole page for this user, setting the session cookie when one was opened.
    pub fn page(&self, console: &Console, title: &str, body: &str) -> Response {
        let html = axum::response::Html(page::frame(title, Some((&self.session, &self.csrf)), body));
        match &self.set_cookie {
            Some(cookie) => {
                ([(header::SET_COOKIE, console.sessions.cookie_header(Some(cookie)))], html).into_response()
            }
            None => html.into_response(),
        }
    }
}

impl FromRequestParts<Arc<Console>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Arc<Console>) -> Result<Self, Response> {
        let now = chrono::Utc::now().timestamp();
        let cookie = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|h| cookie_value(h, COOKIE));
        if let Some(session) = cookie.and_then(|c| console.sessions.check(c, now)) {
            let csrf = console.sessions.csrf(&session);
            return Ok(Self { session, csrf, set_cookie: None });
        }
        if console.config.console.auth == ConsoleAuth::None && parts.method == axum::http::Method::GET {
            let (session, cookie) =
                console.sessions.open(&console.config.console.admin_name, Role::Approver, now);
            let csrf = console.sessions.csrf(&session);
            return Ok(Self { session, csrf, set_cookie: Some(cookie) });
        }
        if parts.method == axum::http::Method::GET {
            return Err(Redirect::to("/signin").into_response());
        }
        Err(refused(StatusCode::UNAUTHORIZED, "sign in first"))
    }
}

/// Why a request is refused: its status and what the page says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The answer's status.
    pub status: StatusCode,
    /// What the refusal page says.
    pub message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        refused(self.status, &self.message)
    }
}

/// A refusal as a short page.
pub fn refused(status: StatusCode, message: &str) -> Response {
    let body = format!("<p class=\"error\">{}</p><p><a href=\"/\">Back</a></p>", page::esc(message));
    (status, axum::response::Html(page::frame("Refused", None, &body))).into_response()
}

/// The console's state, for handlers.
pub type Shared = State<Arc<Console>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_do_what_the_ones_before_it_may_and_no_more() {
        let sessions = Sessions::new(3_600_000);
        let signed = |role| {
            let (session, _) = sessions.open("someone", role, 0);
            let csrf = sessions.csrf(&session);
            Signed { session, csrf, set_cookie: None }
        };
        let read_only = signed(Role::ReadOnly);
        let refusal = read_only.require(Role::Operator).expect_err("a read-only user cannot act");
        assert_eq!(refusal.status, StatusCode::FORBIDDEN);
        assert!(read_only.require(Role::ReadOnly).is_ok());
        let operator = signed(Role::Operator);
        assert!(operator.require(Role::Operator).is_ok());
        assert!(operator.require(Role::Approver).is_err(), "an operator cannot approve");
        assert!(signed(Role::Approver).require(Role::Operator).is_ok());
    }
}
