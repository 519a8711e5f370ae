#!/usr/bin/env bash
# Makes sure the local PostgreSQL and RabbitMQ are up (starting them if not) and reachable.
set -euo pipefail
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 120); do port_open "$1" && return 0; sleep 0.5; done
  echo "$2 did not open port $1" >&2; return 1
}
if ! port_open 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
wait_port 5432 PostgreSQL
if ! port_open 5672; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached
fi
wait_port 5672 RabbitMQ
# The port opens before the broker accepts work; wait until it answers.
for _ in $(seq 1 60); do rabbitmq-diagnostics -q check_running >/dev/null 2>&1 && break; sleep 1; done
echo "PostgreSQL and RabbitMQ are up"
