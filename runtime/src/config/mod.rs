//! Configuration: embedded defaults, then the user's TOML file, then
//! `SCIMFLEET_*` environment variables, validated as a whole at start-up.
//!
//! Layering happens on TOML values before the typed parse, so every layer is
//! checked by the same `deny_unknown_fields` types and the error names the
//! field wherever it came from. Semantic rules (unique app ids, HTTPS targets,
//! mapping paths) run after the parse; tokens are *not* read here, because the
//! scheduler never needs them: a worker resolves its apps' tokens at start-up
//! with [`AppConfig::token`].

mod app;
mod auth;
mod console;
mod de;
mod error;
mod governance;
mod intake;
mod layers;
mod mapping;
mod pseudonym;
mod sources;
mod target;
mod transport;
pub mod vendors;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::Digest as _;
use toml::Value;

pub use app::{Adopt, AppConfig, Condition, Deprovision, GroupRule, RateGroup, ScopeRule};
pub use auth::{
    AppCredentials, BearerToken, ClientAuthMethod, OAuthConfig, OAuthCredentials, TargetTls, TokenSource,
};
pub use console::{ConsoleAuth, ConsoleConfig, ConsoleOidc, MIN_CREDENTIAL_CHARS};
pub(crate) use de::durations_ms;
pub use de::parse_duration_ms;
use de::{duration_ms, listen_address, some_duration_ms};
pub use error::ConfigError;
pub use governance::{AppMassDeprovision, GovernanceConfig, HighRisk, MassDeprovision, ScopeLimit};
pub use intake::{IntakeConfig, IntakeSource, SecretRef, event_type};
use layers::{env_table, merge, parse_table};
pub use mapping::{Mapping, MappingRule, MappingSource, TemplatePart, ValueKind};
pub use pseudonym::MIN_PSEUDONYM_KEY_BYTES;
pub use sources::{
    FileFormat, GRAPH_MAX_LIFETIME_MS, HrFileSource, ListColumn, PushSource, SourceApi, SourceConfig,
    SourceOAuth, SsfPoll, SsfSource, StatusColumn, Subscription,
};
pub use target::TargetProfile;
pub use transport::{BrokerConfig, RedisConfig};

const DEFAULTS: &str = include_str!("defaults.toml");
/// Environment variable naming the config file when `--config` is absent.
pub const CONFIG_ENV: &str = "SCIMFLEET_CONFIG";

/// The whole configuration of a scimfleet deployment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Prefix of every exchange, queue and Redis key of this deployment.
    pub namespace: String,
    /// RabbitMQ connection.
    pub broker: BrokerConfig,
    /// Redis connection.
    pub redis: RedisConfig,
    /// Scheduler tuning.
    pub scheduler: SchedulerConfig,
    /// Worker tuning.
    pub worker: WorkerConfig,
    /// Read-back, re-checks, remediation and evidence of deprovisions.
    pub verification: VerificationConfig,
    /// Logging and privacy.
    pub telemetry: TelemetryConfig,
    /// The HTTP event intake and its sources.
    pub intake: IntakeConfig,
    /// The operator console (`scimfleet console`).
    pub console: ConsoleConfig,
    /// Step-up approvals and the mass-deprovision guard.
    pub governance: GovernanceConfig,
    /// The audit trail.
    pub audit: AuditConfig,
    /// The target apps.
    pub apps: Vec<AppConfig>,
    /// Rate limits shared by several apps (one vendor limiting all its SCIM apps together).
    #[serde(default)]
    pub rate_groups: Vec<RateGroup>,
    /// Systems feeding people in their own format (`[[sources]]`).
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// The directory relative paths in the file are resolved against.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Where the configuration came from, for error messages.
    #[serde(skip)]
    pub origin: String,
    /// Hex SHA-256 of the configuration file's text (what the audit trail
    /// records at start-up).
    #[serde(skip)]
    pub source_sha256: String,
}

/// `[audit]`: the hash-chained audit trail every role appends to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Whether processes append to the audit trail. Turning it off is
    /// logged as a warning at start-up and recorded (one last record).
    pub enabled: bool,
}

/// `[scheduler]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Unacknowledged events in flight (AMQP prefetch).
    pub prefetch: u16,
    /// How long a person's planning lease lives unless renewed: a replica
    /// that stalls longer loses the person to another, and its record is
    /// refused by the fence.
    pub lease_ttl_ms: u64,
}

