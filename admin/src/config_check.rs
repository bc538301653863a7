//! `scimfleet config check`: a configuration that loaded is valid as a
//! file; this also resolves every app's credentials (token, client secret
//! or key, certificates), the pseudonym key and the approvers file, so a missing environment
//! variable, an unreadable file or a key that does not parse is found
//! before a process starts. Where an app's last `scimfleet probe` is saved
//! in Redis, its mapping is checked against the attributes the target's
//! `/Schemas` lists, naming the field of each path it does not.

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

/// How long `config check` waits for Redis to read saved probes.
const PROBES_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Checks every app's mapping against its last saved probe: each mapped
/// path the target's `/Schemas` does not list is written to `out` with its
/// field, and refused. Without Redis, says so and checks nothing.
pub async fn check_probed_mappings(config: &Config, out: &mut impl Write) -> Result<(), AdminError> {
    let connect = scimfleet_runtime::Store::connect(&config.redis, &config.namespace);
    let Ok(Ok(store)) = tokio::time::timeout(PROBES_WAIT, connect).await else {
        writeln!(out, "mappings not checked against saved probes: Redis is not reachable")?;
        return Ok(());
    };
    let mut unlisted = 0;
    for (index, app) in config.apps.iter().enumerate() {
        let Some(probed) = store.profiles().get(&app.id).await? else { continue };
        let profile = app.profile_with(&probed.profile);
        for attr in profile.unlisted(&app.mapping.attributes()) {
            let when = probed.probed_at.format("%Y-%m-%d %H:%M UTC");
            writeln!(
                out,
                "apps[{index}].mapping.\"{attr}\": not listed by {}'s /Schemas (probe of {when})",
                app.id
            )?;
            unlisted += 1;
        }
    }
    if unlisted > 0 {
        return Err(AdminError::Refused(format!("{unlisted} mapped attribute(s) the targets do not list")));
    }
    Ok(())
}
