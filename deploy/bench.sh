#!/usr/bin/env bash
# Benchmark: requests through the gateway and back at 1, 8 and 64 in flight, three ways in one run:
#   bare     - bare libzmq: client DEALER -> ROUTER/DEALER forwarder -> echo DEALER (the baseline)
#   c-mdp    - the same 7/MDP messages as the gateway path through the least a 7/MDP broker can do,
#              in C (deploy/bench/mdp-broker.c: no tokens, no envelope, frames moved), to the same
#              minimal worker: a reference for what the protocol's framing itself costs
#   gateway  - through tsunagu-gateway to a minimal Tsunagu worker (the gateway's own cost:
#              token check, principal, deadline, routing, balancing; the worker does nothing)
#   service  - through tsunagu-gateway to a service built on ServiceRuntime (envelope, schema
#              validation, Codable input/output; no database work), an `.inline` operation
#              answered on the instance's connection thread
#   task     - the same, with the handler run in a task (a `.read` operation: what handlers that
#              use the database are)
# Prints a table with each path's throughput as a ratio of the bare baseline, then a second table
# of CPU instructions per request in the broker process (gateway, or the bare forwarder), counted
# by valgrind's callgrind: a figure that does not drift with the machine's load. Release build.
#   deploy/bench.sh [SECONDS [REQUESTS]]   (default 5 seconds of traffic per row; 5,000 requests
#                                           per path under callgrind; REQUESTS=0 skips that table)
# With TSUNAGU_BENCH_CALLGRIND_DIR=DIR the callgrind dumps are kept there (callgrind_annotate FILE).
source "$(dirname "$0")/lib.sh"
cd "$TSUNAGU_ROOT"
SECONDS_PER_ROW=${1:-5}
COUNTED_REQUESTS=${2:-5000}

bench_environment bench valgrind gcc
FRONT=tcp://127.0.0.1:$(free_port)
BACK=tcp://127.0.0.1:$(free_port)
MDP_FRONT=tcp://127.0.0.1:$(free_port)
MDP_BACK=tcp://127.0.0.1:$(free_port)
cc -O2 -o "$WORK/mdp-broker" deploy/bench/mdp-broker.c -lzmq

TSUNAGU_DATABASE_URL=$TSUNAGU_GATEWAY_DATABASE_URL "$BIN/tsunagu-gateway" & pids+=($!); gateway_pid=$!
wait_for_gateway
BENCH_TOKEN=$(service_token bench)
MINIMAL_TOKEN=$(service_token minimal)
TSUNAGU_SERVICE_TOKEN=$BENCH_TOKEN "$BIN/tsunagu-bench" echo-worker --endpoint "$TSUNAGU_WORKER_ENDPOINT" & pids+=($!)
TSUNAGU_SERVICE_TOKEN=$MINIMAL_TOKEN "$BIN/tsunagu-bench" minimal-worker --endpoint "$TSUNAGU_WORKER_ENDPOINT" & pids+=($!)
"$BIN/tsunagu-bench" forwarder --front "$FRONT" --back "$BACK" & pids+=($!); forwarder_pid=$!
"$BIN/tsunagu-bench" bare-worker --endpoint "$BACK" & pids+=($!)
"$WORK/mdp-broker" "$MDP_FRONT" "$MDP_BACK" & pids+=($!); mdp_pid=$!
"$BIN/tsunagu-bench" minimal-worker --endpoint "$MDP_BACK" & pids+=($!)
for service in bench minimal; do wait_for "$service" echo '{"n":1}'; done

