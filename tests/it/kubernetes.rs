//! The Kubernetes manifests (`deploy/kubernetes`), read as the cluster
//! would get them: `kubectl kustomize` builds the base and the production
//! overlay, and every check runs on its output, not on the files.
//!
//! The truth is the binary's own, never a copied list: the configuration
//! each build mounts is loaded with `scimfleet_runtime::Config` (with the
//! image's `ENV` and the container's environment layered on, as in the pod),
//! the probe and metrics ports are that configuration's listeners, the
//! queues the worker autoscales on are `Topology::of(&config)`'s, and the
//! environment each role gets must name every token, webhook secret and
//! key file the configuration refers to. Adding an app to the ConfigMap
//! without its KEDA triggers and token fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use scimfleet_devkit::certs::TestCa;
use scimfleet_devkit::fleet::unique_namespace;
use scimfleet_runtime::Config;
use scimfleet_runtime::broker::Topology;
use serde_json::Value;

const BUILDS: [&str; 2] = ["base", "overlays/production"];
/// Every Secret value in the manifests starts with this (or is in `NOT_SECRET`).
const PLACEHOLDER: &str = "REPLACE-ME";
/// Secret keys that hold a setting rather than a secret (KEDA reads its
/// `tls` parameter from a Secret).
const NOT_SECRET: &[(&str, &str)] = &[("tls", "enable")];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Splits a YAML stream into its documents, as JSON values.
fn documents(text: &str, origin: &str) -> Vec<Value> {
    text.split("\n---\n")
        .map(|doc| doc.trim_start_matches("---\n"))
        .filter(|doc| doc.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')))
        .map(|doc| serde_yaml_ng::from_str(doc).unwrap_or_else(|e| panic!("{origin}: {e}")))
        .collect()
}

/// `kubectl kustomize deploy/kubernetes/<build>`, parsed.
fn kustomize(build: &str) -> Vec<Value> {
    let dir = root().join("deploy/kubernetes").join(build);
    let output = Command::new("kubectl").arg("kustomize").arg(&dir).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `kubectl kustomize` ({e}): these tests build the manifests with kubectl \
             1.27 or newer (kustomize v5). Install kubectl from https://pkgs.k8s.io (Debian \
             bookworm's kubernetes-client is 1.20, too old for these kustomizations)"
        )
    });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kubectl kustomize {}: {stderr}", dir.display());
    documents(&String::from_utf8_lossy(&output.stdout), build)
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default()
}

/// Whether `selector` (matchLabels and In expressions) selects `target`.
fn selects(selector: &Value, target: &BTreeMap<String, String>) -> bool {
    let wanted = labels(&selector["matchLabels"]);
    let expressions = list(&selector["matchExpressions"]).iter().all(|e| {
        let value = target.get(e["key"].as_str().unwrap_or_default());
        e["operator"] == "In" && list(&e["values"]).iter().any(|v| v.as_str() == value.map(String::as_str))
    });
    (!wanted.is_empty() || selector.get("matchExpressions").is_some())
        && wanted.iter().all(|(k, v)| target.get(k) == Some(v))
        && expressions
}

fn pod_labels(workload: &Value) -> BTreeMap<String, String> {
    labels(&workload["spec"]["template"]["metadata"]["labels"])
}

/// The role a workload runs: its main container's first argument.
fn role(workload: &Value) -> &str {
    list(&workload["spec"]["template"]["spec"]["containers"])[0]["args"][0].as_str().unwrap_or_default()
}

fn container<'a>(workload: &'a Value, role: &str) -> &'a Value {
    list(&workload["spec"]["template"]["spec"]["containers"])
        .iter()
        .find(|c| c["args"][0] == role)
        .unwrap_or_else(|| panic!("{}: no container runs `scimfleet {role}`", name(workload)))
}

/// A container port by name or number.
fn port(container: &Value, port: &Value) -> Option<u64> {
    port.as_u64().or_else(|| {
        list(&container["ports"])
            .iter()
            .find(|p| p["name"] == *port)
            .and_then(|p| p["containerPort"].as_u64())
    })
}

