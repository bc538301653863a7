//! Deserializers of the configuration's own value syntaxes: durations
//! (`"90s"`, `"15m"`, `"24h"`), listen addresses (`host:port` or `off`) and
//! secrets. Each error says what was expected without echoing a secret.

use serde::Deserialize;

use crate::Secret;

pub(super) fn some_duration_ms<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration_ms(&text).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!("`{text}` is not a duration such as \"90s\", \"15m\" or \"24h\""))
    })
}

/// Parses `"500ms"`, `"30s"`, `"15m"`, `"24h"` or `"7d"` into milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let factor = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(factor).filter(|&ms| ms > 0)
}

pub(crate) fn durations_ms<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u64>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    let mut delays = texts
        .iter()
        .map(|t| {
            parse_duration_ms(t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{t}` is not a duration such as \"90s\", \"15m\" or \"24h\""
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    delays.sort_unstable();
    delays.dedup();
    Ok(delays)
}

pub(super) fn listen_address<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<std::net::SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text == "off" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!("`{text}` is not `host:port` (e.g. \"0.0.0.0:9465\") or `off`"))
    })
}

pub(super) fn duration_ms<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    some_duration_ms(deserializer).map(|ms| ms.unwrap_or_default())
}

pub(super) fn secret<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
    String::deserialize(deserializer).map(Secret::new)
}

pub(super) fn secrets<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Secret>, D::Error> {
    Vec::<String>::deserialize(deserializer).map(|all| all.into_iter().map(Secret::new).collect())
}
