#![doc = include_str!("../README.md")]

mod activity;
mod app;
mod audit;
pub mod auth;
pub mod breaker;
pub mod client;
mod consume;
pub mod converge;
mod decision;
mod dry_run;
pub mod error;
mod failure;
mod groups;
mod identity;
mod lease;
mod notes;
mod observe;
pub mod pace;
mod pause;
mod plan;
pub mod probe;
mod profile;
pub mod references;
mod replace;
pub mod retry;
mod run;
mod schedule;
mod settle;
mod stats;
mod support;
pub mod sweep;
mod sync;
mod verify;

pub use auth::Auth;
pub use client::{
    Created, PLANNED_ID_PREFIX, PlannedWrite, Recorder, RequestRetry, ScimClient, ScimClientConfig,
};
pub use converge::{ApplyError, Converger, Outcome, ReadBack};
pub use error::{Disposition, ScimCallError};
pub use lease::Held;
pub use plan::{app_converger, plan_job};
pub use run::{WorkerError, app_client, run, select_apps};
pub use stats::{WorkerSnapshot, WorkerStats};
pub use sync::{SyncError, Synced, sync_job};
