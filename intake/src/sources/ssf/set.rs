//! Verifying a Security Event Token (RFC 8417) from the configured
//! transmitter, the same way whether it was pushed (RFC 8935) or polled
//! (RFC 8936).
//!
//! - **Keys**: the transmitter's configuration
//!   (`/.well-known/ssf-configuration`, SSF 1.0 §7) names its `jwks_uri`;
//!   both are fetched on first use and kept for [`KEYS_MAX_AGE`]. A SET
//!   signed under a `kid` the cached set lacks makes one fetch at once (the
//!   transmitter rotated its key), shared by concurrent requests; only an
//!   authenticated sender (push token) or the transmitter itself (poll) can
//!   cause it. The configuration must name the configured issuer (SSF 1.0
//!   §4.1.7): anything else is not trusted for keys.
//! - **Signature**: the JWS `alg` must be the key's (`alg` of the JWK when
//!   it has one, else its key type); `none` and symmetric keys are never
//!   accepted (a JWKS is public: an HMAC key in it would let anyone sign).
//!   `typ`, when present, must be `secevent+jwt` (RFC 8417 §2.3, SSF 1.0 §4.1.1).
//! - **Claims**: `iss` is the issuer, `aud` names the audience, `jti` and
//!   `iat` are present and `events` holds at least one event.
//!
//! A refusal carries the error code of RFC 8935 §2.3 (also used in RFC 8936
//! `setErrs`); the description never holds a claim's value.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::Mutex;

/// How long fetched keys are used before they are fetched again (so a
/// revoked key stops being trusted within this time).
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// Why a SET is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The SET is refused: an RFC 8935 §2.3 error code and a description.
    Set {
        /// `invalid_request`, `invalid_key`, `invalid_issuer`, `invalid_audience`,
        /// `authentication_failed`, `access_denied` (or SSF's `invalid_state`).
        err: &'static str,
        /// Why, without any value of the SET.
        description: String,
    },
    /// The transmitter's keys cannot be read now: try again later.
    Unavailable(String),
}

impl Refused {
    pub(super) fn set(err: &'static str, description: impl Into<String>) -> Self {
        Self::Set { err, description: description.into() }
    }
}

/// A SET whose signature and claims were verified.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its `jti`.
    pub jti: String,
    /// Its claims.
    pub claims: Value,
}

/// What the transmitter's configuration says.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// `verification_endpoint`.
    pub verification_endpoint: Option<String>,
    /// `configuration_endpoint` (stream configuration).
    pub configuration_endpoint: Option<String>,
}

#[derive(Debug)]
struct Cached {
    metadata: Metadata,
    keys: JwkSet,
    fetched: Instant,
}

/// The transmitter: its configuration and keys, fetched and cached.
#[derive(Debug)]
pub struct Transmitter {
    issuer: String,
    audience: String,
    config_url: String,
    client: reqwest::Client,
    cache: Mutex<Option<Cached>>,
}

