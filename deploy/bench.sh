#!/usr/bin/env bash
# Benchmark: requests through the gateway to a service and back (no database work in the handler)
# at 1, 8 and 64 in flight, and in the same run the same traffic over bare libzmq sockets through a
# minimal forwarder. Prints a table with the gateway/bare throughput ratio. Release build.
#   deploy/bench.sh [REQUESTS]        (default 20000 per row)
source "$(dirname "$0")/lib.sh"
cd "$TSUNAGU_ROOT"
REQUESTS=${1:-20000}

ensure_packages
log "building (release)"
swift build -c release >/dev/null 2>&1 || swift build -c release
BIN=$(swift build -c release --show-bin-path)

WORK=$(mktemp -d /tmp/tsunagu-bench.XXXXXX)
chmod 755 "$WORK"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  stop_postgres "$WORK/pg"
  rm -rf "$WORK"
}
trap cleanup EXIT
TSUNAGU_PG_FSYNC=off start_postgres "$WORK/pg" "$(free_port)"

export TSUNAGU_CLIENT_ENDPOINT=tcp://127.0.0.1:$(free_port)
export TSUNAGU_WORKER_ENDPOINT=tcp://127.0.0.1:$(free_port)
export TSUNAGU_ADMIN_TOKEN=bench-admin-token-$RANDOM$RANDOM$RANDOM
export TSUNAGU_TOKEN=$TSUNAGU_ADMIN_TOKEN TSUNAGU_LOG_LEVEL=warning
FRONT=tcp://127.0.0.1:$(free_port)
BACK=tcp://127.0.0.1:$(free_port)

"$BIN/tsunagu-gateway" & pids+=($!)
"$BIN/tsunagu-bench" echo-worker --endpoint "$TSUNAGU_WORKER_ENDPOINT" & pids+=($!)
"$BIN/tsunagu-bench" forwarder --front "$FRONT" --back "$BACK" & pids+=($!)
"$BIN/tsunagu-bench" bare-worker --endpoint "$BACK" & pids+=($!)
for _ in $(seq 1 100); do
  "$BIN/tsunagu" call bench echo '{"n":1}' >/dev/null 2>&1 && break
  sleep 0.2
done

log "warming up"
"$BIN/tsunagu-bench" load --mode gateway --endpoint "$TSUNAGU_CLIENT_ENDPOINT" --inflight 8 --requests 5000 >/dev/null
"$BIN/tsunagu-bench" load --mode bare --endpoint "$FRONT" --inflight 8 --requests 5000 >/dev/null

results=()
for inflight in 1 8 64; do
  for mode in bare gateway; do
    endpoint=$FRONT; [ "$mode" = gateway ] && endpoint=$TSUNAGU_CLIENT_ENDPOINT
    line=$("$BIN/tsunagu-bench" load --mode "$mode" --endpoint "$endpoint" --inflight "$inflight" --requests "$REQUESTS")
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
print("| in flight | bare req/s | gateway req/s | gateway / bare | bare p50 / p99 (µs) | gateway p50 / p99 (µs) |")
print("|---:|---:|---:|---:|---:|---:|")
for inflight in sorted(rows):
    b, g = rows[inflight]["bare"], rows[inflight]["gateway"]
    ratio = float(g["throughput"]) / float(b["throughput"])
    print(f"| {inflight} | {b['throughput']} | {g['throughput']} | {ratio:.2f} | {b['p50_us']} / {b['p99_us']} | {g['p50_us']} / {g['p99_us']} |")
PY
