//! The approvers file: who may approve a held grant or wave, each with the
//! TOTP secret of their authenticator app.
//!
//! ```toml
//! [[approvers]]
//! name = "alice"            # [a-z0-9._-]{1,64}, unique
//! person_id = "E1001"       # optional: her HR id, so she cannot approve a grant to herself
//! totp_secret = "JBSWY3DPEHPK3PXP"
//! ```
//!
//! The file holds shared secrets, so [`Approvers::load`] refuses one that
//! group or others may read (on unix) and [`enroll`] creates it with mode
//! 0600. Errors name the file and the field (`approvers[1].totp_secret: not
//! base32`, entries counted from 0) and never echo a secret: TOML errors are
//! reported by message and line, without the parser's excerpt of the line.
//!
//! [`Approvers::check_code`] only says whether a code is right for now and
//! which time step it belongs to; refusing a reused code is the caller's
//! next step, `Store::totp().consume(name, step)`, shared by every admin
//! process.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use scimfleet_runtime::store::{Store, StoreError};
use scimfleet_schemas::PersonId;
use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

use super::totp::{self, TotpError, TotpSecret};

/// The longest approver name.
const NAME_MAX: usize = 64;

/// The approvers file could not be used, or a code was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApproversError {
    /// The file could not be read, created or written.
    #[error("cannot {action} approvers file {path}")]
    File {
        /// `read`, `create` or `write`.
        action: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Group or others may read or write the file.
    #[error(
        "approvers file {path} is readable or writable by group or others (mode {mode:03o}): run `chmod 600 {path}`"
    )]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A field is missing or invalid (or the TOML itself is).
    #[error("{path}: {field}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Where: `approvers[1].totp_secret`, or `line 3` for a syntax error.
        field: String,
        /// What is wrong with it; never the value.
        reason: String,
    },
    /// No approver of that name.
    #[error("unknown approver `{name}`")]
    UnknownApprover {
        /// The name asked for.
        name: String,
    },
    /// The code was wrong, expired or malformed.
    #[error("code of approver `{name}` refused")]
    Code {
        /// The approver.
        name: String,
        /// Why.
        #[source]
        source: TotpError,
    },
    /// The code (or a newer one of the same approver) was used before.
    #[error("code of approver `{name}` was used before; wait for the next one")]
    Reused {
        /// The approver.
        name: String,
    },
    /// The used codes in Redis could not be read or written.
    #[error("cannot record the use of approver `{name}`'s code")]
    Store {
        /// The approver.
        name: String,
        /// The Redis failure.
        #[source]
        source: StoreError,
    },
    /// Enrolling a name the file already has.
    #[error("approver `{name}` is already in {path}")]
    Duplicate {
        /// The file.
        path: String,
        /// The name.
        name: String,
    },
}

/// One approver of the file.
#[derive(Debug, Clone)]
pub struct Approver {
    /// The name given to `--approver`.
    pub name: String,
    /// The approver's own HR id: a grant to this person is not theirs to approve.
    pub person_id: Option<PersonId>,
    secret: TotpSecret,
}

impl Approver {
    /// Whether this approver may approve a grant to `person`: never one to
    /// themselves (their `person_id`).
    pub fn may_approve_for(&self, person: &PersonId) -> bool {
        self.person_id.as_ref() != Some(person)
    }
}

/// The approvers of one file, by name.
#[derive(Debug, Clone)]
pub struct Approvers {
    approvers: Vec<Approver>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default)]
    approvers: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(default)]
    person_id: Option<String>,
    totp_secret: String,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.totp_secret.zeroize();
    }
}

