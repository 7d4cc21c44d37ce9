"""Writes apply once: a keyed write's reply is committed with its change, so a repeat (by the
client, or by the gateway after an instance died) gets the first reply and makes no second
change; the same key with another payload is a conflict; a write without a key whose instance
dies is answered `unavailable` (outcome unknown) and never sent twice; work still running at the
deadline rolls back."""
import threading
import time
import uuid

import psycopg

from conftest import DATABASE_URL, Closing, holder_of
from tsunagu_peer import error_code, ok


def count_organizations(name):
    with psycopg.connect(DATABASE_URL) as connection:
        return connection.execute("SELECT count(*) FROM registry.organizations WHERE name = %s", (name,)).fetchone()[0]


def test_a_repeated_key_returns_the_first_reply_and_changes_nothing(suite):
    name, key = f"法人-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with Closing(suite.client()) as client:
        first = ok(client.call("registry", "organization.create", {"name": name}, idempotency_key=key))
        again = ok(client.call("registry", "organization.create", {"name": name}, idempotency_key=key))
        assert again == first
        # Key order and spacing do not make another payload: the canonical form is compared.
        ok(client.call("registry", "organization.create", raw_payload=('{ "name" : "%s" }' % name).encode(), idempotency_key=key))
        assert count_organizations(name) == 1
        # The same key with a different payload is refused, and changes nothing.
        envelope, _ = client.call("registry", "organization.create", {"name": name + "x"}, idempotency_key=key)
        assert envelope["error"]["code"] == "conflict" and envelope["error"]["details"]["idempotency_key"] == key
        assert count_organizations(name + "x") == 0
        # Keys are scoped by operation: the same key on another operation is another write.
        org = ok(client.call("registry", "organization.update", dict(first, name=name + "-2"), idempotency_key=key))
        assert org["version"] == first["version"] + 1


def test_keys_are_scoped_by_tenant(suite):
    name, key = f"法人-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with Closing(suite.client()) as admin:
        tokens = [ok(admin.call("tsunagu.gateway", "tokens.create", {"tenant": t, "roles": ["editor"]}))["token"]
                  for t in ("130001", "270008")]
    ids = set()
    for token in tokens:
        with Closing(suite.client(token=token)) as client:
            ids.add(ok(client.call("registry", "organization.create", {"name": name}, idempotency_key=key))["id"])
    assert len(ids) == 2 and count_organizations(name) == 2