/// `[worker]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Default jobs in flight per app (prefetch and concurrency), unless the app sets `concurrency`.
    pub concurrency: u16,
    /// Whole-request timeout for SCIM calls.
    pub request_timeout_ms: u64,
    /// TCP connect timeout for SCIM calls.
    pub connect_timeout_ms: u64,
    /// Further tries of one SCIM request after a transient failure, within
    /// one attempt of the job (0: leave every retry to the delay queues).
    pub request_retries: u32,
    /// Longest wait before such a try; a longer `Retry-After` sends the job
    /// to a delay queue instead.
    pub request_retry_max_wait_ms: u64,
    /// How long in-flight work may take to finish on shutdown, in every role
    /// (scheduler and intake too; see [`Config::shutdown_grace`]).
    pub shutdown_grace_ms: u64,
    /// TTLs of the retry delay queues, ascending.
    pub retry_tiers_ms: Vec<u64>,
    /// Attempts per job before it is dead-lettered, unless the app sets its own.
    pub max_attempts: u32,
    /// Age (since the first attempt) after which a job is dead-lettered, unless the app sets its own.
    pub max_age_ms: u64,
    /// Longest one attempt of a job may run; a hung attempt is abandoned and
    /// retried, and a job that keeps hanging is dead-lettered as `poison`.
    pub job_timeout_ms: u64,
    /// Time to live of the (app, person) lease a job is applied under,
    /// renewed every third of it while the attempt runs: a worker that dies
    /// frees its people this long after its last renewal.
    pub lease_ttl_ms: u64,
    /// Consecutive transient failures of an app that open its circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker parks the app's jobs before one probe.
    pub breaker_cooldown_ms: u64,
    /// Probe each app's SCIM service again this long after its last probe
    /// (one worker replica per app), and sooner when its answers suggest a
    /// capability changed; off when absent.
    #[serde(default, deserialize_with = "some_duration_ms")]
    pub probe_every: Option<u64>,
}

/// `[verification]`: defaults for every app, which may set `recheck`,
/// `remediate` and `max_remediations` of their own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationConfig {
    /// Delays after a verified deprovision at which the account is read
    /// back again, e.g. `["15m", "24h"]` (units `ms`, `s`, `m`, `h`, `d`).
    #[serde(deserialize_with = "durations_ms")]
    pub recheck: Vec<u64>,
    /// Re-apply a deprovision that verification found undone.
    pub remediate: bool,
    /// Remediations before the case is dead-lettered as `verification_failed`.
    pub max_remediations: u32,
    /// Days evidence records are kept in Redis.
    pub evidence_retention_days: u32,
    /// Environment variable holding the HMAC key of exports made before
    /// evidence was signed with Ed25519: `evidence verify` checks those
    /// with it during their retention.
    pub evidence_key_env: String,
    /// The Ed25519 private key (PKCS#8 PEM) workers sign evidence records
    /// with and `evidence export` signs exports with; relative to this
    /// file. Required by workers; only workers and exports need it.
    #[serde(default)]
    pub evidence_signing_key_file: Option<PathBuf>,
    /// Sweep every app this often (each app once per period, by one of the
    /// worker replicas serving it), e.g. `"24h"`; no periodic sweep when absent.
    #[serde(default, deserialize_with = "some_duration_ms")]
    pub sweep_every: Option<u64>,
    /// Whether periodic sweeps queue the jobs that fix what they find
    /// (orphans, drift, missing); otherwise they only report.
    #[serde(default)]
    pub sweep_remediate: bool,
}

