//! The one connection a [`Store`](super::Store) holds: to a single Redis
//! server (or the primary a Sentinel or a managed service puts behind one
//! address), or to a Redis Cluster (`[redis] cluster = true`).
//!
//! Both are multiplexed, reconnect by themselves and implement
//! [`ConnectionLike`], so every record handle runs the same commands and
//! scripts on either. On a cluster, the client routes each command by its
//! first key; every key of a namespace carries the namespace as a hash tag
//! (see `keys.rs`), so one namespace lives in one slot, and a script or a
//! `MULTI` that touches several keys of it runs on one node, atomically.
//! The only commands without a key are `SCAN`s, routed here explicitly:
//! to the node owning the namespace's slot, or to every primary.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::StoreError;
use crate::config::RedisConfig;

/// A connection to a single Redis server or to a Redis Cluster.
#[derive(Clone)]
pub(super) enum Connection {
    /// One server: a multiplexed connection that reconnects by itself.
    Single(ConnectionManager),
    /// A Redis Cluster: one multiplexed connection per node, following the
    /// slot map as it changes (`MOVED`, failover).
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Where one `SCAN` walk runs.
#[derive(Debug, Clone)]
pub(super) enum ScanNode {
    /// The single server.
    Single,
    /// One node of the cluster.
    Cluster(SingleNodeRoutingInfo),
}

impl Connection {
    /// Connects as `[redis]` says; the TLS files are read here, on every connect.
    pub(super) async fn open(redis: &RedisConfig) -> Result<Self, StoreError> {
        // The Redis client's rustls connector uses the process-wide provider.
        crate::tls::install_crypto_provider();
        let material = redis.tls_files().load().map_err(StoreError::Tls)?;
        let certificates = (!material.is_empty()).then(|| redis::TlsCertificates {
            client_tls: material.identity.map(|identity| redis::ClientTlsConfig {
                client_cert: identity.cert_pem,
                client_key: identity.key_pem.expose().as_bytes().to_vec(),
            }),
            root_cert: material.ca_pem.map(String::into_bytes),
        });
        if redis.cluster {
            let seeds: Vec<&str> = redis.seed_urls().map(crate::Secret::expose).collect();
            let mut builder = redis::cluster::ClusterClient::builder(seeds);
            if let Some(certificates) = certificates {
                builder = builder.certs(certificates);
            }
            let client = builder.build().map_err(StoreError::Connect)?;
            let conn = client.get_async_connection().await.map_err(StoreError::Connect)?;
            return Ok(Self::Cluster(conn));
        }
        let client = match certificates {
            None => redis::Client::open(redis.url.expose()),
            Some(certificates) => redis::Client::build_with_tls(redis.url.expose(), certificates),
        }
        .map_err(StoreError::Connect)?;
        let conn = client.get_connection_manager().await.map_err(StoreError::Connect)?;
        Ok(Self::Single(conn))
    }

    /// The nodes a `SCAN` must walk to see every key whose slot is that of
    /// `tag` (one node), or every key when `tag` is `None` (every primary).
    pub(super) async fn scan_nodes(&mut self, tag: Option<&str>) -> Result<Vec<ScanNode>, StoreError> {
        let Self::Cluster(conn) = self else { return Ok(vec![ScanNode::Single]) };
        if let Some(tag) = tag {
            let route = Route::with_key(tag, SlotAddr::Master);
            return Ok(vec![ScanNode::Cluster(SingleNodeRoutingInfo::SpecificNode(route))]);
        }
        // One slot of each primary: the client maps a slot to its node, as
        // it does for keys, so announced addresses need no handling here.
        let ranges: Vec<Vec<Value>> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(conn)
            .await
            .map_err(super::command("list cluster slots"))?;
        let mut seen = Vec::new();
        let mut nodes = Vec::new();
        for range in ranges {
            let (Some(Value::Int(first)), Some(Value::Array(primary))) = (range.first(), range.get(2)) else {
                return Err(StoreError::Corrupt { what: "CLUSTER SLOTS reply" });
            };
            let id = primary.get(2).cloned();
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            let slot =
                u16::try_from(*first).map_err(|_| StoreError::Corrupt { what: "CLUSTER SLOTS reply" })?;
            nodes.push(ScanNode::Cluster(SingleNodeRoutingInfo::SpecificNode(Route::new(
                slot,
                SlotAddr::Master,
            ))));
        }
        Ok(nodes)
    }

    /// One `SCAN` step on `node`: the next cursor and the keys.
    pub(super) async fn scan(
        &mut self,
        node: &ScanNode,
        cursor: u64,
        pattern: &str,
    ) -> Result<(u64, Vec<String>), StoreError> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000);
        let reply = match (self, node) {
            (Self::Cluster(conn), ScanNode::Cluster(route)) => {
                conn.route_command(cmd, RoutingInfo::SingleNode(route.clone())).await
            }
            (conn, _) => cmd.query_async::<Value>(conn).await,
        }
        .map_err(super::command("scan keys"))?;
        redis::from_redis_value(reply).map_err(|_| StoreError::Corrupt { what: "SCAN reply" })
    }
}
