//! The scheduler's entries in the audit trail (holds, waves, supersedes).
//! Temporary shim until the audit log lands: entries are logged.

use crate::fanout::Context;

/// One audit entry being built.
pub(crate) struct Note {
    kind: &'static str,
    actor: String,
    person: Option<String>,
    app: Option<String>,
    trace_id: Option<String>,
    detail: Vec<(&'static str, String)>,
}

impl Note {
    pub(crate) fn new(kind: &'static str, actor: &str) -> Self {
        Self { kind, actor: actor.to_owned(), person: None, app: None, trace_id: None, detail: Vec::new() }
    }
    pub(crate) fn person(mut self, person: &str) -> Self {
        self.person = Some(person.to_owned());
        self
    }
    pub(crate) fn app(mut self, app: &str) -> Self {
        self.app = Some(app.to_owned());
        self
    }
    pub(crate) fn trace(mut self, trace_id: Option<String>) -> Self {
        self.trace_id = trace_id;
        self
    }
    pub(crate) fn detail(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.detail.push((key, value.into()));
        self
    }
}

/// Appends `note` to the audit trail.
pub(crate) async fn record(_ctx: &Context, note: Note) {
    tracing::debug!(
        kind = note.kind, actor = %note.actor, person = ?note.person, app = ?note.app,
        trace_id = ?note.trace_id, detail = ?note.detail, "audit"
    );
}
