//! The Kubernetes manifests (`deploy/kubernetes`), read as the cluster
//! would get them: `kubectl kustomize` builds the base and the production
//! overlay, and every check runs on its output, not on the files.
//!
//! The truth is the binary's own, never a copied list: the configuration
//! each build mounts is loaded with `scimfleet_runtime::Config` (with the
//! image's `ENV` and the container's environment layered on, as in the pod),
//! the probe and metrics ports are that configuration's listeners (the
//! console's own `console.listen`; it serves no /metrics), the queues the
//! worker autoscales on are `Topology::of(&config)`'s ([`keda`]), and the
//! environment each role gets must name every token, webhook secret and
//! key file the configuration refers to. Adding an app to the ConfigMap
//! without its KEDA triggers and token fails here. [`build`] runs
//! kustomize and mounts a workload's configuration as its pod would.

use std::collections::BTreeSet;
use std::sync::Arc;

use scimfleet_runtime::Config;
use serde_json::Value;

// The image's `ENV` is read by deploy_artefacts.rs too.
pub(crate) mod build;
mod examples;
mod keda;
use build::{
    container, decode_base64, environment, kustomize, labels, list, load, mount_config, name, of_kind,
    pod_labels, port, role, secret_env, selects, workloads,
};

const BUILDS: [&str; 2] = ["base", "overlays/production"];
/// Every Secret value in the manifests starts with this (or is in `NOT_SECRET`).
const PLACEHOLDER: &str = "REPLACE-ME";
/// Secret keys that hold a setting rather than a secret (KEDA reads its
/// `tls` parameter from a Secret).
const NOT_SECRET: &[(&str, &str)] = &[("tls", "enable")];

/// The port a role is probed on: its operations listener, or the console's
/// own (it has no other).
fn probe_port(config: &Config, role: &str) -> u64 {
    let (field, address) = match role {
        "scheduler" => ("telemetry.scheduler_listen", config.telemetry.scheduler_listen),
        "worker" => ("telemetry.worker_listen", config.telemetry.worker_listen),
        "intake" => ("telemetry.intake_listen", config.telemetry.intake_listen),
        "console" => ("console.listen", config.console.listen),
        other => panic!("unknown role {other}"),
    };
    u64::from(address.unwrap_or_else(|| panic!("{field} is off: nothing to probe")).port())
}

/// The port a role serves /metrics on; the console serves none.
fn metrics_port(config: &Config, role: &str) -> Option<u64> {
    (role != "console").then(|| probe_port(config, role))
}

/// What a role answers readiness on: the console has /healthz only (its
/// pages say themselves when RabbitMQ or Redis is down).
fn readiness_path(role: &str) -> &'static str {
    if role == "console" { "/healthz" } else { "/readyz" }
}

#[test]
fn every_workload_is_probed_bounded_and_unprivileged() {
    for build in BUILDS {
        let docs = kustomize(build);
        let found: BTreeSet<_> = workloads(&docs).iter().map(|w| role(w)).collect();
        assert_eq!(found, BTreeSet::from(["console", "intake", "scheduler", "worker"]), "{build}: roles");
        for workload in workloads(&docs) {
            let role = role(workload);
            let main = container(workload, role);
            let (config, _mounted) = load(&docs, workload, main);
            let ops = probe_port(&config, role);
            let at = format!("{build}: {} container {role}", name(workload));
            for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", readiness_path(role))] {
                let get = &main[probe]["httpGet"];
                assert_eq!(get["path"], path, "{at}: {probe}");
                assert_eq!(
                    port(main, &get["port"]),
                    Some(ops),
                    "{at}: {probe} port is not the role's listener"
                );
            }
            if let Some(startup) = main.get("startupProbe") {
                assert_eq!(startup["httpGet"]["path"], "/healthz", "{at}: startupProbe");
                assert_eq!(port(main, &startup["httpGet"]["port"]), Some(ops), "{at}: startupProbe port");
            }
            if role == "intake" {
                let listen = config.intake.listen.expect("intake.listen").port();
                assert!(
                    list(&main["ports"]).iter().any(|p| p["containerPort"] == u64::from(listen)),
                    "{at}: intake.listen's port {listen} is not a container port"
                );
            }
            let spec = &workload["spec"]["template"]["spec"];
            for c in list(&spec["initContainers"]).iter().chain(list(&spec["containers"])) {
                let at = format!("{build}: {} container {}", name(workload), c["name"]);
                check_bounded_and_unprivileged(&at, c, &spec["securityContext"]);
            }
            check_shutdown_fits(&at, spec, main, config.worker.shutdown_grace_ms);
        }
    }
}

