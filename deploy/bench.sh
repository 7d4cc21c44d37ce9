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

TSUNAGU_DATABASE_URL=$TSUNAGU_GATEWAY_DATABASE_URL "$BIN/tsunagu-gateway" & pids+=($!); gateway_pid=$!
wait_for_gateway
BENCH_TOKEN=$(service_token bench)
MINIMAL_TOKEN=$(service_token minimal)
TSUNAGU_SERVICE_TOKEN=$BENCH_TOKEN "$BIN/tsunagu-bench" echo-worker --endpoint "$TSUNAGU_WORKER_ENDPOINT" & pids+=($!)
TSUNAGU_SERVICE_TOKEN=$MINIMAL_TOKEN "$BIN/tsunagu-bench" minimal-worker --endpoint "$TSUNAGU_WORKER_ENDPOINT" & pids+=($!)
"$BIN/tsunagu-bench" forwarder --front "$FRONT" --back "$BACK" & pids+=($!); forwarder_pid=$!
"$BIN/tsunagu-bench" bare-worker --endpoint "$BACK" & pids+=($!)
for service in bench minimal; do wait_for "$service" echo '{"n":1}'; done

load() {  # path inflight seconds
  case $1 in
    bare) "$BIN/tsunagu-bench" load --label bare --mode bare --endpoint "$FRONT" --inflight "$2" --seconds "$3" ;;
    gateway) "$BIN/tsunagu-bench" load --label gateway --mode gateway --service minimal --endpoint "$TSUNAGU_CLIENT_ENDPOINT" --inflight "$2" --seconds "$3" ;;
    service) "$BIN/tsunagu-bench" load --label service --mode gateway --service bench --endpoint "$TSUNAGU_CLIENT_ENDPOINT" --inflight "$2" --seconds "$3" ;;
  esac
}

# CPU time (user + system, in clock ticks) a process has used so far: the broker's (gateway or
# bare forwarder) CPU per request is the steadier figure beside throughput, which swings with
# the machine's load. (Instruction counts would be steadier still, but Debian 12's valgrind 3.19
# crashes on any program with a Swift async main, and perf has no counters on this VM.)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS_PER_SECOND=$(getconf CLK_TCK)

measure() {  # path inflight seconds: prints the load line plus cpu_us_per_request=
  local pid=$gateway_pid before after line answered
  [ "$1" = bare ] && pid=$forwarder_pid
  before=$(cpu_ticks "$pid")
  line=$(load "$@")
  after=$(cpu_ticks "$pid")
  answered=$(sed -n 's/.* answered=\([0-9]*\).*/\1/p' <<<"$line")
  echo "$line cpu_us_per_request=$(python3 -c "print(f'{($after - $before) / $TICKS_PER_SECOND * 1e6 / max(1, $answered):.1f}')")"
}

log "warming up"
for path in bare gateway service; do load $path 8 1 >/dev/null; done

results=()
for inflight in 1 8 64; do
  for path in bare gateway service; do
    line=$(measure $path "$inflight" "$SECONDS_PER_ROW")
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
print("| in flight | path | req/s | ratio to bare | p50 µs | p99 µs | broker CPU µs/req | CPU ratio to bare |")
print("|---:|---|---:|---:|---:|---:|---:|---:|")
for inflight in sorted(rows):
    base = float(rows[inflight]["bare"]["throughput"])
    for path in ("bare", "gateway", "service"):
        r = rows[inflight][path]
        cpu, base_cpu = float(r["cpu_us_per_request"]), float(rows[inflight]["bare"]["cpu_us_per_request"])
        print(f"| {inflight} | {path} | {r['throughput']} | {float(r['throughput']) / base:.2f} | {r['p50_us']} | {r['p99_us']} | "
              f"{cpu:.1f} | {cpu / base_cpu if base_cpu else float('nan'):.2f} |")
PY

