//! TLS to RabbitMQ and Redis: the files a connection trusts and presents,
//! and the rule that keeps plaintext on loopback.
//!
//! Both services take the same three optional PEM files: a CA bundle that
//! replaces the system's roots for that connection, and a client
//! certificate with its private key for mutual TLS. They are read and parsed
//! once at start-up by the configuration (a missing or garbled file stops
//! the process, naming the field) and read again on every (re)connect, so
//! certificates renewed on disk are picked up without a restart.
//!
//! Plaintext (`amqp://`, `redis://`, `http://` for the management API) is
//! allowed to loopback hosts only, unless a section sets
//! `allow_plaintext = true`: credentials and HR data cross these links, and a
//! network that protects them otherwise (a private overlay, a sidecar that
//! terminates TLS) is something only the operator can vouch for.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Once;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Secret;

/// Installs ring as rustls's process-wide crypto provider, once.
///
/// The Redis client's rustls connector takes the process default and fails
/// without one; every process (and every test) that may connect calls this
/// first. Calling it again is harmless.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already installed; that one serves as well.
        let _already = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Whether `url` points at this machine: `localhost`, `127.0.0.0/8` or `::1`.
///
/// For schemes the URL standard does not know (`amqp`, `redis`) the host is
/// kept as text, so an IP literal is parsed here. An empty host counts as
/// loopback because both clients then connect to `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(host)) => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host.is_empty()
                || host.eq_ignore_ascii_case("localhost")
                || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

/// The TLS files of one connection as configured (relative paths already
/// resolved against the config file), with the section they belong to so
/// errors can name the field.
#[derive(Debug, Clone, Copy)]
pub struct TlsFiles<'a> {
    /// `broker` or `redis`.
    pub section: &'static str,
    /// PEM bundle of the CAs to trust instead of the system's.
    pub ca_file: Option<&'a Path>,
    /// PEM client certificate (chain) for mutual TLS.
    pub client_cert_file: Option<&'a Path>,
    /// PEM private key of the client certificate (PKCS#8, PKCS#1 or SEC1).
    pub client_key_file: Option<&'a Path>,
}

/// A client certificate and its key, PEM, ready for a TLS client.
#[derive(Clone)]
pub struct ClientIdentity {
    /// The certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// The private key, PEM; never printed.
    pub key_pem: Secret,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity").finish_non_exhaustive()
    }
}

/// What a connection trusts and presents, read from [`TlsFiles`].
#[derive(Debug, Clone, Default)]
pub struct TlsMaterial {
    /// The CA bundle, PEM; `None` trusts the client library's default roots.
    pub ca_pem: Option<String>,
    /// The client certificate and key for mutual TLS.
    pub identity: Option<ClientIdentity>,
}

impl TlsMaterial {
    /// Whether anything differs from a default TLS client.
    pub fn is_empty(&self) -> bool {
        self.ca_pem.is_none() && self.identity.is_none()
    }

