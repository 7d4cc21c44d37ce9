"""Events through the gateway (docs/protocol.md §10): subscribers authenticate with a token and see
only what it allows, with WITHHELD ranges for the rest, so a subscriber of some tenants can tell a
missed event from one it may not see; heartbeats carry each stream's head; only a service's own
credential speaks for its stream; a rogue process sees nothing; a slow subscriber slows nobody."""
import json
import time

import zmq

from conftest import ADMIN_TOKEN, EVENTS_HEARTBEAT_MS, Closing
from event_stream import HEADER, PrefixSubscriber, Pusher, Subscriber
from test_registry_areas import token_for
from test_registry_resources import resource_body
from tsunagu_peer import error_code, ok

CREATED = "jp.tsunagu.registry.resource.created"
TOKYO, OSAKA = "130001", "270008"


def subscriber(suite, prefix):
    """A subscriber of every registry event (the admin's token) whose `poll`/`receive` keep only
    topics (`<type>/<tenant>`) starting with `prefix`."""
    return PrefixSubscriber(suite, prefix)


def receive(sock, timeout_ms=10000):
    assert sock.poll(timeout_ms), "no event arrived"
    return sock.receive()


def create(suite, tenant, name):
    with Closing(suite.client(token=token_for(suite, tenant, ["editor"]))) as client:
        org = ok(client.call("registry", "organization.create", {"name": f"{name}の法人"}))
        municipality = "131016" if tenant == TOKYO else "271004"
        return ok(client.call("registry", "resource.create", resource_body(org["id"], name=name, municipality_code=municipality)))


def test_a_tenant_scoped_subscriber_gets_its_tenants_events_and_withheld_for_the_others(suite):
    tokyo = Subscriber(suite.events_out_endpoint, token_for(suite, TOKYO, ["staff"]), ["registry"])
    everything = Subscriber(suite.events_out_endpoint, ADMIN_TOKEN, ["registry"])
    try:
        assert tokyo.subscribed is not None and everything.subscribed is not None, (tokyo.errors, everything.errors)
        assert set(tokyo.subscribed["streams"]) == {"registry"}
        osaka_resource = create(suite, OSAKA, "大阪の相談所")
        tokyo_resource = create(suite, TOKYO, "東京の相談所")

        osaka_event = everything.event_about(f"resources/{osaka_resource['id']}")
        tokyo_event = everything.event_about(f"resources/{tokyo_resource['id']}")
        assert osaka_event["sequence"] < tokyo_event["sequence"]
        assert tokyo_event["type"] == CREATED and tokyo_event["specversion"] == "1.0" and tokyo_event["data"]["name"] == "東京の相談所"

        mine = tokyo.event_about(f"resources/{tokyo_resource['id']}")
        assert mine["id"] == tokyo_event["id"]
        # The Osaka event's number is accounted for, as withheld (within a heartbeat), never shown.
        tokyo.wait_for(lambda s: osaka_event["sequence"] in s.accounted.get("registry", set()), 5, "the Osaka sequence withheld")
        assert any(w["from"] <= osaka_event["sequence"] <= w["to"] and w["stream"] == "registry" for w in tokyo.withheld)
        assert all(e["tenant"] == TOKYO for e in tokyo.events), "another tenant's event reached a Tokyo subscriber"
        assert tokyo.gaps("registry") == [] and everything.gaps("registry") == []

        # A subscriber that missed the Tokyo event replays it from the sequence before it.
        with Closing(suite.client()) as client:
            replay = ok(client.call("registry", "events.read", {"after": tokyo_event["sequence"] - 1, "limit": 1}))
        assert replay["events"][0]["id"] == tokyo_event["id"]
    finally:
        tokyo.close()
        everything.close()


def test_a_token_with_event_permissions_sees_those_tenants_and_types(suite):
    with Closing(suite.client()) as admin:
        issued = ok(admin.call("tsunagu.gateway", "tokens.create", {
            "tenant": TOKYO, "roles": ["staff"], "events": {"tenants": [TOKYO, OSAKA], "types": ["jp.tsunagu.registry.resource.created"]}}))
        assert issued["events"] == {"tenants": [TOKYO, OSAKA], "types": ["jp.tsunagu.registry.resource.created"]}
        listed = next(t for t in ok(admin.call("tsunagu.gateway", "tokens.list"))["tokens"] if t["id"] == issued["id"])
        assert listed["events"] == issued["events"] and "token" not in listed
    both = Subscriber(suite.events_out_endpoint, issued["token"], ["registry"])
    try:
        assert both.subscribed is not None, both.errors
        osaka_resource = create(suite, OSAKA, "二府県の相談所")
        seen = both.event_about(f"resources/{osaka_resource['id']}")
        assert seen["tenant"] == OSAKA and seen["type"] == CREATED
        assert all(e["type"] == CREATED and e["tenant"] in (TOKYO, OSAKA) for e in both.events)
    finally:
        both.close()