def test_two_concurrent_calls_with_one_key_make_one_change(suite):
    suite.start_registry()
    suite.wait_for_instances("registry", 2)
    name, key = f"法人-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    replies = []

    def call():
        with Closing(suite.client()) as client:
            replies.append(ok(client.call("registry", "organization.create", {"name": name}, idempotency_key=key)))

    for _ in range(3):
        threads = [threading.Thread(target=call) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert len(replies) == 12 and len({r["id"] for r in replies}) == 1
    assert count_organizations(name) == 1


def test_kill9_after_commit_before_reply_exactly_one_effect(make_suite):
    """The instance commits, then dies before it answers; the gateway sends the keyed request to
    the other instance, which finds the stored reply: one organisation, and the first reply."""
    suite = make_suite()
    suite.start_gateway()
    holder = suite.start_registry(env={"TSUNAGU_TESTS_ONLY_REPLY_DELAY_MS": "4000"})
    suite.wait_for_instances("registry", 1)
    name, key = f"法人-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with Closing(suite.client()) as client:
        request_id = client.send("registry", "organization.create", {"name": name}, deadline_ms=30000, idempotency_key=key)
        deadline = time.monotonic() + 10
        while count_organizations(name) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count_organizations(name) == 1, "the write did not commit"
        survivor = suite.start_registry()
        suite.wait_for_instances("registry", 2)
        holder.kill9()
        envelope, payload = client.receive(timeout_ms=20000)
    assert envelope["id"] == request_id and envelope["status"] == "ok", envelope
    assert payload["name"] == name
    assert count_organizations(name) == 1
    with psycopg.connect(DATABASE_URL) as connection:
        stored = connection.execute("SELECT id::text FROM registry.organizations WHERE name = %s", (name,)).fetchone()[0]
    assert payload["id"] == stored
    assert survivor.alive()


def test_a_write_without_a_key_whose_instance_dies_is_unavailable_and_not_run_twice(make_suite):
    suite = make_suite()
    suite.start_gateway()
    first, second = suite.start_slowpoke("first"), suite.start_slowpoke("second")
    suite.wait_for_instances("slowpoke", 2)
    with Closing(suite.client()) as client:
        request_id = client.send("slowpoke", "write", {"ms": 3000}, deadline_ms=20000)
        holder = holder_of(suite, request_id, (first, second))
        holder.kill9()
        envelope, _ = client.receive(timeout_ms=15000)
    survivor = second if holder is first else first
    assert envelope["id"] == request_id
    assert envelope["error"]["code"] == "unavailable" and envelope["error"]["details"] == {"outcome": "unknown"}, envelope
    time.sleep(0.5)
    assert f"got {request_id}" not in survivor.output()


def test_a_keyed_write_to_a_dying_instance_is_sent_again(make_suite):
    suite = make_suite()
    suite.start_gateway()
    first, second = suite.start_slowpoke("first"), suite.start_slowpoke("second")
    suite.wait_for_instances("slowpoke", 2)
    with Closing(suite.client()) as client:
        request_id = client.send("slowpoke", "write", {"ms": 1500}, deadline_ms=20000, idempotency_key="k-" + uuid.uuid4().hex)
        holder = holder_of(suite, request_id, (first, second))
        holder.kill9()
        envelope, payload = client.receive(timeout_ms=15000)
    assert envelope["status"] == "ok" and envelope["id"] == request_id, envelope


def test_keys_are_kept_for_the_retention_then_purged(make_suite):
    suite = make_suite({"TSUNAGU_IDEMPOTENCY_RETENTION_S": "2"})
    suite.start_gateway()
    suite.start_registry()
    suite.wait_for_instances("registry", 1)
    name, key = f"法人-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with Closing(suite.client()) as client:
        first = ok(client.call("registry", "organization.create", {"name": name}, idempotency_key=key))
        assert ok(client.call("registry", "organization.create", {"name": name}, idempotency_key=key)) == first
        time.sleep(2.5)
        later = ok(client.call("registry", "organization.create", {"name": name}, idempotency_key=key))
    assert later["id"] != first["id"] and count_organizations(name) == 2
    deadline = time.monotonic() + 10
    with psycopg.connect(DATABASE_URL, autocommit=True) as connection:
        while time.monotonic() < deadline:
            left = connection.execute("SELECT count(*) FROM registry.idempotency WHERE key = %s AND created_at < now() - interval '2 seconds'",
                                      (key,)).fetchone()[0]
            if left == 0:
                break
            time.sleep(0.2)
    assert left == 0


def test_work_past_its_deadline_rolls_back(suite):
    """A write that cannot finish before its deadline (here: blocked by a lock another session
    holds) is cut off by the statement timeout the runtime sets from the time left, rolls back,
    and is answered `timeout`; the change never appears, even after the lock is gone."""
    name = f"法人-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(DATABASE_URL) as blocker:
        blocker.execute("LOCK TABLE registry.organizations IN EXCLUSIVE MODE")
        with Closing(suite.client()) as client:
            started = time.monotonic()
            envelope, _ = client.call("registry", "organization.create", {"name": name}, deadline_ms=1500, timeout_ms=10000)
            took = time.monotonic() - started
        blocker.rollback()
    assert envelope["error"]["code"] == "timeout", envelope
    assert took < 5
    time.sleep(0.5)
    assert count_organizations(name) == 0
