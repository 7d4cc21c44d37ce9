"""The service side of event delivery (docs/events.md): the runtime's stream tables, the one
publisher that numbers committed events and pushes them, and `events.read` with the caller's
permissions. Everything goes through the real gateway and real registry processes."""
import json
import os
import re
import time
import uuid

import jsonschema
import psycopg
import pytest

from conftest import DATABASE_URL, Closing, free_port
from test_registry_areas import token_for
from test_registry_resources import make_org, resource_body
from test_registry_taxonomy import ROOT, registry_database_before
from tsunagu_peer import ok

TOKYO, OSAKA = "130001", "270008"
CREATED = "jp.tsunagu.registry.resource.created"


def read_all(client, after, limit=1000, types=None):
    """Every page of events.read after `after` until `last_sequence` reaches the head the page
    reports. Returns (events, withheld ranges as (from, to), last sequence). Bounded: each page
    moves `last_sequence` on, and the loop stops at the head."""
    events, withheld, cursor = [], [], after
    for _ in range(10_000):
        body = {"after": cursor, "limit": limit}
        if types is not None:
            body["types"] = types
        page = ok(client.call("registry", "events.read", body))
        assert page["last_sequence"] >= cursor and page["last_sequence"] <= max(page["head"], cursor)
        events += page["events"]
        withheld += [(w["from"], w["to"]) for w in page["withheld"]]
        cursor = page["last_sequence"]
        if cursor >= page["head"]:
            return events, withheld, cursor
    raise AssertionError("events.read did not reach its head")


def assert_accounted(after, last, events, withheld):
    """Every sequence in (after, last] is an event's or in exactly one withheld range, never both."""
    covered = [e["sequence"] for e in events] + [n for a, z in withheld for n in range(a, z + 1)]
    assert sorted(covered) == list(range(after + 1, last + 1))


def head(client):
    return ok(client.call("registry", "events.read", {"after": 0, "limit": 1}))["head"]


def wait_until(condition, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not hold within {timeout} s")


def cursor_row(url=DATABASE_URL):
    with psycopg.connect(url) as db:
        return db.execute("SELECT assigned, pushed FROM registry.event_cursor").fetchone()


def create(client, org, tag, municipality="131016"):
    return ok(client.call("registry", "resource.create", resource_body(org, name=f"{tag}", municipality_code=municipality)))


# MARK: transactions

def test_a_write_that_fails_after_appending_its_event_publishes_nothing(suite):
    """resource.create appends its event, then the runtime stores the reply under the request's
    idempotency key; here another session holds that key (an uncommitted row), so the store waits
    until the deadline and the whole transaction rolls back. Its event is nowhere: not in the
    table, not in events.read, and it took no sequence number (the next event follows at once)."""
    editor = token_for(suite, TOKYO, ["editor"])
    tag = uuid.uuid4().hex[:8]
    with Closing(suite.client(token=editor)) as client, Closing(suite.client()) as national:
        org = make_org(client, f"取消の法人{tag}")["id"]
        wait_until(lambda: cursor_row()[0] == cursor_row()[1] and head(national) == cursor_row()[0], what="stream idle")
        before = head(national)
        key = uuid.uuid4().hex
        blocker = psycopg.connect(DATABASE_URL)
        try:
            blocker.execute("""INSERT INTO registry.idempotency (tenant, operation, key, request_hash, reply)
                               VALUES (%s, 'resource.create', %s, '\\x00'::bytea, '{}')""", (TOKYO, key))
            client.send("registry", "resource.create", resource_body(org, name=f"取り消される施設{tag}"),
                        idempotency_key=key, deadline_ms=3000)
            # The write got past its event: it waits on the idempotency row, the last thing it writes.
            with psycopg.connect(DATABASE_URL, autocommit=True) as watcher:
                wait_until(lambda: watcher.execute("""
                    SELECT count(*) FROM pg_stat_activity
                    WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO registry.idempotency%'""").fetchone()[0] == 1,
                    timeout=5, what="the write waiting on its idempotency row")
            envelope, _ = client.receive()
            assert envelope["status"] == "error" and envelope["error"]["code"] == "timeout", envelope
        finally:
            blocker.rollback()
            blocker.close()
        later = create(client, org, f"後から作る施設{tag}")
        events = wait_until(lambda: (lambda es: es if f"resources/{later['id']}" in {e["subject"] for e in es} else None)(
            read_all(national, before)[0]), what="the later event")
    assert not [e for e in events if f"取り消される施設{tag}" in str(e["data"])]
    assert [e["sequence"] for e in events] == list(range(before + 1, before + 1 + len(events)))
    assert events[0]["subject"] == f"resources/{later['id']}"
    with psycopg.connect(DATABASE_URL) as db:
        assert db.execute("SELECT count(*) FROM registry.events WHERE data->>'name' = %s",
                          (f"取り消される施設{tag}",)).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM registry.resources WHERE name = %s",
                          (f"取り消される施設{tag}",)).fetchone()[0] == 0


