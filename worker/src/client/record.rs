//! Writes kept instead of sent: what `scimfleet plan` and an app's
//! `dry_run = true` report.
//!
//! A recording client reads as usual (so the plan is computed against the
//! app as it is) and answers its own writes: a create with the body it was
//! given and a planned id (`planned-1`, ...), which later steps of the same
//! apply use (a new hire's group joins name it), an update or delete with
//! success. Nothing is sent: a plan and a dry run write nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use reqwest::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::ScimClient;
use super::call::Call;

/// The prefix of the ids a recording client gives what it "creates".
pub const PLANNED_ID_PREFIX: &str = "planned-";

/// One write a recording client did not send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedWrite {
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// The path template, e.g. `/Users/{id}`.
    pub path: String,
    /// The resource id in the URL, for writes to one resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// The JSON body, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// The writes of one plan or one dry-run apply.
#[derive(Debug, Default)]
pub struct Recorder {
    writes: Mutex<Vec<PlannedWrite>>,
    created: AtomicU64,
}

impl Recorder {
    /// The writes recorded so far, in order; the recorder is emptied.
    pub fn take(&self) -> Vec<PlannedWrite> {
        std::mem::take(&mut *self.writes.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn answer(&self, call: &Call, url: &Url, body: Option<&[u8]>) -> Response {
        let mut body: Option<Value> = body.and_then(|b| serde_json::from_slice(b).ok());
        let resource_id = call
            .path_template
            .ends_with("{id}")
            .then(|| url.path_segments().and_then(|mut s| s.next_back()).map(str::to_owned))
            .flatten();
        let (status, answer) = match call.name {
            "POST" => {
                let n = self.created.fetch_add(1, Ordering::Relaxed) + 1;
                let mut created = body.clone().unwrap_or_else(|| Value::Object(serde_json::Map::new()));
                created["id"] = Value::String(format!("{PLANNED_ID_PREFIX}{n}"));
                (201, Some(created))
            }
            "PUT" => (200, body.clone()),
            _ => (204, None),
        };
        if let Some(Value::Object(map)) = &mut body {
            // `schemas` says nothing a reader of the plan needs.
            map.remove("schemas");
        }
        let write = PlannedWrite {
            method: call.name.to_owned(),
            path: call.path_template.to_owned(),
            resource_id,
            body,
        };
        self.writes.lock().unwrap_or_else(PoisonError::into_inner).push(write);
        let mut response = http::Response::builder().status(status);
        if answer.is_some() {
            response = response.header(http::header::CONTENT_TYPE, scimfleet_schemas::scim::SCIM_MEDIA_TYPE);
        }
        let bytes = answer.map(|a| a.to_string()).unwrap_or_default();
        // A status and a content type from constants always build.
        response
            .body(bytes)
            .map(Response::from)
            .unwrap_or_else(|_| Response::from(http::Response::new(String::new())))
    }
}

/// One request a client sent, for a run that shows its steps (`scimfleet
/// sync`): method, path template (never the URL, which may hold a filter
/// value) and status (`None` when no answer came).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The HTTP method.
    pub method: String,
    /// The path template, e.g. `/Users/{id}`.
    pub path: String,
    /// The answer's status.
    pub status: Option<u16>,
}

/// The requests of one observed run, in order.
#[derive(Debug, Default)]
pub struct Steps {
    steps: Mutex<Vec<Step>>,
}

impl Steps {
    /// The steps so far; emptied.
    pub fn take(&self) -> Vec<Step> {
        std::mem::take(&mut *self.steps.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn push(&self, call: &Call, status: Option<u16>) {
        let step = Step { method: call.name.to_owned(), path: call.path_template.to_owned(), status };
        self.steps.lock().unwrap_or_else(PoisonError::into_inner).push(step);
    }
}

impl ScimClient {
    /// This client noting every request it sends in `steps`.
    pub fn observed(&self, steps: Arc<Steps>) -> Self {
        Self { steps: Some(steps), ..self.clone() }
    }

    /// This client keeping its writes in `recorder` instead of sending them.
    pub fn recording(&self, recorder: Arc<Recorder>) -> Self {
        Self { recorder: Some(recorder), ..self.clone() }
    }

    /// The recorded answer to a write, when this client records.
    pub(super) fn recorded(&self, call: &Call, url: &Url, body: Option<&[u8]>) -> Option<Response> {
        let recorder = self.recorder.as_ref()?;
        (call.method != reqwest::Method::GET).then(|| recorder.answer(call, url, body))
    }
}
