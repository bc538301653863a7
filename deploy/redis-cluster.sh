#!/usr/bin/env bash
# A local three-master Redis Cluster for `make test-cluster`: the pipeline's
# end-to-end test (tests/it/redis_cluster.rs) runs on it when
# SCIMFLEET_REDIS_CLUSTER names its nodes.
#
#   deploy/redis-cluster.sh start   # start (or find running) and join three masters; print the seeds
#   deploy/redis-cluster.sh stop    # shut them down (their data stays in the directory)
#
# Three `redis-server` processes of the Debian package (as deploy/services.sh
# starts the single Redis), no replicas: enough to spread slots over three
# nodes, not a failover set-up (docs/operations.md, "Redis Cluster, Sentinel
# or managed Redis"). Each node runs the shipped settings
# (deploy/redis/scimfleet.conf: AOF every second, RDB snapshots, noeviction,
# loopback only) with `cluster-enabled yes` and a directory of its own.
# Idempotent: nodes already listening are left alone; a cluster already
# formed is not formed again. Remove the directory to start from nothing.
set -euo pipefail

PORTS="${SCIMFLEET_REDIS_CLUSTER_PORTS:-7000 7001 7002}"
DIR="${SCIMFLEET_REDIS_CLUSTER_DIR:-${TMPDIR:-/tmp}/scimfleet-redis-cluster}"
CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/redis/scimfleet.conf"
# How long a node may be unreachable before the others mark it failed.
NODE_TIMEOUT_MS=5000

log() { printf 'redis-cluster: %s\n' "$*" >&2; }

listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

cli() {
    local port="$1"
    shift
    redis-cli -h 127.0.0.1 -p "$port" "$@"
}

info_field() {
    cli "$1" CLUSTER INFO 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}

start_node() {
    local port="$1" dir="$DIR/$1"
    if listening "$port"; then
        if [ "$(cli "$port" INFO cluster 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_enabled://p')" != 1 ]; then
            log "port $port answers but is not a cluster-enabled Redis: free it or set SCIMFLEET_REDIS_CLUSTER_PORTS"
            exit 1
        fi
        log "node on $port already running"
        return 0
    fi
    mkdir -p "$dir"
    local bin
    bin="$(command -v redis-server || echo /usr/bin/redis-server)"
    if [ ! -x "$bin" ]; then
        log "redis-server is not installed: run deploy/services.sh (or apt-get install redis-server)"
        exit 1
    fi
    # The shipped durability settings; only where it listens, its data, its
    # log and the cluster settings are given here.
    "$bin" "$CONF" --port "$port" --daemonize yes --dir "$dir" \
        --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" \
        --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-node-timeout "$NODE_TIMEOUT_MS"
    for _ in $(seq 1 50); do
        listening "$port" && return 0
        sleep 0.2
    done
    log "node on $port did not listen within 10s; see $dir/redis.log"
    exit 1
}

start() {
    # shellcheck disable=SC2086 # PORTS is a list
    set -- $PORTS
    if [ "$#" -lt 3 ]; then
        log "a Redis Cluster needs at least three masters; SCIMFLEET_REDIS_CLUSTER_PORTS has $#"
        exit 1
    fi
    for port in "$@"; do start_node "$port"; done
    local first="$1" nodes=()
    for port in "$@"; do nodes+=("127.0.0.1:$port"); done
    # A node restarted with its nodes.conf rejoins by itself; only a node
    # that knows no other has never been part of the cluster.
    if [ "$(info_field "$first" cluster_known_nodes)" = 1 ]; then
        log "forming the cluster of ${nodes[*]}"
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
    fi
    for _ in $(seq 1 150); do
        local ok=1
        for port in "$@"; do
            [ "$(info_field "$port" cluster_state)" = ok ] || ok=0
        done
        if [ "$ok" = 1 ]; then
            local seeds
            seeds="$(printf 'redis://127.0.0.1:%s,' "$@")"
            log "cluster_state:ok on ${nodes[*]}, data in $DIR"
            printf 'SCIMFLEET_REDIS_CLUSTER=%s\n' "${seeds%,}"
            return 0
        fi
        sleep 0.2
    done
    log "the cluster did not reach cluster_state:ok within 30s; see $DIR/*/redis.log"
    exit 1
}

stop() {
    for port in $PORTS; do
        if listening "$port"; then
            # SHUTDOWN writes a last snapshot, as a stopped single Redis would.
            cli "$port" SHUTDOWN >/dev/null 2>&1 || true
            log "node on $port stopped"
        fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
