#![doc = include_str!("../README.md")]

pub mod approvals;
pub mod audit;
mod config_check;
pub mod dlq;
mod error;
pub mod evidence;
pub mod import;
pub mod pause;
pub mod plan;
pub mod probe;
mod publish;
pub mod render;
pub mod scheduled;
pub mod status;
pub mod sweep;
pub mod sync;
mod topology;
pub mod trace;

pub use config_check::{check_probed_mappings, config_check};
pub use error::AdminError;
pub use publish::publish;
pub use topology::{declare_topology, write_definitions};

/// The pseudonym of the person with HR id `person`, as logs and records
/// carry it, for commands that filter by person (`--person E123`).
pub(crate) fn pseudonym_of(
    config: &scimfleet_runtime::Config,
    person: Option<&str>,
) -> Result<Option<String>, AdminError> {
    let Some(person) = person else { return Ok(None) };
    let person = scimfleet_schemas::PersonId::parse(person).map_err(AdminError::Person)?;
    let pseudonyms = scimfleet_runtime::telemetry::Pseudonymizer::new(&config.pseudonym_key()?);
    Ok(Some(pseudonyms.person(&person)))
}
