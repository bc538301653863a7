//! The deploy artefacts (docker-compose, OpenTelemetry Collector, Prometheus,
//! alert rules, Grafana) are configuration that no compiler reads and no test
//! here can run (there is no container engine), so this test reads them as
//! files: each parses; the alert rules are complete and cover every on-call
//! topic; the collector's pipelines use only defined components; compose
//! mounts files that exist and wires the processes to the collector and
//! Prometheus; Redis runs the shipped persistence settings (AOF) wherever it
//! is started; the dashboard's panels are well formed.
//!
//! Above all, every `scimfleet_*` series an alert or a panel queries must be
//! one the processes expose, with the labels it selects on. The truth is the
//! real registry, `Metrics::new().render()`, not a copied list: renaming a
//! metric without updating the rules fails here instead of silently never
//! firing at 3 a.m.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use scimfleet_runtime::metrics::{AppAction, AppAttribute, AppReason, Metrics, OutcomeLabel, ReasonLabel};
use serde_json::Value;

mod compose_console;
mod promql;
use promql::{Kind, exposition, selectors};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Parses a YAML (merge keys applied, as compose does) or JSON file under `deploy/`.
fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "json") {
        return serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let mut yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml.apply_merge().unwrap_or_else(|e| panic!("{}: merge keys: {e}", path.display()));
    serde_yaml_ng::from_value(yaml).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn file(rel: &str) -> Value {
    load(&deploy().join(rel))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| panic!("no string at {pointer}"))
}

fn keys(v: Option<&Value>) -> BTreeSet<String> {
    v.and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read deploy dir").flatten() {
        let path = entry.path();
        // Kubernetes manifests are multi-document streams: kubernetes.rs
        // parses them, and what kustomize builds from them.
        if path == deploy().join("kubernetes") {
            continue;
        }
        if path.is_dir() {
            files_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml" || e == "json") {
            out.push(path);
        }
    }
}

#[test]
fn every_yaml_and_json_file_under_deploy_parses() {
    let mut found = Vec::new();
    files_under(&deploy(), &mut found);
    for path in &found {
        assert!(load(path).is_object(), "{}: top level is not a mapping", path.display());
    }
    let names: BTreeSet<_> = found.iter().map(|p| p.strip_prefix(deploy()).expect("under deploy")).collect();
    for expected in [
        "docker-compose.yml",
        "otel-collector.yaml",
        "prometheus/prometheus.yml",
        "prometheus/alerts.yml",
        "grafana/scimfleet-dashboard.json",
    ] {
        assert!(names.contains(Path::new(expected)), "deploy/{expected} missing; found {names:?}");
    }
}

// ---- the registry: which series the processes expose -----------------------

/// A registry with one sample in every family, so that the rendering shows
/// each family's label names as well as its `# TYPE` line.
fn exercised_metrics() -> Metrics {
    let git_upsert = || AppAction { app: "git".into(), action: "upsert".into() };
    let m = Metrics::new();
    m.events_received.inc();
    m.events.get_or_create(&OutcomeLabel { outcome: "accepted".into() }).inc();
    m.events_rejected.get_or_create(&ReasonLabel { reason: "schema".into() }).inc();
    m.event_duration.observe(0.01);
    m.jobs_published.get_or_create(&git_upsert()).inc();
    m.job_settled("git", "upsert", "converged", Duration::from_millis(5));
    m.job_end_to_end.get_or_create(&git_upsert()).observe(1.0);
    m.scim_request("git", "GET", Some(200), Duration::from_millis(3));
    m.scim_request_retries.get_or_create(&Metrics::app("git")).inc();
    m.dead_letters.get_or_create(&AppReason { app: "git".into(), reason: "poison".into() }).inc();
    m.rate_limit_waits.get_or_create(&Metrics::app("git")).inc();
    m.rate_limit_wait_seconds.get_or_create(&Metrics::app("git")).inc_by(0.5);
    m.breaker_open.get_or_create(&Metrics::app("git")).set(0);
    m.app_paused.get_or_create(&Metrics::app("git")).set(0);
    m.verification("git", "read_back", true);
    m.identity_conflicts.get_or_create(&Metrics::app("git")).inc();
    m.deprovision_verified.get_or_create(&Metrics::app("git")).observe(10.0);
    m.queue("git", "work", 0, 1);
    m.ready.set(1);
    m.jobs_held.get_or_create(&AppReason { app: "git".into(), reason: "grant".into() }).inc();
    m.held_jobs.set(1);
    m.waves_open.set(0);
    m.scheduled_events.set(0);
    m.unsupported_attributes
        .get_or_create(&AppAttribute { app: "git".into(), attribute: "title".into() })
        .set(1);
    m
}

