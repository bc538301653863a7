#!/usr/bin/env bash
# Start the local RabbitMQ and Redis that scimfleet's demo, tests and benchmark use.
#
# Idempotent: a service whose port already answers is left alone. Where the
# daemon is missing, the Debian package is installed first. There is no systemd
# on the development and CI machines, so both daemons are started directly.
set -euo pipefail

AMQP_PORT="${SCIMFLEET_AMQP_PORT:-5672}"
REDIS_PORT="${SCIMFLEET_REDIS_PORT:-6379}"
# Redis keeps scimfleet's state (registry, applied versions, evidence...) on
# disk here, with the shipped settings: AOF every second plus RDB snapshots
# (deploy/redis/scimfleet.conf, docs/operations.md). A stable path, so a
# restarted Redis finds what it wrote.
REDIS_DIR="${SCIMFLEET_REDIS_DIR:-/var/lib/scimfleet-redis}"
REDIS_CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/redis/scimfleet.conf"
# Plugins scimfleet relies on. The management plugin gives operators the HTTP
# API and UI (queue depths, DLQ inspection); nothing in the data path needs it.
RABBITMQ_PLUGINS="${SCIMFLEET_RABBITMQ_PLUGINS:-rabbitmq_management}"
# Open files for RabbitMQ. It holds about three file handles per quorum queue
# and refuses new connections once its handles run out; `su` to the rabbitmq
# user resets the soft limit to 1024 (pam_limits), which a fleet of 100 apps
# (400+ queues) exceeds. RabbitMQ asks for 65536 in production
# (https://www.rabbitmq.com/docs/install-debian#kernel-resource-limits); where
# the hard limit is lower, it is used.
RABBITMQ_NOFILE="${SCIMFLEET_RABBITMQ_NOFILE:-65536}"

log() { printf 'services: %s\n' "$*" >&2; }

listening() {
    # bash's /dev/tcp avoids depending on ss/netcat being installed.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

apt_updated=0
ensure_package() {
    local binary="$1" package="$2"
    if command -v "$binary" >/dev/null 2>&1 || [ -x "/usr/sbin/$binary" ]; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        log "$package is not installed and this is not root: install it (apt-get install $package) and retry"
        exit 1
    fi
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        apt_updated=1
    fi
    log "installing $package"
    # policy-rc.d exit 101 stops the package's maintainer scripts from trying to
    # start the service through an init system this machine does not run.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null
    if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi
}

wait_for_port() {
    local port="$1" name="$2" seconds="$3"
    for _ in $(seq 1 $((seconds * 5))); do
        listening "$port" && return 0
        sleep 0.2
    done
    log "$name did not listen on $port within ${seconds}s"
    return 1
}

start_redis() {
    if listening "$REDIS_PORT"; then
        log "redis already listening on $REDIS_PORT"
        return 0
    fi
    ensure_package redis-server redis-server
    if ! mkdir -p "$REDIS_DIR" 2>/dev/null || [ ! -w "$REDIS_DIR" ]; then
        log "cannot write the redis data directory $REDIS_DIR: run as root or set SCIMFLEET_REDIS_DIR"
        exit 1
    fi
    log "starting redis on $REDIS_PORT with $REDIS_CONF, data in $REDIS_DIR"
    local bin
    bin="$(command -v redis-server || echo /usr/bin/redis-server)"
    # Only where it listens, its data and its log are given here; every
    # durability setting comes from the shipped file.
    "$bin" "$REDIS_CONF" --port "$REDIS_PORT" --daemonize yes \
        --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log"
    wait_for_port "$REDIS_PORT" redis 20
}

# rabbitmq-server -detached, as the rabbitmq user when this is root (what
# Debian's wrapper does), with the open-files limit raised in that user's shell.
launch_rabbitmq() {
    local raise="ulimit -n $RABBITMQ_NOFILE 2>/dev/null || ulimit -n \"\$(ulimit -Hn)\""
    if [ "$(id -u)" = 0 ] && id -u rabbitmq >/dev/null 2>&1; then
        (cd /var/lib/rabbitmq && RABBITMQ_NODE_PORT="$AMQP_PORT" su rabbitmq -s /bin/sh -c \
            "$raise; exec /usr/lib/rabbitmq/bin/rabbitmq-server -detached" >/dev/null 2>&1) || true
    else
        (eval "$raise" && RABBITMQ_NODE_PORT="$AMQP_PORT" rabbitmq-server -detached >/dev/null 2>&1) || true
    fi
}

start_rabbitmq() {
    if listening "$AMQP_PORT"; then
        log "rabbitmq already listening on $AMQP_PORT"
        return 0
    fi
    ensure_package rabbitmq-server rabbitmq-server
    export PATH="$PATH:/usr/sbin:/usr/lib/rabbitmq/bin"
    # Offline enabling writes the enabled-plugins file without a running node.
    rabbitmq-plugins enable --offline $RABBITMQ_PLUGINS >/dev/null
    log "starting rabbitmq on $AMQP_PORT"
    launch_rabbitmq
    # await_startup fails at once while the node has not registered yet, so
    # retry it until the node answers or the deadline passes.
    local deadline=$((SECONDS + 120))
    until rabbitmqctl -q await_startup >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "rabbitmq did not start within 120s; see /var/log/rabbitmq/"
            exit 1
        fi
        sleep 1
    done
    wait_for_port "$AMQP_PORT" rabbitmq 60
}

start_redis
start_rabbitmq
log "ready: amqp://127.0.0.1:$AMQP_PORT redis://127.0.0.1:$REDIS_PORT"
