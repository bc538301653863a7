//! The intake's fuzz target, shared by cargo-fuzz (`fuzz/fuzz_targets/intake.rs`)
//! and the stable property tests (`intake/tests/request_props.rs`).
//!
//! An input is an HTTP request as text: header lines `name: value` up to the
//! first empty line, then the body (no empty line: all body, no headers).

use http::{HeaderMap, HeaderName, HeaderValue};
use scimfleet_intake::{Limits, Problem, parse_request};

/// Parses `data` as the intake would: events within the limits, or a
/// well-formed RFC 9457 problem with a status the parser may use; never a panic.
pub fn request(data: &[u8]) {
    let (headers, body) = split(data);
    let limits = Limits { max_body_bytes: 64 * 1024, max_depth: 16, max_events: 8 };
    match parse_request(&headers, body, &limits) {
        Ok(events) => {
            assert!(!events.is_empty() && events.len() <= limits.max_events, "{} events", events.len())
        }
        Err(problem) => well_formed(&problem, &[400, 413, 415]),
    }
}

/// Headers and body of a request written as text.
pub fn split(data: &[u8]) -> (HeaderMap, &[u8]) {
    let Some(end) = data.windows(2).position(|w| w == b"\n\n") else { return (HeaderMap::new(), data) };
    let mut headers = HeaderMap::new();
    for line in data[..end].split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let value = line[colon + 1..].strip_prefix(b" ").unwrap_or(&line[colon + 1..]);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    (headers, &data[end + 2..])
}

/// A refusal names its status in its body, has a type, title and detail,
/// and its type is one of the intake's.
pub fn well_formed(problem: &Problem, allowed: &[u16]) {
    let status = problem.status.as_u16();
    assert!(allowed.contains(&status), "unexpected status {status}: {problem:?}");
    let body = problem.body();
    assert_eq!(body["status"].as_u64(), Some(u64::from(status)));
    for member in ["type", "title", "detail"] {
        assert!(body[member].as_str().is_some_and(|s| !s.is_empty()), "{member} missing: {body}");
    }
    assert!(body["type"].as_str().is_some_and(|t| t.starts_with("urn:scimfleet:intake:")));
}
