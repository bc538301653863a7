//! `[broker]` and `[redis]`: where the services are, the TLS files each
//! connection trusts and presents, and the plaintext rule (see
//! [`crate::tls`]): `amqp://`, `redis://` and an `http://` management API
//! only to loopback unless the section sets `allow_plaintext = true`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use super::de::{secret, secrets};
use crate::Secret;
use crate::broker::BrokerUrls;
use crate::tls::{TlsFiles, is_loopback};

/// `[broker]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// AMQP URL (`amqps://` for TLS), or a list of them, one per node of a
    /// RabbitMQ cluster: a connection starts at a random node and takes the
    /// first that answers. Every URL names the same user, password and
    /// vhost; they may hold a password, so they never print.
    pub url: BrokerUrls,
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
    /// `url`, so this URL holds none. One node's API reports the queues of
    /// the whole cluster; when it cannot be reached, `status` reads depths
    /// over AMQP from any node of `url` instead.
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
    /// Redis URL (`rediss://` for TLS); may hold a password, so it never
    /// prints. With `cluster = true`, one node of the Redis Cluster: the
    /// others are found from it.
    #[serde(deserialize_with = "secret")]
    pub url: Secret,
    /// Whether `url` is a node of a Redis Cluster rather than one server
    /// (or a Sentinel-managed primary behind one address).
    #[serde(default)]
    pub cluster: bool,
    /// More nodes of the Redis Cluster, tried when `url`'s node is down at
    /// start-up; same scheme, user and password as `url`. Secrets too.
    #[serde(default, deserialize_with = "secrets")]
    pub cluster_seeds: Vec<Secret>,
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
        let tls = self.check_urls(origin)?;
        self.check_management_url(origin)?;
        check_files(
            origin,
            self.tls_files(),
            tls || self.management_url.scheme() == "https",
            "amqps:// or https://",
        )
    }

    /// Each URL parses, is allowed in plaintext or uses TLS, and every one
    /// is a node of the same cluster as the first: same scheme, user,
    /// password and vhost. Returns whether they use TLS.
    fn check_urls(&self, origin: &str) -> Result<bool, ConfigError> {
        if self.url.is_empty() {
            return Err(ConfigError::invalid(origin, "broker.url", "must name at least one AMQP URL"));
        }
        let several = self.url.len() > 1;
        let mut first: Option<url::Url> = None;
        for (index, secret) in self.url.iter().enumerate() {
            let field = if several { format!("broker.url[{index}]") } else { "broker.url".to_owned() };
            let url = parse_url(origin, &field, secret, &["amqp", "amqps"])?;
            check_plaintext(origin, "broker", &field, &url, url.scheme() == "amqps", self.allow_plaintext)?;
            if let Some(first) = &first {
                let same =
                    |u: &url::Url| (u.scheme().to_owned(), u.username().to_owned(), u.path().to_owned());
                // Compared, never echoed: the password is part of it.
                if same(first) != same(&url) || first.password() != url.password() {
                    let reason = "must have the scheme, user, password and vhost of broker.url[0]: \
                                  the URLs are the nodes of one cluster";
                    return Err(ConfigError::invalid(origin, field, reason));
                }
            } else {
                first = Some(url);
            }
        }
        Ok(first.is_some_and(|url| url.scheme() == "amqps"))
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
        Self {
            url,
            cluster: false,
            cluster_seeds: Vec::new(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            allow_plaintext: false,
        }
    }

    /// A plaintext connection to the Redis Cluster whose nodes `seeds` name
    /// (at least one), for tests and tools.
    pub fn plain_cluster(mut seeds: Vec<Secret>) -> Option<Self> {
        if seeds.is_empty() {
            return None;
        }
        let url = seeds.remove(0);
        Some(Self { cluster: true, cluster_seeds: seeds, ..Self::plain(url) })
    }

    /// Every node URL the connection starts from: `url`, then `cluster_seeds`.
    pub fn seed_urls(&self) -> impl Iterator<Item = &Secret> {
        std::iter::once(&self.url).chain(&self.cluster_seeds)
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
        self.check_cluster(origin, &url)?;
        check_files(origin, self.tls_files(), tls, "rediss://")
    }

    /// Seeds only for a cluster, each reached like `url` (the cluster client
    /// uses one scheme and one login for every node), and database 0 (the
    /// only one a Redis Cluster has).
    fn check_cluster(&self, origin: &str, url: &url::Url) -> Result<(), ConfigError> {
        if !self.cluster {
            if !self.cluster_seeds.is_empty() {
                let reason = "seeds are nodes of a Redis Cluster: set `redis.cluster = true` or remove them";
                return Err(ConfigError::invalid(origin, "redis.cluster_seeds", reason));
            }
            return Ok(());
        }
        if !matches!(url.path(), "" | "/" | "/0") {
            return Err(ConfigError::invalid(origin, "redis.url", "a Redis Cluster has only database 0"));
        }
        for (i, seed) in self.cluster_seeds.iter().enumerate() {
            let field = format!("redis.cluster_seeds[{i}]");
            let node = parse_url(origin, &field, seed, &["redis", "rediss"])?;
            // Compared, never echoed: they may hold a password.
            let same_login = node.scheme() == url.scheme()
                && node.username() == url.username()
                && node.password() == url.password();
            if !same_login {
                let reason = "must use the scheme, user and password of redis.url";
                return Err(ConfigError::invalid(origin, field, reason));
            }
            if !matches!(node.path(), "" | "/" | "/0") {
                return Err(ConfigError::invalid(origin, field, "a Redis Cluster has only database 0"));
            }
            check_plaintext(origin, "redis", &field, &node, node.scheme() == "rediss", self.allow_plaintext)?;
        }
        Ok(())
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
