"""Several instances share the work; an instance killed with a request in flight loses nothing."""
import time

from conftest import Closing, holder_of, load_and_interrupt
from tsunagu_peer import ok


def test_two_registry_instances_both_receive_work(suite):
    suite.start_registry()
    suite.wait_for_instances("registry", 2)
    with Closing(suite.client()) as client:
        ids = [client.send("registry", "area.get", {"code": "131016"}) for _ in range(200)]
        answered = set()
        for _ in ids:
            envelope, payload = client.receive()
            assert envelope["status"] == "ok", envelope
            assert payload["name"] == "千代田区"
            answered.add(envelope["id"])
    assert answered == set(ids)
    served = [i["served"] for i in suite.instances("registry")]
    assert len(served) == 2 and all(n > 0 for n in served), served


def test_kill9_with_request_in_flight_is_answered_by_the_other_instance(make_suite):
    suite = make_suite()
    suite.start_gateway()
    first, second = suite.start_slowpoke("first"), suite.start_slowpoke("second")
    suite.wait_for_instances("slowpoke", 2)
    with Closing(suite.client()) as client:
        request_id = client.send("slowpoke", "sleep", {"ms": 1500}, deadline_ms=20000)
        holder = holder_of(suite, request_id, (first, second))
        holder.kill9()
        survivor = second if holder is first else first
        envelope, payload = client.receive(timeout_ms=15000)
    assert envelope["id"] == request_id
    assert envelope["status"] == "ok", envelope
    assert payload["instance"] == survivor.name.split("-")[1]
    remaining = suite.wait_for_instances("slowpoke", 1)
    assert len(remaining) == 1


def test_kill9_of_a_registry_instance_under_load_loses_no_request(suite):
    second = suite.start_registry()
    suite.wait_for_instances("registry", 2)
    load_and_interrupt(suite, second.kill9)
    suite.wait_for_instances("registry", 1)


def test_no_instance_up_answers_unavailable_at_once(make_suite):
    suite = make_suite()
    suite.start_gateway()
    worker = suite.start_slowpoke("only")
    suite.wait_for_instances("slowpoke", 1)
    worker.kill9()
    suite.wait_for_instances("slowpoke", 0)
    with Closing(suite.client()) as client:
        started = time.monotonic()
        envelope, _ = client.call("slowpoke", "sleep", {"ms": 1})
        elapsed = time.monotonic() - started
    assert envelope["error"]["code"] == "unavailable"
    assert elapsed < 5  # answered at once, not after the 10 s deadline


def test_deadline_passing_answers_timeout(make_suite):
    suite = make_suite()
    suite.start_gateway()
    suite.start_slowpoke("slow")
    suite.wait_for_instances("slowpoke", 1)
    with Closing(suite.client()) as client:
        envelope, _ = client.call("slowpoke", "sleep", {"ms": 3000}, deadline_ms=300)
        assert envelope["error"]["code"] == "timeout"
        assert ok(client.call("slowpoke", "sleep", {"ms": 1}))["instance"] == "slow"
