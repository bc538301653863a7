//! Audit entries of approval decisions (a shim until the audit log lands).

/// One audit entry being built.
pub(crate) struct Note {
    kind: &'static str,
    actor: String,
    person: Option<String>,
    app: Option<String>,
    detail: Vec<(&'static str, String)>,
}

impl Note {
    pub(crate) fn new(kind: &'static str, actor: &str) -> Self {
        Self { kind, actor: actor.to_owned(), person: None, app: None, detail: Vec::new() }
    }
    pub(crate) fn person(mut self, person: &str) -> Self {
        self.person = Some(person.to_owned());
        self
    }
    pub(crate) fn app(mut self, app: &str) -> Self {
        self.app = Some(app.to_owned());
        self
    }
    pub(crate) fn detail(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.detail.push((key, value.into()));
        self
    }
}

/// Appends `note` to the audit trail.
pub(crate) async fn record(_store: &scimfleet_runtime::Store, note: Note) {
    let _pending = (note.kind, note.actor, note.person, note.app, note.detail);
}
