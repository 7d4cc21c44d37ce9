"""Only processes the operator trusts serve or publish: a worker needs a service credential for
its service, events need one too; catalogue identities are for administrators; revoking a
credential disconnects the instances that used it."""
import json
import time

import zmq

from conftest import ADMIN_TOKEN, Closing
from event_stream import Subscriber
from test_events import create
from test_registry_areas import token_for
from tsunagu_peer import SLOWPOKE_MANIFEST, ok


def rogue_worker(suite, service, credential):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(suite.worker_endpoint)
    frames = [b"", b"MDPW01", b"\x01", service.encode(), json.dumps(dict(SLOWPOKE_MANIFEST, service=service)).encode()]
    if credential is not None:
        frames.append(credential)
    sock.send_multipart(frames)
    return sock


def test_a_worker_without_a_valid_credential_cannot_register_or_take_traffic(suite):
    before = suite.instances("registry")
    with Closing(suite.client()) as client:
        manifest_before = [s for s in ok(client.call("tsunagu.gateway", "services.list"))["services"] if s["name"] == "registry"]
    client_token = token_for(suite, "130001", ["editor"])
    other_service = suite.service_token("slowpoke")
    rogues = [rogue_worker(suite, "registry", None),                     # no credential
              rogue_worker(suite, "registry", b"tss_" + b"0" * 64),      # an invented one
              rogue_worker(suite, "registry", client_token.encode()),    # a client token
              rogue_worker(suite, "registry", other_service.encode())]   # another service's credential
    try:
        for rogue in rogues:  # each is told to go away, and is given nothing else
            assert rogue.poll(5000), "the gateway must answer a refused READY with DISCONNECT"
            assert rogue.recv_multipart() == [b"", b"MDPW01", b"\x05"]
        with Closing(suite.client()) as client:
            for _ in range(50):
                envelope, payload = client.call("registry", "area.get", {"code": "131016"})
                assert envelope["status"] == "ok" and payload["name"] == "千代田区"
            after = [s for s in ok(client.call("tsunagu.gateway", "services.list"))["services"] if s["name"] == "registry"]
        for rogue in rogues:
            assert rogue.poll(100) == 0, "a refused worker got traffic"
        assert len(suite.instances("registry")) == len(before) == 1
        assert after[0]["operations"] == manifest_before[0]["operations"], "a refused worker changed the catalogue"
        assert suite.gateway.output().count("refused an instance") >= 4
    finally:
        for rogue in rogues:
            rogue.close()


def test_a_rogue_event_pusher_reaches_no_subscriber(suite):
    sub = Subscriber(suite.events_out_endpoint, ADMIN_TOKEN, ["registry"])
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(suite.events_in_endpoint)
    forged = json.dumps({"specversion": "1.0", "type": "jp.tsunagu.registry.resource.created", "id": "forged",
                         "source": "/tsunagu/registry", "stream": "registry", "tenant": "130001", "sequence": 1}).encode()
    topic = b"jp.tsunagu.registry.resource.created/130001"
    try:
        assert sub.subscribed is not None, sub.errors
        push.send_multipart([topic, forged])                                  # no credential
        push.send_multipart([topic, forged, b"tss_" + b"1" * 64])            # an invented one
        push.send_multipart([topic, forged, token_for(suite, "130001", ["editor"]).encode()])  # a client token
        sub.drain(1.5)
        assert sub.events == [] and sub.withheld == [], "a forged event reached a subscriber"
        # The real service's events still arrive (the registry pushes with its credential).
        created = create(suite, "130001", "本物の相談所")
        assert sub.event_about(f"resources/{created['id']}")["id"] != "forged"
        assert all(e["id"] != "forged" for e in sub.events)
        assert "dropped events pushed with an unknown or revoked service credential" in suite.gateway.output() \
            or "dropped a malformed event message" in suite.gateway.output()
    finally:
        sub.close()
        push.close()


def test_instance_ids_are_shown_to_administrators_only(suite):
    with Closing(suite.client()) as admin:
        entry = next(s for s in ok(admin.call("tsunagu.gateway", "services.list"))["services"] if s["name"] == "registry")
    assert all(i.get("id") for i in entry["instances"])
    with Closing(suite.client(token=token_for(suite, "130001", ["editor"]))) as editor:
        entry = next(s for s in ok(editor.call("tsunagu.gateway", "services.list"))["services"] if s["name"] == "registry")
    assert entry["instances"] and all("id" not in i or i["id"] is None for i in entry["instances"])


def test_revoking_a_service_credential_disconnects_its_instances(make_suite):
    suite = make_suite()
    suite.start_gateway()
    credential = suite.service_token("slowpoke")
    worker = suite.start_slowpoke("revoked", credential=credential)
    suite.wait_for_instances("slowpoke", 1)
    token_id = suite.service_token_ids["slowpoke"]
    with Closing(suite.client()) as admin:
        listed = next(t for t in ok(admin.call("tsunagu.gateway", "tokens.list"))["tokens"] if t["id"] == token_id)
        assert listed["service"] == "slowpoke" and "token" not in listed
        ok(admin.call("tsunagu.gateway", "tokens.revoke", {"id": token_id}))
    suite.wait_for_instances("slowpoke", 0)
    time.sleep(1.0)  # it reconnects with the revoked credential, and is refused again
    assert suite.instances("slowpoke") == []
    assert "disconnected" in worker.output()


def test_only_a_national_admin_issues_service_credentials(suite):
    with Closing(suite.client(token=token_for(suite, "130001", ["admin"]))) as tenant_admin:
        envelope, _ = tenant_admin.call("tsunagu.gateway", "service_tokens.create", {"service": "registry"})
    assert envelope["error"]["code"] == "forbidden"
    with Closing(suite.client(token=suite.service_token("registry"))) as service_as_client:
        envelope, _ = service_as_client.call("registry", "area.get", {"code": "131016"})
    assert envelope["error"]["code"] == "unauthorized", "a service credential is not a client token"