/// The image's `ENV` lines (deploy/Dockerfile), continuations joined.
fn image_env() -> Vec<(String, String)> {
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).expect("deploy/Dockerfile");
    let joined = dockerfile.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ENV "))
        .flat_map(str::split_whitespace)
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// What a container's environment holds without its Secrets: the image's
/// `ENV`, then its ConfigMap `envFrom`, then its literal `env`.
fn environment(docs: &[Value], container: &Value) -> Vec<(String, String)> {
    let mut env = image_env();
    for from in list(&container["envFrom"]) {
        let map = from["configMapRef"]["name"].as_str().expect("envFrom names a ConfigMap");
        let config_map = of_kind(docs, "ConfigMap").into_iter().find(|c| name(c) == map);
        let data = config_map.unwrap_or_else(|| panic!("envFrom ConfigMap {map} is not in the build"));
        env.extend(labels(&data["data"]));
    }
    for var in list(&container["env"]) {
        if let Some(value) = var["value"].as_str() {
            env.push((var["name"].as_str().unwrap_or_default().to_owned(), value.to_owned()));
        }
    }
    env
}

/// Names of the container's environment variables that come from Secrets,
/// each checked to be a key of a Secret in the build.
fn secret_env(docs: &[Value], container: &Value) -> BTreeSet<String> {
    let secrets = of_kind(docs, "Secret");
    list(&container["env"])
        .iter()
        .filter_map(|var| {
            let by = &var["valueFrom"]["secretKeyRef"];
            let (secret, key) = (by["name"].as_str()?, by["key"].as_str()?);
            let found = secrets.iter().find(|s| name(s) == secret);
            let found = found.unwrap_or_else(|| panic!("{var}: Secret {secret} is not in the build"));
            assert!(found["data"].get(key).is_some(), "{var}: Secret {secret} has no key {key}");
            var["name"].as_str().map(str::to_owned)
        })
        .collect()
}

