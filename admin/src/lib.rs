#![doc = include_str!("../README.md")]

pub mod approvals;
pub mod audit;
mod config_check;
pub mod dlq;
mod error;
pub mod evidence;
mod publish;
pub mod render;
pub mod scheduled;
pub mod status;
pub mod sweep;
mod topology;
pub mod trace;

pub use config_check::config_check;
pub use error::AdminError;
pub use publish::publish;
pub use topology::declare_topology;
