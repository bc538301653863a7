#![doc = include_str!("../README.md")]

pub mod audit;
pub mod broker;
pub mod config;
pub mod error;
pub mod guard;
pub mod locks;
pub mod metrics;
pub mod ops;
pub mod people;
pub mod secret;
pub mod shutdown;
pub mod signing;
pub mod store;
pub mod supervise;
pub mod telemetry;
pub mod tls;

pub use config::Config;
pub use error::InfraError;
pub use locks::{KeyGuard, KeyedLocks};
pub use secret::Secret;
pub use store::Store;