def test_tokens_grant_only_what_their_admin_may_and_services_get_the_permissions(suite):
    suite.start_slowpoke("events")
    suite.wait_for_instances("slowpoke", 1)
    tokyo_admin = token_for(suite, TOKYO, ["admin"])
    with Closing(suite.client(token=tokyo_admin)) as admin:
        for tenants in ([OSAKA], ["*"], [TOKYO, OSAKA]):
            envelope, _ = admin.call("tsunagu.gateway", "tokens.create", {"tenant": TOKYO, "roles": ["staff"], "events": {"tenants": tenants}})
            assert error_code((envelope, None)) == "forbidden", (tenants, envelope)
        own = ok(admin.call("tsunagu.gateway", "tokens.create", {"tenant": TOKYO, "roles": ["staff"],
                                                                 "events": {"tenants": [TOKYO], "types": ["jp.tsunagu.meetings."]}}))
    with Closing(suite.client()) as national:
        for bad in ({"tenants": []}, {"tenants": ["13,01"]}, {"tenants": ["x"] * 65}, {"types": []},
                    {"tenants": ["*"], "types": ["a" * 201]}, {"tenants": ["*"], "types": ["jp/x"]}, {"tenants": ["*"], "other": 1}):
            envelope, _ = national.call("tsunagu.gateway", "tokens.create", {"tenant": TOKYO, "roles": [], "events": bad})
            assert error_code((envelope, None)) == "invalid_input", (bad, envelope)
    # The principal a service receives carries the token's permissions (events.read applies them).
    with Closing(suite.client(token=own["token"])) as client:
        got = ok(client.call("slowpoke", "envelope", {}))["envelope"]["principal"]
    assert got["events"] == {"tenants": [TOKYO], "types": ["jp.tsunagu.meetings."]} and got["tenant"] == TOKYO
    with Closing(suite.client(token=token_for(suite, TOKYO, ["staff"]))) as client:
        assert "events" not in ok(client.call("slowpoke", "envelope", {}))["envelope"]["principal"]


def test_without_a_valid_token_a_subscriber_gets_an_error_and_nothing(suite):
    anonymous = Subscriber(suite.events_out_endpoint, subscribe=False)
    wrong = Subscriber(suite.events_out_endpoint, subscribe=False)
    service = Subscriber(suite.events_out_endpoint, subscribe=False)
    malformed = Subscriber(suite.events_out_endpoint, subscribe=False)
    with Closing(suite.client()) as admin:
        issued = ok(admin.call("tsunagu.gateway", "tokens.create", {"tenant": TOKYO, "roles": ["staff"]}))
    revoked = Subscriber(suite.events_out_endpoint, issued["token"], ["registry"])
    try:
        assert anonymous.subscribe(None, ["registry"]) == ("ERROR", {"code": "unauthorized", "message": "no token: set \"token\" in SUBSCRIBE"})
        assert wrong.subscribe("tsg_" + "0" * 64, ["registry"])[1]["code"] == "unauthorized"
        assert service.subscribe(suite.service_token("registry"), ["registry"])[1]["code"] == "unauthorized"
        assert malformed.subscribe(ADMIN_TOKEN, [])[1]["code"] == "bad_request"
        assert revoked.subscribed is not None, revoked.errors
        with Closing(suite.client()) as admin:
            ok(admin.call("tsunagu.gateway", "tokens.revoke", {"id": issued["id"]}))
        revoked.wait_for(lambda s: s.errors, 5, "the revoked subscription's ERROR")
        assert revoked.errors == [{"code": "unauthorized", "message": "the token was revoked"}]
        create(suite, TOKYO, "取り消し後の相談所")
        for sub in (anonymous, wrong, service, malformed, revoked):
            sub.drain(1.5)
            assert sub.events == [] and sub.heartbeats == [] and sub.withheld == [], "a refused subscriber got something"
    finally:
        for sub in (anonymous, wrong, service, malformed, revoked):
            sub.close()


