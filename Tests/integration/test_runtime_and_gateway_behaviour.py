"""What services can rely on from the gateway, and what operators can rely on from the processes:
the principal, deadlines and idempotency keys reach the worker; a stopping instance loses nothing;
payloads never reach the logs; configuration errors are clear."""
import os
import signal
import subprocess
import time

from conftest import BIN, Closing, free_port, load_and_interrupt
from tsunagu_peer import ok


def test_the_gateway_sets_the_principal_and_strips_the_token(make_suite):
    suite = make_suite()
    suite.start_gateway()
    suite.start_slowpoke("echo")
    suite.wait_for_instances("slowpoke", 1)
    with Closing(suite.client()) as admin:
        issued = ok(admin.call("tsunagu.gateway", "tokens.create", {"tenant": "pref-13", "roles": ["staff"]}))
    with Closing(suite.client(token=issued["token"])) as client:
        forged = {"v": 1, "op": "envelope", "id": "forge-1", "deadline_ms": 5000, "idempotency_key": "key-1",
                  "token": issued["token"], "principal": {"tenant": "national", "roles": ["admin"]}}
        client.send("slowpoke", "envelope", {}, envelope=forged)
        envelope, payload = client.receive()
    assert envelope["status"] == "ok", envelope
    seen = payload["envelope"]
    assert seen["principal"] == {"tenant": "pref-13", "roles": ["staff"], "token_id": issued["id"]}
    assert "token" not in seen
    assert seen["idempotency_key"] == "key-1"
    assert 0 < seen["deadline_ms"] <= 5000


def test_sigterm_of_an_instance_under_load_loses_no_request_and_exits_cleanly(suite):
    second = suite.start_registry()
    suite.wait_for_instances("registry", 2)
    load_and_interrupt(suite, lambda: second.proc.send_signal(signal.SIGTERM))
    assert second.proc.wait(20) == 0
    assert "draining" in second.output() and "stopped" in second.output()
    suite.wait_for_instances("registry", 1)


def test_payloads_never_reach_the_logs(make_suite):
    suite = make_suite({"TSUNAGU_LOG_LEVEL": "trace"})
    suite.start_gateway()
    suite.start_registry()
    suite.wait_for_instances("registry", 1)
    secret = "山田太郎-090-1234-5678"
    with Closing(suite.client()) as client:
        client.call("registry", "area.get", {"code": secret})
        client.call("registry", "area.get", {"code": "131016", "note": secret})
        client.call("registry", "area.get", raw_payload=("{" + secret).encode())
        client.call("registry", "no.such.op", {"x": secret})
        client.call("registry", "area.list", {"prefix": secret})
    time.sleep(0.5)
    for process in suite.processes:
        assert secret not in process.output(), process.name


def run_briefly(env, seconds=3):
    proc = subprocess.Popen([os.path.join(BIN, "tsunagu-gateway")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    return proc.returncode, out


def test_a_bad_setting_is_named_and_the_process_exits(suite):
    env = dict(suite.env, TSUNAGU_HEARTBEAT_MS="often")
    code, out = run_briefly(env)
    assert code == 1
    assert "TSUNAGU_HEARTBEAT_MS" in out


def test_a_short_admin_token_is_refused(suite):
    env = dict(suite.env, TSUNAGU_ADMIN_TOKEN="short",
               TSUNAGU_CLIENT_ENDPOINT=f"tcp://127.0.0.1:{free_port()}", TSUNAGU_WORKER_ENDPOINT=f"tcp://127.0.0.1:{free_port()}")
    code, out = run_briefly(env)
    assert code == 1 and "TSUNAGU_ADMIN_TOKEN" in out


def test_an_endpoint_in_use_is_a_clear_error(suite):
    code, out = run_briefly(dict(suite.env), seconds=10)  # same endpoints as the running gateway
    assert code == 1
    assert "addressInUse" in out


def test_settings_from_a_config_file(make_suite, tmp_path):
    suite = make_suite()
    config = tmp_path / "tsunagu.conf"
    config.write_text(
        "# endpoints come from this file\n"
        f"TSUNAGU_CLIENT_ENDPOINT={suite.client_endpoint}\n"
        f'TSUNAGU_WORKER_ENDPOINT="{suite.worker_endpoint}"\n'
    )
    for key in ("TSUNAGU_CLIENT_ENDPOINT", "TSUNAGU_WORKER_ENDPOINT"):
        del suite.env[key]
    suite.env["TSUNAGU_CONFIG_FILE"] = str(config)
    suite.start_gateway()
    suite.start_registry()
    suite.wait_for_instances("registry", 1)
    with Closing(suite.client()) as client:
        assert ok(client.call("registry", "area.get", {"code": "131016"}))["name"] == "千代田区"


def test_a_malformed_config_file_names_the_line(suite, tmp_path):
    config = tmp_path / "bad.conf"
    config.write_text("TSUNAGU_LOG_LEVEL=info\nthis line has no equals sign\n")
    code, out = run_briefly(dict(suite.env, TSUNAGU_CONFIG_FILE=str(config)))
    assert code == 1 and "bad.conf:2" in out