#[test]
fn the_registry_is_read_as_expected() {
    let exposed = exposition(&exercised_metrics().render());
    assert_eq!(exposed["scimfleet_jobs_total"].kind, Kind::Counter);
    assert_eq!(exposed["scimfleet_job_duration_seconds_bucket"].kind, Kind::Histogram);
    assert_eq!(exposed["scimfleet_ready"].kind, Kind::Gauge);
    assert_eq!(exposed["scimfleet_build_info"].kind, Kind::Gauge);
    let bucket = exposed["scimfleet_job_duration_seconds_bucket"].labels.as_ref().expect("samples");
    assert_eq!(bucket.iter().map(String::as_str).collect::<Vec<_>>(), ["action", "app", "le"]);
    assert!(!exposed.contains_key("scimfleet_jobs"), "counters are exposed only with _total");
    // Every family got a sample, so the label check below sees its labels.
    let bare: Vec<_> = exposed.iter().filter(|(_, e)| e.labels.is_none()).map(|(n, _)| n).collect();
    assert!(bare.is_empty(), "give these a sample in exercised_metrics(): {bare:?}");
}

// ---- the expressions of the alert rules and the dashboard -------------------

fn alert_rules() -> Vec<Value> {
    let alerts = file("prometheus/alerts.yml");
    let groups = alerts["groups"].as_array().expect("groups");
    groups.iter().flat_map(|g| g["rules"].as_array().expect("group rules").clone()).collect()
}

/// Every panel, those inside collapsed rows included.
fn dashboard_panels(dashboard: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        out.extend(panel["panels"].as_array().cloned().unwrap_or_default());
        out.push(panel.clone());
    }
    out
}

/// (where, PromQL) of every alert rule and dashboard query.
fn expressions() -> Vec<(String, String)> {
    let mut out: Vec<_> = alert_rules()
        .iter()
        .map(|r| (format!("alert {}", str_at(r, "/alert")), str_at(r, "/expr").to_owned()))
        .collect();
    let dashboard = file("grafana/scimfleet-dashboard.json");
    for panel in dashboard_panels(&dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((format!("panel {}", panel["title"]), str_at(target, "/expr").to_owned()));
        }
    }
    for var in dashboard["templating"]["list"].as_array().expect("templating") {
        let query = var["query"].get("query").unwrap_or(&var["query"]);
        // label_values(metric, label) is a Grafana function: check it as a selector on that label.
        if let Some(inner) = query.as_str().and_then(|q| q.strip_prefix("label_values(")?.strip_suffix(')')) {
            let (metric, label) = inner.rsplit_once(',').expect("label_values(metric, label)");
            out.push((
                format!("variable {}", var["name"]),
                format!("{}{{{}=\"\"}}", metric.trim(), label.trim()),
            ));
        }
    }
    out
}

