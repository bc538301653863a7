//! RFC 6238 time-based one-time passwords, as authenticator apps make them:
//! HMAC-SHA1 over the number of 30-second steps since the Unix epoch
//! (T0 = 0), dynamic truncation (RFC 4226 §5.3), 6 digits.
//!
//! [`check`] answers which time step a code belongs to, so the caller can
//! refuse a code (or any older one) used before: that record lives in Redis
//! (`Store::totp`), shared by every admin process. A code is accepted for
//! the current step and one step either side (a phone's clock a little off);
//! a code of an older step, up to [`EXPIRED_STEPS`] back, is reported as
//! expired rather than wrong, which tells an operator to wait for the next
//! code instead of suspecting the secret. Codes are compared in constant
//! time, all candidate steps every time.
//!
//! Secrets are read and written in base32 (RFC 4648), the form authenticator
//! apps show and scan: case-insensitive, `=` padding and spaces optional.
//! A [`TotpSecret`] is wiped from memory when dropped and never printed.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Seconds per time step (RFC 6238's default; what authenticator apps use).
pub const STEP_SECONDS: u64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// How many steps either side of the current one a code is accepted for.
pub const SKEW_STEPS: u64 = 1;
/// How far back (in steps) a code is recognised as expired rather than wrong.
pub const EXPIRED_STEPS: u64 = 10;
/// Bytes of a generated secret: 160 bits, RFC 4226's recommendation.
pub const GENERATED_BYTES: usize = 20;
/// The shortest secret accepted: 80 bits, as many authenticator set-ups
/// use (RFC 4226 asks for 128; [`TotpSecret::generate`] makes 160).
pub const MIN_BYTES: usize = 10;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Why a secret or a code was refused. Never carries the secret or the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// The secret is not base32 (RFC 4648).
    #[error("not base32")]
    NotBase32,
    /// The secret is shorter than [`MIN_BYTES`].
    #[error("too short: {bits} bits, at least {} needed", MIN_BYTES * 8)]
    TooShort {
        /// Bits in the secret given.
        bits: usize,
    },
    /// The code is not six digits.
    #[error("a code is six digits")]
    Malformed,
    /// The code belongs to a step that is over: wait for the next code.
    #[error("the code has expired; use the next one")]
    Expired,
    /// The code matches no recent step.
    #[error("wrong code")]
    Wrong,
}

/// A shared TOTP secret: wiped when dropped, never shown by `Debug`.
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    /// Decodes base32: case-insensitive, spaces and trailing `=` padding optional.
    pub fn from_base32(s: &str) -> Result<Self, TotpError> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(s.len() * 5 / 8));
        let text = s.trim_end_matches(|c: char| c == '=' || c.is_ascii_whitespace());
        let (mut buffer, mut bits, mut symbols) = (0u32, 0u32, 0usize);
        for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
            let upper = c.to_ascii_uppercase();
            let value = ALPHABET.iter().position(|&a| a == upper).ok_or(TotpError::NotBase32)?;
            buffer = (buffer << 5) | u32::try_from(value).map_err(|_| TotpError::NotBase32)?;
            bits += 5;
            symbols += 1;
            if bits >= 8 {
                bits -= 8;
                bytes.push(u8::try_from((buffer >> bits) & 0xff).map_err(|_| TotpError::NotBase32)?);
            }
            buffer &= (1 << bits) - 1;
        }
        // A final quantum of 1, 3 or 6 symbols cannot come from whole bytes.
        if matches!(symbols % 8, 1 | 3 | 6) {
            return Err(TotpError::NotBase32);
        }
        if bytes.len() < MIN_BYTES {
            return Err(TotpError::TooShort { bits: bytes.len() * 8 });
        }
        Ok(Self(bytes))
    }

    /// A new random secret of [`GENERATED_BYTES`] from the thread's CSPRNG
    /// (seeded by the operating system).
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; GENERATED_BYTES]);
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Upper-case base32 without padding, as `otpauth://` URIs carry it.
    /// The result is the secret itself: never log it.
    pub fn to_base32(&self) -> String {
        let mut out = String::with_capacity(self.0.len().div_ceil(5) * 8);
        let (mut buffer, mut bits) = (0u32, 0u32);
        for &byte in self.0.iter() {
            buffer = (buffer << 8) | u32::from(byte);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(symbol(buffer >> bits));
            }
            buffer &= (1 << bits) - 1;
        }
        if bits > 0 {
            out.push(symbol(buffer << (5 - bits)));
        }
        out
    }
}

