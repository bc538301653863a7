//! Step-up approvals: who may approve a held grant or wave, and how they
//! prove it is them.
//!
//! - [`totp`]: RFC 6238 codes (what authenticator apps show) and their check,
//!   which names the time step a code belongs to.
//! - [`approvers`]: the approvers file (`governance.approvers_file`), each
//!   approver with a TOTP secret and optionally their own HR id, and
//!   [`approvers::enroll`] to add one.
//!
//! A code is accepted once: [`approvers::Approvers::authenticate`] checks it
//! ([`approvers::Approvers::check_code`]) and then spends its time step in
//! Redis (`Store::totp().consume`), which refuses that step and every older
//! one of the same approver from then on, across every admin process.
//! [`approvers::Approver::may_approve_for`] is the rule that nobody
//! approves a grant to themselves.

pub mod approvers;
pub mod totp;

mod decide;
mod list;
mod note;
mod release;
mod wave;

pub use decide::{Decision, approve, reject};
pub use list::{Listing, gather, list};
pub(crate) use note::Target;
pub(crate) use release::{approvers_of, spend_code};
pub use wave::{cancel_wave, release_wave};
