//! The RabbitMQ and Redis examples (`deploy/kubernetes/examples`) are what
//! the base configuration connects to, with the shipped durability settings.

use std::collections::BTreeMap;

use serde_json::Value;

use super::build::{container, documents, kustomize, list, load, name, of_kind, role, root, workloads};

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