impl Transmitter {
    /// The transmitter `issuer` whose configuration is at `config_url`; SETs must name `audience`.
    pub fn new(issuer: &str, audience: &str, config_url: String, client: reqwest::Client) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            config_url,
            client,
            cache: Mutex::new(None),
        }
    }

    /// The transmitter's configuration (fetched if not yet).
    pub async fn metadata(&self) -> Result<Metadata, Refused> {
        let mut cache = self.cache.lock().await;
        self.fresh(&mut cache, false).await?;
        Ok(cache.as_ref().map(|c| c.metadata.clone()).unwrap_or_default())
    }

    /// Verifies a compact JWS SET.
    pub async fn verify(&self, token: &str) -> Result<Verified, Refused> {
        let token = token.trim();
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            Refused::set("invalid_request", "not a signed JWT (compact JWS) with a supported alg")
        })?;
        if let Some(typ) = &header.typ {
            let typ = typ.to_ascii_lowercase();
            if typ != "secevent+jwt" && typ != "application/secevent+jwt" {
                return Err(Refused::set("invalid_request", "the JOSE header typ is not secevent+jwt"));
            }
        }
        let jwk = self.key(header.kid.as_deref()).await?;
        let key = acceptable(&jwk, header.alg)?;
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims(&["iss", "aud"]);
        // SETs carry no `exp` (SSF 1.0 §4.1.8); `iat` is checked below.
        validation.validate_exp = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        let claims =
            jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| refusal(e.kind()))?.claims;
        let jti = claims.get("jti").and_then(Value::as_str).filter(|j| !j.is_empty() && j.len() <= 256);
        let Some(jti) = jti else {
            return Err(Refused::set("invalid_request", "the SET has no jti (1-256 characters)"));
        };
        if !claims.get("iat").is_some_and(Value::is_number) {
            return Err(Refused::set("invalid_request", "the SET has no numeric iat"));
        }
        if claims.get("events").and_then(Value::as_object).is_none_or(|e| e.is_empty()) {
            return Err(Refused::set("invalid_request", "the SET has no events"));
        }
        Ok(Verified { jti: jti.to_owned(), claims })
    }

    /// The key `kid` names (or the only signing key when there is no
    /// `kid`), fetching the keys again once when the cached set lacks it.
    async fn key(&self, kid: Option<&str>) -> Result<Jwk, Refused> {
        let mut cache = self.cache.lock().await;
        let fetched = self.fresh(&mut cache, false).await?;
        if let Some(found) = cache.as_ref().and_then(|c| find(&c.keys, kid)) {
            return Ok(found);
        }
        if !fetched {
            self.fresh(&mut cache, true).await?;
            if let Some(found) = cache.as_ref().and_then(|c| find(&c.keys, kid)) {
                return Ok(found);
            }
        }
        Err(Refused::set("invalid_key", "the SET is signed with a key the transmitter does not publish"))
    }

    /// Fetches the configuration and keys when there are none, they are
    /// older than [`KEYS_MAX_AGE`], or `again`; whether it fetched. Stale
    /// keys stay in use while the transmitter cannot be reached.
    async fn fresh(&self, cache: &mut Option<Cached>, again: bool) -> Result<bool, Refused> {
        if !again && cache.as_ref().is_some_and(|c| c.fetched.elapsed() < KEYS_MAX_AGE) {
            return Ok(false);
        }
        match self.fetch().await {
            Ok(fetched) => {
                *cache = Some(fetched);
                Ok(true)
            }
            Err(reason) if cache.is_some() => {
                tracing::warn!(reason = %reason, "SSF transmitter keys could not be fetched again; the cached ones stay in use");
                Ok(false)
            }
            Err(reason) => Err(Refused::Unavailable(reason)),
        }
    }

    async fn fetch(&self) -> Result<Cached, String> {
        let configuration = self.get_json(&self.config_url, "configuration").await?;
        let issuer = configuration.get("issuer").and_then(Value::as_str).unwrap_or_default();
        if issuer.trim_end_matches('/') != self.issuer.trim_end_matches('/') {
            return Err(
                "the transmitter's configuration names another issuer than the source's `issuer`".into()
            );
        }
        let text = |name: &str| configuration.get(name).and_then(Value::as_str).map(str::to_owned);
        let jwks_uri = text("jwks_uri").ok_or("the transmitter's configuration has no jwks_uri")?;
        let keys = self.get_json(&jwks_uri, "JWKS").await?;
        let keys: JwkSet =
            serde_json::from_value(keys).map_err(|_| "the transmitter's JWKS cannot be read".to_owned())?;
        let metadata = Metadata {
            verification_endpoint: text("verification_endpoint"),
            configuration_endpoint: text("configuration_endpoint"),
        };
        Ok(Cached { metadata, keys, fetched: Instant::now() })
    }

    async fn get_json(&self, url: &str, what: &str) -> Result<Value, String> {
        let response =
            self.client.get(url).header("accept", "application/json").send().await.map_err(|e| {
                format!(
                    "transmitter {what} unreachable: {}",
                    scimfleet_runtime::telemetry::error_chain(&e.without_url())
                )
            })?;
        if !response.status().is_success() {
            return Err(format!("transmitter {what} answered {}", response.status()));
        }
        response.json().await.map_err(|_| format!("transmitter {what} is not JSON"))
    }
}

/// `kid`'s key in `keys`; without a `kid`, the only key meant for signatures.
fn find(keys: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(kid) => keys.find(kid).cloned(),
        None => {
            let mut signing =
                keys.keys.iter().filter(|k| k.common.public_key_use != Some(PublicKeyUse::Encryption));
            match (signing.next(), signing.next()) {
                (Some(only), None) => Some(only.clone()),
                _ => None,
            }
        }
    }
}

