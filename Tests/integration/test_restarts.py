"""The suite heals itself: a restarted gateway gets its services back; a restarted PostgreSQL is
reconnected to by the pools without restarting anything."""
import os
import subprocess
import time

from conftest import Closing
from tsunagu_peer import ok


def test_services_register_again_after_a_gateway_restart(suite):
    with Closing(suite.client()) as client:
        assert ok(client.call("registry", "area.get", {"code": "131016"}))["name"] == "千代田区"
    assert suite.gateway.terminate() == 0
    suite.start_gateway()
    suite.wait_for_instances("registry", 1, timeout=20)
    with Closing(suite.client()) as client:
        assert ok(client.call("registry", "area.get", {"code": "131016"}))["name"] == "千代田区"


def pg_ctl(*args):
    data, owner = os.environ["TSUNAGU_PG_DATA"], os.environ["TSUNAGU_PG_OWNER"]
    port = os.environ["TSUNAGU_PG_PORT"]
    command = [os.path.join(os.environ["TSUNAGU_PG_BIN"], "pg_ctl"), "-D", data, "-w", "-t", "60"] + list(args)
    if "start" in args:
        command[-1:-1] = ["-l", os.path.join(data, "server.log"),
                          "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=200"]
    if os.getuid() == 0:
        command = ["runuser", "-u", owner, "--"] + command
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def test_calls_answer_unavailable_while_postgres_is_down_and_recover(suite):
    with Closing(suite.client()) as client:
        assert ok(client.call("registry", "area.get", {"code": "131016"}))["name"] == "千代田区"
        pg_ctl("-m", "fast", "stop")
        try:
            codes = set()
            for _ in range(20):
                envelope, _ = client.call("registry", "area.get", {"code": "131016"})
                assert envelope["status"] == "error", envelope
                codes.add(envelope["error"]["code"])
            assert codes == {"unavailable"}
        finally:
            pg_ctl("start")
        deadline = time.monotonic() + 30
        recovered = False
        while time.monotonic() < deadline and not recovered:
            envelope, payload = client.call("registry", "area.get", {"code": "131016"})
            recovered = envelope["status"] == "ok"
            time.sleep(0.2)
    assert recovered, suite.logs()
    assert all(p.alive() for p in suite.processes)


def wait_until_answered(suite, token, want):
    deadline = time.monotonic() + 20
    while True:
        try:
            with Closing(suite.client(token=token)) as client:
                envelope, _ = client.call("tsunagu.gateway", "services.list", timeout_ms=1000)
            status = envelope["status"] if envelope["status"] == "ok" else envelope["error"]["code"]
            if status == want:
                return
        except TimeoutError:
            status = "no answer"
        assert time.monotonic() < deadline, f"expected {want}, got {status}"
        time.sleep(0.1)


def test_a_revoked_first_admin_token_stays_revoked_across_a_restart(make_suite):
    """Revoking `tok_bootstrap_admin` survives a gateway restart with the same TSUNAGU_ADMIN_TOKEN;
    a new value (rotation) installs a working token again."""
    suite = make_suite()
    admin = suite.env["TSUNAGU_ADMIN_TOKEN"]
    suite.start_gateway()
    wait_until_answered(suite, admin, "ok")
    with Closing(suite.client()) as client:
        ok(client.call("tsunagu.gateway", "tokens.revoke", {"id": "tok_bootstrap_admin"}))
    wait_until_answered(suite, admin, "unauthorized")
    assert suite.gateway.terminate() == 0
    suite.start_gateway()
    wait_until_answered(suite, admin, "unauthorized")

    rotated = "rotated-admin-token-" + os.urandom(8).hex()
    for token in (rotated, admin):  # rotate, then back, so later tests keep their admin token
        assert suite.gateway.terminate() == 0
        suite.env["TSUNAGU_ADMIN_TOKEN"] = token
        suite.start_gateway()
        wait_until_answered(suite, token, "ok")