#[test]
fn every_queried_series_is_exposed_with_the_labels_selected() {
    let exposed = exposition(&exercised_metrics().render());
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    for (source, expr) in expressions() {
        for s in selectors(&expr) {
            let Some(series) = exposed.get(&s.name) else {
                problems.push(format!("{source}: {} is not exposed by any process", s.name));
                continue;
            };
            used.insert(series.family.clone());
            let labels = series.labels.clone().unwrap_or_default();
            for label in s.labels.iter().filter(|l| !labels.contains(*l)) {
                problems.push(format!("{source}: {} has no label {label} (labels: {labels:?})", s.name));
            }
            let counter_like = series.kind == Kind::Counter || series.kind == Kind::Histogram;
            match s.func.as_deref() {
                Some("rate" | "irate" | "increase") if !counter_like => {
                    problems.push(format!("{source}: rate/increase of {}, which is not a counter", s.name));
                }
                Some("deriv" | "delta" | "idelta" | "predict_linear") if series.kind != Kind::Gauge => {
                    problems.push(format!("{source}: deriv/delta of {}, which is not a gauge", s.name));
                }
                _ => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The dashboard and rules together show every family a process records.
    let families: BTreeSet<_> = exposed.values().map(|e| e.family.clone()).collect();
    let unused: Vec<_> = families.difference(&used).collect();
    assert!(unused.is_empty(), "no panel or alert uses {unused:?}");
}

// ---- alert rules -------------------------------------------------------------

fn is_duration(s: &str) -> bool {
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let unit_len = ["ms", "s", "m", "h", "d", "w", "y"]
            .iter()
            .find(|u| rest[digits..].starts_with(**u))
            .map(|u| u.len());
        let Some(unit_len) = unit_len.filter(|_| digits > 0) else { return false };
        rest = &rest[digits + unit_len..];
    }
    !s.is_empty()
}

/// An on-call topic the rules must cover: its name, the severity (if one is
/// required) and what the expression of a rule about it contains.
struct Topic(&'static str, Option<&'static str>, &'static [&'static str]);

const TOPICS: &[Topic] = &[
    Topic("dead letters growing", None, &["increase(scimfleet_dead_letters_total"]),
    Topic("verification failures", None, &["scimfleet_verifications_total", r#"outcome="failed""#]),
    Topic(
        "leavers dead-lettered as verification_failed",
        Some("critical"),
        &[r#"reason="verification_failed""#],
    ),
    Topic("identity conflicts", Some("critical"), &["scimfleet_identity_conflicts_total"]),
    Topic("circuit breaker open", None, &["scimfleet_breaker_open", "== 1"]),
    Topic(
        "leaver p99 above the 300 s SLO",
        Some("critical"),
        &["histogram_quantile(0.99", "scimfleet_deprovision_verified_seconds_bucket", "> 300"],
    ),
    Topic(
        "leaver lane without consumers",
        Some("critical"),
        &["scimfleet_queue_consumers", r#"queue="leavers""#],
    ),
    Topic("work queue without consumers", None, &["scimfleet_queue_consumers", r#"queue="work""#]),
    Topic("events intake without consumers", None, &["scimfleet_queue_consumers", r#"queue="intake""#]),
    Topic("process down", None, &["up{", "== 0"]),
    Topic("process not ready", None, &["scimfleet_ready", "== 0"]),
    Topic("events rejected", None, &["scimfleet_events_rejected_total"]),
    Topic("work backlog growing", None, &["deriv(scimfleet_queue_messages", r#"queue="work""#]),
    Topic("mass deprovision held", Some("critical"), &["scimfleet_deprovision_waves_open"]),
    Topic("grants awaiting approval", None, &["scimfleet_held_jobs"]),
];

#[test]
fn alert_rules_are_complete_and_cover_every_topic() {
    let rules = alert_rules();
    let mut names = BTreeSet::new();
    for rule in &rules {
        let name = str_at(rule, "/alert");
        assert!(names.insert(name.to_owned()), "alert {name} defined twice");
        assert!(!str_at(rule, "/expr").trim().is_empty(), "{name}: empty expr");
        assert!(is_duration(str_at(rule, "/for")), "{name}: `for` is not a duration");
        assert!(
            ["critical", "warning", "info"].contains(&str_at(rule, "/labels/severity")),
            "{name}: severity"
        );
        for annotation in ["summary", "description", "runbook"] {
            assert!(
                !str_at(rule, &format!("/annotations/{annotation}")).trim().is_empty(),
                "{name}: {annotation}"
            );
        }
    }
    for Topic(topic, severity, about) in TOPICS {
        let matching: Vec<_> =
            rules.iter().filter(|r| about.iter().all(|part| str_at(r, "/expr").contains(part))).collect();
        assert!(!matching.is_empty(), "no alert rule for {topic}");
        if let Some(severity) = severity {
            assert!(
                matching.iter().any(|r| str_at(r, "/labels/severity") == *severity),
                "{topic} must be {severity}"
            );
        }
    }
    assert!(is_duration("1h30m") && is_duration("0m") && !is_duration("5") && !is_duration("m"));
}

// ---- OpenTelemetry Collector ------------------------------------------------

#[test]
fn collector_pipelines_use_only_defined_components() {
    let config = file("otel-collector.yaml");
    assert!(str_at(&config, "/receivers/otlp/protocols/grpc/endpoint").ends_with(":4317"));
    assert!(str_at(&config, "/receivers/otlp/protocols/http/endpoint").ends_with(":4318"));
    let connectors = keys(config.get("connectors"));
    let pipelines = config["service"]["pipelines"].as_object().expect("service.pipelines");
    assert!(pipelines.contains_key("traces"), "no traces pipeline");
    let mut used = BTreeSet::new();
    for (pipeline, body) in pipelines {
        for kind in ["receivers", "processors", "exporters"] {
            let defined = keys(config.get(kind));
            let names = strings(body.get(kind));
            assert!(kind == "processors" || !names.is_empty(), "pipeline {pipeline} has no {kind}");
            for name in names {
                let ok = defined.contains(&name) || (kind != "processors" && connectors.contains(&name));
                assert!(ok, "pipeline {pipeline} uses {kind} {name}, not defined");
                used.insert(name);
            }
        }
        // The memory limiter must see data before anything queues it.
        assert_eq!(
            strings(body.get("processors")).first().map(String::as_str),
            Some("memory_limiter"),
            "{pipeline}"
        );
        assert!(strings(body.get("processors")).contains(&"batch".to_owned()), "{pipeline}: no batch");
        assert!(strings(body.get("exporters")).iter().any(|e| e == "debug" || e.starts_with("debug/")));
    }
    for kind in ["receivers", "processors", "exporters", "connectors"] {
        for name in keys(config.get(kind)) {
            assert!(used.contains(&name), "{kind} {name} is defined but in no pipeline");
        }
    }
    for extension in strings(config["service"].get("extensions")) {
        assert!(keys(config.get("extensions")).contains(&extension), "extension {extension} not defined");
    }
}

// ---- docker compose, Prometheus and Grafana wiring --------------------------

/// A service's environment as a map (compose allows a map or `K=V` items).
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Host paths (relative to `deploy/`) and container paths of a service's bind mounts.
fn bind_mounts(service: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for volume in service["volumes"].as_array().into_iter().flatten() {
        let (source, target) = match volume {
            Value::String(short) => {
                let mut parts = short.split(':');
                (parts.next().unwrap_or_default().to_owned(), parts.next().unwrap_or_default().to_owned())
            }
            long => (str_at(long, "/source").to_owned(), str_at(long, "/target").to_owned()),
        };
        // A name without a path is a named volume, not a file of this repository.
        if source.starts_with('.') || source.starts_with('/') {
            out.push((source, target));
        }
    }
    out
}

fn port_of(address: &str) -> &str {
    address.rsplit(':').next().unwrap_or_default().trim_end_matches('/')
}

#[test]
fn compose_mounts_existing_files_and_wires_telemetry() {
    let compose = file("docker-compose.yml");
    let services = compose["services"].as_object().expect("services");
    let processes = ["scheduler", "worker", "intake", "console"];
    for name in ["rabbitmq", "redis", "otel-collector", "prometheus", "grafana"].into_iter().chain(processes)
    {
        assert!(services.contains_key(name), "service {name} missing");
    }
    let mut mounted = Vec::new();
    for (name, service) in services {
        for (source, _) in bind_mounts(service) {
            let path = deploy().join(&source);
            assert!(path.exists(), "service {name} mounts {source}, which does not exist");
            mounted.push(path.canonicalize().expect("canonical"));
        }
        if let Some(build) = service.get("build") {
            let context = deploy().join(str_at(build, "/context"));
            assert!(context.join(str_at(build, "/dockerfile")).is_file(), "service {name}: no Dockerfile");
        }
        let deps = service.get("depends_on");
        let deps = keys(deps).into_iter().chain(strings(deps));
        for dep in deps {
            assert!(services.contains_key(&dep), "service {name} depends on unknown {dep}");
        }
    }
    for artefact in [
        "otel-collector.yaml",
        "prometheus/prometheus.yml",
        "prometheus/alerts.yml",
        "grafana/scimfleet-dashboard.json",
    ] {
        let path = deploy().join(artefact).canonicalize().expect("artefact exists");
        assert!(mounted.iter().any(|m| path.starts_with(m)), "no service mounts deploy/{artefact}");
    }
    let collector = file("otel-collector.yaml");
    let otlp_http_port = port_of(str_at(&collector, "/receivers/otlp/protocols/http/endpoint"));
    let mut service_names = BTreeSet::new();
    for process in processes {
        let env = environment(&services[process]);
        let endpoint =
            env.get("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_else(|| panic!("{process}: no OTLP endpoint"));
        let host = endpoint.trim_start_matches("http://").split(':').next().unwrap_or_default();
        assert!(services.contains_key(host), "{process}: OTLP endpoint {endpoint} is not a compose service");
        assert_eq!(
            port_of(endpoint),
            otlp_http_port,
            "{process}: OTLP endpoint is not the collector's HTTP port"
        );
        let service_name =
            env.get("OTEL_SERVICE_NAME").unwrap_or_else(|| panic!("{process}: no OTEL_SERVICE_NAME"));
        assert!(service_names.insert(service_name.clone()), "{process}: OTEL_SERVICE_NAME not unique");
    }
}

// ---- Redis persistence -------------------------------------------------------

/// The directives of a redis.conf (`name value...`), the last one winning as in Redis.
fn redis_directives(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(name, value)| (name.to_lowercase(), value.trim().to_owned()))
        .collect()
}

#[test]
fn redis_runs_the_shipped_config_with_aof_wherever_it_is_started() {
    let shipped = deploy().join("redis/scimfleet.conf");
    let conf = redis_directives(&std::fs::read_to_string(&shipped).expect("deploy/redis/scimfleet.conf"));
    for (name, value) in [
        ("appendonly", "yes"),
        ("appendfsync", "everysec"),
        ("aof-use-rdb-preamble", "yes"),
        ("aof-load-truncated", "yes"),
        ("maxmemory-policy", "noeviction"),
    ] {
        assert_eq!(conf.get(name).map(String::as_str), Some(value), "scimfleet.conf: {name}");
    }
    let save = conf.get("save").map(|s| s.trim_matches(['"', '\''])).unwrap_or_default();
    assert!(!save.is_empty(), "scimfleet.conf: RDB snapshots are off");

    // Compose starts Redis with the mounted file, overriding no persistence
    // setting, and keeps its data in a named volume.
    let compose = file("docker-compose.yml");
    let redis = &compose["services"]["redis"];
    let command = strings(redis.get("command"));
    let (_, target) = bind_mounts(redis)
        .into_iter()
        .find(|(source, _)| deploy().join(source).canonicalize().ok() == shipped.canonicalize().ok())
        .expect("compose's redis mounts deploy/redis/scimfleet.conf");
    assert_eq!(command.get(..2), Some(&["redis-server".to_owned(), target][..]), "compose's redis command");
    for flag in ["--appendonly", "--appendfsync", "--save", "--maxmemory-policy", "--aof-use-rdb-preamble"] {
        assert!(!command.iter().any(|c| c == flag), "compose's redis overrides {flag}");
    }
    let dir = command.iter().skip_while(|c| *c != "--dir").nth(1).map_or("/data", String::as_str);
    let volumes = strings(redis.get("volumes"));
    let named =
        volumes.iter().filter_map(|v| v.split_once(':')).find(|(_, t)| t.trim_end_matches(":rw") == dir);
    let (volume, _) =
        named.unwrap_or_else(|| panic!("compose's redis keeps {dir} in no volume: {volumes:?}"));
    assert!(keys(compose.get("volumes")).contains(volume), "volume {volume} is not a named volume");

    // So does deploy/services.sh.
    let script = std::fs::read_to_string(deploy().join("services.sh")).expect("deploy/services.sh");
    assert!(
        script.contains("redis/scimfleet.conf"),
        "services.sh does not start redis with the shipped file"
    );
    for off in ["--appendonly", "--save", "--appendfsync"] {
        assert!(!script.contains(off), "services.sh overrides {off}");
    }
}

#[test]
fn prometheus_scrapes_both_processes_and_loads_the_rules() {
    let config = file("prometheus/prometheus.yml");
    for rules in strings(config.get("rule_files")) {
        assert!(deploy().join("prometheus").join(&rules).is_file(), "rule file {rules} missing");
    }
    assert!(strings(config.get("rule_files")).contains(&"alerts.yml".to_owned()));
    let compose = file("docker-compose.yml");
    let jobs = config["scrape_configs"].as_array().expect("scrape_configs");
    for (process, listen) in [
        ("scheduler", "SCIMFLEET_TELEMETRY__SCHEDULER_LISTEN"),
        ("worker", "SCIMFLEET_TELEMETRY__WORKER_LISTEN"),
        ("intake", "SCIMFLEET_TELEMETRY__INTAKE_LISTEN"),
    ] {
        let env = environment(&compose["services"][process]);
        let port = port_of(env.get(listen).unwrap_or_else(|| panic!("{process}: {listen} not set")));
        let job = jobs.iter().find(|j| str_at(j, "/job_name") == format!("scimfleet-{process}"));
        let job = job.unwrap_or_else(|| panic!("no scrape job scimfleet-{process}"));
        let sd = &job["dns_sd_configs"][0];
        assert_eq!(strings(sd.get("names")), [process], "scimfleet-{process} discovers another service");
        assert_eq!(
            sd["port"].as_u64().map(|p| p.to_string()).as_deref(),
            Some(port),
            "scimfleet-{process}: port"
        );
        assert_eq!(job.get("metrics_path").and_then(Value::as_str).unwrap_or("/metrics"), "/metrics");
    }
    // `job` matchers (ScimfleetProcessDown, the readiness panel) must name these scrape jobs.
    let names: Vec<_> = jobs.iter().map(|j| str_at(j, "/job_name")).collect();
    for (source, expr) in expressions() {
        for (op, value) in expr.split("job=").skip(1).filter_map(|m| m.split_once('"')) {
            let value = value.split('"').next().unwrap_or_default();
            let ok = match (op, value.strip_suffix(".*")) {
                ("", _) => names.contains(&value),
                ("~", Some(prefix)) => names.iter().any(|n| n.starts_with(prefix)),
                _ => false,
            };
            assert!(ok, "{source}: job{op}\"{value}\" matches no scrape job of {names:?}");
        }
    }
}

#[test]
fn grafana_provisioning_finds_the_dashboard_and_prometheus() {
    let compose = file("docker-compose.yml");
    let mounts = bind_mounts(&compose["services"]["grafana"]);
    let (_, target) =
        mounts.iter().find(|(s, _)| s.ends_with("scimfleet-dashboard.json")).expect("dashboard mounted");
    let providers = file("grafana/provisioning/dashboards/scimfleet.yml");
    let folder = Path::new(target).parent().expect("folder");
    assert_eq!(Path::new(str_at(&providers, "/providers/0/options/path")), folder, "provider path");
    let sources = file("grafana/provisioning/datasources/scimfleet.yml");
    let prometheus =
        sources["datasources"].as_array().expect("datasources").iter().find(|d| d["type"] == "prometheus");
    let url = str_at(prometheus.expect("a prometheus data source"), "/url");
    assert!(url.starts_with("http://prometheus:"), "{url}");
}

// ---- Grafana dashboard -------------------------------------------------------

#[test]
fn dashboard_panels_have_unique_ids_and_queries() {
    let dashboard = file("grafana/scimfleet-dashboard.json");
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "schemaVersion");
    let vars = dashboard["templating"]["list"].as_array().expect("templating");
    let var =
        |name: &str| vars.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no ${name} variable"));
    assert_eq!(
        (var("datasource")["type"].as_str(), var("datasource")["query"].as_str()),
        (Some("datasource"), Some("prometheus"))
    );
    assert_eq!(str_at(var("app"), "/query/query"), "label_values(scimfleet_jobs_total, app)");
    let mut ids = BTreeSet::new();
    for panel in dashboard_panels(&dashboard) {
        let title = str_at(&panel, "/title");
        assert!(ids.insert(panel["id"].as_u64().expect("numeric id")), "panel id of {title:?} not unique");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(str_at(&panel, "/datasource/uid"), "${datasource}", "{title}: data source");
        let targets = panel["targets"]
            .as_array()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| panic!("{title}: no targets"));
        let mut refs = BTreeSet::new();
        for target in targets {
            assert!(!str_at(target, "/expr").trim().is_empty(), "{title}: empty expr");
            assert!(refs.insert(str_at(target, "/refId")), "{title}: refId not unique");
        }
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().expect("x"), grid["w"].as_u64().expect("w"));
        assert!(x + w <= 24 && grid["h"].as_u64().is_some(), "{title}: gridPos");
    }
}

// ---- Least privilege ---------------------------------------------------------

/// The default of a compose `${VAR:-default}` reference, with the variable's name.
fn default_of(reference: &str) -> Option<(&str, &str)> {
    let inner = reference.split("${").nth(1)?.split('}').next()?;
    inner.split_once(":-")
}

#[test]
fn compose_roles_connect_as_their_own_least_privilege_users() {
    let compose = file("docker-compose.yml");
    let services = compose["services"].as_object().expect("services");
    let access = environment(&services["access"]);
    let mounts: Vec<String> =
        bind_mounts(&services["access"]).into_iter().map(|(source, _)| source).collect();
    for script in ["rabbitmq/setup-users.sh", "redis/setup-acl.sh"] {
        let dir = script.split('/').next().unwrap_or_default();
        assert!(mounts.iter().any(|m| m.trim_start_matches("./") == dir), "access does not mount {dir}/");
        let command = services["access"]["command"].to_string();
        assert!(command.contains(script), "access does not run {script}");
    }
    assert_eq!(access.get("NAMESPACE").map(String::as_str), Some("scimfleet"), "the example's namespace");
    for role in ["scheduler", "worker", "intake", "console"] {
        // The console runs the operator commands, as the operator's users.
        let user = if role == "console" { "admin" } else { role };
        let env = environment(&services[role]);
        assert_eq!(
            env.get("SCIMFLEET_BROKER__DECLARE_TOPOLOGY").map(String::as_str),
            Some("false"),
            "{role}"
        );
        assert!(
            keys(services[role].get("depends_on")).contains("topology"),
            "{role} starts before the topology"
        );
        for (key, scheme, kind) in
            [("SCIMFLEET_BROKER__URL", "amqp://", "RABBITMQ"), ("SCIMFLEET_REDIS__URL", "redis://", "REDIS")]
        {
            let url = env.get(key).unwrap_or_else(|| panic!("{role}: no {key}"));
            assert!(
                url.starts_with(&format!("{scheme}scimfleet-{user}:")),
                "{role} connects as another user: {url}"
            );
            let (var, default) =
                default_of(url).unwrap_or_else(|| panic!("{role}: no password variable in {url}"));
            assert_eq!(var, format!("SCIMFLEET_{kind}_{}_PASSWORD", user.to_uppercase()), "{role}");
            let made = access.get(var).and_then(|v| default_of(v)).map(|(_, d)| d);
            assert_eq!(made, Some(default), "{role}: access makes {var} with another default");
        }
    }
    let topology = &services["topology"];
    assert_eq!(strings(topology.get("command")), ["topology", "declare"]);
    assert!(keys(topology.get("depends_on")).contains("access"));
}
