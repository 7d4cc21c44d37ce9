#!/usr/bin/env bash
# Registry benchmark: a synthetic national directory (default 300,000 resources over all 1,741
# municipalities, skewed like population), imported through the gateway with `tsunagu import`
# (timed), then searches through the gateway at 8 in flight: area+category searches, with a
# baseline of area.get (one primary-key read) in the same run. Release build, throwaway PostgreSQL.
#   deploy/bench-registry.sh [ROWS] [SECONDS]      (defaults 300000 and 10)
source "$(dirname "$0")/lib.sh"
cd "$TSUNAGU_ROOT"
ROWS=${1:-300000}
SECONDS_PER_ROW=${2:-10}

bench_environment bench-registry
export TSUNAGU_DB_POOL_SIZE=8
TSUNAGU_DATABASE_URL=$TSUNAGU_GATEWAY_DATABASE_URL "$BIN/tsunagu-gateway" & pids+=($!)
wait_for_gateway
TSUNAGU_SERVICE_TOKEN=$(service_token registry) TSUNAGU_DATABASE_URL=$TSUNAGU_REGISTRY_DATABASE_URL "$BIN/tsunagu-registry" & pids+=($!)
wait_for registry area.get '{"code":"131016"}'

log "generating $ROWS resources"
python3 deploy/bench/generate_directory.py "$ROWS" "$WORK/directory.csv" --queries "$WORK/searches.jsonl"
python3 - "$WORK" <<'PY'
import json, random, sys
codes = [json.loads(l)["area"] for l in open(sys.argv[1] + "/searches.jsonl")]
with open(sys.argv[1] + "/gets.jsonl", "w") as out:
    for code in codes:
        out.write(json.dumps({"code": code}) + "\n")
PY

log "importing"
start=$(date +%s.%N)
"$BIN/tsunagu" import "$WORK/directory.csv" --timeout-ms 600000 > "$WORK/import.json"
end=$(date +%s.%N)
import_seconds=$(python3 -c "print(f'{$end - $start:.1f}')")
log "imported in ${import_seconds}s: $(tr -d '\n ' < "$WORK/import.json")"
# Measure the steady state: not the publisher numbering and pushing the import's 300,000 events
# (about a minute here), nor autovacuum catching up with 300,000 new rows.
for _ in $(seq 1 300); do
  left=$("$TSUNAGU_PG_BIN/psql" -qtA -h 127.0.0.1 -p "$TSUNAGU_PG_PORT" -U tsunagu -d tsunagu -c \
    "SELECT (SELECT count(*) FROM registry.events WHERE sequence IS NULL) + (SELECT assigned - pushed FROM registry.event_cursor)")
  [ "$left" = 0 ] && break
  sleep 1
done
log "events of the import published (waited for the event stream to drain)"
"$TSUNAGU_PG_BIN/psql" -q -h 127.0.0.1 -p "$TSUNAGU_PG_PORT" -U tsunagu -d tsunagu -c "VACUUM ANALYZE" >/dev/null
"$BIN/tsunagu" call registry area.get '{"code":"131016"}' >/dev/null  # warm the pool
"$BIN/tsunagu-bench" load --mode gateway --service registry --operation resource.search --payload-file "$WORK/searches.jsonl" \
  --endpoint "$TSUNAGU_CLIENT_ENDPOINT" --inflight 8 --seconds 2 >/dev/null

results=()
for spec in "area.get gets" "resource.search searches"; do
  set -- $spec
  line=$("$BIN/tsunagu-bench" load --label "$1" --mode gateway --service registry --operation "$1" \
    --payload-file "$WORK/$2.jsonl" --endpoint "$TSUNAGU_CLIENT_ENDPOINT" --inflight 8 --seconds "$SECONDS_PER_ROW")
  log "$line"
  results+=("$line")
done

python3 - "$ROWS" "$import_seconds" "${results[@]}" <<'PY'
import sys
rows, seconds = int(sys.argv[1]), float(sys.argv[2])
print()
print(f"import: {rows} rows in {seconds:.1f} s ({rows / seconds:.0f} rows/s)")
print()
print("| operation (8 in flight) | req/s | p50 ms | p99 ms | p99 / area.get p99 |")
print("|---|---:|---:|---:|---:|")
parsed = []
for line in sys.argv[3:]:
    label, *pairs = line.split()
    parsed.append((label, dict(p.split("=") for p in pairs)))
base = float(parsed[0][1]["p99_us"])
for label, v in parsed:
    print(f"| {label} | {v['throughput']} | {float(v['p50_us']) / 1000:.2f} | {float(v['p99_us']) / 1000:.2f} | {float(v['p99_us']) / base:.2f} |")
PY
