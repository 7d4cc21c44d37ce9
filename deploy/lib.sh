# Shared by deploy/run.sh, deploy/test.sh and deploy/bench.sh. Source it; do not run it.
# Installs what is missing, builds, and runs a private PostgreSQL cluster in a folder of our own.

set -euo pipefail

TSUNAGU_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '\033[1m[tsunagu]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1; fi
}

# Debian/Ubuntu packages the suite needs to build and run.
ensure_packages() {
  local wanted=(libzmq3-dev libpq-dev postgresql postgresql-contrib pkg-config python3 python3-venv)
  local missing=()
  for package in "$@" "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if ! command -v swift >/dev/null; then
    log "swift is not on PATH: install the Swift 6 toolchain (https://www.swift.org/install/linux/) and retry"
    return 1
  fi
}

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] || { log "PostgreSQL server binaries not found"; return 1; }
  echo "$dir"
}

# The account that owns the cluster: ourselves, or `postgres` when we are root (initdb refuses root).
PG_OWNER=""
pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$PG_OWNER" -- "$@"; else "$@"; fi
}

# start_postgres DATA_DIR PORT: makes the cluster if needed, starts it on 127.0.0.1:PORT.
# Exports TSUNAGU_DATABASE_URL. Local trust authentication: the cluster listens on loopback only.
start_postgres() {
  local data=$1 port=$2 bin
  bin=$(pg_bin)
  if [ "$(id -u)" -eq 0 ]; then
    PG_OWNER=postgres
    id postgres >/dev/null 2>&1 || as_root useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  else
    PG_OWNER=$(id -un)
  fi
  mkdir -p "$data"
  [ "$(id -u)" -eq 0 ] && chown "$PG_OWNER" "$data"
  chmod 700 "$data"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "creating a PostgreSQL cluster in $data"
    pg_as_owner "$bin/initdb" -D "$data" -U tsunagu --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  fi
  pg_as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=${TSUNAGU_PG_FSYNC:-on}" start >/dev/null
  export TSUNAGU_PG_DATA=$data TSUNAGU_PG_PORT=$port TSUNAGU_PG_BIN=$bin TSUNAGU_PG_OWNER=$PG_OWNER
  if ! "$bin/psql" -h 127.0.0.1 -p "$port" -U tsunagu -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='tsunagu'" | grep -q 1; then
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U tsunagu tsunagu
  fi
  export TSUNAGU_DATABASE_URL="postgresql://tsunagu@127.0.0.1:$port/tsunagu"
  # One role per service, owning only its schema (deploy/database-roles.sql); the services
  # connect as these, the admin URL above is for setup and tests that inspect the data.
  "$bin/psql" -q -v ON_ERROR_STOP=1 "$TSUNAGU_DATABASE_URL" -f "$TSUNAGU_ROOT/deploy/database-roles.sql" >/dev/null
  export TSUNAGU_GATEWAY_DATABASE_URL="postgresql://tsunagu_gateway@127.0.0.1:$port/tsunagu"
  export TSUNAGU_REGISTRY_DATABASE_URL="postgresql://tsunagu_registry@127.0.0.1:$port/tsunagu"
  export TSUNAGU_MEETINGS_DATABASE_URL="postgresql://tsunagu_meetings@127.0.0.1:$port/tsunagu"
  log "PostgreSQL is up at $TSUNAGU_DATABASE_URL (services connect as tsunagu_gateway, tsunagu_registry, tsunagu_meetings)"
}

stop_postgres() {
  local data=$1
  [ -f "$data/postmaster.pid" ] || return 0
  PG_OWNER=${TSUNAGU_PG_OWNER:-$(id -un)}
  pg_as_owner "$(pg_bin)/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
}

# A port nobody listens on, from the kernel's ephemeral range.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# bench_environment NAME [PACKAGE...]: what both benchmarks share. Installs the packages named
# beside the suite's own, builds a release (sets BIN), makes a work
# folder (WORK) removed on exit with every process in `pids` and the PostgreSQL started in it,
# and exports loopback endpoints and an admin token (also as TSUNAGU_TOKEN for the client).
# PostgreSQL runs with fsync=off (the benchmarks measure our code, not the disk) unless
# TSUNAGU_PG_FSYNC=on is set: deploy/bench-events.sh compares commits with pgbench's, durably.
bench_environment() {
  ensure_packages "${@:2}"
  log "building (release)"
  swift build -c release >/dev/null 2>&1 || swift build -c release
  BIN=$(swift build -c release --show-bin-path)
  WORK=$(mktemp -d "/tmp/tsunagu-$1.XXXXXX")
  chmod 755 "$WORK"
  pids=()
  trap bench_cleanup EXIT
  TSUNAGU_PG_FSYNC=${TSUNAGU_PG_FSYNC:-off} start_postgres "$WORK/pg" "$(free_port)"
  export TSUNAGU_CLIENT_ENDPOINT=tcp://127.0.0.1:$(free_port)
  export TSUNAGU_WORKER_ENDPOINT=tcp://127.0.0.1:$(free_port)
  export TSUNAGU_EVENTS_IN_ENDPOINT=tcp://127.0.0.1:$(free_port)
  export TSUNAGU_EVENTS_OUT_ENDPOINT=tcp://127.0.0.1:$(free_port)
  export TSUNAGU_ADMIN_TOKEN=bench-admin-token-$RANDOM$RANDOM$RANDOM
  export TSUNAGU_TOKEN=$TSUNAGU_ADMIN_TOKEN TSUNAGU_LOG_LEVEL=warning
}

bench_cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  stop_postgres "$WORK/pg"
  rm -rf "$WORK"
}

# wait_until WHAT COMMAND...: runs COMMAND until it succeeds (60 tries, about 30 s at most),
# giving up at once if a process in `pids` has exited. Needs BIN and TSUNAGU_TOKEN.
wait_until() {
  local what=$1; shift
  for _ in $(seq 1 60); do
    "$@" >/dev/null 2>&1 && return 0
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { log "a process exited while starting (see its log above)"; return 1; }
    done
  done
  log "$what did not answer"; return 1
}

# wait_for SERVICE OPERATION BODY: until a call through the gateway answers.
wait_for() { wait_until "$1" "$BIN/tsunagu" call "$1" "$2" "$3" --timeout-ms 500; }

# wait_for_gateway: until the gateway answers.
wait_for_gateway() { wait_until "the gateway" "$BIN/tsunagu" services --timeout-ms 500; }

# service_token NAME [FILE]: prints a service credential for NAME, issued with the admin token in
# TSUNAGU_TOKEN (`tsunagu token create --service NAME`). With FILE, it is kept there (mode 600,
# its id beside it) and reused on the next run while the gateway still knows it un-revoked.
service_token() {
  local name=$1 file=${2:-} issued
  if [ -n "$file" ] && [ -s "$file" ] && [ -s "$file.id" ] &&
     "$BIN/tsunagu" token list | python3 -c '
import json, sys
wanted = open(sys.argv[1]).read().strip()
tokens = json.load(sys.stdin)["tokens"]
sys.exit(0 if any(t["id"] == wanted and not t.get("revoked_at") for t in tokens) else 1)' "$file.id"; then
    cat "$file"
    return 0
  fi
  issued=$("$BIN/tsunagu" token create --service "$name" --label "$name instances (deploy)") || return 1
  if [ -n "$file" ]; then
    (umask 077
     python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])' <<<"$issued" > "$file"
     python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' <<<"$issued" > "$file.id")
  fi
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])' <<<"$issued"
}
