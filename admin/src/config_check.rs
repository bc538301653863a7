//! `scimfleet config check`: a configuration that loaded is valid as a
//! file; this also resolves every app's credentials (token, client secret
//! or key, certificates), the pseudonym key and the approvers file, so a missing environment
//! variable, an unreadable file or a key that does not parse is found
//! before a process starts.

use std::io::Write;

use scimfleet_runtime::Config;

use crate::AdminError;

/// Resolves every app's credentials and the pseudonym key; writes the file and its app count to `out`.
pub fn config_check(config: &Config, out: &mut impl Write) -> Result<(), AdminError> {
    for (index, app) in config.apps.iter().enumerate() {
        scimfleet_worker::Auth::from_config(config, index, app)?;
    }
    config.pseudonym_key()?;
    let approvers = match config.governance.approvers_path(&config.base_dir) {
        Some(_) => format!(", {} approvers", crate::approvals::approvers_of(config)?.len()),
        None => String::new(),
    };
    writeln!(out, "{}: valid ({} apps{approvers})", config.origin, config.apps.len())?;
    Ok(())
}