impl Approvers {
    /// Reads and validates the file at `path`; refuses one that group or
    /// others may read (unix).
    pub fn load(path: &Path) -> Result<Self, ApproversError> {
        let shown = path.display().to_string();
        check_mode(path, &shown)?;
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|source| ApproversError::File {
            action: "read",
            path: shown.clone(),
            source,
        })?);
        Self::parse(&text, &shown)
    }

    /// Parses and validates the text of an approvers file; `origin` names it in errors.
    fn parse(text: &str, origin: &str) -> Result<Self, ApproversError> {
        let invalid = |field: String, reason: String| ApproversError::Invalid {
            path: origin.to_owned(),
            field,
            reason,
        };
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|e| invalid(line_of(text, &e), e.message().to_owned()))?;
        let shape: FileShape = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let field = e.path().to_string();
            // serde quotes the value it refused: not when it may be a secret.
            let reason = if field.ends_with(".totp_secret") {
                "expected a base32 string".to_owned()
            } else {
                e.inner().message().to_owned()
            };
            invalid(field, reason)
        })?;
        let mut approvers: Vec<Approver> = Vec::with_capacity(shape.approvers.len());
        for (i, entry) in shape.approvers.iter().enumerate() {
            let field = |name: &str| format!("approvers[{i}].{name}");
            if let Err(reason) = check_name(&entry.name) {
                return Err(invalid(field("name"), reason));
            }
            if let Some(first) = approvers.iter().position(|a| a.name == entry.name) {
                return Err(invalid(field("name"), format!("`{}` is also approvers[{first}]", entry.name)));
            }
            let person_id = match &entry.person_id {
                Some(id) => Some(
                    PersonId::parse(id.as_str()).map_err(|e| invalid(field("person_id"), e.to_string()))?,
                ),
                None => None,
            };
            let secret = TotpSecret::from_base32(&entry.totp_secret)
                .map_err(|e| invalid(field("totp_secret"), e.to_string()))?;
            approvers.push(Approver { name: entry.name.clone(), person_id, secret });
        }
        Ok(Self { approvers })
    }

    /// The approver called `name`.
    pub fn get(&self, name: &str) -> Option<&Approver> {
        self.approvers.iter().find(|a| a.name == name)
    }

    /// Every approver, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Approver> {
        self.approvers.iter()
    }

    /// How many approvers the file lists.
    pub fn len(&self) -> usize {
        self.approvers.len()
    }

    /// Whether the file lists nobody (then nothing can be approved).
    pub fn is_empty(&self) -> bool {
        self.approvers.is_empty()
    }

    /// Checks `code` of approver `name` at `now` (Unix seconds): the
    /// approver and the time step the code belongs to. The caller must then
    /// consume the step (`Store::totp().consume`) to refuse a reused code.
    pub fn check_code(&self, name: &str, code: &str, now: u64) -> Result<(&Approver, u64), ApproversError> {
        let approver =
            self.get(name).ok_or_else(|| ApproversError::UnknownApprover { name: name.to_owned() })?;
        let step = totp::check(&approver.secret, code, now)
            .map_err(|source| ApproversError::Code { name: name.to_owned(), source })?;
        Ok((approver, step))
    }

    /// [`check_code`](Self::check_code), then spends the code's time step
    /// in Redis: the approver when the code is right for `now` and neither
    /// it nor a newer code of theirs was used before, by any process. The
    /// one place a code is accepted; an approver can so approve once per
    /// 30-second step.
    pub async fn authenticate(
        &self,
        store: &Store,
        name: &str,
        code: &str,
        now: u64,
    ) -> Result<&Approver, ApproversError> {
        let (approver, step) = self.check_code(name, code, now)?;
        let fresh = store
            .totp()
            .consume(&approver.name, step)
            .await
            .map_err(|source| ApproversError::Store { name: name.to_owned(), source })?;
        if !fresh {
            return Err(ApproversError::Reused { name: name.to_owned() });
        }
        Ok(approver)
    }
}

/// Adds approver `name` (optionally with their HR `person_id`) to the file
/// at `path` with a new 160-bit secret, creating the file with mode 0600
/// when it does not exist; refuses a name the file has. Returns the
/// `otpauth://` URI to load into the approver's authenticator app: it holds
/// the secret, so show it to the approver only, never log it.
///
/// Enrolments are not serialised against each other: run one at a time.
pub fn enroll(path: &Path, name: &str, person_id: Option<&str>) -> Result<String, ApproversError> {
    let shown = path.display().to_string();
    let invalid = |field: &str, reason: String| ApproversError::Invalid {
        path: shown.clone(),
        field: field.to_owned(),
        reason,
    };
    check_name(name).map_err(|reason| invalid("name", reason))?;
    if let Some(id) = person_id {
        PersonId::parse(id).map_err(|e| invalid("person_id", e.to_string()))?;
    }
    let exists = path.try_exists().map_err(|source| ApproversError::File {
        action: "read",
        path: shown.clone(),
        source,
    })?;
    if exists && Approvers::load(path)?.get(name).is_some() {
        return Err(ApproversError::Duplicate { path: shown, name: name.to_owned() });
    }
    let secret = TotpSecret::generate();
    let encoded = Zeroizing::new(secret.to_base32());
    let mut entry =
        Zeroizing::new(format!("\n[[approvers]]\nname = {}\n", toml::Value::String(name.to_owned())));
    if let Some(id) = person_id {
        entry.push_str(&format!("person_id = {}\n", toml::Value::String(id.to_owned())));
    }
    entry.push_str(&format!("totp_secret = \"{}\"\n", encoded.as_str()));
    let mut file = open_for_append(path, exists).map_err(|source| ApproversError::File {
        action: if exists { "write" } else { "create" },
        path: shown.clone(),
        source,
    })?;
    file.write_all(entry.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| ApproversError::File { action: "write", path: shown, source })?;
    Ok(format!(
        "otpauth://totp/scimfleet:{name}?secret={}&issuer=scimfleet&algorithm=SHA1&digits={}&period={}",
        encoded.as_str(),
        totp::DIGITS,
        totp::STEP_SECONDS
    ))
}

/// Opens the file to append to, creating it (mode 0600 on unix) when new.
fn open_for_append(path: &Path, exists: bool) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.append(true);
    if !exists {
        options.create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    options.open(path)
}

/// `[a-z0-9._-]{1,64}`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(format!("1 to {NAME_MAX} characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("only a-z, 0-9, `.`, `_` and `-`".to_owned());
    }
    Ok(())
}

/// `line N` of a TOML syntax error, without the parser's excerpt of the
/// line (which may hold a secret).
fn line_of(text: &str, error: &toml::de::Error) -> String {
    match error.span() {
        Some(span) => format!("line {}", text.get(..span.start).map_or(0, |t| t.matches('\n').count()) + 1),
        None => "document".to_owned(),
    }
}

/// Refuses a file group or others may access (unix only).
#[cfg(unix)]
fn check_mode(path: &Path, shown: &str) -> Result<(), ApproversError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = fs::metadata(path).map_err(|source| ApproversError::File {
        action: "read",
        path: shown.to_owned(),
        source,
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ApproversError::Exposed { path: shown.to_owned(), mode });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path, _shown: &str) -> Result<(), ApproversError> {
    Ok(())
}

#[cfg(test)]
mod tests;
