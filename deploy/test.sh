#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds once (debug, with tests), starts a
# throwaway PostgreSQL, runs the Swift tests, then the integration tests that start the real
# gateway and services as processes. Everything listens on 127.0.0.1 only.
source "$(dirname "$0")/lib.sh"
cd "$TSUNAGU_ROOT"

ensure_packages

VENV=${TSUNAGU_TEST_VENV:-$TSUNAGU_ROOT/.run/test-venv}
if [ ! -x "$VENV/bin/pytest" ] || ! "$VENV/bin/python" -c 'import zmq, psycopg, hypothesis, hypothesis_jsonschema, jsonschema, rfc3986_validator' 2>/dev/null; then
  log "preparing the Python test environment in $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  # hypothesis is pinned: hypothesis-jsonschema 0.23.1 uses internals that later releases changed,
  # and derandomized runs draw the same examples only on the same version. jsonschema validates
  # the HSDS export against the vendored Open Referral schemas (Tests/integration/hsds);
  # rfc3986-validator is what its format checker needs to check "uri" at all.
  "$VENV/bin/pip" install -q --disable-pip-version-check pytest pyzmq "psycopg[binary]" \
    "hypothesis==6.170.0" "hypothesis-jsonschema==0.23.1" "jsonschema==4.26.0" "rfc3986-validator==0.1.1"
fi

WORK=$(mktemp -d /tmp/tsunagu-test.XXXXXX)
chmod 755 "$WORK"
cleanup() {
  stop_postgres "$WORK/pg"
  rm -rf "$WORK"
}
trap cleanup EXIT

log "building (debug, with tests)"
if ! swift build --build-tests >"$WORK/build.log" 2>&1; then
  grep -v "prohibited flag" "$WORK/build.log" >&2
  exit 1
fi
BIN=$(swift build --show-bin-path)
TSUNAGU_PG_FSYNC=off start_postgres "$WORK/pg" "$(free_port)"

status=0
log "Swift tests"
# The in-process gateway tests get a database of their own: their tokens never meet the
# integration tests' gateways.
"$TSUNAGU_PG_BIN/createdb" -h 127.0.0.1 -p "$TSUNAGU_PG_PORT" -U tsunagu tsunagu_unit
TSUNAGU_TEST_DATABASE_URL=$TSUNAGU_DATABASE_URL \
  TSUNAGU_TEST_GATEWAY_DATABASE_URL="postgresql://tsunagu@127.0.0.1:$TSUNAGU_PG_PORT/tsunagu_unit" \
  swift test --skip-build 2>&1 | grep -v "prohibited flag" || status=1
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

log "integration tests (real processes, PostgreSQL and ZeroMQ)"
TSUNAGU_BIN=$BIN "$VENV/bin/pytest" -q -p no:cacheprovider Tests/integration "$@" || status=1

[ $status -eq 0 ] && log "all tests passed" || log "some tests failed"
exit $status
