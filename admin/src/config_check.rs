//! `scimfleet config check`: a configuration that loaded is valid as a
//! file; this also resolves every app's token, so a missing environment
//! variable or token file is found before a worker starts.

use std::io::Write;

use scimfleet_runtime::Config;

use crate::AdminError;

/// Resolves every app's token; writes the file and its app count to `out`.
pub fn config_check(config: &Config, out: &mut impl Write) -> Result<(), AdminError> {
    for (index, app) in config.apps.iter().enumerate() {
        app.token(&config.origin, index, &config.base_dir)?;
    }
    writeln!(out, "{}: valid ({} apps)", config.origin, config.apps.len())?;
    Ok(())
}
