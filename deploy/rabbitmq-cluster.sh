#!/usr/bin/env bash
# A local three-node RabbitMQ cluster for `make test-cluster`: start | stop | status | urls.
#
# Three nodes of the Debian package run as local processes beside the shared
# broker of deploy/services.sh (5672), each with its own node name, AMQP and
# distribution ports and data directory, sharing one Erlang cookie (the
# nodes and the CLI read it from $HOME/.erlang.cookie; HOME is the cluster's
# directory). Nodes 2 and 3 join node 1
# (https://www.rabbitmq.com/docs/clustering#creating). Node 1 also serves the
# management API, for `scimfleet status` against the cluster.
#
# Idempotent: `start` leaves running nodes alone, starts those that are not
# (a node stopped by a test rejoins with its data), and returns once
# `cluster_status` lists three running nodes. `urls` prints the AMQP URLs,
# comma-separated, for SCIMFLEET_RABBIT_CLUSTER.
#
# For tests: `kill-node N` (SIGKILL, a crash; `start` brings the node back)
# and `ctl N ARGS...` (rabbitmqctl against node N with the cluster's cookie).
#
# Settings (environment):
#   SCIMFLEET_RABBIT_CLUSTER_PORT        AMQP port of node 1 (default 5681; nodes 2, 3 take the next ones)
#   SCIMFLEET_RABBIT_CLUSTER_DIST_PORT   Erlang distribution port of node 1 (default 25681; likewise)
#   SCIMFLEET_RABBIT_CLUSTER_MANAGEMENT  management API port of node 1 (default 15681; `off` for none)
#   SCIMFLEET_RABBIT_CLUSTER_DIR         data, logs and cookie (default $TMPDIR/scimfleet-rabbit-cluster)
#   SCIMFLEET_RABBIT_CLUSTER_DLX_CONFIRM_TIMEOUT_MS
#                                        see DLX_CONFIRM_TIMEOUT_MS below (default 5000)
set -euo pipefail

PORT="${SCIMFLEET_RABBIT_CLUSTER_PORT:-5681}"
DIST_PORT="${SCIMFLEET_RABBIT_CLUSTER_DIST_PORT:-25681}"
MANAGEMENT="${SCIMFLEET_RABBIT_CLUSTER_MANAGEMENT:-15681}"
DIR="${SCIMFLEET_RABBIT_CLUSTER_DIR:-${TMPDIR:-/tmp}/scimfleet-rabbit-cluster}"
# A quorum queue dead-letters at least once: it re-publishes an expired
# message whose target queue has not confirmed it after this long. A node
# loss can swallow those confirms (the target's leader moves), and RabbitMQ's
# default of 180000 ms would then hold up the retries and re-checks of the
# delay queues for three minutes; a re-publish only duplicates a job, which
# scimfleet's convergent jobs make harmless. (`advanced.config` only:
# https://www.rabbitmq.com/docs/quorum-queues#dead-lettering)
DLX_CONFIRM_TIMEOUT_MS="${SCIMFLEET_RABBIT_CLUSTER_DLX_CONFIRM_TIMEOUT_MS:-5000}"
NODES=(1 2 3)
# The scripts behind Debian's /usr/sbin wrappers: the wrappers switch to the
# `rabbitmq` user, whose HOME (and so cookie) is not the cluster's.
BIN=/usr/lib/rabbitmq/bin
START_TIMEOUT=120

log() { printf 'rabbitmq-cluster: %s\n' "$*" >&2; }

node_name() { printf 'sf-cluster-%s@localhost' "$1"; }
node_port() { printf '%s' $((PORT + $1 - 1)); }
node_dir() { printf '%s/node%s' "$DIR" "$1"; }

listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The environment every node and every CLI call runs with: the cluster's
# cookie, and none of the machine's configuration files.
node_env() {
    local n="$1" dir
    dir="$(node_dir "$n")"
    export HOME="$DIR"
    export RABBITMQ_NODENAME
    RABBITMQ_NODENAME="$(node_name "$n")"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT
    RABBITMQ_NODE_PORT="$(node_port "$n")"
    export RABBITMQ_DIST_PORT=$((DIST_PORT + n - 1))
    export RABBITMQ_MNESIA_BASE="$dir/mnesia"
    export RABBITMQ_LOG_BASE="$dir/log"
    export RABBITMQ_PID_FILE="$dir/pid"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
    export RABBITMQ_CONF_ENV_FILE="$dir/absent.env"
}

ctl() {
    local n="$1"
    shift
    (node_env "$n" && "$BIN/rabbitmqctl" -n "$(node_name "$n")" "$@")
}

prepare() {
    mkdir -p "$DIR"
    if [ ! -s "$DIR/.erlang.cookie" ]; then
        # One cookie for the three nodes and the CLI: nodes with different
        # cookies cannot talk (https://www.rabbitmq.com/docs/clustering#erlang-cookie).
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/.erlang.cookie"
        chmod 400 "$DIR/.erlang.cookie"
    fi
    for n in "${NODES[@]}"; do
        local dir
        dir="$(node_dir "$n")"
        mkdir -p "$dir"
        printf '[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, %s}]}].\n' \
            "$DLX_CONFIRM_TIMEOUT_MS" >"$dir/advanced.config"
        if [ "$n" = 1 ] && [ "$MANAGEMENT" != off ]; then
            printf '[rabbitmq_management].\n' >"$dir/enabled_plugins"
            printf 'management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %s\n' "$MANAGEMENT" >"$dir/rabbitmq.conf"
        else
            # No plugins: a faster start.
            printf '[].\n' >"$dir/enabled_plugins"
            : >"$dir/rabbitmq.conf"
        fi
    done
}