def test_a_rogue_process_on_the_events_endpoint_gets_nothing(suite):
    context = zmq.Context.instance()
    plain_sub = context.socket(zmq.SUB)        # the old way: a SUB socket is not even a peer of the ROUTER
    plain_sub.setsockopt(zmq.SUBSCRIBE, b"")
    silent = context.socket(zmq.DEALER)        # connected, never subscribes
    garbage = context.socket(zmq.DEALER)       # speaks something else
    for sock in (plain_sub, silent, garbage):
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(suite.events_out_endpoint)
    watcher = Subscriber(suite.events_out_endpoint, ADMIN_TOKEN, ["registry", "meetings"])
    pusher = Pusher(suite.events_in_endpoint)
    try:
        garbage.send_multipart([b"hello", b"SUBSCRIBE"])
        garbage.send_multipart([HEADER, b"PING", b"{}"])
        created = create(suite, TOKYO, "盗み見られない相談所")
        pusher.push(Pusher.event("meetings", 1, TOKYO), suite.service_token("meetings"))
        watcher.event_about(f"resources/{created['id']}")
        watcher.wait_for(lambda s: s.accounted.get("meetings"), 5, "the meetings event")
        time.sleep(2 * EVENTS_HEARTBEAT_MS / 1000)
        assert plain_sub.poll(100) == 0 and silent.poll(100) == 0, "a process that did not subscribe got a message"
        answers = []
        while garbage.poll(100):
            answers.append(garbage.recv_multipart())
        assert [a[1] for a in answers] == [b"ERROR", b"ERROR"] and all(a[0] == HEADER for a in answers), answers
        assert [json.loads(a[2])["code"] for a in answers] == ["bad_request", "bad_request"]
    finally:
        for sock in (plain_sub, silent, garbage):
            sock.close()
        watcher.close()
        pusher.close()


def test_heartbeats_carry_the_head_of_each_stream(suite):
    sub = Subscriber(suite.events_out_endpoint, ADMIN_TOKEN, ["meetings", "registry"])
    pusher = Pusher(suite.events_in_endpoint)
    try:
        assert sub.subscribed == {"streams": {"meetings": 0, "registry": sub.subscribed["streams"]["registry"]}}
        pusher.push_head("meetings", 41, suite.service_token("meetings"))
        sub.wait_for(lambda s: s.heartbeats and s.heartbeats[-1]["streams"]["meetings"] == 41, 5, "a heartbeat with head 41")
        # No meetings event was seen: by the subscriber's rule, 1…41 are a gap to replay with events.read.
        assert "meetings" not in sub.accounted
        created = create(suite, TOKYO, "鼓動の相談所")
        sequence = sub.event_about(f"resources/{created['id']}")["sequence"]
        sub.wait_for(lambda s: s.heartbeats[-1]["streams"]["registry"] >= sequence, 5, "a heartbeat with the registry head")
        # A head is never lowered by an older one, and heads of another service's credential are dropped.
        pusher.push_head("meetings", 7, suite.service_token("meetings"))
        pusher.push_head("meetings", 99, suite.service_token("registry"))
        count = len(sub.heartbeats)
        sub.wait_for(lambda s: len(s.heartbeats) >= count + 2, 5, "two more heartbeats")
        assert sub.heartbeats[-1]["streams"]["meetings"] == 41
        assert all(set(h["streams"]) == {"meetings", "registry"} for h in sub.heartbeats)
    finally:
        sub.close()
        pusher.close()


def test_an_event_pushed_with_another_services_credential_is_dropped(suite):
    sub = Subscriber(suite.events_out_endpoint, ADMIN_TOKEN, ["meetings"])
    pusher = Pusher(suite.events_in_endpoint)
    try:
        forged = Pusher.event("meetings", 1, TOKYO, data={"forged": True})
        pusher.push(forged, suite.service_token("registry"))                                  # claims stream meetings
        pusher.push(Pusher.event("meetings", 2, TOKYO, with_stream=False), suite.service_token("registry"))  # by its source
        real = Pusher.event("meetings", 3, TOKYO)
        pusher.push(real, suite.service_token("meetings"))
        sub.wait_for(lambda s: s.events, 5, "the real event")
        sub.drain(2 * EVENTS_HEARTBEAT_MS / 1000)
        assert [e["id"] for e in sub.events] == [real["id"]]
        assert sub.withheld == [], "dropped events are not withheld: the gateway never took them"
        output = suite.gateway.output()
        assert output.count("dropped an event for a stream its credential was not issued for") >= 2
        assert "forged" not in output, "the log line held the event's content"
    finally:
        sub.close()
        pusher.close()