/// The decoding key of `jwk` for a JWS signed with `alg`, when `alg` is the
/// key's own algorithm and the key is an asymmetric signing key.
pub fn acceptable(jwk: &Jwk, alg: Algorithm) -> Result<DecodingKey, Refused> {
    let refuse = |why: &str| Err(Refused::set("invalid_key", why.to_owned()));
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return refuse("the key is published for encryption, not signatures");
    }
    let family_ok = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {
            matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            )
        }
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        AlgorithmParameters::OctetKeyPair(_) => alg == Algorithm::EdDSA,
        AlgorithmParameters::OctetKey(_) => {
            return refuse("a symmetric key cannot verify a SET from a public JWKS");
        }
    };
    if !family_ok {
        return refuse("the JWS alg does not fit the key");
    }
    if let Some(declared) = jwk.common.key_algorithm
        && !same_algorithm(declared, alg)
    {
        return refuse("the JWS alg is not the key's alg");
    }
    DecodingKey::from_jwk(jwk).map_err(|_| Refused::set("invalid_key", "the key cannot be used"))
}

fn same_algorithm(declared: KeyAlgorithm, alg: Algorithm) -> bool {
    format!("{declared:?}") == format!("{alg:?}")
}

/// The refusal a failed `jsonwebtoken::decode` stands for.
fn refusal(kind: &jsonwebtoken::errors::ErrorKind) -> Refused {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => Refused::set(
            "authentication_failed",
            "the SET's signature does not verify with the transmitter's key",
        ),
        K::InvalidAlgorithm | K::InvalidEcdsaKey | K::InvalidRsaKey(_) | K::InvalidKeyFormat => {
            Refused::set("invalid_key", "the key cannot verify this JWS alg")
        }
        K::InvalidIssuer => Refused::set("invalid_issuer", "iss is not the configured transmitter"),
        K::MissingRequiredClaim(claim) if claim == "iss" => {
            Refused::set("invalid_issuer", "the SET has no iss")
        }
        K::InvalidAudience => Refused::set("invalid_audience", "aud does not name this receiver"),
        K::MissingRequiredClaim(claim) if claim == "aud" => {
            Refused::set("invalid_audience", "the SET has no aud")
        }
        _ => Refused::set("invalid_request", "the SET cannot be parsed"),
    }
}

/// The claims of a compact JWS, unverified: only for SETs verified when
/// they were received (a kept delivery), which the source's queue holds.
pub fn payload(token: &str) -> Result<Value, String> {
    use base64::Engine as _;
    let part = token.trim().split('.').nth(1).ok_or("not a compact JWS")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| "the JWS payload is not base64url".to_owned())?;
    serde_json::from_slice(&bytes).map_err(|_| "the JWS payload is not JSON".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_mismatched_keys_are_refused() {
        let hmac: Jwk =
            serde_json::from_value(serde_json::json!({ "kty": "oct", "k": "c2VjcmV0", "kid": "h" }))
                .expect("jwk");
        assert!(matches!(acceptable(&hmac, Algorithm::HS256), Err(Refused::Set { err: "invalid_key", .. })));
        let ec: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": "e", "alg": "ES256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        }))
        .expect("jwk");
        assert!(acceptable(&ec, Algorithm::ES256).is_ok());
        assert!(matches!(acceptable(&ec, Algorithm::RS256), Err(Refused::Set { err: "invalid_key", .. })));
        assert!(matches!(acceptable(&ec, Algorithm::ES384), Err(Refused::Set { err: "invalid_key", .. })));
    }

    #[test]
    fn a_key_without_kid_is_found_only_when_alone() {
        let one: JwkSet = serde_json::from_value(serde_json::json!({ "keys": [
            { "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" }
        ] }))
        .expect("jwks");
        assert!(find(&one, None).is_some());
        assert!(find(&one, Some("other")).is_none());
        let mut two = one.clone();
        two.keys.push(two.keys[0].clone());
        assert!(find(&two, None).is_none());
    }

    #[test]
    fn payloads_of_kept_sets_are_read_without_padding() {
        let token = "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJhIn0.c2ln";
        assert_eq!(payload(token).expect("read")["jti"], "a");
        assert!(payload("nodots").is_err());
    }
}