load() {  # path inflight seconds
  case $1 in
    bare) "$BIN/tsunagu-bench" load --label bare --mode bare --endpoint "$FRONT" --inflight "$2" --seconds "$3" ;;
    c-mdp) "$BIN/tsunagu-bench" load --label c-mdp --mode gateway --service minimal --endpoint "$MDP_FRONT" --inflight "$2" --seconds "$3" ;;
    gateway) "$BIN/tsunagu-bench" load --label gateway --mode gateway --service minimal --endpoint "$TSUNAGU_CLIENT_ENDPOINT" --inflight "$2" --seconds "$3" ;;
    service) "$BIN/tsunagu-bench" load --label service --mode gateway --service bench --endpoint "$TSUNAGU_CLIENT_ENDPOINT" --inflight "$2" --seconds "$3" ;;
    task) "$BIN/tsunagu-bench" load --label task --mode gateway --service bench --operation echo_task --endpoint "$TSUNAGU_CLIENT_ENDPOINT" --inflight "$2" --seconds "$3" ;;
  esac
}

# CPU time (user + system, in clock ticks) a process has used so far: the broker's (gateway or
# bare forwarder) CPU per request, beside throughput; the instruction counts below are steadier.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS_PER_SECOND=$(getconf CLK_TCK)

measure() {  # path inflight seconds: prints the load line plus cpu_us_per_request=
  local pid=$gateway_pid before after line answered
  [ "$1" = bare ] && pid=$forwarder_pid
  [ "$1" = c-mdp ] && pid=$mdp_pid
  before=$(cpu_ticks "$pid")
  line=$(load "$@")
  after=$(cpu_ticks "$pid")
  answered=$(sed -n 's/.* answered=\([0-9]*\).*/\1/p' <<<"$line")
  echo "$line cpu_us_per_request=$(python3 -c "print(f'{($after - $before) / $TICKS_PER_SECOND * 1e6 / max(1, $answered):.1f}')")"
}

log "warming up"
for path in bare c-mdp gateway service task; do load $path 8 1 >/dev/null; done

results=()
for inflight in 1 8 64; do
  for path in bare c-mdp gateway service task; do
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
    for path in ("bare", "c-mdp", "gateway", "service", "task"):
        r = rows[inflight][path]
        cpu, base_cpu = float(r["cpu_us_per_request"]), float(rows[inflight]["bare"]["cpu_us_per_request"])
        print(f"| {inflight} | {path} | {r['throughput']} | {float(r['throughput']) / base:.2f} | {r['p50_us']} | {r['p99_us']} | "
              f"{cpu:.1f} | {cpu / base_cpu if base_cpu else float('nan'):.2f} |")
PY


[ "$COUNTED_REQUESTS" -gt 0 ] || exit 0

# Instructions per request: a second gateway and forwarder run under callgrind (each with fresh
# workers on endpoints of their own); counters are zeroed after a warm-up, COUNTED_REQUESTS are
# sent at 8 in flight, and the counts are dumped. Every thread of the process is counted
# (the broker loop and libzmq's I/O thread), the kernel is not.
log "counting instructions per request under callgrind ($COUNTED_REQUESTS requests per path)"
CG=$WORK/callgrind
mkdir -p "$CG"
CG_CLIENT=tcp://127.0.0.1:$(free_port) CG_WORKER=tcp://127.0.0.1:$(free_port)
CG_FRONT=tcp://127.0.0.1:$(free_port) CG_BACK=tcp://127.0.0.1:$(free_port)
CG_MDP_FRONT=tcp://127.0.0.1:$(free_port) CG_MDP_BACK=tcp://127.0.0.1:$(free_port)
under_callgrind() {  # NAME COMMAND...: runs COMMAND under callgrind in the background; sets cg_pid
  local name=$1; shift
  (cd "$CG" && exec valgrind --tool=callgrind --callgrind-out-file="$CG/$name.%p" "$@" 2>"$CG/$name.log") & pids+=($!); cg_pid=$!
}
TSUNAGU_DATABASE_URL=$TSUNAGU_GATEWAY_DATABASE_URL TSUNAGU_CLIENT_ENDPOINT=$CG_CLIENT TSUNAGU_WORKER_ENDPOINT=$CG_WORKER \
  TSUNAGU_EVENTS_IN_ENDPOINT=tcp://127.0.0.1:$(free_port) TSUNAGU_EVENTS_OUT_ENDPOINT=tcp://127.0.0.1:$(free_port) \
  under_callgrind gateway "$BIN/tsunagu-gateway"; counted_gateway=$cg_pid
