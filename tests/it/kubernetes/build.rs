//! Building and reading the manifests for `kubernetes.rs`: `kubectl
//! kustomize`, the documents it prints, and a workload's configuration
//! mounted in a temporary directory and loaded as the pod would load it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use scimfleet_devkit::certs::TestCa;
use scimfleet_devkit::fleet::unique_namespace;
use scimfleet_runtime::Config;
use serde_json::Value;

pub(super) fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Splits a YAML stream into its documents, as JSON values.
pub(super) fn documents(text: &str, origin: &str) -> Vec<Value> {
    text.split("\n---\n")
        .map(|doc| doc.trim_start_matches("---\n"))
        .filter(|doc| doc.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')))
        .map(|doc| serde_yaml_ng::from_str(doc).unwrap_or_else(|e| panic!("{origin}: {e}")))
        .collect()
}

/// `kubectl kustomize deploy/kubernetes/<build>`, parsed.
pub(super) fn kustomize(build: &str) -> Vec<Value> {
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

pub(super) fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

pub(super) fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

pub(super) fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

pub(super) fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default()
}

/// Whether `selector` (matchLabels and In expressions) selects `target`.
pub(super) fn selects(selector: &Value, target: &BTreeMap<String, String>) -> bool {
    let wanted = labels(&selector["matchLabels"]);
    let expressions = list(&selector["matchExpressions"]).iter().all(|e| {
        let value = target.get(e["key"].as_str().unwrap_or_default());
        e["operator"] == "In" && list(&e["values"]).iter().any(|v| v.as_str() == value.map(String::as_str))
    });
    (!wanted.is_empty() || selector.get("matchExpressions").is_some())
        && wanted.iter().all(|(k, v)| target.get(k) == Some(v))
        && expressions
}

pub(super) fn pod_labels(workload: &Value) -> BTreeMap<String, String> {
    labels(&workload["spec"]["template"]["metadata"]["labels"])
}

/// The role a workload runs: its main container's first argument.
pub(super) fn role(workload: &Value) -> &str {
    list(&workload["spec"]["template"]["spec"]["containers"])[0]["args"][0].as_str().unwrap_or_default()
}

pub(super) fn container<'a>(workload: &'a Value, role: &str) -> &'a Value {
    list(&workload["spec"]["template"]["spec"]["containers"])
        .iter()
        .find(|c| c["args"][0] == role)
        .unwrap_or_else(|| panic!("{}: no container runs `scimfleet {role}`", name(workload)))
}

/// A container port by name or number.
pub(super) fn port(container: &Value, port: &Value) -> Option<u64> {
    port.as_u64().or_else(|| {
        list(&container["ports"])
            .iter()
            .find(|p| p["name"] == *port)
            .and_then(|p| p["containerPort"].as_u64())
    })
}

/// The image's `ENV` lines (deploy/Dockerfile), continuations joined.
pub(crate) fn image_env() -> Vec<(String, String)> {
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
pub(super) fn environment(docs: &[Value], container: &Value) -> Vec<(String, String)> {
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
pub(super) fn secret_env(docs: &[Value], container: &Value) -> BTreeSet<String> {
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
/// ConfigMap's file, plus a CA certificate at every `tls/` path and the
/// Secret's value (a placeholder) for every other file the workload
/// projects beside it.
pub(super) struct Mounted {
    pub(super) dir: PathBuf,
    pub(super) config_path: PathBuf,
    pub(super) files: BTreeSet<String>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The projected volume mounted where `SCIMFLEET_CONFIG` points, laid out
/// in a temporary directory.
pub(super) fn mount_config(docs: &[Value], workload: &Value, container: &Value) -> Mounted {
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
                _ => decode_base64(found["data"][key].as_str().expect("base64")),
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
pub(super) fn load(docs: &[Value], workload: &Value, container: &Value) -> (Config, Mounted) {
    let mounted = mount_config(docs, workload, container);
    let text = std::fs::read_to_string(&mounted.config_path).expect("mounted config");
    let origin = format!("{} ({})", name(workload), mounted.config_path.display());
    let config = Config::from_toml(&text, &origin, mounted.dir.clone(), environment(docs, container))
        .unwrap_or_else(|e| panic!("{origin}: the configuration does not load: {e}"));
    (config, mounted)
}

pub(super) fn workloads(docs: &[Value]) -> Vec<&Value> {
    docs.iter().filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet").collect()
}

/// Standard base64 (kustomize's Secret `data`), without a dependency.
pub(super) fn decode_base64(text: &str) -> String {
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