# MARK: replay and permissions

def test_replay_from_0_returns_the_whole_history(suite):
    """A national reader replaying from 0 gets every numbered event once, in order, exactly as the
    table holds them; the CloudEvents carry stream, sequence and tenant."""
    with Closing(suite.client(token=token_for(suite, TOKYO, ["editor"]))) as client:
        create(client, make_org(client, "履歴の法人")["id"], f"履歴の施設{uuid.uuid4().hex[:8]}")
    with Closing(suite.client()) as national:
        wait_until(lambda: head(national) > 0, what="a numbered event")
        events, withheld, last = read_all(national, 0)
    with psycopg.connect(DATABASE_URL) as db:
        stored = db.execute("""SELECT id::text, sequence FROM registry.events
                               WHERE sequence IS NOT NULL AND sequence <= %s ORDER BY sequence""", (last,)).fetchall()
    assert [(e["id"], e["sequence"]) for e in events] == stored
    assert_accounted(0, last, events, withheld)
    assert withheld == []  # nothing is withheld from tenant national, and a fresh stream has no unused numbers
    assert len({e["id"] for e in events}) == len(events)
    event = events[-1]
    assert event["stream"] == "registry" and event["source"] == "/tsunagu/registry" and event["specversion"] == "1.0"
    assert isinstance(event["sequence"], int) and event["tenant"]


def test_a_tenant_reads_only_its_events_and_the_rest_is_withheld(suite):
    """Tokyo's reader sees Tokyo's events only; every other sequence is in a withheld range, so it
    can tell what it may not see from what it missed. A type filter of its own is withheld too, and
    a read past the head is empty."""
    tag = uuid.uuid4().hex[:8]
    tokyo_token, osaka_token = token_for(suite, TOKYO, ["editor"]), token_for(suite, OSAKA, ["editor"])
    with Closing(suite.client(token=tokyo_token)) as tokyo, Closing(suite.client(token=osaka_token)) as osaka, \
            Closing(suite.client()) as national:
        before = head(national)
        tokyo_org, osaka_org = make_org(tokyo, f"東京{tag}")["id"], make_org(osaka, f"大阪{tag}")["id"]
        made = []
        for i in range(3):
            made.append(create(osaka, osaka_org, f"大阪の施設{tag}{i}", municipality="271004"))
            made.append(create(tokyo, tokyo_org, f"東京の施設{tag}{i}"))
        ok(tokyo.call("registry", "resource.vacancies.set", {"id": made[1]["id"], "vacancies": 0}))
        ids = {f"resources/{m['id']}" for m in made}
        vacancies = "jp.tsunagu.registry.resource.vacancies_changed"

        def numbered():
            es = read_all(national, before)[0]
            return es if ids <= {e["subject"] for e in es} and vacancies in {e["type"] for e in es} else None
        everything = wait_until(numbered, what="every event numbered")
        last = everything[-1]["sequence"]

        events, withheld, seen_last = read_all(tokyo, before)
        assert seen_last >= last
        assert events and {e["tenant"] for e in events} == {TOKYO}
        assert_accounted(before, seen_last, events, withheld)
        osaka_sequences = [e["sequence"] for e in everything if e["tenant"] == OSAKA]
        assert osaka_sequences and all(any(a <= s <= z for a, z in withheld) for s in osaka_sequences)
        assert [e["id"] for e in events if e["sequence"] <= last] == [e["id"] for e in everything if e["tenant"] == TOKYO]

        # The caller's own type filter: what it did not ask for is withheld as well.
        only, only_withheld, only_last = read_all(tokyo, before, types=[vacancies])
        assert [e["subject"] for e in only if e["sequence"] <= last] == [f"resources/{made[1]['id']}"]
        assert_accounted(before, only_last, only, only_withheld)

        # Small pages: last_sequence stops at the last event of a full page.
        page = ok(tokyo.call("registry", "events.read", {"after": before, "limit": 1}))
        assert len(page["events"]) == 1 and page["last_sequence"] == page["events"][0]["sequence"]
        assert_accounted(before, page["last_sequence"], page["events"], [(w["from"], w["to"]) for w in page["withheld"]])

        beyond = ok(tokyo.call("registry", "events.read", {"after": page["head"] + 1000}))
        assert beyond["events"] == [] and beyond["withheld"] == [] and beyond["last_sequence"] == page["head"] + 1000