def test_a_slow_subscriber_does_not_stop_a_fast_one(make_suite):
    # A burst of `batch` events fits in a subscriber's queue; the slow one's queue, once full, does not.
    suite = make_suite({"TSUNAGU_SUBSCRIBER_HWM": "200"})
    suite.start_gateway()
    credential = suite.service_token("meetings")
    # The slow one subscribes and keeps its subscription (PING) but never reads; its buffers are small.
    slow = zmq.Context.instance().socket(zmq.DEALER)
    slow.setsockopt(zmq.LINGER, 0)
    slow.setsockopt(zmq.RCVHWM, 1)
    slow.setsockopt(zmq.RCVBUF, 4096)
    slow.connect(suite.events_out_endpoint)
    slow.send_multipart([HEADER, b"SUBSCRIBE", json.dumps({"token": ADMIN_TOKEN, "streams": ["meetings"]}).encode()])
    fast = Subscriber(suite.events_out_endpoint, ADMIN_TOKEN, ["meetings"])
    pusher = Pusher(suite.events_in_endpoint)
    total, batch = 2000, 50
    padding = "x" * 16000
    try:
        assert fast.subscribed is not None, fast.errors
        started = time.monotonic()
        for first in range(1, total + 1, batch):
            for sequence in range(first, first + batch):
                pusher.push(Pusher.event("meetings", sequence, TOKYO, data={"padding": padding}), credential)
            slow.send_multipart([HEADER, b"PING", b"{}"])
            fast.wait_for(lambda s: len(s.accounted.get("meetings", ())) >= first + batch - 1, 20, f"events up to {first + batch - 1}")
        assert time.monotonic() - started < 60
        assert sorted(fast.accounted["meetings"]) == list(range(1, total + 1))
        assert [e["sequence"] for e in fast.events] == list(range(1, total + 1)), "the fast subscriber lost or reordered events"
        fast.wait_for(lambda s: "messages to a slow subscriber dropped" in suite.gateway.output(), 5, "the drop logged")
        # What reached the slow one has a gap: its messages were dropped, for it alone.
        got = []
        while slow.poll(500):
            frames = slow.recv_multipart()
            if frames[1] == b"EVENT":
                got.append(json.loads(frames[2])["sequence"])
        assert len(got) < total and got == sorted(got)
    finally:
        slow.close()
        fast.close()
        pusher.close()


def test_subscribers_are_bounded_silent_ones_forgotten_and_all_told_when_the_gateway_stops(make_suite):
    suite = make_suite({"TSUNAGU_MAX_SUBSCRIBERS": "2"})
    suite.start_gateway()
    first = Subscriber(suite.events_out_endpoint, ADMIN_TOKEN, ["meetings"])
    second = Subscriber(suite.events_out_endpoint, ADMIN_TOKEN, ["meetings"])
    third = Subscriber(suite.events_out_endpoint, subscribe=False)
    silent = zmq.Context.instance().socket(zmq.DEALER)
    silent.setsockopt(zmq.LINGER, 0)
    silent.connect(suite.events_out_endpoint)
    try:
        assert first.subscribed is not None and second.subscribed is not None
        assert third.subscribe(ADMIN_TOKEN, ["meetings"])[1]["code"] == "unavailable"
        second.send("UNSUBSCRIBE")
        time.sleep(0.3)
        # A subscriber that never PINGs is forgotten after 3 heartbeat intervals; its place is free again.
        silent.send_multipart([HEADER, b"SUBSCRIBE", json.dumps({"token": ADMIN_TOKEN, "streams": ["meetings"]}).encode()])
        assert silent.poll(5000) and silent.recv_multipart()[1] == b"SUBSCRIBED"
        assert third.subscribe(ADMIN_TOKEN, ["meetings"])[1]["code"] == "unavailable"
        deadline = time.monotonic() + 10
        while third.subscribe(ADMIN_TOKEN, ["meetings"])[0] != "SUBSCRIBED":
            assert time.monotonic() < deadline, "the silent subscriber was never forgotten"
            time.sleep(EVENTS_HEARTBEAT_MS / 1000)
        silent.send_multipart([HEADER, b"PING", b"{}"])
        deadline = time.monotonic() + 5
        answer = None
        while time.monotonic() < deadline and silent.poll(int((deadline - time.monotonic()) * 1000) + 1):
            frames = silent.recv_multipart()
            if frames[1] == b"ERROR":
                answer = json.loads(frames[2])
                break
        assert answer is not None and answer["code"] == "bad_request", answer
        # A stopping gateway tells every subscriber, so each subscribes again at once elsewhere.
        suite.gateway.terminate()
        for sub in (first, third):
            sub.wait_for(lambda s: s.errors, 5, "the stopping gateway's ERROR")
            assert sub.errors[-1]["code"] == "unavailable"
    finally:
        silent.close()
        for sub in (first, second, third):
            sub.close()
