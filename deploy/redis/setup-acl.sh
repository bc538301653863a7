#!/usr/bin/env bash
# One Redis ACL user per scimfleet role, limited to the namespace's keys
# (`{namespace}:…`: the braces are part of the key, a Redis Cluster hash tag) and
# to the commands the roles use (README, "Least privilege"). Idempotent: run
# it after every Redis start (ACL SETUSER lives in memory unless the server
# has an aclfile, in which case this also saves it).
#
#   NAMESPACE=acme SCIMFLEET_REDIS_INTAKE_PASSWORD=... SCIMFLEET_REDIS_SCHEDULER_PASSWORD=... \
#   SCIMFLEET_REDIS_WORKER_PASSWORD=... SCIMFLEET_REDIS_ADMIN_PASSWORD=... \
#   REDISCLI_AUTH=<admin password> deploy/redis/setup-acl.sh -h redis.internal -p 6379 [--tls ...]
#
# Users are named <namespace>-<role> (`scimfleet console` uses the admin
# one, as the operator commands it runs do); the arguments go to redis-cli. Only
# password hashes reach the server and the command line.
set -euo pipefail

ns=${NAMESPACE:?NAMESPACE is the scimfleet namespace (config key namespace)}
# Reads, writes, Lua scripts (leases, fences, claims), MULTI, TIME (fencing
# tokens follow Redis's clock); nothing that reads other namespaces (KEYS),
# changes the server (CONFIG, FLUSHALL, DEBUG) or lists clients.
# CLUSTER SLOTS: on a Redis Cluster ([redis] cluster = true) the client reads
# the slot map with it; it shows node addresses, no keys.
commands=(-@all +@read +@write +@keyspace +@scripting +@transaction +@connection +time +cluster\|slots -@dangerous)

for role in intake scheduler worker admin; do
    var="SCIMFLEET_REDIS_${role^^}_PASSWORD"
    password=${!var:?$var is not set}
    hash=$(printf '%s' "$password" | sha256sum | cut -d' ' -f1)
    keys=("~{$ns}:*")
    # The intake remembers webhook ids and rate buckets, and its identity-
    # provider sources keep their views of people, seen event ids, user
    # links, the subjects index and subscription state; it reads (only) the
    # person registry, to give a changed person the next sequence.
    [[ $role == intake ]] && keys=("~{$ns}:intake:*" "~{$ns}:source-*" "~{$ns}:import:*" "~{$ns}:subjects" "%R~{$ns}:person:*")
    redis-cli "$@" ACL SETUSER "$ns-$role" reset on "#$hash" "${keys[@]}" resetchannels "${commands[@]}" >/dev/null
    echo "redis: $ns-$role: keys ${keys[*]}, commands ${commands[*]}"
done
if [[ -n "$(redis-cli "$@" CONFIG GET aclfile 2>/dev/null | sed -n 2p)" ]]; then
    redis-cli "$@" ACL SAVE >/dev/null
fi