under_callgrind forwarder "$BIN/tsunagu-bench" forwarder --front "$CG_FRONT" --back "$CG_BACK"; counted_forwarder=$cg_pid
under_callgrind mdp-broker "$WORK/mdp-broker" "$CG_MDP_FRONT" "$CG_MDP_BACK"; counted_mdp=$cg_pid
TSUNAGU_SERVICE_TOKEN=$BENCH_TOKEN "$BIN/tsunagu-bench" echo-worker --endpoint "$CG_WORKER" & pids+=($!)
TSUNAGU_SERVICE_TOKEN=$MINIMAL_TOKEN "$BIN/tsunagu-bench" minimal-worker --endpoint "$CG_WORKER" & pids+=($!)
"$BIN/tsunagu-bench" bare-worker --endpoint "$CG_BACK" & pids+=($!)
sleep 2  # the broker under callgrind binds before its worker connects (a READY sent earlier is lost)
"$BIN/tsunagu-bench" minimal-worker --endpoint "$CG_MDP_BACK" & pids+=($!)
for service in bench minimal; do  # valgrind starts slowly: up to two minutes
  for try in $(seq 1 120); do
    TSUNAGU_CLIENT_ENDPOINT=$CG_CLIENT "$BIN/tsunagu" call "$service" echo '{"n":1}' --timeout-ms 1000 >/dev/null 2>&1 && break
    [ "$try" -lt 120 ] || { log "the gateway under callgrind did not answer"; cat "$CG/gateway.log" >&2; exit 1; }
  done
done

count() {  # path: instructions per request in the broker process
  local pid=$counted_gateway endpoint=$CG_CLIENT mode=gateway service=minimal dump
  case $1 in
    bare) pid=$counted_forwarder endpoint=$CG_FRONT mode=bare ;;
    c-mdp) pid=$counted_mdp endpoint=$CG_MDP_FRONT ;;
    service) service=bench ;;
  esac
  "$BIN/tsunagu-bench" load --mode $mode --service $service --endpoint "$endpoint" --inflight 8 --requests 200 --seconds 60 >/dev/null
  (cd "$CG" && callgrind_control --zero "$pid" >/dev/null 2>&1)
  "$BIN/tsunagu-bench" load --mode $mode --service $service --endpoint "$endpoint" --inflight 8 --requests "$COUNTED_REQUESTS" --seconds 600 >/dev/null
  (cd "$CG" && callgrind_control --dump="$1" "$pid" >/dev/null 2>&1)
  dump=$(grep -l "^desc: Trigger: .*$1" "$CG"/*."$pid".* | tail -n 1)
  python3 -c "import sys; print(f'{int(sys.argv[1]) / int(sys.argv[2]):.0f}')" "$(sed -n 's/^summary: //p' "$dump")" "$COUNTED_REQUESTS"
}
bare_ir=$(count bare); mdp_ir=$(count c-mdp); gateway_ir=$(count gateway); service_ir=$(count service)
if [ -n "${TSUNAGU_BENCH_CALLGRIND_DIR:-}" ]; then
  mkdir -p "$TSUNAGU_BENCH_CALLGRIND_DIR"
  cp "$CG"/gateway.*.* "$CG"/forwarder.*.* "$CG"/mdp-broker.*.* "$TSUNAGU_BENCH_CALLGRIND_DIR/"
fi
echo
echo "| path | broker instructions per request | ratio to bare |"
echo "|---|---:|---:|"
for row in "bare $bare_ir" "c-mdp $mdp_ir" "gateway $gateway_ir" "service $service_ir"; do
  set -- $row
  python3 -c "import sys; print(f'| {sys.argv[1]} | {int(sys.argv[2]):,} | {int(sys.argv[2]) / int(sys.argv[3]):.2f} |')" "$1" "$2" "$bare_ir"
done
