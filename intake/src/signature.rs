//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>).
//!
//! A sender signs `{webhook-id}.{webhook-timestamp}.{raw body}` with
//! HMAC-SHA256 under a shared secret `whsec_<base64 key>`, and sends
//! `webhook-signature: v1,<base64 MAC>` (several, space-separated, while it
//! rotates). The intake tries every secret of every source: the request
//! belongs to the source whose secret verifies it, so a source lists its
//! old and new secret side by side during a rotation. Comparison is
//! constant-time (`Mac::verify_slice`).
//!
//! The timestamp is checked first (cheap, and a stale request is refused
//! whatever it claims), then the signatures. Nothing here looks at the body
//! beyond hashing it: an unauthenticated body is never parsed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

use crate::problem::Problem;

/// Header: the message id, unique per message and kept across the sender's retries.
pub const WEBHOOK_ID: &str = "webhook-id";
/// Header: when the message was signed, Unix seconds.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Header: `v1,<base64>` signatures, space-separated.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// Prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Longest `webhook-id` accepted.
const MAX_ID: usize = 256;

/// One HMAC key; never printed.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key([redacted])")
    }
}

impl Key {
    /// Decodes `whsec_<base64>`; the error says why without the value.
    pub fn from_secret(secret: &str) -> Result<Self, &'static str> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or("must start with whsec_")?;
        let key = STANDARD.decode(encoded).map_err(|_| "the part after whsec_ is not base64")?;
        if key.len() < 16 {
            return Err("the key must be at least 16 bytes");
        }
        Ok(Self(key))
    }

    /// The `v1,<base64>` signature of a message (what a sender computes).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mac = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(mac))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// The signed headers of a request whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Index of the source whose secret verified it.
    pub source: usize,
    /// The `webhook-id`.
    pub id: String,
    /// The `webhook-timestamp`.
    pub timestamp: i64,
}

/// Verifies a request against `keys` (per source, its keys), at `now`
/// (Unix seconds), with `tolerance_s` of clock skew either way.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    keys: &[Vec<Key>],
    now: i64,
    tolerance_s: i64,
) -> Result<Verified, Problem> {
    let text = |name: &'static str| -> Result<&str, Problem> {
        let value =
            headers.get(name).ok_or_else(|| Problem::unauthorized(name, format!("{name} is missing")))?;
        value.to_str().map_err(|_| Problem::unauthorized(name, format!("{name} is not visible ASCII")))
    };
    let id = text(WEBHOOK_ID)?;
    if id.is_empty() || id.len() > MAX_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::unauthorized(WEBHOOK_ID, "webhook-id must be 1-256 visible ASCII characters"));
    }
    let stamp = text(WEBHOOK_TIMESTAMP)?;
    let timestamp = (!stamp.is_empty() && stamp.len() <= 12 && stamp.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stamp.parse::<i64>().ok())
        .flatten()
        .ok_or_else(|| Problem::unauthorized(WEBHOOK_TIMESTAMP, "webhook-timestamp must be Unix seconds"))?;
    if (now - timestamp).abs() > tolerance_s {
        return Err(Problem::unauthorized(
            WEBHOOK_TIMESTAMP,
            format!("webhook-timestamp is more than {tolerance_s} s away from the intake's clock"),
        ));
    }
    let signatures: Vec<Vec<u8>> = text(WEBHOOK_SIGNATURE)?
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| STANDARD.decode(s).ok())
        .take(8)
        .collect();
    if signatures.is_empty() {
        return Err(Problem::unauthorized(WEBHOOK_SIGNATURE, "no v1 signature in webhook-signature"));
    }
    for (source, source_keys) in keys.iter().enumerate() {
        for key in source_keys {
            let mac = key.mac(id, timestamp, body);
            if signatures.iter().any(|s| mac.clone().verify_slice(s).is_ok()) {
                return Ok(Verified { source, id: id.to_owned(), timestamp });
            }
        }
    }
    Err(Problem::unauthorized(WEBHOOK_SIGNATURE, "no signature verifies with a configured secret"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::from_secret(&format!("whsec_{}", STANDARD.encode([byte; 32]))).expect("valid secret")
    }

    fn headers(id: &str, ts: i64, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(WEBHOOK_ID, id.parse().expect("id"));
        h.insert(WEBHOOK_TIMESTAMP, ts.to_string().parse().expect("ts"));
        h.insert(WEBHOOK_SIGNATURE, signature.parse().expect("sig"));
        h
    }

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification and its libraries.
        let key = Key::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("spec secret");
        let body = br#"{"test": 2432232314}"#;
        let signature = key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn the_source_whose_secret_verifies_is_chosen_and_rotation_works() {
        let keys = vec![vec![key(1)], vec![key(2), key(3)]];
        let body = b"{}";
        for (k, source) in [(key(1), 0), (key(2), 1), (key(3), 1)] {
            let h = headers("m1", 1000, &format!("v1,bogus {}", k.sign("m1", 1000, body)));
            assert_eq!(verify(&h, body, &keys, 1000, 300).expect("verified").source, source);
        }
        let h = headers("m1", 1000, &key(9).sign("m1", 1000, body));
        let problem = verify(&h, body, &keys, 1000, 300).expect_err("unknown key");
        assert_eq!((problem.status.as_u16(), problem.field.as_deref()), (401, Some(WEBHOOK_SIGNATURE)));
    }

    #[test]
    fn a_changed_body_id_or_stale_time_is_refused() {
        let keys = vec![vec![key(1)]];
        let signed = key(1).sign("m1", 1000, b"{}");
        assert!(verify(&headers("m1", 1000, &signed), b"{ }", &keys, 1000, 300).is_err());
        assert!(verify(&headers("m2", 1000, &signed), b"{}", &keys, 1000, 300).is_err());
        let stale = verify(&headers("m1", 1000, &signed), b"{}", &keys, 1301, 300).expect_err("stale");
        assert_eq!(stale.field.as_deref(), Some(WEBHOOK_TIMESTAMP));
        let early = verify(&headers("m1", 1000, &signed), b"{}", &keys, 699, 300).expect_err("future");
        assert_eq!(early.field.as_deref(), Some(WEBHOOK_TIMESTAMP));
    }

    #[test]
    fn missing_headers_are_named() {
        let problem = verify(&HeaderMap::new(), b"", &[], 0, 300).expect_err("nothing");
        assert_eq!(problem.field.as_deref(), Some(WEBHOOK_ID));
        assert!(Key::from_secret("c2VjcmV0").is_err());
        assert!(Key::from_secret("whsec_!!").is_err());
    }
}
