#!/usr/bin/env bash
# Events benchmark (issue 10), on a PostgreSQL with fsync and synchronous_commit on (durable
# commits: the write path is what a real deployment's disk allows). Two tables:
#   delivery   - a paced writer (Python, through the gateway: 1,000 resource.vacancies.set per
#                second for SECONDS, each appending one event in its transaction) while 1 and then
#                10 subscribers (Python DEALERs speaking docs/protocol.md §10, one national-admin
#                token) receive; per row the events committed (rows in registry.events), delivered
#                to each subscriber (the fewest), lost (committed − delivered − withheld), delivered
#                per second (all subscribers together) and the delay from the event's `time` (set in
#                the writing transaction) to its arrival at a subscriber, p50/p99.
#   write path - state changes with their event per second through the gateway at 16 in flight
#                (tsunagu-bench load: resource.vacancies.set over 200 resources, and resource.create),
#                against pgbench's one-row INSERT at 16 clients on the same PostgreSQL in the same run.
# Release build, throwaway PostgreSQL (given WAL segments to recycle first, as a cluster that has
# run a while has). TSUNAGU_BENCH_SUBSCRIBER_ROWS: the delivery rows' subscriber counts ("1 10").
#   deploy/bench-events.sh [SECONDS [RATE]]   (default 10 seconds per row, 1,000 writes/s offered)
source "$(dirname "$0")/lib.sh"
cd "$TSUNAGU_ROOT"
SECONDS_PER_ROW=${1:-10}
RATE=${2:-1000}

TSUNAGU_PG_FSYNC=on bench_environment bench-events
PGBENCH=$TSUNAGU_PG_BIN/pgbench
[ -x "$PGBENCH" ] || PGBENCH=$(command -v pgbench || true)
if [ -z "$PGBENCH" ]; then
  ensure_packages "postgresql-client-$(basename "$(dirname "$TSUNAGU_PG_BIN")")"
  PGBENCH=$(command -v pgbench)
fi
VENV=${TSUNAGU_BENCH_VENV:-$TSUNAGU_ROOT/.run/bench-venv}
if ! "$VENV/bin/python" -c 'import zmq' 2>/dev/null; then
  log "preparing the Python environment in $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check pyzmq
fi
admin_sql() { "$TSUNAGU_PG_BIN/psql" -qtAX "$TSUNAGU_DATABASE_URL" -c "$1"; }
# A new cluster creates and zero-fills each 16 MB WAL segment while its writers wait for it: at
# this write rate that is a stall of 0.2-0.8 s every few seconds, which a cluster that has run a
# while does not have (it recycles old segments after each checkpoint). So that the rows measure
# Tsunagu rather than a cluster's first hour, this one gets 1 GB of segments to recycle first.
admin_sql "ALTER SYSTEM SET min_wal_size = '2GB'"
admin_sql "SELECT pg_reload_conf()" >/dev/null
admin_sql "CREATE TABLE bench_wal (n int)"
for _ in $(seq 1 64); do admin_sql "INSERT INTO bench_wal VALUES (1); SELECT pg_switch_wal()" >/dev/null; done
admin_sql "DROP TABLE bench_wal"
admin_sql "CHECKPOINT"
log "WAL segments ready: $(find "$TSUNAGU_PG_DATA/pg_wal" -maxdepth 1 -type f -name '0*' | wc -l)"
settings="fsync=$(admin_sql "SHOW fsync") synchronous_commit=$(admin_sql "SHOW synchronous_commit")"
log "PostgreSQL: $settings"

export TSUNAGU_DB_POOL_SIZE=16
TSUNAGU_DATABASE_URL=$TSUNAGU_GATEWAY_DATABASE_URL "$BIN/tsunagu-gateway" & pids+=($!)
wait_for_gateway
TSUNAGU_SERVICE_TOKEN=$(service_token registry) TSUNAGU_DATABASE_URL=$TSUNAGU_REGISTRY_DATABASE_URL "$BIN/tsunagu-registry" & pids+=($!)
wait_for registry area.get '{"code":"131016"}'

log "making an organisation and 200 resources"
"$VENV/bin/python" deploy/bench/event_delivery.py setup "$WORK" 200

log "warming up"
"$VENV/bin/python" deploy/bench/event_delivery.py delivery --subscribers 1 --rate 200 --seconds 1 --payloads "$WORK/vacancies.jsonl" >/dev/null

delivery=()
for subscribers in ${TSUNAGU_BENCH_SUBSCRIBER_ROWS:-1 10}; do
  line=$("$VENV/bin/python" deploy/bench/event_delivery.py delivery --subscribers "$subscribers" --rate "$RATE" \
    --seconds "$SECONDS_PER_ROW" --payloads "$WORK/vacancies.jsonl")
  log "$line"
  delivery+=("$line")
done

writes=()
for operation in resource.vacancies.set resource.create; do
  payloads=$WORK/vacancies.jsonl
  [ "$operation" = resource.create ] && payloads=$WORK/create.jsonl
  before=$(admin_sql "SELECT coalesce(max(insert_order), 0) FROM registry.events")
  line=$("$BIN/tsunagu-bench" load --label "$operation" --mode gateway --service registry --operation "$operation" \
    --payload-file "$payloads" --endpoint "$TSUNAGU_CLIENT_ENDPOINT" --inflight 16 --seconds "$SECONDS_PER_ROW")
  events=$(admin_sql "SELECT count(*) FROM registry.events WHERE insert_order > $before")
  log "$line events=$events"
  writes+=("$line events=$events")
