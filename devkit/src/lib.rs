#![doc = include_str!("../README.md")]

pub mod browser;
pub mod certs;
pub mod demo;
pub mod expect;
pub mod fleet;
pub mod idp;
pub mod oauth;
pub mod oidc;
pub mod otlp;
pub mod policy;
pub mod scim2;
pub mod scim_server;
pub mod tls;
pub mod wait;