fn symbol(value: u32) -> char {
    char::from(ALPHABET[(value & 31) as usize])
}

/// The HOTP value (RFC 4226 §5.3) of `counter`, reduced to `digits` digits.
fn hotp(secret: &TotpSecret, counter: u64, digits: u32) -> u32 {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&secret.0).expect("HMAC takes keys of any length");
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[19] & 0x0f);
    let word = [hash[offset] & 0x7f, hash[offset + 1], hash[offset + 2], hash[offset + 3]];
    u32::from_be_bytes(word) % 10u32.pow(digits)
}

/// The code of time step `step`, zero-padded.
fn code_of_step(secret: &TotpSecret, step: u64) -> String {
    format!("{:0width$}", hotp(secret, step, DIGITS), width = DIGITS as usize)
}

/// The six-digit code for the time `unix_seconds`, zero-padded.
pub fn code_at(secret: &TotpSecret, unix_seconds: u64) -> String {
    code_of_step(secret, unix_seconds / STEP_SECONDS)
}

/// The time step the code belongs to: the current step or one either side
/// (clock skew). A code of an older step (up to [`EXPIRED_STEPS`] back) is
/// [`TotpError::Expired`], anything else [`TotpError::Wrong`]; input that is
/// not six ASCII digits (surrounding whitespace aside) is
/// [`TotpError::Malformed`]. Every candidate step is compared, in constant
/// time, whatever matches first.
///
/// The caller must still refuse a step used before (`Store::totp().consume`).
pub fn check(secret: &TotpSecret, code: &str, unix_seconds: u64) -> Result<u64, TotpError> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::Malformed);
    }
    let now = unix_seconds / STEP_SECONDS;
    // The current step first, so that a code two steps share (one in a
    // million) is taken for the step the clocks agree on.
    let accepted = [Some(now), now.checked_sub(1), now.checked_add(1)];
    let mut found = None;
    for step in accepted.into_iter().flatten() {
        let matches = bool::from(code_of_step(secret, step).as_bytes().ct_eq(code.as_bytes()));
        if matches && found.is_none() {
            found = Some(step);
        }
    }
    if let Some(step) = found {
        return Ok(step);
    }
    let mut expired = false;
    for back in (SKEW_STEPS + 1)..=EXPIRED_STEPS {
        if let Some(step) = now.checked_sub(back) {
            expired |= bool::from(code_of_step(secret, step).as_bytes().ct_eq(code.as_bytes()));
        }
    }
    Err(if expired { TotpError::Expired } else { TotpError::Wrong })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238's SHA1 seed, "12345678901234567890" in ASCII.
    fn rfc_secret() -> TotpSecret {
        TotpSecret(Zeroizing::new(b"12345678901234567890".to_vec()))
    }

    /// RFC 6238 Appendix B, the SHA1 rows: (time, 8-digit TOTP).
    const VECTORS: [(u64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn rfc_6238_sha1_vectors_in_eight_and_six_digits() {
        let secret = rfc_secret();
        for (time, expected) in VECTORS {
            let eight = format!("{:08}", hotp(&secret, time / STEP_SECONDS, 8));
            assert_eq!(eight, expected, "t = {time}");
            // Six digits are the same number mod 10^6: the last six.
            assert_eq!(code_at(&secret, time), expected[2..], "t = {time}");
            assert_eq!(check(&secret, &expected[2..], time), Ok(time / 30));
        }
    }

    #[test]
    fn base32_round_trips_and_is_lenient_on_case_padding_and_spaces() {
        let secret = rfc_secret();
        let text = secret.to_base32();
        assert_eq!(text, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let spaced = "gezd gnbv gy3t qojq GEZD GNBV GY3T QOJQ";
        assert_eq!(TotpSecret::from_base32(spaced).expect("base32").0, secret.0);
        // 10 bytes = 16 symbols, no padding; 11 bytes need 18 symbols + 6 `=`.
        let example = TotpSecret::from_base32("JBSWY3DPEHPK3PXP").expect("base32");
        assert_eq!(example.0.as_slice(), b"Hello!\xde\xad\xbe\xef");
        let eleven = TotpSecret(Zeroizing::new(b"Hello!\xde\xad\xbe\xef!".to_vec()));
        let encoded = eleven.to_base32();
        assert_eq!(encoded.len(), 18);
        for form in [encoded.clone(), format!("{encoded}======")] {
            assert_eq!(TotpSecret::from_base32(&form).expect("base32").0, eleven.0);
        }
        let generated = TotpSecret::generate();
        assert_eq!(generated.0.len(), GENERATED_BYTES);
        assert_eq!(TotpSecret::from_base32(&generated.to_base32()).expect("base32").0, generated.0);
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        for bad in ["JBSWY3DPEHPK3PX1", "JBSWY3DP=EHPK3PXP", "JBSWY3DPEHPK3PXPA", "ÄBSWY3DPEHPK3PXP"] {
            assert_eq!(TotpSecret::from_base32(bad).map(drop), Err(TotpError::NotBase32), "{bad}");
        }
        assert_eq!(TotpSecret::from_base32("").map(drop), Err(TotpError::TooShort { bits: 0 }));
        assert_eq!(TotpSecret::from_base32("JBSWY3DP").map(drop), Err(TotpError::TooShort { bits: 40 }));
        let secret = TotpSecret::from_base32("JBSWY3DPEHPK3PXP").expect("base32");
        assert_eq!(format!("{secret:?}"), "TotpSecret(<redacted>)");
    }

    #[test]
    fn one_step_of_skew_either_side_is_accepted() {
        let secret = rfc_secret();
        let now = 1_111_111_111;
        let step = now / 30;
        assert_eq!(check(&secret, &code_at(&secret, now), now), Ok(step));
        assert_eq!(check(&secret, &code_at(&secret, now - 30), now), Ok(step - 1));
        assert_eq!(check(&secret, &code_at(&secret, now + 30), now), Ok(step + 1));
        assert_eq!(check(&secret, &format!(" {} ", code_at(&secret, now)), now), Ok(step));
        // Two steps ahead is not skew any more.
        assert_eq!(check(&secret, &code_at(&secret, now + 60), now), Err(TotpError::Wrong));
    }

    #[test]
    fn older_codes_are_expired_then_wrong() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        for back in 2..=EXPIRED_STEPS {
            let old = code_at(&secret, now - back * 30);
            assert_eq!(check(&secret, &old, now), Err(TotpError::Expired), "{back} steps back");
        }
        let ancient = code_at(&secret, now - 3600);
        assert_eq!(check(&secret, &ancient, now), Err(TotpError::Wrong));
        let code = code_at(&secret, now);
        let other = format!("{:06}", (code.parse::<u32>().expect("digits") + 1) % 1_000_000);
        assert_eq!(check(&secret, &other, now), Err(TotpError::Wrong));
        // Near the epoch there is nothing before step 0 to compare.
        assert_eq!(check(&rfc_secret(), "287082", 59), Ok(1));
        assert!(check(&rfc_secret(), "000000", 0).is_err());
    }

    #[test]
    fn anything_but_six_digits_is_malformed() {
        let secret = rfc_secret();
        for bad in ["", "12345", "1234567", "12 345", "12a456", "１２３４５６", "+12345"] {
            assert_eq!(check(&secret, bad, 59), Err(TotpError::Malformed), "{bad:?}");
        }
    }
}
