//! Client assertions for `private_key_jwt` (RFC 7523 §2.2, profile of
//! OpenID Connect Core §9): a short-lived JWT signed with the client's key,
//! sent in place of a client secret.
//!
//! The algorithm follows the key: RSA signs RS256, EC P-256 ES256, Ed25519
//! EdDSA. Claims: `iss` = `sub` = the client id, `aud` = the token URL
//! (or the configured audience), a random `jti` so the endpoint can refuse
//! a replay, `iat`, and `exp` one minute later: long enough for a skewed
//! clock, short enough that a leaked assertion is soon useless.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use scimfleet_runtime::Secret;
use serde::Serialize;

/// How long an assertion is valid.
const LIFETIME_SECS: i64 = 60;

/// Signs client assertions with one key.
pub(super) struct Signer {
    key: EncodingKey,
    algorithm: Algorithm,
    key_id: Option<String>,
    client_id: String,
    audience: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: i64,
    exp: i64,
}

impl Signer {
    /// A signer for `pem`; an error says what is wrong with the key, never its content.
    pub(super) fn new(
        pem: &Secret,
        key_id: Option<String>,
        client_id: String,
        audience: String,
    ) -> Result<Self, String> {
        let (key, algorithm) = parse_key(pem.expose().as_bytes())?;
        let signer = Self { key, algorithm, key_id, client_id, audience };
        // Signing once proves the key works with its algorithm (an EC key
        // on another curve than P-256 parses, but cannot sign ES256).
        signer
            .assertion()
            .map_err(|_| format!("the key cannot sign {:?} assertions (EC keys must be P-256)", algorithm))?;
        Ok(signer)
    }

    /// A new signed assertion.
    pub(super) fn assertion(&self) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(self.algorithm);
        header.kid.clone_from(&self.key_id);
        let iat = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: &self.client_id,
            sub: &self.client_id,
            aud: &self.audience,
            jti: format!("{:032x}", rand::random::<u128>()),
            iat,
            exp: iat + LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
    }
}

/// The key and its algorithm: Ed25519, then EC, then RSA (each parser
/// refuses the others' keys).
fn parse_key(pem: &[u8]) -> Result<(EncodingKey, Algorithm), String> {
    if let Ok(key) = EncodingKey::from_ed_pem(pem) {
        return Ok((key, Algorithm::EdDSA));
    }
    if let Ok(key) = EncodingKey::from_ec_pem(pem) {
        return Ok((key, Algorithm::ES256));
    }
    if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
        return Ok((key, Algorithm::RS256));
    }
    Err("not a PEM private key (PKCS#8 RSA, EC P-256 or Ed25519, or PKCS#1 RSA)".into())
}