done

admin_sql "CREATE TABLE bench_scratch (id bigserial PRIMARY KEY, n int NOT NULL, at timestamptz NOT NULL DEFAULT now())"
echo "INSERT INTO bench_scratch (n) VALUES (1);" > "$WORK/insert.sql"
pgbench_out=$("$PGBENCH" -n -c 16 -j 2 -T "$SECONDS_PER_ROW" -f "$WORK/insert.sql" "$TSUNAGU_DATABASE_URL" 2>&1)
pgbench_tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$pgbench_out" | tail -n 1)
[ -n "$pgbench_tps" ] || { log "pgbench failed: $pgbench_out"; exit 1; }
log "pgbench: tps=$pgbench_tps"
admin_sql "DROP TABLE bench_scratch"

# The yardstick for the write itself: pgbench sending the very statements resource.vacancies.set
# sends (BEGIN with the statement timeout, the row lock, the update with its history row and the
# row as JSON, the event, COMMIT), prepared, at 16 clients, while the registry's publisher numbers and
# pushes the events: what PostgreSQL alone allows for this change on this machine, with none of
# Tsunagu's code in the way.
admin_sql "CREATE TABLE bench_ids AS SELECT row_number() OVER (ORDER BY id)::int AS n, id FROM registry.resources"
cat > "$WORK/vacancies.sql" <<'SQL'
\set n random(1, 200)
\set v random(0, 5)
BEGIN;
SET LOCAL statement_timeout = 29500;
SELECT id AS rid FROM bench_ids WHERE n = :n \gset
SELECT tenant, version, retired_at IS NOT NULL AS retired FROM registry.resources WHERE id = :rid::uuid FOR UPDATE;
WITH u AS (UPDATE registry.resources SET vacancies = :v, version = version + 1, updated_at = now() WHERE id = :rid::uuid AND (capacity IS NULL OR capacity >= :v) RETURNING *), h AS (INSERT INTO registry.resource_history (resource_id, version, changed_by, change, snapshot) SELECT id, version, 'pgbench', 'vacancies', to_jsonb(u) - 'search_text' FROM u RETURNING snapshot) SELECT snapshot::text AS j FROM h;
INSERT INTO registry.events (type, subject, tenant, data) VALUES ('jp.tsunagu.registry.resource.vacancies_changed', 'resources/' || :rid, '130001', jsonb_build_object('id', :rid::text, 'tenant', '130001', 'version', 2, 'capacity', 10, 'vacancies', :v::int));
COMMIT;
SQL
same_out=$("$PGBENCH" -n -M prepared -c 16 -j 2 -T "$SECONDS_PER_ROW" -f "$WORK/vacancies.sql" "$TSUNAGU_DATABASE_URL" 2>&1)
same_tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$same_out" | tail -n 1)
[ -n "$same_tps" ] || { log "pgbench (the write's statements) failed: $same_out"; exit 1; }
log "pgbench, resource.vacancies.set's statements: tps=$same_tps"
admin_sql "DROP TABLE bench_ids"

python3 - "$SECONDS_PER_ROW" "$settings" "$pgbench_tps" "$same_tps" "${#delivery[@]}" "${delivery[@]}" "${writes[@]}" <<'PY'
import json, sys
seconds, settings, pgbench, same, n = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
delivery = [json.loads(line) for line in sys.argv[6:6 + n]]
writes = sys.argv[6 + n:]
print()
print(f"PostgreSQL {settings}; {seconds} s per row")
print()
print("| subscribers | offered writes/s | events committed | committed/s | delivered (min per subscriber) | withheld | lost | delivered/s (all subscribers) | delay p50 ms | delay p99 ms |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in delivery:
    print(f"| {r['subscribers']} | {r['offered_per_s']:.0f} | {r['committed']} | {r['committed'] / r['writer_seconds']:.0f} | {r['delivered_min']} | "
          f"{r['withheld_max']} | {r['lost_max']} | {r['delivered_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |")
print()
print("| write (16 in flight) | per s | p50 ms | p99 ms | errors | events appended | ratio to pgbench INSERT | ratio to pgbench, the same statements |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for line in writes:
    label, *pairs = line.split()
    v = dict(p.split("=") for p in pairs)
    per_s = float(v['throughput'])
    to_same = f"{per_s / same:.2f}" if label == "resource.vacancies.set" else ""
    print(f"| {label} through the gateway | {v['throughput']} | {float(v['p50_us']) / 1000:.2f} | {float(v['p99_us']) / 1000:.2f} | "
          f"{v['errors']} | {v['events']} | {per_s / pgbench:.2f} | {to_same} |")
print(f"| pgbench one-row INSERT, 16 clients | {pgbench:.0f} | | | | | 1.00 | |")
print(f"| pgbench, resource.vacancies.set's statements (prepared), 16 clients | {same:.0f} | | | | | {same / pgbench:.2f} | 1.00 |")
PY
