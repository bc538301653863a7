#!/usr/bin/env bash
# One RabbitMQ user per scimfleet role, each with only the permissions its
# role needs in one namespace (README, "Least privilege"). Idempotent: run it
# at every deploy; it sets passwords and permissions again.
#
#   NAMESPACE=acme \
#   SCIMFLEET_RABBITMQ_INTAKE_PASSWORD=... SCIMFLEET_RABBITMQ_SCHEDULER_PASSWORD=... \
#   SCIMFLEET_RABBITMQ_WORKER_PASSWORD=... SCIMFLEET_RABBITMQ_ADMIN_PASSWORD=... \
#   RABBITMQ_MANAGEMENT_URL=https://rabbit.internal:15671 RABBITMQ_VHOST=/ \
#   RABBITMQ_ADMIN_USER=... RABBITMQ_ADMIN_PASSWORD=... deploy/rabbitmq/setup-users.sh
#
# Users are named <namespace>-<role>. Only <namespace>-admin may configure
# (declare) anything: it runs `scimfleet topology declare` and the operator
# commands, and `scimfleet console`, which runs those commands in-process;
# the roles run with broker.declare_topology = false.
# Passwords travel on standard input, never on a command line.
set -euo pipefail

ns=${NAMESPACE:?NAMESPACE is the scimfleet namespace (config key namespace)}
api=${RABBITMQ_MANAGEMENT_URL:-http://127.0.0.1:15672}
vhost=${RABBITMQ_VHOST:-/}
vhost_path=$(printf '%s' "$vhost" | sed 's|%|%25|g; s|/|%2F|g')
admin_user=${RABBITMQ_ADMIN_USER:-guest}
admin_password=${RABBITMQ_ADMIN_PASSWORD:-guest}
ca_args=()
[[ -n "${RABBITMQ_CA_BUNDLE:-}" ]] && ca_args=(--cacert "$RABBITMQ_CA_BUNDLE")

# Regular expressions as JSON strings (a backslash is written twice).
nothing='^$'
# role   configure      write                                            read
permissions() {
    case $1 in
    # The default exchange and its own source queues: a delivery of an
    # identity-provider source is kept on {ns}.sources.{id} before it is
    # acknowledged, then consumed from there.
    intake) echo "$nothing ^($ns\\\\.events|amq\\\\.default)\$ ^$ns\\\\.sources\\\\.[^.]+\$" ;;
    # The default exchange: an event whose person is being planned elsewhere
    # goes back to the intake queue.
    scheduler) echo "$nothing ^($ns\\\\.(jobs|events\\\\.dlx)|amq\\\\.default)\$ ^$ns\\\\.events\\\\.intake\$" ;;
    worker) echo "$nothing ^$ns\\\\.jobs(\\\\.retry|\\\\.recheck|\\\\.dlx)?\$ ^$ns\\\\.jobs\\\\.[^.]+(\\\\.leavers)?\$" ;;
    admin) echo "^$ns\\\\. ^$ns\\\\. ^$ns\\\\." ;;
    esac
}

# PUT a JSON body read from standard input; credentials from a config on a pipe.
put() {
    curl -fsS "${ca_args[@]}" -K <(printf 'user = "%s:%s"\n' "$admin_user" "$admin_password") \
        -X PUT -H 'content-type: application/json' --data-binary @- "$api/api/$1" >/dev/null
}

for role in intake scheduler worker admin; do
    var="SCIMFLEET_RABBITMQ_${role^^}_PASSWORD"
    password=${!var:?$var is not set}
    user="$ns-$role"
    read -r configure write read <<<"$(permissions "$role")"
    printf '{"password":"%s","tags":"%s"}' "$password" "$([[ $role == admin ]] && echo management || true)" \
        | put "users/$user"
    printf '{"configure":"%s","write":"%s","read":"%s"}' "$configure" "$write" "$read" \
        | put "permissions/$vhost_path/$user"
    echo "rabbitmq: $user on vhost $vhost: configure $configure write $write read $read"
done
