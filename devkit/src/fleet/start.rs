//! Starting a fleet: the policy completed into a configuration of its own
//! (namespace, servers' URLs, token file, free ports), the test servers, the
//! topology, the operations listener, and the test process's log capture.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use scimfleet_runtime::broker::{self, Publisher, Topology};
use scimfleet_runtime::ops::Ops;
use scimfleet_runtime::signing::SigningKey;
use scimfleet_runtime::{Config, Store};
use scimfleet_schemas::AppId;
use tokio_util::sync::CancellationToken;

use super::{Fleet, FleetError};
use crate::scim_server::{ScimServer, ScimServerHandle};

/// The fleet's throw-away evidence signing key, next to its configuration.
pub const EVIDENCE_SIGNING_KEY: &str = "evidence-signing.pem";
/// Its public key, for `scimfleet evidence verify --public-key`.
pub const EVIDENCE_PUBLIC_KEY: &str = "evidence-public.pem";

/// Queues of a test namespace disappear after this long unused.
const TEST_QUEUE_EXPIRY_MS: u64 = 15 * 60 * 1000;

/// The fleet's throw-away pseudonym key, beside its configuration.
const PSEUDONYM_KEY_FILE: &str = "pseudonym.key";

impl Fleet {
    pub(super) async fn launch(policy: &str, namespace: &str, with_worker: bool) -> Result<Self, FleetError> {
        let mut fleet = Self::prepare(policy, namespace).await?;
        fleet.spawn_scheduler();
        if with_worker {
            fleet.spawn_worker(None);
        }
        Ok(fleet)
    }

    /// Servers, configuration, topology and the operations listener; no
    /// scheduler or worker yet.
    pub(super) async fn prepare(policy: &str, namespace: &str) -> Result<Self, FleetError> {
        Self::prepare_with(policy, namespace, BTreeMap::new()).await
    }

    /// [`Fleet::prepare`] with `given` servers for some apps, whose
    /// credentials the policy sets itself.
    pub(super) async fn prepare_with(
        policy: &str,
        namespace: &str,
        mut given: BTreeMap<String, ScimServerHandle>,
    ) -> Result<Self, FleetError> {
        capture_logs(namespace);
        let token = format!("tok-{}", rand::random::<u64>());
        let token_dir = std::env::temp_dir().join(format!("scimfleet-{namespace}"));
        std::fs::create_dir_all(&token_dir)?;
        std::fs::write(token_dir.join("token"), &token)?;
        // A throw-away pseudonym key per fleet, as production must have one.
        std::fs::write(token_dir.join(PSEUDONYM_KEY_FILE), hex::encode(rand::random::<[u8; 32]>()))?;
        let (text, app_ids) = complete_policy(policy, namespace, &token_dir, &given)?;
        let mut servers = BTreeMap::new();
        let mut text = text;
        for app in &app_ids {
            let server = match given.remove(app) {
                Some(server) => server,
                None => ScimServer::start(token.clone()).await?,
            };
            text = text.replace(&placeholder(app), &server.base_url());
            servers.insert(AppId::parse(app.as_str())?, server);
        }
        // Written out so command-line tools can be pointed at this fleet.
        std::fs::write(token_dir.join("scimfleet.toml"), &text)?;
        let config = Arc::new(Config::from_toml(&text, "fleet", token_dir.clone(), service_env())?);
        let store = Store::connect(&config.redis, &config.namespace).await?;
        sweep_stale_namespaces(&store).await;
        let connection = broker::connect(&config.broker, "scimfleet-fleet").await?;
        let publisher = Publisher::open(&connection).await?;
        let apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
        Topology::of(&config).declare(publisher.channel(), &apps).await?;
        // One operations listener for the fleet's scheduler and workers, as a
        // process running both would have.
        let ops = Ops::default();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let ops_addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn({
            let (ops, stop) = (ops.clone(), shutdown.clone());
            async move { scimfleet_runtime::ops::serve(listener, ops, stop).await.map_err(|e| e.to_string()) }
        });
        Ok(Self {
            config,
            servers,
            scheduler_stats: Arc::default(),
            worker_stats: Arc::default(),
            ops,
            ops_addr,
            shutdown,
            tasks: vec![serving],
            connection,
            publisher,
            store,
            published: 0,
            token_dir,
            token,
            stopped: false,
        })
    }
}

/// A fresh namespace `{prefix}-{unix seconds}-{random}`; the time lets later
/// runs recognise and sweep what a crashed run left.
pub fn unique_namespace(prefix: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    format!("{prefix}-{now}-{:08x}", rand::random::<u32>())
}

fn placeholder(app: &str) -> String {
    format!("http://127.0.0.1:1/placeholder/{app}")
}

/// Whether `url` names this machine.
fn is_loopback_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| scimfleet_runtime::tls::is_loopback(&u))
}

