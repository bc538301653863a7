//! `scimfleet probe`: what an app's SCIM service really does, as a
//! [`TargetProfile`] and a line per finding.
//!
//! Design:
//!
//! - **Read-only.** Every request is a GET, but for one PATCH per resource
//!   type to a fresh random id no resource has: a service that implements
//!   PATCH answers 404 (or 400/409/412...) and changes nothing, one that
//!   does not answers 501 or 405. Nothing is created, changed or deleted.
//! - **Behaviour over claims.** `/ServiceProviderConfig` is read for hints
//!   only; each key is set from what the service does when asked
//!   (`discovery`, `checks`, `groups`), and a hint is used, with a
//!   finding saying so, only where the behaviour could not tell.
//! - **Tolerant.** Discovery documents may be absent (404), refused,
//!   HTML, malformed or wrong; each step stands alone, and a failure of one
//!   is a finding (`… could not be read: HTTP 500`), never the end of the
//!   probe. A key nothing could establish stays unset ("assume the RFC").
//!   The probe fails as a whole only when it cannot talk to the app at all:
//!   every request for users and groups answered 401/403 (the credential
//!   is refused; discovery documents may be public, RFC 7644 §4), no answer
//!   to any request, or no credential to send.
//! - **No personal data.** The probe reads real accounts (logins, ids) to
//!   compare them; findings hold counts, statuses and verdicts, never a
//!   value read from the app, and requests are named by path templates.

mod checks;
mod discovery;
mod groups;
mod json;
mod verdict;

#[cfg(test)]
mod tests;

use scimfleet_runtime::config::TargetProfile;
use serde_json::Value;

use crate::client::ScimClient;
use crate::client::raw::RawAnswer;
use crate::error::ScimCallError;

/// What one probe established.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// The keys the probe could establish (the others unset).
    pub profile: TargetProfile,
    /// What it found, one line each, for operators; no personal data.
    pub findings: Vec<String>,
}

/// Probes the app `client` talks to. Fails only when no request could be
/// answered with anything but 401/403 (see the module documentation).
#[tracing::instrument(skip_all, fields(scimfleet.app = %client.app()))]
pub async fn probe(client: &ScimClient) -> Result<Probe, ScimCallError> {
    let mut run = Run::new(client);
    let hints = discovery::service_provider_config(&mut run).await;
    let extensions = discovery::read_resource_types(&mut run).await;
    let user_attributes = discovery::schemas(&mut run, &extensions).await;
    let users = checks::sample(&mut run).await;
    run.reachable()?;
    let users = users.as_ref();
    let mut profile = TargetProfile { user_attributes, ..TargetProfile::default() };
    profile.patch_users = checks::patch(&mut run, "Users", "/Users/{id}", hints.patch).await;
    profile.patch_groups = checks::patch(&mut run, "Groups", "/Groups/{id}", hints.patch).await;
    profile.filter_users = checks::filter(&mut run, "userName", users, hints.filter).await;
    profile.filter_external_id = checks::filter(&mut run, "externalId", users, hints.filter).await;
    profile.user_name_case_exact = checks::case_exact(&mut run, profile.filter_users, users).await;
    profile.paging = checks::paging(&mut run, users).await;
    profile.group_members = groups::group_members(&mut run, users).await;
    profile.etag = groups::etag(&mut run, users, hints.etag).await;
    profile.max_page_size = groups::max_page_size(&mut run, &hints).await;
    run.reachable()?;
    Ok(Probe { profile, findings: run.findings })
}

/// One probe under way: its findings, and what the answers so far say of
/// the credential and the connection.
struct Run<'c> {
    client: &'c ScimClient,
    findings: Vec<String>,
    /// Whether any request was answered (any status).
    any_answer: bool,
    /// Requests for users and groups answered (any status).
    answered: u32,
    /// Of those, answered 401 or 403.
    refused: u32,
    /// The first refusal, for the error when everything is refused.
    first_refusal: Option<(&'static str, &'static str, u16)>,
    /// The first request that got no answer.
    first_failure: Option<ScimCallError>,
    /// A failure that ends the probe (no credential to send): nothing more is sent.
    fatal: Option<ScimCallError>,
}

impl<'c> Run<'c> {
    fn new(client: &'c ScimClient) -> Self {
        Self {
            client,
            findings: Vec::new(),
            any_answer: false,
            answered: 0,
            refused: 0,
            first_refusal: None,
            first_failure: None,
            fatal: None,
        }
    }

    fn finding(&mut self, line: impl Into<String>) {
        self.findings.push(line.into());
    }

    /// The finding for an answer a step could not use.
    fn unread(&mut self, what: &str, status: u16) {
        let line = match status {
            200 => format!("{what}: not the expected document (HTTP 200)"),
            404 => format!("{what} is absent (HTTP 404)"),
            _ => format!("{what} could not be read: HTTP {status}"),
        };
        self.finding(line);
    }

    /// `found`, or when that is unknown the service provider config's
    /// `hint` for `key`, with a finding.
    fn or_hint(&mut self, found: Option<bool>, hint: Option<bool>, key: &str) -> Option<bool> {
        if found.is_none()
            && let Some(hint) = hint
        {
            self.finding(format!("{key} = {hint} taken from ServiceProviderConfig"));
        }
        found.or(hint)
    }

    /// GET, answered as it comes; `None` (and a finding) when no answer came.
    async fn get(
        &mut self,
        what: &str,
        template: &'static str,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Option<RawAnswer> {
        if self.fatal.is_some() {
            return None;
        }
        let answer = self.client.get_raw(template, segments, query).await;
        self.note(what, ("GET", template), answer)
    }

    /// PATCH with `body`, answered as it comes; `None` (and a finding) when no answer came.
    async fn patch(
        &mut self,
        what: &str,
        template: &'static str,
        segments: &[&str],
        body: &Value,
    ) -> Option<RawAnswer> {
        if self.fatal.is_some() {
            return None;
        }
        let answer = self.client.patch_raw(template, segments, body).await;
        self.note(what, ("PATCH", template), answer)
    }

    fn note(
        &mut self,
        what: &str,
        (method, template): (&'static str, &'static str),
        answer: Result<RawAnswer, ScimCallError>,
    ) -> Option<RawAnswer> {
        match answer {
            Ok(answer) => {
                self.any_answer = true;
                let resource = template.starts_with("/Users") || template.starts_with("/Groups");
                self.answered += u32::from(resource);
                if resource && matches!(answer.status, 401 | 403) {
                    self.refused += 1;
                    self.first_refusal.get_or_insert((method, template, answer.status));
                }
                Some(answer)
            }
            Err(error) => {
                // The error names the method and template only (no URL, no value).
                self.finding(format!("{what} could not be read: {error}"));
                match error {
                    ScimCallError::Credential { .. } | ScimCallError::Config { .. } => {
                        self.fatal.get_or_insert(error);
                    }
                    _ => {
                        self.first_failure.get_or_insert(error);
                    }
                }
                None
            }
        }
    }

    /// An error when the app could not be talked to at all so far.
    fn reachable(&mut self) -> Result<(), ScimCallError> {
        if let Some(fatal) = self.fatal.take() {
            return Err(fatal);
        }
        if !self.any_answer
            && let Some(failure) = self.first_failure.take()
        {
            return Err(failure);
        }
        match self.first_refusal {
            Some((method, path_template, status)) if self.refused >= self.answered => {
                Err(ScimCallError::Status {
                    method,
                    path_template,
                    status,
                    scim_type: None,
                    retry_after: None,
                })
            }
            _ => Ok(()),
        }
    }
}