def test_a_page_looks_at_no_more_than_10000_sequences(suite):
    """10,050 events of another tenant (written straight into the table, as a bulk writer does):
    a Tokyo reader's page after them shows none, withholds 10,000 numbers and moves last_sequence
    on by as many; the next page goes on from there to the head."""
    with Closing(suite.client()) as national, Closing(suite.client(token=token_for(suite, TOKYO, ["staff"]))) as tokyo:
        before = head(national)
        with psycopg.connect(DATABASE_URL, autocommit=True) as db:
            db.execute("""INSERT INTO registry.events (type, subject, tenant, data)
                          SELECT 'jp.tsunagu.registry.resource.changed', 'resources/' || gen_random_uuid(), '019999', '{}'::jsonb
                          FROM generate_series(1, 10050)""")
        wait_until(lambda: head(national) >= before + 10050, what="the filler numbered")
        page = ok(tokyo.call("registry", "events.read", {"after": before, "limit": 1000}))
        assert page["events"] == [] and page["last_sequence"] == before + 10000
        assert page["withheld"] == [{"from": before + 1, "to": before + 10000}]
        rest = ok(tokyo.call("registry", "events.read", {"after": page["last_sequence"], "limit": 1000}))
        assert rest["last_sequence"] == rest["head"] and rest["withheld"][0]["from"] == before + 10001


# MARK: the publisher

def test_kill_9_of_the_publisher_under_load_loses_nothing_and_numbers_each_event_once(make_suite):
    """The publishing instance is killed with SIGKILL in the middle of a bounded write load, while
    it holds numbered events it could not push (its events endpoint leads nowhere, so its pushed
    cursor stays behind). A new instance takes over as publisher: it numbers what is left and
    pushes everything after the cursor. events.read then holds exactly one event per committed
    resource, in order, with no gap; and the pushed cursor has caught up."""
    s = make_suite()
    s.start_gateway()
    first = s.start_registry(env={"TSUNAGU_EVENTS_IN_ENDPOINT": f"tcp://127.0.0.1:{free_port()}"})
    s.wait_for_instances("registry", 1)
    wait_until(lambda: "publishing events" in first.output(), what="the first instance publishing")
    tag = uuid.uuid4().hex[:8]
    total, kill_after, in_flight_max = 240, 80, 8
    with Closing(s.client(token=token_for(s, TOKYO, ["editor"]))) as client, Closing(s.client()) as national:
        org = make_org(client, f"負荷の法人{tag}")["id"]
        before = head(national)
        sent = answered = in_flight = 0
        second = None
        started = time.monotonic()
        while answered < total and time.monotonic() - started < 60:
            while in_flight < in_flight_max and sent < total:
                client.send("registry", "resource.create", resource_body(org, name=f"負荷{tag}-{sent}"),
                            idempotency_key=f"{tag}-{sent}", deadline_ms=10000)
                sent += 1
                in_flight += 1
            client.receive(timeout_ms=20000)  # ok, or unavailable for a write in flight at the kill
            answered += 1
            in_flight -= 1
            if answered == kill_after:
                # The first instance has numbered events it could not push (writes still in flight).
                wait_until(lambda: (lambda c: c[1] < c[0])(cursor_row()), timeout=10,
                           what="numbered events the first instance could not push")
                first.kill9()
                second = s.start_registry()
        assert answered == total and second is not None

        with psycopg.connect(DATABASE_URL) as db:
            committed = {f"resources/{r[0]}" for r in db.execute(
                "SELECT id::text FROM registry.resources WHERE name LIKE %s", (f"負荷{tag}-%",)).fetchall()}
        assert len(committed) >= kill_after - in_flight_max

        # The second instance may still be starting (two cores, a load just ended): wait until it
        # publishes and the gateway routes to it before reading.
        wait_until(lambda: "publishing events" in second.output(), timeout=30, what="the second instance publishing")
        wait_until(lambda: national.call("registry", "events.read", {"after": 0, "limit": 1})[0]["status"] == "ok",
                   timeout=30, what="the gateway routing to the second instance")

        def mine():
            events, withheld, last = read_all(national, before)
            created = [e for e in events if e["type"] == CREATED and e["subject"] in committed]
            return (events, withheld, last) if len(created) >= len(committed) else None
        events, withheld, last = wait_until(mine, timeout=30, what="every committed event readable")
    created = [e["subject"] for e in events if e["type"] == CREATED and e["data"]["name"].startswith(f"負荷{tag}-")]
    assert sorted(created) == sorted(committed)  # each committed change once, and nothing else
    assert [e["sequence"] for e in events] == list(range(before + 1, last + 1)) and withheld == []
    assert wait_until(lambda: (lambda c: c[0] == c[1])(cursor_row()), what="the pushed cursor caught up")
    assert "publishing events" in second.output()