/// Fills the namespace, base URLs (placeholders until servers exist), tokens,
/// the queue expiry and a throw-away evidence key (written to `dir`) into the
/// policy; apps in `given` keep the credentials the policy gives them, and
/// apps with a loopback `base_url` of their own are left alone. Returns the text and
/// the ids of the apps the fleet serves.
fn complete_policy(
    policy: &str,
    namespace: &str,
    dir: &Path,
    given: &BTreeMap<String, ScimServerHandle>,
) -> Result<(String, Vec<String>), FleetError> {
    let mut table: toml::Table = policy.parse()?;
    table.insert("namespace".into(), namespace.into());
    throwaway_evidence_key(&mut table, dir)?;
    let broker = table.entry("broker").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(broker) = broker {
        broker.insert("queue_expires_ms".into(), toml::Value::Integer(TEST_QUEUE_EXPIRY_MS as i64));
    }
    // Free ports: several fleets and worker processes share one machine.
    let telemetry = table.entry("telemetry").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(telemetry) = telemetry {
        for key in ["scheduler_listen", "worker_listen"] {
            telemetry.entry(key).or_insert_with(|| "127.0.0.1:0".into());
        }
        // The fleet's own key, as it has its own tokens.
        telemetry.remove("pseudonym_key_env");
        telemetry.insert("pseudonym_key_file".into(), PSEUDONYM_KEY_FILE.into());
    }
    // Bulk leavers are what many tests and the benchmark are about: the
    // mass-deprovision guard is off unless the policy sets its limits.
    let governance = table.entry("governance").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(governance) = governance {
        governance.entry("mass_deprovision").or_insert_with(|| {
            let off: toml::Table =
                "fleet_max = 0\napp_max = 0\napp_percent = 0.0".parse().unwrap_or_default();
            toml::Value::Table(off)
        });
    }
    let mut ids = Vec::new();
    let apps = table.get_mut("apps").and_then(toml::Value::as_array_mut).ok_or("policy has no [[apps]]")?;
    for app in apps.iter_mut().filter_map(toml::Value::as_table_mut) {
        let id = app.get("id").and_then(toml::Value::as_str).ok_or("an app has no id")?.to_owned();
        // An app at a loopback address is a server the test started itself
        // (an independent SCIM implementation): left as the policy has it.
        // Others (example URLs of a sample policy) are served by the fleet.
        if app.get("base_url").and_then(toml::Value::as_str).is_some_and(is_loopback_url) {
            continue;
        }
        app.insert("base_url".into(), placeholder(&id).into());
        app.insert("allow_insecure_loopback".into(), true.into());
        if !given.contains_key(&id) {
            app.remove("token_env");
            app.insert("token_file".into(), "token".into());
        }
        ids.push(id);
    }
    Ok((toml::to_string(&table)?, ids))
}

/// A fresh evidence signing key for this fleet in `dir` ([`EVIDENCE_SIGNING_KEY`],
/// its public half in [`EVIDENCE_PUBLIC_KEY`]) in place of any the policy
/// names (as its tokens are): workers refuse to start without one.
fn throwaway_evidence_key(table: &mut toml::Table, dir: &Path) -> Result<(), FleetError> {
    let verification = table.entry("verification").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let toml::Value::Table(verification) = verification else {
        return Err("[verification] is not a table".into());
    };
    let key = SigningKey::generate();
    std::fs::write(dir.join(EVIDENCE_SIGNING_KEY), key.to_pem().expose())?;
    std::fs::write(dir.join(EVIDENCE_PUBLIC_KEY), key.public_key().to_pem())?;
    verification.insert("evidence_signing_key_file".into(), EVIDENCE_SIGNING_KEY.into());
    Ok(())
}

/// Where tests write their logs: `SCIMFLEET_TEST_LOG_DIR`, or
/// `scimfleet-test-logs` in the temporary directory. `make test` empties it
/// first and checks afterwards that no log holds a token or an e-mail address.
pub fn test_log_dir() -> PathBuf {
    std::env::var_os("SCIMFLEET_TEST_LOG_DIR")
        .map_or_else(|| std::env::temp_dir().join("scimfleet-test-logs"), PathBuf::from)
}

/// Sends this test process's logs, at debug level unless `RUST_LOG` says
/// otherwise, to a file in [`test_log_dir`] (once per process; a test that
/// installed telemetry of its own keeps it).
fn capture_logs(namespace: &str) {
    let dir = test_log_dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let file = dir.join(format!("{namespace}.jsonl"));
    let _installed = scimfleet_runtime::telemetry::init(scimfleet_runtime::telemetry::TelemetryOptions {
        service: "scimfleet-test",
        format: scimfleet_runtime::config::LogFormat::Json,
        default_levels: TEST_LOG_LEVELS,
        traces: scimfleet_runtime::telemetry::Traces::Off,
        log_file: Some(&file),
    });
}

/// Everything of ours, and what the libraries say at info and above.
pub const TEST_LOG_LEVELS: &str = "info,scimfleet=debug,scimfleet_runtime=debug,scimfleet_scheduler=debug,\
scimfleet_worker=debug,scimfleet_devkit=debug";

/// Only the service locations are taken from the environment, so a developer's
/// other `SCIMFLEET_*` settings cannot change what a test means.
fn service_env() -> Vec<(String, String)> {
    // Every connection setting (URLs, TLS files, allow_plaintext), so the
    // suite runs against services elsewhere as well; and `[audit]`, so a
    // benchmark can measure the fleet with the audit trail off.
    const PASSED: [&str; 3] = ["SCIMFLEET_BROKER__", "SCIMFLEET_REDIS__", "SCIMFLEET_AUDIT__"];
    std::env::vars().filter(|(k, _)| PASSED.iter().any(|p| k.starts_with(p))).collect()
}

/// Deletes Redis keys of test namespaces older than an hour (crashed runs).
async fn sweep_stale_namespaces(store: &Store) {
    let cutoff = chrono::Utc::now().timestamp() - 3600;
    if let Err(error) = store.sweep_namespaces("t-", cutoff).await {
        tracing::warn!(%error, "could not sweep stale test namespaces");
    }
}