/// `[telemetry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `pretty` for a terminal, `json` for log shippers.
    pub log_format: LogFormat,
    /// Environment variable holding the key of the pseudonymous person ids in logs.
    #[serde(default)]
    pub pseudonym_key_env: Option<String>,
    /// Or a file holding that key (relative to the configuration file).
    #[serde(default)]
    pub pseudonym_key_file: Option<PathBuf>,
    /// Where `scimfleet scheduler` serves `/metrics`, `/healthz` and `/readyz`
    /// (`host:port`; port 0 picks a free one; `off` for none).
    #[serde(deserialize_with = "listen_address")]
    pub scheduler_listen: Option<std::net::SocketAddr>,
    /// The same for `scimfleet worker`.
    #[serde(deserialize_with = "listen_address")]
    pub worker_listen: Option<std::net::SocketAddr>,
    /// The same for `scimfleet intake`.
    #[serde(deserialize_with = "listen_address")]
    pub intake_listen: Option<std::net::SocketAddr>,
    /// How long the journey of an event (`scimfleet trace`) is kept in Redis.
    #[serde(deserialize_with = "duration_ms")]
    pub journey_retention: u64,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Loads `path` over the defaults, then applies the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
        Self::from_toml(&text, &path.display().to_string(), base_dir, std::env::vars())
    }

    /// Parses `text` over the defaults, then applies `env` (pairs of name and value).
    pub fn from_toml(
        text: &str,
        origin: &str,
        base_dir: PathBuf,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut merged = parse_table(DEFAULTS, "defaults")?;
        merge(&mut merged, parse_table(text, origin)?);
        merge(&mut merged, env_table(env)?);
        let mut config: Config =
            serde_path_to_error::deserialize(Value::Table(merged)).map_err(|e| ConfigError::Shape {
                origin: origin.to_owned(),
                field: e.path().to_string(),
                message: e.inner().message().to_owned(),
            })?;
        config.broker.resolve_paths(&base_dir);
        config.redis.resolve_paths(&base_dir);
        config.base_dir = base_dir;
        config.origin = origin.to_owned();
        config.source_sha256 = hex::encode(sha2::Sha256::digest(text.as_bytes()));
        config.validate()?;
        Ok(config)
    }

    /// The app with `id`.
    pub fn app(&self, id: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.id.as_str() == id)
    }

    /// How long every role (worker, scheduler, intake) lets in-flight work
    /// finish on SIGTERM: `worker.shutdown_grace_ms`, one setting for all,
    /// so that one `terminationGracePeriodSeconds` fits every role.
    pub fn shutdown_grace(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.worker.shutdown_grace_ms)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let origin = self.origin.as_str();
        let ns_ok = self.namespace.len() <= 64
            && self.namespace.starts_with(|c: char| c.is_ascii_lowercase())
            && self.namespace.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ns_ok {
            return Err(ConfigError::invalid(
                origin,
                "namespace",
                "1-64 lower-case letters, digits or -, starting with a letter",
            ));
        }
        self.broker.validate(origin)?;
        self.redis.validate(origin)?;
        if self.scheduler.prefetch == 0 {
            return Err(ConfigError::invalid(origin, "scheduler.prefetch", "must be at least 1"));
        }
        if self.scheduler.lease_ttl_ms < 100 {
            return Err(ConfigError::invalid(origin, "scheduler.lease_ttl_ms", "must be at least 100 ms"));
        }
        self.validate_worker()?;
        self.intake.validate(origin)?;
        self.console.validate(origin)?;
        self.governance.validate(origin)?;
        sources::validate(&self.sources, origin)?;
        if self.apps.is_empty() {
            return Err(ConfigError::invalid(origin, "apps", "at least one [[apps]] entry is needed"));
        }
        for (i, app) in self.apps.iter().enumerate() {
            if self.apps[..i].iter().any(|other| other.id == app.id) {
                return Err(ConfigError::invalid(
                    origin,
                    format!("apps[{i}].id"),
                    format!("duplicate app id `{}`", app.id),
                ));
            }
            app.validate(origin, i)?;
            app.validate_governance(origin, i)?;
            if let Some(group) = &app.rate_group
                && !self.rate_groups.iter().any(|g| &g.id == group)
            {
                return Err(ConfigError::invalid(
                    origin,
                    format!("apps[{i}].rate_group"),
                    format!("no [[rate_groups]] with id `{group}`"),
                ));
            }
        }
        for (i, group) in self.rate_groups.iter().enumerate() {
            if !(group.rate_per_second > 0.0 && group.rate_per_second.is_finite()) || group.burst == Some(0) {
                return Err(ConfigError::invalid(
                    origin,
                    format!("rate_groups[{i}]"),
                    "needs a positive rate_per_second and burst",
                ));
            }
        }
        Ok(())
    }

    /// The `[worker]` rules.
    fn validate_worker(&self) -> Result<(), ConfigError> {
        let origin = self.origin.as_str();
        if self.worker.concurrency == 0 {
            return Err(ConfigError::invalid(origin, "worker.concurrency", "must be at least 1"));
        }
        if self.worker.request_timeout_ms == 0
            || self.worker.connect_timeout_ms == 0
            || self.worker.job_timeout_ms == 0
        {
            return Err(ConfigError::invalid(origin, "worker", "timeouts must be above 0 ms"));
        }
        let lease = self.worker.lease_ttl_ms;
        if lease < 1000 || lease >= self.worker.job_timeout_ms {
            return Err(ConfigError::invalid(
                origin,
                "worker.lease_ttl_ms",
                "must be at least 1000 ms and below worker.job_timeout_ms",
            ));
        }
        let tiers = &self.worker.retry_tiers_ms;
        if tiers.is_empty() || tiers[0] == 0 || tiers.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ConfigError::invalid(
                origin,
                "worker.retry_tiers_ms",
                "needs ascending delays above 0 ms",
            ));
        }
        if self.worker.breaker_failures == 0 || self.worker.breaker_cooldown_ms == 0 {
            return Err(ConfigError::invalid(
                origin,
                "worker.breaker_failures",
                "breaker settings must be above 0",
            ));
        }
        if self.worker.max_attempts == 0 {
            return Err(ConfigError::invalid(origin, "worker.max_attempts", "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
