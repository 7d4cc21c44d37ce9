"""The example subscriber (services/examples/event_subscriber.py) against the real gateway and
registry: it authenticates, sees only its tenant's events, resumes from the sequence in its state
file after being killed, replays what it missed, and hands each committed event on once."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from conftest import DATABASE_URL, HEARTBEAT_MS, Closing, free_port
from test_event_stream import CREATED, cursor_row, head, read_all, wait_until
from test_registry_areas import token_for
from test_registry_resources import make_org, resource_body
from test_registry_taxonomy import ROOT
from tsunagu_peer import ok


EXAMPLE = os.path.join(ROOT, "services", "examples", "event_subscriber.py")
TOKYO, OSAKA = "130001", "270008"


class ExampleSubscriber:
    """The example as a process of its own, with its state and output files in `directory`."""

    def __init__(self, suite, token, directory):
        self.suite, self.token = suite, token
        self.state = os.path.join(directory, "state.json")
        self.output = os.path.join(directory, "events.jsonl")
        self.log_path = os.path.join(directory, "subscriber.log")
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, EXAMPLE, "--events-endpoint", self.suite.events_out_endpoint,
             "--client-endpoint", self.suite.client_endpoint, "--token", self.token, "--streams", "registry",
             "--state", self.state, "--output", self.output, "--heartbeat-ms", str(HEARTBEAT_MS)],
            stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        return self

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            assert self.proc.wait(15) == 0, self.log()

    def events(self):
        """What it handed on, deduplicated by id (a crash between handing on and storing its
        state may hand an event on twice), in the order it handed them on."""
        if not os.path.exists(self.output):
            return []
        seen, events = set(), []
        with open(self.output, encoding="utf-8") as handle:
            for line in handle:
                if line.endswith("\n"):
                    event = json.loads(line)
                    if event["id"] not in seen:
                        seen.add(event["id"])
                        events.append(event)
        return events

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()


def write(client, org, tag, count, municipality="131016"):
    return [ok(client.call("registry", "resource.create", resource_body(org, name=f"{tag}-{i}", municipality_code=municipality)))
            for i in range(count)]


def test_the_example_resumes_after_a_restart_and_ends_with_exactly_the_visible_committed_events(suite, tmp_path):
    tokyo_token, osaka_token = token_for(suite, TOKYO, ["staff"]), token_for(suite, OSAKA, ["editor"])
    writer_token = token_for(suite, TOKYO, ["editor"])
    tag = uuid.uuid4().hex[:8]
    with Closing(suite.client(token=writer_token)) as tokyo, Closing(suite.client(token=osaka_token)) as osaka, \
            Closing(suite.client()) as national:
        tokyo_org, osaka_org = make_org(tokyo, f"東京{tag}")["id"], make_org(osaka, f"大阪{tag}")["id"]
        start = head(national)
        # It starts from where its state file says (as if it had run before), not from the beginning.
        with open(tmp_path / "state.json", "w", encoding="utf-8") as handle:
            json.dump({"last": {"registry": start}, "ids": []}, handle)
        subscriber = ExampleSubscriber(suite, tokyo_token, str(tmp_path)).start()
        try:
            made = write(tokyo, tokyo_org, f"前半{tag}", 10) + write(osaka, osaka_org, f"大阪{tag}", 5, "271004")
            wait_until(lambda: len([e for e in subscriber.events() if e["data"]["name"].startswith(f"前半{tag}")]) == 10,
                       what="the first half handed on")
            subscriber.kill9()
            made += write(tokyo, tokyo_org, f"後半{tag}", 10) + write(osaka, osaka_org, f"大阪後{tag}", 5, "271004")
            subscriber.start()
            made += write(tokyo, tokyo_org, f"再開後{tag}", 5)
            expected_ids = {f"resources/{m['id']}" for m in made if m["tenant"] == TOKYO}
            wait_until(lambda: expected_ids <= {e["subject"] for e in subscriber.events()}, what="every Tokyo event handed on")
            everything = wait_until(lambda: (lambda es: es if expected_ids <= {e["subject"] for e in es} else None)(
                read_all(national, start)[0]), what="every event numbered")
        finally:
            subscriber.stop()
    handed = subscriber.events()
    visible = [e for e in everything if e["tenant"] == TOKYO]
    assert [e["id"] for e in handed] == [e["id"] for e in visible]  # exactly the visible committed events, in order
    assert all(e["tenant"] == TOKYO for e in handed)
    assert "resuming after" in subscriber.log()


def test_a_kill_9_of_the_publisher_between_commit_and_push_loses_nothing_for_a_subscriber(make_suite, tmp_path):
    """The registry instance that publishes cannot push (its events endpoint leads nowhere) and is
    killed with SIGKILL; a new instance pushes what it numbered. A subscriber that was running all
    along ends with every committed event once, in order."""
    s = make_suite()
    s.start_gateway()
    first = s.start_registry(env={"TSUNAGU_EVENTS_IN_ENDPOINT": f"tcp://127.0.0.1:{free_port()}"})
    s.wait_for_instances("registry", 1)
    tag = uuid.uuid4().hex[:8]
    with Closing(s.client(token=token_for(s, TOKYO, ["editor"]))) as client, Closing(s.client()) as national:
        org = make_org(client, f"落ちる法人{tag}")["id"]
        start = head(national)
        with open(tmp_path / "state.json", "w", encoding="utf-8") as handle:
            json.dump({"last": {"registry": start}, "ids": []}, handle)
        subscriber = ExampleSubscriber(s, token_for(s, "national", ["staff"]), str(tmp_path)).start()
        try:
            made = write(client, org, f"押されない{tag}", 20)
            wait_until(lambda: (lambda c: c[0] > c[1])(cursor_row()), what="numbered events the first instance cannot push")
            first.kill9()
            s.start_registry()
            made += write(client, org, f"次の{tag}", 5)
            expected = {f"resources/{m['id']}" for m in made}
            wait_until(lambda: expected <= {e["subject"] for e in subscriber.events()}, what="every event handed on")
            with psycopg.connect(DATABASE_URL) as db:
                committed = {f"resources/{r[0]}" for r in db.execute(
                    "SELECT id::text FROM registry.resources WHERE organization_id = %s", (org,)).fetchall()}
        finally:
            subscriber.stop()
    handed = [e for e in subscriber.events() if e["type"] == CREATED and e["subject"] in committed]
    assert sorted(e["subject"] for e in handed) == sorted(committed) == sorted(expected)
    sequences = [e["sequence"] for e in subscriber.events()]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)


def test_heartbeats_carry_the_registry_head_and_a_tenant_sees_other_tenants_events_as_withheld(suite):
    """On the raw protocol: after writes of two tenants, a Tokyo subscriber gets Tokyo's EVENTs
    and WITHHELD for Osaka's sequences, and a HEARTBEAT whose registry head is events.read's head
    (the registry's publisher sent it with a tsunagu.head)."""
    import zmq
    tag = uuid.uuid4().hex[:8]
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(suite.events_out_endpoint)
    try:
        sock.send_multipart([b"TSUNAGU-EVENTS/1", b"SUBSCRIBE",
                             json.dumps({"token": token_for(suite, TOKYO, ["staff"]), "streams": ["registry"]}).encode()])
        assert sock.poll(10000)
        marker, command, body = sock.recv_multipart()
        assert (marker, command) == (b"TSUNAGU-EVENTS/1", b"SUBSCRIBED"), (command, body)
        with Closing(suite.client(token=token_for(suite, OSAKA, ["editor"]))) as osaka, \
                Closing(suite.client(token=token_for(suite, TOKYO, ["editor"]))) as tokyo, Closing(suite.client()) as national:
            before = head(national)
            write(osaka, make_org(osaka, f"大阪{tag}")["id"], f"大阪{tag}", 2, "271004")
            write(tokyo, make_org(tokyo, f"東京{tag}")["id"], f"東京{tag}", 1)
            target = wait_until(lambda: (lambda h: h if h >= before + 3 else None)(head(national)), what="three events numbered")
            got = {"EVENT": [], "WITHHELD": [], "HEARTBEAT": []}
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not any(h["streams"].get("registry", 0) >= target for h in got["HEARTBEAT"]):
                if sock.poll(200):
                    _, command, body = sock.recv_multipart()
                    got.setdefault(command.decode(), []).append(json.loads(body))
        assert [e for e in got["EVENT"] if e["tenant"] != TOKYO] == []
        assert any(e["data"]["name"].startswith(f"東京{tag}") for e in got["EVENT"])
        assert got["WITHHELD"] and all(w["stream"] == "registry" for w in got["WITHHELD"])
        assert any(h["streams"].get("registry") == target for h in got["HEARTBEAT"]), (target, got["HEARTBEAT"][-3:])
    finally:
        sock.close()


def test_events_read_applies_a_tokens_explicit_event_permissions(suite):
    """A token made with event permissions (two tenants, one type prefix) reads with events.read
    exactly the events the same rule lets through live; the rest is withheld."""
    tag = uuid.uuid4().hex[:8]
    with Closing(suite.client()) as admin:
        limited = ok(admin.call("tsunagu.gateway", "tokens.create", {
            "tenant": "national", "roles": ["staff"],
            "events": {"tenants": [TOKYO, OSAKA], "types": ["jp.tsunagu.registry.resource.vacancies_changed"]}}))["token"]
    with Closing(suite.client(token=token_for(suite, TOKYO, ["editor"]))) as tokyo, \
            Closing(suite.client(token=token_for(suite, "011002", ["editor"]))) as sapporo, \
            Closing(suite.client()) as national, Closing(suite.client(token=limited)) as reader:
        before = head(national)
        mine = write(tokyo, make_org(tokyo, f"東京{tag}")["id"], f"東京{tag}", 1)[0]
        ok(tokyo.call("registry", "resource.vacancies.set", {"id": mine["id"], "vacancies": 1}))
        theirs = write(sapporo, make_org(sapporo, f"札幌{tag}")["id"], f"札幌{tag}", 1, "011002")[0]
        ok(sapporo.call("registry", "resource.vacancies.set", {"id": theirs["id"], "vacancies": 1}))
        wait_until(lambda: head(national) >= before + 4, what="four events numbered")
        events, withheld, last = read_all(reader, before)
    assert [(e["type"], e["subject"]) for e in events] == [
        ("jp.tsunagu.registry.resource.vacancies_changed", f"resources/{mine['id']}")]
    covered = [e["sequence"] for e in events] + [n for a, z in withheld for n in range(a, z + 1)]
    assert sorted(covered) == list(range(before + 1, last + 1))
