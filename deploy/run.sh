#!/usr/bin/env bash
# Sets up and runs the whole suite on this machine: installs what is missing, builds (release),
# starts a private PostgreSQL in .run/pg, migrates and seeds, starts the gateway and the services,
# and stops everything cleanly on Ctrl-C. Settings: docs/configuration.md (env or TSUNAGU_CONFIG_FILE).
source "$(dirname "$0")/lib.sh"
cd "$TSUNAGU_ROOT"

ensure_packages
log "building (release)"
swift build -c release --product tsunagu-gateway >/dev/null
swift build -c release >/dev/null
BIN=$(swift build -c release --show-bin-path)

RUN_DIR=${TSUNAGU_RUN_DIR:-$TSUNAGU_ROOT/.run}
mkdir -p "$RUN_DIR"
chmod 755 "$RUN_DIR"
if [ -z "${TSUNAGU_DATABASE_URL:-}" ]; then
  start_postgres "$RUN_DIR/pg" "${TSUNAGU_PG_PORT:-55432}"
  OWN_PG=1
fi

# The first admin token: kept in .run/admin-token so it survives restarts; override with the env.
if [ -z "${TSUNAGU_ADMIN_TOKEN:-}" ]; then
  [ -f "$RUN_DIR/admin-token" ] || python3 -c 'import secrets; print("tsg_" + secrets.token_hex(32))' > "$RUN_DIR/admin-token"
  chmod 600 "$RUN_DIR/admin-token"
  TSUNAGU_ADMIN_TOKEN=$(cat "$RUN_DIR/admin-token")
fi
export TSUNAGU_ADMIN_TOKEN

pids=()
names=()
cleanup() {
  trap - INT TERM EXIT
  log "stopping"
  # Services first (they drain and disconnect), the gateway last: the reverse of the start.
  local unclean=0 index status
  for ((index = ${#pids[@]} - 1; index >= 0; index--)); do
    kill -TERM "${pids[$index]}" 2>/dev/null || true
    status=0
    wait "${pids[$index]}" 2>/dev/null || status=$?
    if [ "$status" -eq 0 ]; then log "${names[$index]} stopped cleanly"; else log "${names[$index]} exited with status $status"; unclean=1; fi
  done
  [ -n "${OWN_PG:-}" ] && stop_postgres "$RUN_DIR/pg"
  if [ "$unclean" -eq 0 ]; then log "stopped cleanly"; else log "stopped (see the statuses above)"; fi
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

# With our own cluster each service connects as its own role; with TSUNAGU_DATABASE_URL given, as
# that (see deploy/database-roles.sql to give each service its own role there too).
# Each process runs in a session of its own (setsid): Ctrl-C reaches only this script, which then
# stops them one by one, services first, so none gets a second signal (which ends it at once).
TSUNAGU_DATABASE_URL=${TSUNAGU_GATEWAY_DATABASE_URL:-$TSUNAGU_DATABASE_URL} setsid "$BIN/tsunagu-gateway" & pids+=($!); names+=(gateway)
export TSUNAGU_TOKEN=$TSUNAGU_ADMIN_TOKEN
wait_for_gateway || exit 1
# Each service registers with the credential the operator issued for it (kept in .run/).
TSUNAGU_SERVICE_TOKEN=$(service_token registry "$RUN_DIR/registry-service-token") || exit 1
TSUNAGU_SERVICE_TOKEN=$TSUNAGU_SERVICE_TOKEN TSUNAGU_DATABASE_URL=${TSUNAGU_REGISTRY_DATABASE_URL:-$TSUNAGU_DATABASE_URL} \
  setsid "$BIN/tsunagu-registry" & pids+=($!); names+=(registry)
wait_for registry area.get '{"code":"131016"}' || exit 1
TSUNAGU_SERVICE_TOKEN=$(service_token meetings "$RUN_DIR/meetings-service-token") || exit 1
TSUNAGU_SERVICE_TOKEN=$TSUNAGU_SERVICE_TOKEN TSUNAGU_DATABASE_URL=${TSUNAGU_MEETINGS_DATABASE_URL:-$TSUNAGU_DATABASE_URL} \
  setsid "$BIN/tsunagu-meetings" & pids+=($!); names+=(meetings)

cat <<TXT

Tsunagu is running.
  clients: ${TSUNAGU_CLIENT_ENDPOINT:-tcp://127.0.0.1:5555}    workers: ${TSUNAGU_WORKER_ENDPOINT:-tcp://127.0.0.1:5556}
  events (ZeroMQ DEALER, SUBSCRIBE with a token; docs/protocol.md §10): ${TSUNAGU_EVENTS_OUT_ENDPOINT:-tcp://127.0.0.1:5558}
  database: $TSUNAGU_DATABASE_URL

Try, in another terminal:
  export TSUNAGU_TOKEN=\$(cat $RUN_DIR/admin-token)
  $BIN/tsunagu services
  $BIN/tsunagu call registry area.get '{"code":"131016"}'
  $BIN/tsunagu call registry area.list '{"parent":"130001","limit":5}'
  $BIN/tsunagu token create --tenant 130001 --role editor

Ctrl-C stops everything.
TXT
wait -n "${pids[@]}" || true
log "a process exited (see its log above); stopping the rest"
