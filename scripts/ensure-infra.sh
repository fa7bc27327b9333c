#!/usr/bin/env bash
# Make sure RabbitMQ and PostgreSQL answer on 127.0.0.1: reuse running ones, else start the
# installed ones, else docker compose where an engine runs, else install Debian's packages
# (root only), else say exactly what is missing.
set -euo pipefail

AMQP_PORT=${HOOKPOST_AMQP_PORT:-5672}
PG_PORT=${HOOKPOST_PG_PORT:-5432}
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)

say() { printf '[infra] %s\n' "$*"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port seconds
  local i
  for ((i = 0; i < $2 * 2; i++)); do port_open "$1" && return 0; sleep 0.5; done
  return 1
}
is_root() { [ "$(id -u)" = 0 ]; }
docker_engine() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }
apt_updated=""
apt_install() {
  is_root && command -v apt-get >/dev/null || return 1
  [ -n "$apt_updated" ] || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Whether the broker on the port speaks AMQP: it answers our protocol header with its
# Connection.Start (a frame of type 1) within a few seconds. An open port alone is not
# enough: a node that is wedged still accepts connections and never answers them.
amqp_answers() {
  local answer
  answer=$(timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; printf 'AMQP\\x00\\x00\\x09\\x01' >&3; head -c 1 <&3 | od -An -tu1" 2>/dev/null)
  [ "$(echo "$answer" | tr -d ' ')" = "1" ]
}

restart_local_rabbitmq() {
  say "RabbitMQ on :$AMQP_PORT accepts connections but does not answer: restarting the local node"
  # the Debian node only (user rabbitmq): private nodes of chaos runs and tests are left alone
  pkill -9 -u rabbitmq beam.smp 2>/dev/null || true
  sleep 2
  rabbitmq-server -detached >/dev/null 2>&1 || true
}

start_rabbitmq() {
  if port_open "$AMQP_PORT" && ! amqp_answers "$AMQP_PORT" && is_root \
    && command -v rabbitmq-server >/dev/null; then
    restart_local_rabbitmq
    wait_port "$AMQP_PORT" 90 || true
  fi
  if port_open "$AMQP_PORT" && amqp_answers "$AMQP_PORT"; then
    say "RabbitMQ is up on :$AMQP_PORT"
    return 0
  fi
  if ! command -v rabbitmq-server >/dev/null; then
    if docker_engine; then
      say "starting RabbitMQ with docker compose"
      docker compose -f "$ROOT_DIR/compose.yaml" up -d rabbitmq
    else
      say "installing rabbitmq-server from Debian's packages"
      apt_install rabbitmq-server || {
        say "RabbitMQ is not reachable on 127.0.0.1:$AMQP_PORT and cannot be installed here."
        say "Install RabbitMQ >= 3.10 (or run: docker compose up -d rabbitmq) and retry."
        return 1
      }
    fi
  fi
  if ! port_open "$AMQP_PORT" && command -v rabbitmq-server >/dev/null; then
    say "starting RabbitMQ (rabbitmq-server -detached)"
    rabbitmq-server -detached >/dev/null 2>&1 || true
  fi
  wait_port "$AMQP_PORT" 90 || { say "RabbitMQ did not come up on :$AMQP_PORT"; return 1; }
  # The port opens before the node accepts AMQP logins; wait for the node itself.
  if command -v rabbitmqctl >/dev/null; then rabbitmqctl await_startup >/dev/null 2>&1 || true; fi
  say "RabbitMQ is up on :$AMQP_PORT"
}

start_postgres() {
  if port_open "$PG_PORT"; then say "PostgreSQL is up on :$PG_PORT"; return 0; fi
  if ! command -v pg_ctlcluster >/dev/null; then
    if docker_engine; then
      say "starting PostgreSQL with docker compose"
      docker compose -f "$ROOT_DIR/compose.yaml" up -d postgres
    else
      say "installing postgresql from Debian's packages"
      apt_install postgresql || {
        say "PostgreSQL is not reachable on 127.0.0.1:$PG_PORT and cannot be installed here."
        say "Install PostgreSQL >= 14 (or run: docker compose up -d postgres) and retry."
        return 1
      }
      local installed=1
    fi
  fi
  if ! port_open "$PG_PORT" && command -v pg_ctlcluster >/dev/null; then
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    say "starting PostgreSQL $version (pg_ctlcluster)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
  wait_port "$PG_PORT" 60 || { say "PostgreSQL did not come up on :$PG_PORT"; return 1; }
  if [ -n "${installed:-}" ]; then
    # A fresh Debian cluster wants a password over TCP: give postgres the one our DSN uses.
    su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
  fi
  say "PostgreSQL is up on :$PG_PORT"
}

# HOOKPOST_SENDER_SHARDS > 1 needs the consistent-hash exchange (libs/infra/broker/topology.py);
# shipped enabled so that turning shards on is a setting, not a broker change. Online: the
# node keeps running. (compose.yaml enables it in its container.)
enable_rabbitmq_plugins() {
  command -v rabbitmq-plugins >/dev/null && is_root || return 0
  rabbitmq-plugins -q is_enabled rabbitmq_consistent_hash_exchange >/dev/null 2>&1 && return 0
  say "enabling rabbitmq_consistent_hash_exchange"
  timeout 60 rabbitmq-plugins -q enable rabbitmq_consistent_hash_exchange >/dev/null \
    || say "could not enable rabbitmq_consistent_hash_exchange: HOOKPOST_SENDER_SHARDS > 1 needs it"
}

start_rabbitmq
enable_rabbitmq_plugins
start_postgres