def test_a_write_on_a_standing_by_instance_wakes_the_publisher_by_notification(make_suite):
    """Two gateways over one database, each with one registry instance: the first instance
    publishes, the second stands by. Both poll only every 10 minutes, so a write through the
    second gateway is numbered and readable soon only because its instance told the publishing one
    (pg_notify after its commit) and that one's listener woke it. The notification carries the
    stream's schema and nothing of the change."""
    slow_poll = {"TSUNAGU_EVENTS_POLL_MS": "600000"}
    first = make_suite(slow_poll)
    first.start_gateway()
    publishing = first.start_registry()
    first.wait_for_instances("registry", 1)
    wait_until(lambda: "publishing events" in publishing.output(), what="the first instance publishing")
    second = make_suite(slow_poll)
    second.start_gateway()
    standing = second.start_registry()
    second.wait_for_instances("registry", 1)
    wait_until(lambda: "standing by" in standing.output(), what="the second instance standing by")
    tag = uuid.uuid4().hex[:8]
    with psycopg.connect(DATABASE_URL, autocommit=True) as listener:
        listener.execute("LISTEN tsunagu_events")
        with Closing(second.client(token=token_for(second, TOKYO, ["editor"]))) as client, Closing(first.client()) as national:
            before = head(national)
            made = create(client, make_org(client, f"通知の法人{tag}")["id"], f"通知{tag}")
            subject = f"resources/{made['id']}"
            events = wait_until(lambda: [e for e in read_all(national, before)[0] if e["subject"] == subject], timeout=15,
                                what="the standing-by instance's write numbered by the publishing one")
        assert [e["type"] for e in events] == [CREATED]
        payloads = {n.payload for n in listener.notifies(timeout=2.0, stop_after=1)}
    assert payloads == {"registry"}
    assert "publishing events" not in standing.output()


def test_a_bad_poll_interval_is_named_and_the_service_does_not_start(make_suite):
    """TSUNAGU_EVENTS_POLL_MS is bounded (10-600000 ms) and must be a number."""
    s = make_suite()
    s.start_gateway()
    for bad in ["5", "600001", "often"]:
        process = s.start_registry(env={"TSUNAGU_EVENTS_POLL_MS": bad})
        assert process.proc.wait(timeout=30) != 0
        assert "TSUNAGU_EVENTS_POLL_MS" in process.output()


def test_one_publisher_at_a_time(make_suite):
    """Two instances: one publishes, the other stands by; when the publisher stops, the other takes over."""
    s = make_suite()
    s.start_gateway()
    first = s.start_registry()
    s.wait_for_instances("registry", 1)
    wait_until(lambda: "publishing events" in first.output(), what="the first instance publishing")
    second = s.start_registry()
    s.wait_for_instances("registry", 2)
    wait_until(lambda: "standing by" in second.output(), what="the second instance standing by")
    assert "publishing events" not in second.output()
    first.terminate()
    wait_until(lambda: "publishing events" in second.output(), what="the second instance taking over")
    with Closing(s.client(token=token_for(s, TOKYO, ["editor"]))) as client, Closing(s.client()) as national:
        before = head(national)
        made = create(client, make_org(client, "引継ぎの法人")["id"], f"引継ぎ{uuid.uuid4().hex[:8]}")
        wait_until(lambda: [e for e in read_all(national, before)[0] if e["subject"] == f"resources/{made['id']}"],
                   what="the new publisher numbering")


# MARK: the migration of the registry's old outbox

@pytest.fixture
def database_before_0040(tmp_path):
    """A database with the registry's migrations before 0040 (`registry_database_before`, as
    test_registry_taxonomy does), so it has the old registry.outbox and registry.outbox_cursor.
    Yields the registry role's URL; dropped afterwards."""
    with registry_database_before(tmp_path, "tsunagu_events_", "0040") as (url, _):
        yield url