running() {
    ctl "$1" -q await_startup --timeout 1 >/dev/null 2>&1
}

start_node() {
    local n="$1"
    if running "$n"; then
        log "node $(node_name "$n") already running on $(node_port "$n")"
        return 0
    fi
    if listening "$(node_port "$n")"; then
        log "port $(node_port "$n") is taken by something else: set SCIMFLEET_RABBIT_CLUSTER_PORT"
        exit 1
    fi
    log "starting $(node_name "$n") on $(node_port "$n")"
    # -detached: the node outlives this script.
    (node_env "$n" && "$BIN/rabbitmq-server" -detached >/dev/null 2>&1) || true
}

await_node() {
    local n="$1" deadline=$((SECONDS + START_TIMEOUT))
    # await_startup fails at once until the node has registered: retry.
    # Bounded, so the deadline is checked while a slow boot goes on.
    until ctl "$n" -q await_startup --timeout 10 >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$(node_name "$n") did not start within ${START_TIMEOUT}s; the end of its log ($(node_dir "$n")/log):"
            tail -n 40 "$(node_dir "$n")"/log/*.log >&2 2>/dev/null || true
            exit 1
        fi
        sleep 1
    done
}

# Whether node n counts node 1 among the running nodes of its cluster.
clustered() {
    ctl "$1" -q cluster_status --formatter json 2>/dev/null | grep -q "\"$(node_name 1)\""
}

join() {
    local n="$1"
    if clustered "$n"; then
        return 0
    fi
    log "joining $(node_name "$n") to $(node_name 1)"
    local step out
    for step in stop_app "join_cluster $(node_name 1)" start_app; do
        # 3.10 logs harmless errors about connection tracking tables while
        # a node joins: shown only when a step fails.
        # shellcheck disable=SC2086
        if ! out="$(ctl "$n" -q $step 2>&1)"; then
            printf '%s\n' "$out" >&2
            log "$step failed on $(node_name "$n")"
            exit 1
        fi
    done
}

running_nodes() {
    # `running_nodes` of the JSON status: count the names listed there.
    ctl 1 -q cluster_status --formatter json 2>/dev/null |
        sed -n 's/.*"running_nodes":\[\([^]]*\)\].*/\1/p' | tr ',' '\n' | grep -c 'sf-cluster-' || true
}

wait_running() {
    local deadline=$((SECONDS + START_TIMEOUT))
    until [ "$(running_nodes)" = "${#NODES[@]}" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "cluster_status did not show ${#NODES[@]} running nodes within ${START_TIMEOUT}s"
            ctl 1 cluster_status >&2 || true
            exit 1
        fi
        sleep 1
    done
}

urls() {
    local out=() n
    for n in "${NODES[@]}"; do
        out+=("amqp://guest:guest@127.0.0.1:$(node_port "$n")/%2f")
    done
    (IFS=,; printf '%s\n' "${out[*]}")
}

start() {
    if [ ! -x "$BIN/rabbitmq-server" ]; then
        log "$BIN/rabbitmq-server is missing: run deploy/services.sh (installs Debian's rabbitmq-server)"
        exit 1
    fi
    prepare
    for n in "${NODES[@]}"; do start_node "$n"; done
    for n in "${NODES[@]}"; do await_node "$n"; done
    # Nodes started before a change of the setting take it now too (each
    # queue's dead-letter worker reads it when it starts).
    for n in "${NODES[@]}"; do
        ctl "$n" -q eval "application:set_env(rabbit, dead_letter_worker_publisher_confirm_timeout, $DLX_CONFIRM_TIMEOUT_MS)." >/dev/null
    done
    for n in "${NODES[@]:1}"; do join "$n"; done
    wait_running
    log "ready: three running nodes on $(node_port 1)-$(node_port 3)$([ "$MANAGEMENT" = off ] || printf ', management on %s' "$MANAGEMENT")"
}

stop() {
    for n in "${NODES[@]}"; do
        if running "$n"; then
            log "stopping $(node_name "$n")"
            ctl "$n" -q stop >/dev/null 2>&1 || true
        fi
    done
}

status() {
    for n in "${NODES[@]}"; do
        if running "$n"; then
            log "$(node_name "$n") running on $(node_port "$n")"
        else
            log "$(node_name "$n") not running"
        fi
    done
    if running 1; then
        log "$(running_nodes) of ${#NODES[@]} nodes running in the cluster"
    fi
}

# SIGKILL to node n: a crash, for tests (`start` brings it back).
kill_node() {
    local n="$1" pid
    pid="$(cat "$(node_dir "$n")/pid" 2>/dev/null || true)"
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        log "$(node_name "$n") is not running"
        return 0
    fi
    log "killing $(node_name "$n") (pid $pid)"
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}

node_arg() {
    case "${1:-}" in
        1 | 2 | 3) ;;
        *)
            log "a node number (1, 2 or 3) is needed"
            exit 2
            ;;
    esac
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    urls) urls ;;
    kill-node)
        node_arg "${2:-}"
        kill_node "$2"
        ;;
    ctl)
        # rabbitmqctl against node n with the cluster's cookie, e.g.
        # `ctl 1 list_queues name leader`.
        node_arg "${2:-}"
        n="$2"
        shift 2
        ctl "$n" "$@"
        ;;
    *)
        printf 'usage: %s start|stop|status|urls|kill-node N|ctl N ARGS...\n' "$0" >&2
        exit 2
        ;;
esac
