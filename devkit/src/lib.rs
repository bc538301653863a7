//! Run scimfleet without real SaaS apps: an in-process SCIM test server.

pub mod demo;
pub mod expect;
pub mod fleet;
pub mod otlp;
pub mod scim_server;
