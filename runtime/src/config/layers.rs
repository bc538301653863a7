//! The layers of the configuration: the embedded defaults, the user's file
//! and `SCIMFLEET_*` environment variables, merged as TOML tables before the
//! typed parse, so every layer meets the same `deny_unknown_fields` types.

use toml::{Table, Value};

use super::ConfigError;

const ENV_PREFIX: &str = "SCIMFLEET_";
const TOP_LEVEL: &[&str] = &[
    "namespace",
    "broker",
    "redis",
    "scheduler",
    "worker",
    "verification",
    "telemetry",
    "intake",
    "console",
    "audit",
];

pub(super) fn parse_table(text: &str, origin: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>()
        .map_err(|e| ConfigError::Syntax { origin: origin.to_owned(), message: e.to_string() })
}

/// Deep-merges tables; any other value (arrays included) replaces what was there.
pub(super) fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// `SCIMFLEET_BROKER__URL=...` sets `broker.url`: `__` separates levels because
/// keys themselves contain `_`. Only known top-level keys are taken, so other
/// `SCIMFLEET_*` variables (the service scripts' ports, say) do not collide.
pub(super) fn env_table(env: impl IntoIterator<Item = (String, String)>) -> Result<Table, ConfigError> {
    let mut table = Table::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else { continue };
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if !TOP_LEVEL.contains(&path[0].as_str()) || path.iter().any(String::is_empty) {
            continue;
        }
        // A value that parses as a TOML scalar keeps its type (numbers, booleans).
        let value = format!("v = {raw}")
            .parse::<Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .filter(|v| !v.is_table())
            .unwrap_or(Value::String(raw));
        let mut node = &mut table;
        for key in &path[..path.len() - 1] {
            let entry = node.entry(key.clone()).or_insert_with(|| Value::Table(Table::new()));
            let Value::Table(next) = entry else {
                return Err(ConfigError::Syntax {
                    origin: "environment".into(),
                    message: format!("{name} conflicts with another variable"),
                });
            };
            node = next;
        }
        node.insert(path[path.len() - 1].clone(), value);
    }
    Ok(table)
}
