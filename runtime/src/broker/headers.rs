//! AMQP header helpers, and the dead-letter envelope as headers.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use scimfleet_schemas::DeadLetter;
use scimfleet_schemas::deadletter::HeaderValue;

/// A text header, if present and textual.
pub fn header_str(properties: &BasicProperties, name: &str) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// `properties` with the dead-letter envelope added to its headers; other
/// headers (trace context among them) are kept.
pub fn dead_letter_headers(properties: &BasicProperties, dead_letter: &DeadLetter) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    for (name, value) in dead_letter.to_headers() {
        let value = match value {
            HeaderValue::Text(s) => AMQPValue::LongString(LongString::from(s.into_bytes())),
            HeaderValue::Number(n) => AMQPValue::LongLongInt(i64::try_from(n).unwrap_or(i64::MAX)),
        };
        headers.insert(ShortString::from(name), value);
    }
    properties.clone().with_headers(headers)
}

/// Reads the dead-letter envelope back from a dead-lettered message.
pub fn read_dead_letter(properties: &BasicProperties) -> Result<DeadLetter, serde_json::Error> {
    let empty = FieldTable::default();
    let headers = properties.headers().as_ref().unwrap_or(&empty);
    let values = headers.inner().iter().filter_map(|(name, value)| {
        let value = match value {
            AMQPValue::LongString(s) => HeaderValue::Text(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => HeaderValue::Text(s.as_str().to_owned()),
            AMQPValue::LongLongInt(n) => HeaderValue::Number(u64::try_from(*n).ok()?),
            AMQPValue::LongInt(n) => HeaderValue::Number(u64::try_from(*n).ok()?),
            AMQPValue::LongUInt(n) => HeaderValue::Number(u64::from(*n)),
            _ => return None,
        };
        Some((name.as_str(), value))
    });
    DeadLetter::from_headers(values)
}

/// When the scheduler took the HR event a job came from (milliseconds since
/// the Unix epoch): the start of a job's end-to-end latency, kept across
/// retries, dead-letters and replays because their headers are copied.
pub const RECEIVED_AT_HEADER: &str = "scimfleet-received-at";

/// The [`RECEIVED_AT_HEADER`] time of a message, when present.
pub fn received_at(properties: &BasicProperties) -> Option<chrono::DateTime<chrono::Utc>> {
    let value = properties.headers().as_ref()?.inner().get(RECEIVED_AT_HEADER)?;
    let ms = match value {
        AMQPValue::LongLongInt(n) => *n,
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        _ => return None,
    };
    chrono::DateTime::from_timestamp_millis(ms)
}
