"""Every queue is bounded and every slot is honest: an instance keeps a slot until it answers,
expired requests leave the queue, an instance never runs more than it announced, and a vanished
instance is noticed on the first send to it."""
import json
import time

import zmq

from conftest import Closing, free_port, holder_of
from tsunagu_peer import MARKER, ok


def slowpoke_entry(suite):
    with Closing(suite.client()) as client:
        return next(s for s in ok(client.call("tsunagu.gateway", "services.list"))["services"] if s["name"] == "slowpoke")


def test_a_slot_is_held_until_the_instance_answers_and_expired_requests_leave_the_queue(make_suite):
    suite = make_suite()
    suite.start_gateway()
    suite.start_slowpoke("busy")  # concurrency 4
    suite.wait_for_instances("slowpoke", 1)
    with Closing(suite.client()) as client:
        for _ in range(4):  # fill the four slots with work that outlives its deadline
            client.send("slowpoke", "sleep", {"ms": 4000}, deadline_ms=300)
        for _ in range(10):  # and queue ten more that expire while waiting
            client.send("slowpoke", "sleep", {"ms": 1}, deadline_ms=600)
        codes = [client.receive(timeout_ms=5000)[0]["error"]["code"] for _ in range(14)]
    assert codes == ["timeout"] * 14
    entry = slowpoke_entry(suite)
    # The instance still runs the four: their slots stay taken; the expired ones left the queue.
    assert entry["instances"][0]["in_flight"] == 4 and entry["queued"] == 0, entry
    deadline = time.monotonic() + 10
    while slowpoke_entry(suite)["instances"][0]["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert slowpoke_entry(suite)["instances"][0]["in_flight"] == 0
    with Closing(suite.client()) as client:
        assert ok(client.call("slowpoke", "sleep", {"ms": 1}))["instance"] == "busy"


def test_an_instance_never_runs_more_than_it_announced(suite, tmp_path):
    """A registry instance announcing concurrency 2 gets ten requests at once from a peer that is
    not a well-behaved gateway: two run, eight are answered `unavailable` at once."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    fake = zmq.Context.instance().socket(zmq.ROUTER)
    fake.setsockopt(zmq.LINGER, 0)
    fake.bind(endpoint)
    registry = suite.start("tsunagu-registry", env={
        "TSUNAGU_WORKER_ENDPOINT": endpoint, "TSUNAGU_CONCURRENCY": "2", "TSUNAGU_TESTS_ONLY_REPLY_DELAY_MS": "1500",
        "TSUNAGU_SERVICE_TOKEN": suite.service_token("registry"), "TSUNAGU_EVENTS_IN_ENDPOINT": f"tcp://127.0.0.1:{free_port()}"})
    try:
        assert fake.poll(20000), "the registry did not connect"
        identity, *ready = fake.recv_multipart()
        assert ready[:3] == [b"", b"MDPW01", b"\x01"] and json.loads(ready[4])["concurrency"] == 2
        for n in range(10):
            envelope = json.dumps({"v": 1, "op": "area.get", "id": f"r{n}", "deadline_ms": 10000,
                                   "principal": {"tenant": "national", "roles": ["admin"]}}).encode()
            fake.send_multipart([identity, b"", b"MDPW01", b"\x02", n.to_bytes(8, "big"), b"", MARKER, envelope, b'{"code":"131016"}'])
        replies = {}
        deadline = time.monotonic() + 15
        while len(replies) < 10 and time.monotonic() < deadline:
            if fake.poll(200):
                frames = fake.recv_multipart()
                if frames[3] == b"\x03":
                    replies[int.from_bytes(frames[4], "big")] = json.loads(frames[7])
        statuses = sorted(r["status"] if r["status"] == "ok" else r["error"]["code"] for r in replies.values())
        assert statuses == ["ok"] * 2 + ["unavailable"] * 8, statuses
        assert registry.alive()
    finally:
        fake.close()


def test_a_vanished_instance_is_noticed_on_the_next_send(make_suite):
    """With heartbeats every 5 s (an instance is declared dead only after 15 s), a request held by
    an instance killed with -9 is still answered by the other one well within its 8 s deadline:
    the first send to the dead instance fails (ZMQ_ROUTER_MANDATORY) and it is removed at once."""
    suite = make_suite({"TSUNAGU_HEARTBEAT_MS": "5000"})
    suite.start_gateway()
    first, second = suite.start_slowpoke("first"), suite.start_slowpoke("second")
    suite.wait_for_instances("slowpoke", 2)
    with Closing(suite.client()) as client:
        request_id = client.send("slowpoke", "sleep", {"ms": 1000}, deadline_ms=8000)
        holder = holder_of(suite, request_id, (first, second), timeout=5)
        holder.kill9()
        for _ in range(3):  # more traffic: some of it is routed to the dead instance first
            client.send("slowpoke", "sleep", {"ms": 1}, deadline_ms=8000)
        replies = {}
        for _ in range(4):
            envelope, _ = client.receive(timeout_ms=9000)
            replies[envelope["id"]] = envelope
    assert replies[request_id]["status"] == "ok", replies[request_id]
    assert all(e["status"] == "ok" for e in replies.values()), replies
    assert "unreachable" in suite.gateway.output()