/// A directory standing in for the pod's configuration mount: the
/// ConfigMap's file, plus a CA certificate at every `tls/` path and a
/// stand-in for every other file the workload projects beside it.
struct Mounted {
    dir: PathBuf,
    config_path: PathBuf,
    files: BTreeSet<String>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The projected volume mounted where `SCIMFLEET_CONFIG` points, laid out
/// in a temporary directory.
fn mount_config(docs: &[Value], workload: &Value, container: &Value) -> Mounted {
    let env: BTreeMap<_, _> = image_env().into_iter().collect();
    let config_file = Path::new(env.get("SCIMFLEET_CONFIG").expect("the image sets SCIMFLEET_CONFIG"));
    let config_dir = config_file.parent().expect("config dir").to_str().expect("utf-8");
    let mount = list(&container["volumeMounts"]).iter().find(|m| m["mountPath"] == config_dir);
    let mount = mount.unwrap_or_else(|| panic!("{}: nothing mounted at {config_dir}", name(workload)));
    let volume =
        list(&workload["spec"]["template"]["spec"]["volumes"]).iter().find(|v| v["name"] == mount["name"]);
    let sources = list(&volume.expect("the mounted volume")["projected"]["sources"]);

    let dir = std::env::temp_dir().join(unique_namespace("sf-k8s"));
    // Removed on drop, a failed check included.
    let mut mounted = Mounted { dir: dir.clone(), config_path: PathBuf::new(), files: BTreeSet::new() };
    let ca = TestCa::new(&dir.join(".ca"), "k8s").expect("test CA").ca_pem();
    for source in sources {
        let (kind, object) = match (source.get("configMap"), source.get("secret")) {
            (Some(map), _) => ("ConfigMap", map),
            (_, Some(secret)) => ("Secret", secret),
            _ => panic!("{}: unexpected projected source {source}", name(workload)),
        };
        let found = of_kind(docs, kind).into_iter().find(|d| name(d) == object["name"]);
        let found = found.unwrap_or_else(|| panic!("{kind} {} is not in the build", object["name"]));
        for item in list(&object["items"]) {
            let (key, path) = (item["key"].as_str().expect("key"), item["path"].as_str().expect("path"));
            assert!(found["data"].get(key).is_some(), "{kind} {} has no key {key}", object["name"]);
            let target = dir.join(path);
            std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
            let text = match kind {
                "ConfigMap" => found["data"][key].as_str().expect("text").to_owned(),
                _ if path.starts_with("tls/") => ca.clone(),
                _ => "stand-in\n".to_owned(),
            };
            std::fs::write(&target, text).expect("write");
            if Path::new(path) == Path::new(config_file.file_name().expect("file name")) {
                mounted.config_path = target;
            }
            mounted.files.insert(path.to_owned());
        }
    }
    let mounted_file = !mounted.config_path.as_os_str().is_empty();
    assert!(mounted_file, "{}: {} is not mounted", name(workload), config_file.display());
    mounted
}

/// The configuration `container` of `workload` runs with, loaded by the
/// project's own loader.
fn load(docs: &[Value], workload: &Value, container: &Value) -> (Config, Mounted) {
    let mounted = mount_config(docs, workload, container);
    let text = std::fs::read_to_string(&mounted.config_path).expect("mounted config");
    let origin = format!("{} ({})", name(workload), mounted.config_path.display());
    let config = Config::from_toml(&text, &origin, mounted.dir.clone(), environment(docs, container))
        .unwrap_or_else(|e| panic!("{origin}: the configuration does not load: {e}"));
    (config, mounted)
}

fn listen_port(config: &Config, role: &str) -> u64 {
    let address = match role {
        "scheduler" => config.telemetry.scheduler_listen,
        "worker" => config.telemetry.worker_listen,
        "intake" => config.telemetry.intake_listen,
        other => panic!("unknown role {other}"),
    };
    u64::from(address.unwrap_or_else(|| panic!("telemetry.{role}_listen is off: nothing to probe")).port())
}

fn workloads(docs: &[Value]) -> Vec<&Value> {
    docs.iter().filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet").collect()
}

#[test]
fn every_workload_is_probed_bounded_and_unprivileged() {
    for build in BUILDS {
        let docs = kustomize(build);
        let found: BTreeSet<_> = workloads(&docs).iter().map(|w| role(w)).collect();
        assert_eq!(found, BTreeSet::from(["intake", "scheduler", "worker"]), "{build}: roles");
        for workload in workloads(&docs) {
            let role = role(workload);
            let main = container(workload, role);
            let (config, _mounted) = load(&docs, workload, main);
            let ops = listen_port(&config, role);
            let at = format!("{build}: {} container {role}", name(workload));
            for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
                let get = &main[probe]["httpGet"];
                assert_eq!(get["path"], path, "{at}: {probe}");
                assert_eq!(
                    port(main, &get["port"]),
                    Some(ops),
                    "{at}: {probe} port is not telemetry.{role}_listen"
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
fn the_scaled_object_scales_the_worker_on_its_job_queues_leavers_first() {
    for build in BUILDS {
        let docs = kustomize(build);
        let worker = *workloads(&docs).iter().find(|w| role(w) == "worker").expect("a worker Deployment");
        let (config, _mounted) = load(&docs, worker, container(worker, "worker"));
        let topology = Topology::of(&config);
        let scaled = of_kind(&docs, "ScaledObject");
        assert_eq!(scaled.len(), 1, "{build}: one ScaledObject");
        let spec = &scaled[0]["spec"];
        assert_eq!(spec["scaleTargetRef"]["kind"], "Deployment", "{build}: scale target kind");
        assert_eq!(spec["scaleTargetRef"]["name"], name(worker), "{build}: scale target");
        let (min, max) = (spec["minReplicaCount"].as_u64(), spec["maxReplicaCount"].as_u64());
        assert!(min >= Some(1) && max >= min, "{build}: replicas {min:?}..{max:?}");

        // queue name -> (position, per-replica target)
        let mut triggers = BTreeMap::new();
        for (position, trigger) in list(&spec["triggers"]).iter().enumerate() {
            assert_eq!(trigger["type"], "rabbitmq", "{build}: trigger {position}");
            let metadata = &trigger["metadata"];
            assert_eq!(metadata["mode"], "QueueLength", "{build}: trigger {position}");
            let queue = metadata["queueName"].as_str().expect("queueName").to_owned();
            let value: f64 = metadata["value"].as_str().and_then(|v| v.parse().ok()).expect("value");
            assert!(value > 0.0, "{build}: {queue}: target {value}");
            check_trigger_auth(&docs, build, &trigger["authenticationRef"]["name"]);
            assert!(triggers.insert(queue.clone(), (position, value)).is_none(), "{build}: {queue} twice");
        }
        let expected: BTreeSet<String> = config
            .apps
            .iter()
            .flat_map(|a| [topology.job_queue(&a.id), topology.leaver_queue(&a.id)])
            .collect();
        let named: BTreeSet<String> = triggers.keys().cloned().collect();
        assert_eq!(
            named, expected,
            "{build}: the triggers must name exactly every app's work queue and leaver lane"
        );

        let last_leaver = config.apps.iter().map(|a| triggers[&topology.leaver_queue(&a.id)].0).max();
        let first_upsert = config.apps.iter().map(|a| triggers[&topology.job_queue(&a.id)].0).min();
        assert!(last_leaver < first_upsert, "{build}: leaver-lane triggers come first");
        for app in &config.apps {
            let (leavers, upserts) =
                (triggers[&topology.leaver_queue(&app.id)].1, triggers[&topology.job_queue(&app.id)].1);
            assert!(
                leavers < upserts,
                "{build}: {}: the leaver lane's per-replica target ({leavers}) must be below the work queue's \
                 ({upserts}), so offboarding scales out first",
                app.id
            );
        }
    }
}

/// The trigger's TriggerAuthentication exists and gives KEDA a `host` from
/// a Secret key that exists.
fn check_trigger_auth(docs: &[Value], build: &str, auth: &Value) {
    let found = of_kind(docs, "TriggerAuthentication").into_iter().find(|t| name(t) == *auth);
    let found = found.unwrap_or_else(|| panic!("{build}: TriggerAuthentication {auth} is not in the build"));
    let refs = list(&found["spec"]["secretTargetRef"]);
    assert!(refs.iter().any(|r| r["parameter"] == "host"), "{build}: {auth} gives no host");
    for r in refs {
        let secret = of_kind(docs, "Secret").into_iter().find(|s| name(s) == r["name"]);
        let secret =
            secret.unwrap_or_else(|| panic!("{build}: {auth}: Secret {} is not in the build", r["name"]));
        assert!(secret["data"].get(r["key"].as_str().unwrap_or_default()).is_some(), "{build}: {auth}: {r}");
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
                "worker" => needed.extend(config.apps.iter().filter_map(|a| a.token_env.clone())),
                "intake" => needed.extend(
                    config.intake.sources.iter().flat_map(|s| &s.secrets).filter_map(|r| r.env.clone()),
                ),
                _ => {}
            }
            for var in needed {
                assert!(secrets.contains(&var), "{at}: {var} does not come from a Secret");
            }
            let evidence = &config.verification.evidence_signing_key_file;
            let files = [&config.broker.ca_file, &config.redis.ca_file]
                .into_iter()
                .chain((role == "worker").then_some(evidence))
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
    }
}

/// Standard base64 (kustomize's Secret `data`), without a dependency.
fn decode_base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        let index = ALPHABET.iter().position(|a| *a == c).expect("base64");
        bits = (bits << 6) | u32::try_from(index).expect("6 bits");
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push(u8::try_from((bits >> count) & 0xff).expect("a byte"));
        }
    }
    String::from_utf8(out).expect("utf-8 secret")
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
            let ops = listen_port(&config, role);
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

            let mut serves = BTreeSet::from([listen_port(&config, role)]);
            if role == "intake" {
                serves.insert(u64::from(config.intake.listen.expect("intake.listen").port()));
            }
            assert_eq!(rule_ports(&ingress, main), serves, "{at}: ingress opens other ports than it serves");
            for rule in &ingress {
                if rule_ports(&[*rule], main).contains(&listen_port(&config, role)) {
                    assert!(!list(&rule["from"]).is_empty(), "{at}: /metrics is open to everyone");
                }
            }

            let redis = url::Url::parse(config.redis.url.expose()).expect("redis.url");
            let mut uses = BTreeSet::from([53, 5671, 5672, u64::from(redis.port().unwrap_or(6379))]);
            if role != "scheduler" {
                uses.insert(443); // SCIM apps (worker), identity providers (intake)
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

/// `deploy/kubernetes/examples/<file>`, parsed.
fn example(file: &str) -> Vec<Value> {
    let path = root().join("deploy/kubernetes/examples").join(file);
    documents(&std::fs::read_to_string(&path).expect("example"), file)
}

#[test]
fn the_cluster_examples_are_what_the_base_configuration_connects_to() {
    let docs = kustomize("base");
    let worker = *workloads(&docs).iter().find(|w| role(w) == "worker").expect("worker");
    let (config, _mounted) = load(&docs, worker, container(worker, "worker"));

    let rabbit = example("rabbitmq-cluster.yaml");
    let cluster = of_kind(&rabbit, "RabbitmqCluster");
    assert_eq!(cluster.len(), 1, "one RabbitmqCluster");
    assert_eq!(cluster[0]["spec"]["replicas"], 3, "three nodes: a quorum survives one");
    let management = config.broker.management_url.host_str();
    assert_eq!(management, Some(name(cluster[0])), "broker.management_url names the operator's Service");
    let rabbit_config = cluster[0]["spec"]["rabbitmq"]["additionalConfig"].as_str().unwrap_or_default();
    assert!(rabbit_config.contains("cluster_partition_handling = pause_minority"), "{rabbit_config}");
    assert!(
        !of_kind(&rabbit, "PodDisruptionBudget").is_empty(),
        "the RabbitMQ example has no disruption budget"
    );

    let redis = example("redis.yaml");
    let failover = of_kind(&redis, "RedisFailover");
    assert_eq!(failover.len(), 1, "one RedisFailover");
    let spec = &failover[0]["spec"];
    assert!(spec["sentinel"]["replicas"].as_u64() >= Some(3), "three Sentinels agree on a failover");
    assert!(spec["redis"]["replicas"].as_u64() >= Some(2), "a replica to fail over to");
    assert!(spec["redis"]["storage"]["persistentVolumeClaim"].is_object(), "Redis data on a volume");
    // The operator's Service that follows the primary is rfrm-<name>.
    let url = url::Url::parse(config.redis.url.expose()).expect("redis.url");
    assert_eq!(url.host_str(), Some(format!("rfrm-{}", name(failover[0])).as_str()), "redis.url host");
    // The durability settings are the shipped ones (deploy/redis/scimfleet.conf).
    let shipped =
        std::fs::read_to_string(root().join("deploy/redis/scimfleet.conf")).expect("scimfleet.conf");
    let directives = |lines: &mut dyn Iterator<Item = &str>| -> BTreeMap<String, String> {
        lines
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect()
    };
    let shipped = directives(&mut shipped.lines());
    let custom = directives(&mut list(&spec["redis"]["customConfig"]).iter().filter_map(Value::as_str));
    for key in [
        "appendonly",
        "appendfsync",
        "aof-use-rdb-preamble",
        "aof-load-truncated",
        "save",
        "maxmemory-policy",
    ] {
        assert_eq!(
            custom.get(key),
            shipped.get(key),
            "redis.yaml customConfig {key} differs from scimfleet.conf"
        );
    }
}