/// Requests and limits for CPU and memory; non-root, read-only root
/// filesystem, no privilege escalation, every capability dropped.
fn check_bounded_and_unprivileged(at: &str, c: &Value, pod_security: &Value) {
    for (kind, resource) in
        [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")]
    {
        assert!(c["resources"][kind][resource].is_string(), "{at}: no resources.{kind}.{resource}");
    }
    let security = &c["securityContext"];
    let non_root = security.get("runAsNonRoot").unwrap_or(&pod_security["runAsNonRoot"]);
    assert_eq!(non_root, &Value::Bool(true), "{at}: runAsNonRoot");
    assert_eq!(security["readOnlyRootFilesystem"], true, "{at}: readOnlyRootFilesystem");
    assert_eq!(security["allowPrivilegeEscalation"], false, "{at}: allowPrivilegeEscalation");
    let dropped = list(&security["capabilities"]["drop"]);
    assert!(dropped.iter().any(|d| d == "ALL"), "{at}: capabilities not dropped");
    assert!(list(&security["capabilities"]["add"]).is_empty(), "{at}: capabilities added");
}

/// SIGTERM, the preStop pause, then the drain within `shutdown_grace_ms`
/// must all fit before the kubelet's SIGKILL.
fn check_shutdown_fits(at: &str, pod: &Value, main: &Value, shutdown_grace_ms: u64) {
    let grace_s = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    let pre_stop = &main["lifecycle"]["preStop"];
    let pause_s = pre_stop["exec"]["command"]
        .as_array()
        .filter(|c| c.first().is_some_and(|s| s == "sleep"))
        .and_then(|c| c.get(1)?.as_str()?.parse::<u64>().ok())
        .or(pre_stop["sleep"]["seconds"].as_u64())
        .unwrap_or(0);
    assert!(
        grace_s * 1000 > shutdown_grace_ms + pause_s * 1000,
        "{at}: terminationGracePeriodSeconds {grace_s} s leaves no room for a {pause_s} s preStop \
         and shutdown_grace_ms {shutdown_grace_ms}"
    );
}

#[test]
fn every_deployment_has_a_disruption_budget() {
    for build in BUILDS {
        let docs = kustomize(build);
        let budgets = of_kind(&docs, "PodDisruptionBudget");
        for workload in workloads(&docs) {
            let pods = pod_labels(workload);
            let matching: Vec<_> =
                budgets.iter().filter(|b| selects(&b["spec"]["selector"], &pods)).collect();
            assert_eq!(
                matching.len(),
                1,
                "{build}: {} needs exactly one PodDisruptionBudget",
                name(workload)
            );
            let spec = &matching[0]["spec"];
            assert!(
                spec.get("maxUnavailable").is_some() || spec.get("minAvailable").is_some(),
                "{build}: {}: a budget that allows nothing or everything",
                name(matching[0])
            );
        }
    }
}

#[test]
fn each_role_gets_the_secrets_and_files_its_configuration_names() {
    for build in BUILDS {
        let docs = kustomize(build);
        for workload in workloads(&docs) {
            let role = role(workload);
            let main = container(workload, role);
            let (config, mounted) = load(&docs, workload, main);
            let at = format!("{build}: {} container {role}", name(workload));
            let secrets = secret_env(&docs, main);
            let mut needed: Vec<String> = config.telemetry.pseudonym_key_env.iter().cloned().collect();
            needed.extend(["SCIMFLEET_BROKER__URL".to_owned(), "SCIMFLEET_REDIS__URL".to_owned()]);
            match role {
                // The console's sweeps read every app, with its token.
                "worker" | "console" => {
                    needed.extend(config.apps.iter().filter_map(|a| a.token_env.clone()));
                }
                "intake" => needed.extend(
                    config.intake.sources.iter().flat_map(|s| &s.secrets).filter_map(|r| r.env.clone()),
                ),
                _ => {}
            }
            for var in needed {
                assert!(secrets.contains(&var), "{at}: {var} does not come from a Secret");
            }
            // The console runs the operator commands, as the operator's users.
            for var in ["SCIMFLEET_BROKER__URL", "SCIMFLEET_REDIS__URL"] {
                let by = list(&main["env"]).iter().find(|v| v["name"] == var).expect("a Secret's");
                let key = by["valueFrom"]["secretKeyRef"]["key"].as_str().unwrap_or_default();
                let user = if role == "console" { "admin" } else { role };
                assert_eq!(key, format!("{user}-url"), "{at}: {var} is another role's");
            }
            let evidence = &config.verification.evidence_signing_key_file;
            let console = &config.console;
            let console_files = [
                &console.credential_file,
                &console.session_key_file,
                &console.oidc.as_ref().and_then(|o| o.client_secret_file.clone()),
            ];
            let files = [&config.broker.ca_file, &config.redis.ca_file]
                .into_iter()
                // Workers sign evidence; the console signs evidence exports.
                .chain((role == "worker" || role == "console").then_some(evidence))
                .chain(console_files.into_iter().filter(|_| role == "console"))
                .flatten()
                .map(|f| f.strip_prefix(&mounted.dir).unwrap_or(f));
            for file in files {
                let file = file.to_str().expect("utf-8").to_owned();
                assert!(mounted.files.contains(&file), "{at}: the configuration names {file}, not mounted");
            }
        }
    }
}

#[test]
fn placeholder_secrets_are_refused_at_start_up() {
    for build in BUILDS {
        let docs = kustomize(build);
        for secret in of_kind(&docs, "Secret") {
            for (key, value) in labels(&secret["data"]) {
                let value = decode_base64(&value);
                let placeholder =
                    value.starts_with(PLACEHOLDER) || NOT_SECRET.contains(&(key.as_str(), value.as_str()));
                assert!(
                    placeholder,
                    "{build}: Secret {} key {key} holds something other than a placeholder",
                    name(secret)
                );
            }
        }
        // A role started with the placeholders fails on the URL, naming the field.
        let worker = *workloads(&docs).iter().find(|w| role(w) == "worker").expect("worker");
        let main = container(worker, "worker");
        let mounted = mount_config(&docs, worker, main);
        let text = std::fs::read_to_string(&mounted.config_path).expect("config");
        let by =
            list(&main["env"]).iter().find(|v| v["name"] == "SCIMFLEET_BROKER__URL").expect("broker URL");
        let secret =
            of_kind(&docs, "Secret").into_iter().find(|s| name(s) == by["valueFrom"]["secretKeyRef"]["name"]);
        let key = by["valueFrom"]["secretKeyRef"]["key"].as_str().expect("key");
        let url = decode_base64(secret.expect("Secret")["data"][key].as_str().expect("data"));
        let mut env = environment(&docs, main);
        env.push(("SCIMFLEET_BROKER__URL".to_owned(), url));
        let error =
            Config::from_toml(&text, "pod", mounted.dir.clone(), env).expect_err("a placeholder URL loads");
        assert!(error.to_string().contains("broker.url"), "{build}: {error}");

        // The console, with the placeholder files its Secret mounts, stops on them.
        let console = *workloads(&docs).iter().find(|w| role(w) == "console").expect("console");
        let (config, _mounted) = load(&docs, console, container(console, "console"));
        let Err(error) = scimfleet_console::Console::new(Arc::new(config)) else {
            panic!("{build}: the console starts with the placeholder files of its Secret");
        };
        assert!(error.to_string().starts_with("console."), "{build}: {error}");
    }
}

#[test]
fn the_service_monitor_scrapes_every_role_on_its_metrics_port() {
    for build in BUILDS {
        let docs = kustomize(build);
        let monitors = of_kind(&docs, "ServiceMonitor");
        assert_eq!(monitors.len(), 1, "{build}: one ServiceMonitor");
        let spec = &monitors[0]["spec"];
        let endpoint_ports: BTreeSet<&str> =
            list(&spec["endpoints"]).iter().filter_map(|e| e["port"].as_str()).collect();
        let services: Vec<_> = of_kind(&docs, "Service")
            .into_iter()
            .filter(|s| selects(&spec["selector"], &labels(&s["metadata"]["labels"])))
            .collect();
        for workload in workloads(&docs) {
            let role = role(workload);
            let main = container(workload, role);
            let (config, _mounted) = load(&docs, workload, main);
            let Some(ops) = metrics_port(&config, role) else { continue };
            let scraped = services.iter().any(|service| {
                selects(
                    &serde_json::json!({ "matchLabels": service["spec"]["selector"] }),
                    &pod_labels(workload),
                ) && list(&service["spec"]["ports"]).iter().any(|p| {
                    endpoint_ports.contains(p["name"].as_str().unwrap_or_default())
                        && port(main, &p["targetPort"]) == Some(ops)
                })
            });
            assert!(scraped, "{build}: no Service the ServiceMonitor selects scrapes {role} on {ops}");
        }
    }
}

/// The ports a set of NetworkPolicy rules opens (named ports resolved in `main`).
fn rule_ports(rules: &[&Value], main: &Value) -> BTreeSet<u64> {
    rules.iter().flat_map(|r| list(&r["ports"])).filter_map(|p| port(main, &p["port"])).collect()
}

#[test]
fn network_policies_open_only_what_each_role_uses() {
    for build in BUILDS {
        let docs = kustomize(build);
        let policies = of_kind(&docs, "NetworkPolicy");
        for workload in workloads(&docs) {
            let role = role(workload);
            let main = container(workload, role);
            let (config, _mounted) = load(&docs, workload, main);
            let at = format!("{build}: {role}");
            let pods = pod_labels(workload);
            let mine: Vec<_> =
                policies.iter().filter(|p| selects(&p["spec"]["podSelector"], &pods)).collect();
            let typed = |kind: &str| -> Vec<&Value> {
                mine.iter()
                    .filter(|p| list(&p["spec"]["policyTypes"]).iter().any(|t| t == kind))
                    .flat_map(|p| list(&p["spec"][kind.to_lowercase().as_str()]))
                    .collect()
            };
            let (ingress, egress) = (typed("Ingress"), typed("Egress"));
            assert!(!ingress.is_empty() && !egress.is_empty(), "{at}: not fenced both ways");

            let mut serves = BTreeSet::from([probe_port(&config, role)]);
            if role == "intake" {
                serves.insert(u64::from(config.intake.listen.expect("intake.listen").port()));
            }
            assert_eq!(rule_ports(&ingress, main), serves, "{at}: ingress opens other ports than it serves");
            if let Some(metrics) = metrics_port(&config, role) {
                for rule in ingress.iter().filter(|r| rule_ports(&[**r], main).contains(&metrics)) {
                    assert!(!list(&rule["from"]).is_empty(), "{at}: /metrics is open to everyone");
                }
            }

            let redis = url::Url::parse(config.redis.url.expose()).expect("redis.url");
            let mut uses = BTreeSet::from([53, 5671, 5672, u64::from(redis.port().unwrap_or(6379))]);
            if role != "scheduler" {
                // SCIM apps (worker, console sweeps), identity providers
                // (intake), the OIDC issuer (console).
                uses.insert(443);
            }
            if role == "console" {
                let management = &config.broker.management_url;
                uses.extend(management.port_or_known_default().map(u64::from)); // the status page
            }
            let open = rule_ports(&egress, main);
            assert!(uses.is_subset(&open), "{at}: egress {open:?} misses some of {uses:?}");
            assert!(
                egress.iter().all(|r| !list(&r["ports"]).is_empty()),
                "{at}: an egress rule allows every port"
            );
            if role == "scheduler" {
                assert!(!open.contains(&443), "{at}: the scheduler calls no app");
            }
        }
    }
}
