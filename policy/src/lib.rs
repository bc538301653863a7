#![doc = include_str!("../README.md")]

pub mod deprovision;
pub mod governance;
pub mod groups;
pub mod mapping;
mod plan;
pub mod remediation;
pub mod scope;

pub use mapping::map_user;
pub use plan::{Plan, PlanError, plan};
