"""Events: the registry's outbox is pushed through the gateway to ZeroMQ subscribers, filtered by
topic (type/tenant); a subscriber replays what it missed from the sequence number."""
import json
import time

import zmq

from conftest import Closing
from test_registry_areas import token_for
from test_registry_resources import resource_body
from tsunagu_peer import ok

CREATED = "jp.tsunagu.registry.resource.created"


def subscriber(suite, prefix):
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    sock.connect(suite.events_out_endpoint)
    time.sleep(0.5)  # let the subscription reach the gateway before anything is published
    return sock


def receive(sock, timeout_ms=10000):
    assert sock.poll(timeout_ms), "no event arrived"
    topic, body = sock.recv_multipart()
    return topic.decode(), json.loads(body)


def create(suite, tenant, name):
    with Closing(suite.client(token=token_for(suite, tenant, ["editor"]))) as client:
        org = ok(client.call("registry", "organization.create", {"name": f"{name}の法人"}))
        municipality = "131016" if tenant == "130001" else "271004"
        return ok(client.call("registry", "resource.create", resource_body(org["id"], name=name, municipality_code=municipality)))


def test_subscribers_get_events_of_their_topic_and_can_replay(suite):
    tokyo_only = subscriber(suite, f"{CREATED}/130001")
    everything = subscriber(suite, "jp.tsunagu.registry.")
    try:
        osaka = create(suite, "270008", "大阪の相談所")
        tokyo = create(suite, "130001", "東京の相談所")

        topic, event = receive(tokyo_only)
        assert topic == f"{CREATED}/130001"
        assert event["subject"] == f"resources/{tokyo['id']}" and event["type"] == CREATED
        assert event["specversion"] == "1.0" and event["data"]["name"] == "東京の相談所"
        assert not tokyo_only.poll(500), "the Osaka event must not reach a Tokyo-only subscriber"

        seen = [receive(everything)[1] for _ in range(2)]
        assert [e["data"]["id"] for e in seen] == [osaka["id"], tokyo["id"]]
        assert seen[0]["sequence"] < seen[1]["sequence"]

        # A subscriber that missed the Tokyo event replays it from the sequence before it.
        with Closing(suite.client()) as client:
            replay = ok(client.call("registry", "events.read", {"after": seen[1]["sequence"] - 1, "limit": 1}))
        assert replay["events"][0]["id"] == event["id"]
    finally:
        tokyo_only.close()
        everything.close()
