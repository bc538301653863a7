//! The request parser: headers and body in, the events of the request or
//! one [`Problem`] out. Pure (no I/O, no clock), so property tests and a
//! fuzz target can call [`parse_request`] directly.
//!
//! What a request may hold, by `content-type`:
//!
//! | content type | holds |
//! |---|---|
//! | `application/cloudevents+json` | one event (structured mode) |
//! | `application/json` | one event, or a JSON array of events |
//! | `application/cloudevents-batch+json` | a JSON array of events |
//! | `application/x-ndjson` | one event per line |
//! | any JSON type with `ce-specversion` | binary mode: attributes in `ce-*` headers, body = `data` |
//!
//! Checks run cheapest first: size, content type, nesting depth (a byte
//! scan, before any parse, so a deeply nested body cannot exhaust the
//! parser's stack), event count, then each event through
//! [`scimfleet_schemas::Event::parse`]. All or nothing: the first invalid
//! event refuses the whole request, naming its index and field. Each event
//! keeps the exact bytes it was sent as (a batch is checked to be one JSON
//! array, then split at its top-level commas), so what is published is
//! what was signed.

use http::HeaderMap;

use crate::binary;
use crate::problem::Problem;
use scimfleet_schemas::{Event, EventError};

/// The request limits (`[intake]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body, bytes.
    pub max_body_bytes: usize,
    /// Deepest JSON nesting.
    pub max_depth: usize,
    /// Most events per request.
    pub max_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_body_bytes: 1024 * 1024, max_depth: 32, max_events: 500 }
    }
}

/// One event of a request: parsed, and the JSON to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The validated event.
    pub event: Event,
    /// Its CloudEvents JSON (structured mode), as sent when it was sent so.
    pub json: Vec<u8>,
}

/// How the body holds its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Single,
    Array,
    Lines,
    Binary,
}

/// Parses a request into its events, or the problem to answer.
pub fn parse_request(headers: &HeaderMap, body: &[u8], limits: &Limits) -> Result<Vec<Incoming>, Problem> {
    if body.len() > limits.max_body_bytes {
        return Err(Problem::too_large("body", format!("the body is over {} bytes", limits.max_body_bytes)));
    }
    let shape = shape(headers, body)?;
    check_depth(body, limits.max_depth)?;
    let events = match shape {
        Shape::Binary => vec![binary::event(headers, body)?],
        Shape::Single => vec![(body.to_vec(), Pointer::Root)],
        Shape::Array => split_array(body)?,
        Shape::Lines => split_lines(body),
    };
    if events.is_empty() {
        return Err(Problem::invalid("the request holds no event").field("body"));
    }
    if events.len() > limits.max_events {
        return Err(Problem::too_large(
            "events",
            format!("more than {} events in one request", limits.max_events),
        ));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(index, (json, pointer))| match Event::parse(&json) {
            Ok(event) => Ok(Incoming { event, json }),
            Err(error) => Err(event_problem(&error, index, pointer)),
        })
        .collect()
}

/// Where an event's fields are, for naming them in a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pointer {
    /// The body is the event: `/data/sequence`.
    Root,
    /// The event at an index of a batch: `/3/data/sequence`.
    Indexed,
    /// Binary mode: attributes are `ce-*` headers, `data` is the body.
    Headers,
}

fn shape(headers: &HeaderMap, body: &[u8]) -> Result<Shape, Problem> {
    let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
        return Err(Problem::unsupported("content-type is missing"));
    };
    let value = value.to_str().map_err(|_| Problem::unsupported("content-type is not visible ASCII"))?;
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    for parameter in parts {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        if name.trim().eq_ignore_ascii_case("charset")
            && !value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        {
            return Err(Problem::unsupported("only the utf-8 charset is read"));
        }
    }
    if headers.contains_key(binary::CE_SPECVERSION) {
        return match media.as_str() {
            "application/json" => Ok(Shape::Binary),
            _ => Err(Problem::unsupported("binary mode needs data of type application/json")),
        };
    }
    match media.as_str() {
        "application/cloudevents+json" => Ok(Shape::Single),
        "application/json" => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            Ok(if first == Some(&b'[') { Shape::Array } else { Shape::Single })
        }
        "application/cloudevents-batch+json" => Ok(Shape::Array),
        "application/x-ndjson" => Ok(Shape::Lines),
        _ => Err(Problem::unsupported(
            "send application/cloudevents+json, application/cloudevents-batch+json, application/json or application/x-ndjson",
        )),
    }
}

/// Refuses JSON nested deeper than `max`, scanning bytes only (strings skipped).
pub fn check_depth(body: &[u8], max: usize) -> Result<(), Problem> {
    let mut depth = 0usize;
    for (_, byte) in structural(body) {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(
                        Problem::invalid(format!("JSON is nested deeper than {max} levels")).field("body")
                    );
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The bytes of `body` outside JSON strings (and the quotes that delimit
/// them), with their offsets: brackets, braces and commas are only
/// structure there.
fn structural(body: &[u8]) -> impl Iterator<Item = (usize, u8)> + '_ {
    let (mut in_string, mut escaped) = (false, false);
    body.iter().enumerate().filter_map(move |(at, &byte)| {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            return None;
        }
        in_string = byte == b'"';
        (!in_string).then_some((at, byte))
    })
}

fn split_array(body: &[u8]) -> Result<Vec<(Vec<u8>, Pointer)>, Problem> {
    serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(body).map_err(|e| {
        Problem::invalid(format!(
            "the body is not a JSON array of events (line {}, column {})",
            e.line(),
            e.column()
        ))
        .field("body")
    })?;
    // Valid JSON array: its elements are what lies between the commas at depth 1.
    let (mut items, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (at, byte) in structural(body) {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                if depth == 1 {
                    start = at + 1;
                }
            }
            b']' | b'}' | b',' if depth == 1 => {
                let item = body[start..at].trim_ascii();
                if !item.is_empty() {
                    items.push((item.to_vec(), Pointer::Indexed));
                }
                start = at + 1;
                if byte != b',' {
                    depth -= 1;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(items)
}

fn split_lines(body: &[u8]) -> Vec<(Vec<u8>, Pointer)> {
    body.split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
        .map(|line| (line.to_vec(), Pointer::Indexed))
        .collect()
}

/// The problem of one invalid event: its index and the field named by the
/// schemas crate, as a JSON pointer (or a `ce-*` header in binary mode).
fn event_problem(error: &EventError, index: usize, pointer: Pointer) -> Problem {
    let path = match error {
        EventError::Shape { path, .. } => path.replace('[', ".").replace(']', ""),
        EventError::Rule { field, .. } => (*field).to_owned(),
        _ => String::new(),
    };
    let segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    let within = segments.iter().fold(String::new(), |out, s| format!("{out}/{s}"));
    let field = match pointer {
        Pointer::Root => {
            if within.is_empty() {
                "/".to_owned()
            } else {
                within
            }
        }
        Pointer::Indexed => format!("/{index}{within}"),
        Pointer::Headers => match segments.first() {
            Some(&"data") => within,
            Some(name) => format!("ce-{name}"),
            None => "body".to_owned(),
        },
    };
    let kind = error.kind();
    let problem = Problem::invalid(format!("{error} ({kind})")).field(field).index(index);
    if matches!(error, EventError::TooLarge { .. }) {
        return Problem { status: http::StatusCode::PAYLOAD_TOO_LARGE, kind: "too-large", ..problem };
    }
    problem
}

#[cfg(test)]
mod tests;