    /// `builder` trusting the CA bundle and presenting the client
    /// certificate, for HTTPS to the same service (the management API).
    pub fn apply_to(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, reqwest::Error> {
        if let Some(ca) = &self.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(ca.as_bytes())? {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(identity) = &self.identity {
            let mut pem = identity.cert_pem.clone();
            pem.push(b'\n');
            pem.extend_from_slice(identity.key_pem.expose().as_bytes());
            builder = builder.identity(reqwest::Identity::from_pem(&pem)?);
        }
        Ok(builder)
    }
}

/// A TLS file that cannot be used; names the field, never a key's contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("`{field}`: cannot read {path}")]
    Read {
        /// Dotted field, e.g. `broker.ca_file`.
        field: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file holds nothing usable.
    #[error("`{field}`: {path} {reason}")]
    Parse {
        /// Dotted field.
        field: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// A client certificate without its key, or the reverse.
    #[error("`{field}` is set but `{missing}` is not: mutual TLS needs both")]
    Unpaired {
        /// The field that is set.
        field: String,
        /// The one that is missing.
        missing: String,
    },
}

impl TlsError {
    /// The dotted field the error is about.
    pub fn field(&self) -> &str {
        match self {
            Self::Read { field, .. } | Self::Parse { field, .. } | Self::Unpaired { field, .. } => field,
        }
    }

    /// What is wrong, without the field: for messages that name it already.
    pub fn reason(&self) -> String {
        match self {
            Self::Read { path, source, .. } => format!("cannot read {}: {source}", path.display()),
            Self::Parse { path, reason, .. } => format!("{} {reason}", path.display()),
            Self::Unpaired { missing, .. } => format!("is set but `{missing}` is not: mutual TLS needs both"),
        }
    }
}

impl TlsFiles<'_> {
    /// Whether any file is configured.
    pub fn any(&self) -> bool {
        self.ca_file.is_some() || self.client_cert_file.is_some() || self.client_key_file.is_some()
    }

    /// Reads and parses the files; each error names its field.
    pub fn load(&self) -> Result<TlsMaterial, TlsError> {
        let field = |name: &str| format!("{}.{name}", self.section);
        let ca_pem = self.ca_file.map(|path| certificates(&field("ca_file"), path)).transpose()?;
        let identity = match (self.client_cert_file, self.client_key_file) {
            (None, None) => None,
            (Some(_), None) => {
                let (field, missing) = (field("client_cert_file"), field("client_key_file"));
                return Err(TlsError::Unpaired { field, missing });
            }
            (None, Some(_)) => {
                let (field, missing) = (field("client_key_file"), field("client_cert_file"));
                return Err(TlsError::Unpaired { field, missing });
            }
            (Some(cert), Some(key)) => Some(ClientIdentity {
                cert_pem: certificates(&field("client_cert_file"), cert)?.into_bytes(),
                key_pem: private_key(&field("client_key_file"), key)?,
            }),
        };
        Ok(TlsMaterial { ca_pem, identity })
    }
}

/// A file holding at least one PEM certificate, as text.
fn certificates(field: &str, path: &Path) -> Result<String, TlsError> {
    let text = read(field, path)?;
    let certs = CertificateDer::pem_slice_iter(text.as_bytes()).collect::<Result<Vec<_>, _>>();
    if certs.map_or(true, |c| c.is_empty()) {
        let reason = "holds no PEM certificate";
        return Err(TlsError::Parse { field: field.to_owned(), path: path.to_owned(), reason });
    }
    Ok(text)
}

/// A file holding a PEM private key, kept as a secret.
fn private_key(field: &str, path: &Path) -> Result<Secret, TlsError> {
    let text = read(field, path)?;
    if PrivateKeyDer::from_pem_slice(text.as_bytes()).is_err() {
        // The parser's message is not passed on: it could quote the key.
        let reason = "holds no PEM private key";
        return Err(TlsError::Parse { field: field.to_owned(), path: path.to_owned(), reason });
    }
    Ok(Secret::new(text))
}

fn read(field: &str, path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        field: field.to_owned(),
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> url::Url {
        url::Url::parse(text).expect("a URL")
    }

    #[test]
    fn loopback_hosts_are_recognised_for_every_scheme() {
        for text in [
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            "amqp://localhost",
            "redis://127.3.4.5:6379/",
            "redis://[::1]:6379/",
            "http://127.0.0.1:15672",
            "http://LOCALHOST:15672",
        ] {
            assert!(is_loopback(&url(text)), "{text}");
        }
        for text in [
            "amqp://rabbit.internal:5672",
            "redis://10.0.0.5:6379",
            "redis://[2001:db8::1]:6379",
            "http://rabbit:15672",
            "amqp://localhost.example.com",
            "amqp://128.0.0.1",
        ] {
            assert!(!is_loopback(&url(text)), "{text}");
        }
    }

    #[test]
    fn unreadable_garbled_and_unpaired_files_name_their_field() {
        let dir = std::env::temp_dir().join(format!("scimfleet-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").expect("write");
        let absent = dir.join("absent.pem");
        let files = |ca, cert, key| TlsFiles {
            section: "redis",
            ca_file: ca,
            client_cert_file: cert,
            client_key_file: key,
        };

        let read = files(Some(absent.as_path()), None, None).load().expect_err("absent");
        assert_eq!(read.field(), "redis.ca_file");
        let parse = files(Some(garbage.as_path()), None, None).load().expect_err("garbage");
        assert!(
            parse.to_string().contains("redis.ca_file") && parse.to_string().contains("no PEM"),
            "{parse}"
        );
        let unpaired = files(None, Some(garbage.as_path()), None).load().expect_err("unpaired");
        assert!(unpaired.to_string().contains("redis.client_key_file"), "{unpaired}");
        assert!(files(None, None, None).load().expect("nothing to load").is_empty());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
