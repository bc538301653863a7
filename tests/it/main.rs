//! The integration tests, one binary: each module is one concern, driven
//! against the real RabbitMQ and Redis (one namespace per test) or, for the
//! deploy artefacts and the CLI, against files and the built `scimfleet`.
//! One binary links the workspace once instead of once per file; nextest
//! still runs every test in a process of its own.

// A scenario test reads best as one story; the 80-line limit is for code
// outside tests.
#![allow(clippy::too_many_lines, reason = "a scenario reads best as one story")]

mod common;

mod adopt;
mod any_attribute;
mod architecture;
mod audit;
mod audit_steps;
mod breaker;
mod cli;
mod config_reference;
mod console;
mod console_browser;
mod console_oidc;
mod console_views;
mod crash;
mod credentials;
mod definitions;
mod demo;
mod deploy_artefacts;
mod dlq;
mod durability;
mod effective;
mod evidence;
mod exclusivity;
mod faults;
mod governance;
mod harness;
mod held_restart;
mod identity;
mod import;
mod intake;
mod interop;
mod isolation;
mod kubernetes;
mod lanes;
mod leases;
mod least_privilege;
mod log_hygiene;
mod ops;
mod outage;
mod pause;
mod pipeline;
mod plan;
mod poison;
mod probe;
mod probe_profiles;
mod put_only;
mod rabbit_cluster;
mod rate_limit;
mod redis_cluster;
mod retry;
mod runbook;
mod scheduler_replicas;
mod shutdown;
mod source_entra;
mod source_google;
mod source_okta;
mod source_pingone;
mod source_ssf;
mod status;
mod strict;
mod sweep;
mod sweep_claims;
mod throttle;
mod trace_cli;
mod trace_export_down;
mod tracing;
mod transport_tls;
mod verification;
mod waves;
