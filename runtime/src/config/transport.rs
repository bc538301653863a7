//! `[broker]` and `[redis]`: where the services are, the TLS files each
//! connection trusts and presents, and the plaintext rule (see
//! [`crate::tls`]): `amqp://`, `redis://` and an `http://` management API
//! only to loopback unless the section sets `allow_plaintext = true`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use super::de::secret;
use crate::Secret;
use crate::tls::{TlsFiles, is_loopback};

/// `[broker]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// AMQP URL (`amqps://` for TLS); may hold a password, so it never prints.
    #[serde(deserialize_with = "secret")]
    pub url: Secret,
    /// Delete queues unused for this long (`x-expires`). Only for throw-away
    /// namespaces (tests, demo): production queues must never expire.
    #[serde(default)]
    pub queue_expires_ms: Option<u64>,
    /// Whether every process declares the exchanges and queues it uses at
    /// start (the default). `false` for least-privilege users that may not
    /// configure anything: an operator declares them once with
    /// `scimfleet topology declare`, and the roles only check they exist.
    pub declare_topology: bool,
    /// Base URL of the RabbitMQ management HTTP API, where `scimfleet
    /// status` reads queue depths; it logs in with the user and password of
    /// `url`, so this URL holds none.
    pub management_url: url::Url,
    /// PEM bundle of the CAs trusted for `amqps://` and an `https://`
    /// management API, instead of the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate presented to the broker (mutual TLS).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Allow `amqp://` and an `http://` management API to a non-loopback
    /// host, for networks protected otherwise.
    #[serde(default)]
    pub allow_plaintext: bool,
}

/// `[redis]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// Redis URL (`rediss://` for TLS); may hold a password, so it never prints.
    #[serde(deserialize_with = "secret")]
    pub url: Secret,
    /// PEM bundle of the CAs trusted for `rediss://`, instead of the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate presented to Redis (mutual TLS).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Allow `redis://` to a non-loopback host, for networks protected otherwise.
    #[serde(default)]
    pub allow_plaintext: bool,
}

impl BrokerConfig {
    /// The TLS files of the broker connection.
    pub fn tls_files(&self) -> TlsFiles<'_> {
        tls_files("broker", &self.ca_file, &self.client_cert_file, &self.client_key_file)
    }

    pub(super) fn resolve_paths(&mut self, base_dir: &Path) {
        resolve([&mut self.ca_file, &mut self.client_cert_file, &mut self.client_key_file], base_dir);
    }

    pub(super) fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let url = parse_url(origin, "broker.url", &self.url, &["amqp", "amqps"])?;
        let tls = url.scheme() == "amqps";
        check_plaintext(origin, "broker", "broker.url", &url, tls, self.allow_plaintext)?;
        self.check_management_url(origin)?;
        check_files(
            origin,
            self.tls_files(),
            tls || self.management_url.scheme() == "https",
            "amqps:// or https://",
        )
    }

    fn check_management_url(&self, origin: &str) -> Result<(), ConfigError> {
        let field = "broker.management_url";
        let url = &self.management_url;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(ConfigError::invalid(origin, field, "must be a URL with scheme http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Not echoed: it holds a password.
            let reason = "must hold no credentials (those of broker.url are used)";
            return Err(ConfigError::invalid(origin, field, reason));
        }
        check_plaintext(origin, "broker", field, url, url.scheme() == "https", self.allow_plaintext)
    }
}

impl RedisConfig {
    /// A plaintext connection to `url` without TLS files, for tests and tools.
    pub fn plain(url: Secret) -> Self {
        Self { url, ca_file: None, client_cert_file: None, client_key_file: None, allow_plaintext: false }
    }

    /// The TLS files of the Redis connection.
    pub fn tls_files(&self) -> TlsFiles<'_> {
        tls_files("redis", &self.ca_file, &self.client_cert_file, &self.client_key_file)
    }

    pub(super) fn resolve_paths(&mut self, base_dir: &Path) {
        resolve([&mut self.ca_file, &mut self.client_cert_file, &mut self.client_key_file], base_dir);
    }

    pub(super) fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let url = parse_url(origin, "redis.url", &self.url, &["redis", "rediss"])?;
        let tls = url.scheme() == "rediss";
        check_plaintext(origin, "redis", "redis.url", &url, tls, self.allow_plaintext)?;
        check_files(origin, self.tls_files(), tls, "rediss://")
    }
}

/// The TLS files of `section`, as the loader takes them.
fn tls_files<'a>(
    section: &'static str,
    ca_file: &'a Option<PathBuf>,
    client_cert_file: &'a Option<PathBuf>,
    client_key_file: &'a Option<PathBuf>,
) -> TlsFiles<'a> {
    TlsFiles {
        section,
        ca_file: ca_file.as_deref(),
        client_cert_file: client_cert_file.as_deref(),
        client_key_file: client_key_file.as_deref(),
    }
}

/// Paths in the file are relative to the configuration's directory.
fn resolve(paths: [&mut Option<PathBuf>; 3], base_dir: &Path) {
    for path in paths.into_iter().flatten() {
        *path = base_dir.join(&*path);
    }
}

fn parse_url(origin: &str, field: &str, url: &Secret, schemes: &[&str]) -> Result<url::Url, ConfigError> {
    match url::Url::parse(url.expose()) {
        Ok(parsed) if schemes.contains(&parsed.scheme()) => Ok(parsed),
        // The URL may hold a password: the message names the field, not the value.
        _ => Err(ConfigError::invalid(
            origin,
            field,
            format!("must be a URL with scheme {}", schemes.join(" or ")),
        )),
    }
}

/// Plaintext only to loopback, unless `{section}.allow_plaintext`.
fn check_plaintext(
    origin: &str,
    section: &str,
    field: &str,
    url: &url::Url,
    tls: bool,
    allowed: bool,
) -> Result<(), ConfigError> {
    if tls || allowed || is_loopback(url) {
        return Ok(());
    }
    let secure = match url.scheme() {
        "amqp" => "amqps://",
        "redis" => "rediss://",
        _ => "https://",
    };
    let reason = format!(
        "plaintext {}:// to a non-loopback host is refused: use {secure} (trusting `{section}.ca_file`), \
         or set `{section}.allow_plaintext = true` where the network is protected otherwise",
        url.scheme()
    );
    Err(ConfigError::invalid(origin, field, reason))
}

/// TLS files only where something uses TLS; each must read and parse.
fn check_files(origin: &str, files: TlsFiles<'_>, tls: bool, needs: &str) -> Result<(), ConfigError> {
    if !files.any() {
        return Ok(());
    }
    if !tls {
        let field = format!("{}.ca_file", files.section);
        let reason = format!("TLS files are set but nothing in [{}] uses TLS ({needs})", files.section);
        return Err(ConfigError::invalid(origin, field, reason));
    }
    files.load().map(drop).map_err(|error| ConfigError::invalid(origin, error.field(), error.reason()))
}