# database_before_0040 first: fixtures are torn down in reverse, so the registry stops before its database goes.
def test_the_registry_outbox_moves_into_the_stream_with_its_sequences(database_before_0040, make_suite):
    """Events written by a registry of before 0040 (in registry.outbox, numbered by its publisher,
    one of them with a number the pre-0014 writers never used, and one committed but not yet
    numbered) are in the stream after the upgrade with the same ids and sequences; the unnumbered
    one gets the next number; the unused number is withheld; the old tables are gone."""
    old = []
    with psycopg.connect(database_before_0040, autocommit=True) as db:
        for sequence, tenant in ((1, TOKYO), (2, OSAKA), (4, TOKYO), (5, TOKYO), (None, OSAKA)):
            old.append(db.execute("""
                INSERT INTO registry.outbox (type, subject, tenant, data, sequence)
                VALUES ('jp.tsunagu.registry.resource.changed', %s, %s, '{"migrated":true}'::jsonb, %s)
                RETURNING id::text, sequence""", (f"resources/{uuid.uuid4()}", tenant, sequence)).fetchone())
        db.execute("UPDATE registry.outbox_cursor SET assigned = 5, sequence = 4")

    s = make_suite()
    s.start_gateway()
    s.start_registry(env={"TSUNAGU_DATABASE_URL": database_before_0040})
    s.wait_for_instances("registry", 1)
    with Closing(s.client()) as national:
        events, withheld, last = wait_until(lambda: (lambda r: r if r[2] >= 6 else None)(read_all(national, 0)),
                                            what="the unnumbered event numbered")
    assert [(e["id"], e["sequence"]) for e in events] == [(i, q) for i, q in old[:4]] + [(old[4][0], 6)]
    assert withheld == [(3, 3)] and last == 6
    assert events[1]["tenant"] == OSAKA and events[0]["stream"] == "registry"
    with psycopg.connect(database_before_0040) as db:
        assert db.execute("SELECT to_regclass('registry.outbox'), to_regclass('registry.outbox_cursor')").fetchone() == (None, None)
        assert wait_until(lambda: db.execute("SELECT pushed FROM registry.event_cursor").fetchone()[0] == 6,
                          what="the new publisher pushing the rest")


# MARK: docs/events.md

def documented():
    """The JSON blocks of docs/events.md tagged `schema=<name>` and `example=<type>`."""
    with open(os.path.join(ROOT, "docs", "events.md"), encoding="utf-8") as handle:
        text = handle.read()
    blocks = re.findall(r"```json (schema|example)=(\S+)\n(.*?)```", text, flags=re.S)
    schemas = {name: json.loads(body) for kind, name, body in blocks if kind == "schema"}
    examples = {name: json.loads(body) for kind, name, body in blocks if kind == "example"}
    return schemas, examples


def check_event(event, schemas):
    checker = jsonschema.FormatChecker()
    jsonschema.validate(event, schemas["cloudevent"], format_checker=checker)
    jsonschema.validate(event["data"], schemas[event["type"]], format_checker=checker)


def test_every_documented_type_has_a_valid_example_and_real_events_match_their_schema(suite):
    """Each event type in docs/events.md has a schema and an example that matches it; the events a
    resource's whole life writes (created, changed, vacancies_changed, retired) match theirs."""
    schemas, examples = documented()
    registry_types = {CREATED, "jp.tsunagu.registry.resource.changed", "jp.tsunagu.registry.resource.vacancies_changed",
                      "jp.tsunagu.registry.resource.retired"}
    assert registry_types <= set(examples) and set(examples) == set(schemas) - {"cloudevent"}
    for name, example in examples.items():
        assert example["type"] == name
        check_event(example, schemas)
    with Closing(suite.client(token=token_for(suite, TOKYO, ["editor"]))) as client:
        before = head(client)
        made = create(client, make_org(client, "型の法人")["id"], f"型の施設{uuid.uuid4().hex[:8]}")
        changed = ok(client.call("registry", "resource.update", dict(made, description="更新", vacancies=1)))
        ok(client.call("registry", "resource.vacancies.set", {"id": made["id"], "vacancies": 0}))
        ok(client.call("registry", "resource.retire", {"id": made["id"], "version": changed["version"] + 1}))

        def all_four():
            es = [e for e in read_all(client, before)[0] if e["subject"] == f"resources/{made['id']}"]
            return es if {e["type"] for e in es} == registry_types else None
        events = wait_until(all_four, what="the resource's four kinds of event")
    for event in events:
        check_event(event, schemas)
        assert "staff_phone" not in event["data"] and "staff_address" not in event["data"]
