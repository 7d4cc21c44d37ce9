#!/usr/bin/env bash
# Benchmark: requests through the gateway and back at 1, 8 and 64 in flight, three ways in one run:
#   bare     - bare libzmq: client DEALER -> ROUTER/DEALER forwarder -> echo DEALER (the baseline)
#   gateway  - through tsunagu-gateway to a minimal Tsunagu worker (the gateway's own cost:
#              token check, principal, deadline, routing, balancing; the worker does nothing)
#   service  - through tsunagu-gateway to a service built on ServiceRuntime (envelope, schema
#              validation, Codable input/output, async handler; no database work)
# Prints a table with each path's throughput as a ratio of the bare baseline. Release build.
#   deploy/bench.sh [SECONDS]        (default 5 seconds of traffic per row)
source "$(dirname "$0")/lib.sh"
cd "$TSUNAGU_ROOT"
SECONDS_PER_ROW=${1:-5}

bench_environment bench
FRONT=tcp://127.0.0.1:$(free_port)
BACK=tcp://127.0.0.1:$(free_port)

TSUNAGU_DATABASE_URL=$TSUNAGU_GATEWAY_DATABASE_URL "$BIN/tsunagu-gateway" & pids+=($!)
wait_for_gateway
TSUNAGU_SERVICE_TOKEN=$(service_token bench) "$BIN/tsunagu-bench" echo-worker --endpoint "$TSUNAGU_WORKER_ENDPOINT" & pids+=($!)
TSUNAGU_SERVICE_TOKEN=$(service_token minimal) "$BIN/tsunagu-bench" minimal-worker --endpoint "$TSUNAGU_WORKER_ENDPOINT" & pids+=($!)
"$BIN/tsunagu-bench" forwarder --front "$FRONT" --back "$BACK" & pids+=($!)
"$BIN/tsunagu-bench" bare-worker --endpoint "$BACK" & pids+=($!)
for service in bench minimal; do wait_for "$service" echo '{"n":1}'; done

load() {  # path inflight seconds
  case $1 in
    bare) "$BIN/tsunagu-bench" load --label bare --mode bare --endpoint "$FRONT" --inflight "$2" --seconds "$3" ;;
    gateway) "$BIN/tsunagu-bench" load --label gateway --mode gateway --service minimal --endpoint "$TSUNAGU_CLIENT_ENDPOINT" --inflight "$2" --seconds "$3" ;;
    service) "$BIN/tsunagu-bench" load --label service --mode gateway --service bench --endpoint "$TSUNAGU_CLIENT_ENDPOINT" --inflight "$2" --seconds "$3" ;;
  esac
}

log "warming up"
for path in bare gateway service; do load $path 8 1 >/dev/null; done

results=()
for inflight in 1 8 64; do
  for path in bare gateway service; do
    line=$(load $path "$inflight" "$SECONDS_PER_ROW")
    log "$line"
    results+=("$line")
  done
done

python3 - "${results[@]}" <<'PY'
import sys
rows = {}
for line in sys.argv[1:]:
    mode, *pairs = line.split()
    values = dict(p.split("=") for p in pairs)
    rows.setdefault(int(values["inflight"]), {})[mode] = values
print()
print("| in flight | path | req/s | ratio to bare | p50 µs | p99 µs |")
print("|---:|---|---:|---:|---:|---:|")
for inflight in sorted(rows):
    base = float(rows[inflight]["bare"]["throughput"])
    for path in ("bare", "gateway", "service"):
        r = rows[inflight][path]
        print(f"| {inflight} | {path} | {r['throughput']} | {float(r['throughput']) / base:.2f} | {r['p50_us']} | {r['p99_us']} |")
PY
