"""The `tsunagu` command line: calls, catalogue, tokens, migrations, exit statuses."""
import json
import os
import subprocess

from conftest import ADMIN_TOKEN, BIN, DATABASE_URL

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def tsunagu(suite, *args, token=ADMIN_TOKEN, stdin=None):
    env = dict(suite.env)
    env["TSUNAGU_TOKEN"] = token
    return subprocess.run([os.path.join(BIN, "tsunagu"), *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)


def test_call_prints_the_reply(suite):
    result = tsunagu(suite, "call", "registry", "area.get", '{"code":"131016"}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "千代田区"


def test_call_reads_the_body_from_stdin(suite):
    result = tsunagu(suite, "call", "registry", "area.get", "-", stdin='{"code":"130001"}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "東京都"


def test_errors_have_exit_statuses(suite):
    bad = tsunagu(suite, "call", "registry", "area.get", '{"code":"1"}')
    assert bad.returncode == 2 and "invalid_input" in bad.stderr
    denied = tsunagu(suite, "call", "registry", "area.get", '{"code":"131016"}', token="wrong-token")
    assert denied.returncode == 3 and "unauthorized" in denied.stderr
    missing = tsunagu(suite, "call", "registry", "area.get", '{"code":"999999"}')
    assert missing.returncode == 5 and "not_found" in missing.stderr


def test_services_lists_the_registry(suite):
    result = tsunagu(suite, "services")
    assert result.returncode == 0, result.stderr
    assert "registry 0.1.0 [tsunagu] 1 instance(s)" in result.stdout
    assert "area.get" in result.stdout


def test_token_create_and_revoke(suite):
    created = tsunagu(suite, "token", "create", "--tenant", "pref-27", "--role", "staff", "--label", "cli test")
    assert created.returncode == 0, created.stderr
    issued = json.loads(created.stdout)
    works = tsunagu(suite, "call", "registry", "area.get", '{"code":"270008"}', token=issued["token"])
    assert works.returncode == 0 and json.loads(works.stdout)["name"] == "大阪府"
    assert tsunagu(suite, "token", "revoke", issued["id"]).returncode == 0
    assert tsunagu(suite, "call", "registry", "area.get", '{"code":"270008"}', token=issued["token"]).returncode == 3
    assert issued["id"] in tsunagu(suite, "token", "list").stdout


def test_token_create_with_event_permissions(suite):
    created = tsunagu(suite, "token", "create", "--tenant", "130001", "--role", "staff",
                      "--event-tenants", "130001,270008", "--event-types", "jp.tsunagu.registry.,jp.tsunagu.meetings.")
    assert created.returncode == 0, created.stderr
    issued = json.loads(created.stdout)
    assert issued["events"] == {"tenants": ["130001", "270008"], "types": ["jp.tsunagu.registry.", "jp.tsunagu.meetings."]}
    every_type = json.loads(tsunagu(suite, "token", "create", "--tenant", "130001", "--role", "staff", "--event-tenants", "*").stdout)
    assert every_type["events"] == {"tenants": ["*"], "types": []}
    # A tenant's admin grants only its own tenant's events.
    tenant_admin = json.loads(tsunagu(suite, "token", "create", "--tenant", "130001", "--role", "admin").stdout)["token"]
    refused = tsunagu(suite, "token", "create", "--tenant", "130001", "--role", "staff", "--event-tenants", "270008", token=tenant_admin)
    assert refused.returncode == 3 and "forbidden" in refused.stderr
    assert tsunagu(suite, "token", "create", "--service", "meetings", "--event-tenants", "130001").returncode != 0
    assert tsunagu(suite, "token", "create", "--tenant", "130001", "--event-types", "jp.").returncode != 0


def test_migrate_is_idempotent(suite):
    argv = [os.path.join(BIN, "tsunagu"), "migrate", "--schema", "registry", "--dir",
            os.path.join(ROOT, "services", "registry", "migrations"), "--database-url", DATABASE_URL]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "registry: up to date (" in result.stdout


def test_every_call_carries_an_idempotency_key_and_a_given_one_applies_once(make_suite):
    suite = make_suite()
    suite.start_gateway()
    suite.start_registry()
    suite.start_slowpoke("echo")
    suite.wait_for_instances("registry", 1)
    suite.wait_for_instances("slowpoke", 1)
    keys = [json.loads(tsunagu(suite, "call", "slowpoke", "envelope", "{}").stdout)["envelope"].get("idempotency_key")
            for _ in range(2)]
    assert all(keys) and keys[0] != keys[1], keys  # a fresh key on every call
    given = tsunagu(suite, "call", "slowpoke", "envelope", "{}", "--idempotency-key", "my-key-1")
    assert json.loads(given.stdout)["envelope"]["idempotency_key"] == "my-key-1"
    first = tsunagu(suite, "call", "registry", "organization.create", '{"name":"CLIの法人"}', "--idempotency-key", "cli-once")
    again = tsunagu(suite, "call", "registry", "organization.create", '{"name":"CLIの法人"}', "--idempotency-key", "cli-once")
    assert first.returncode == 0 and again.returncode == 0, (first.stderr, again.stderr)
    assert json.loads(first.stdout)["id"] == json.loads(again.stdout)["id"]


def test_an_unavailable_answer_is_retried_with_the_same_key(make_suite):
    """No instance is up when the CLI first calls (`unavailable`); one registers half a second
    later, and the CLI's own retry (after 0.3 s, then 1 s) is answered."""
    suite = make_suite()
    suite.start_gateway()
    early = suite.start_slowpoke("early")  # the service is known; then its only instance dies
    suite.wait_for_instances("slowpoke", 1)
    early.kill9()
    suite.wait_for_instances("slowpoke", 0)
    env = dict(suite.env, TSUNAGU_TOKEN=ADMIN_TOKEN)
    cli = subprocess.Popen([os.path.join(BIN, "tsunagu"), "call", "slowpoke", "envelope", "{}", "--idempotency-key", "retry-key"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import time
    time.sleep(0.5)
    worker = suite.start_slowpoke("late")
    out, err = cli.communicate(timeout=30)
    assert cli.returncode == 0, err
    assert json.loads(out)["envelope"]["idempotency_key"] == "retry-key"
    assert worker.output().count("got ") == 1
