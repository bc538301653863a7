//! The worker's KEDA ScaledObject (`base/keda.yaml`): a trigger for every
//! app's work queue and leaver lane, named by `Topology::of(&config)`, the
//! leaver lanes first and with the lower per-replica target.

use std::collections::{BTreeMap, BTreeSet};

use scimfleet_runtime::broker::Topology;
use serde_json::Value;

use super::BUILDS;
use super::build::{container, kustomize, list, load, name, of_kind, role, workloads};

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
