"""One lifecycle for every process: SIGTERM drains and exits 0; a second SIGTERM ends a process
whose stop hangs, at once."""
import signal
import time

from conftest import Closing


def test_a_second_sigterm_ends_a_stuck_service(make_suite):
    suite = make_suite()
    suite.start_gateway()
    stuck = suite.start_registry(env={"TSUNAGU_TESTS_ONLY_REPLY_DELAY_MS": "30000"})
    suite.wait_for_instances("registry", 1)
    with Closing(suite.client()) as client:
        client.send("registry", "area.get", {"code": "131016"}, deadline_ms=60000)
        time.sleep(0.5)  # the instance holds the request (its reply waits 30 s)
        stuck.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert stuck.alive(), "the first SIGTERM drains: it waits for the request it holds"
        stuck.proc.send_signal(signal.SIGTERM)
        stuck.proc.wait(timeout=5)
    assert stuck.proc.returncode == 130, stuck.output()[-2000:]
    assert "second signal while stopping" in stuck.output()


def test_sigterm_answers_what_is_in_flight_then_exits_cleanly(make_suite):
    suite = make_suite()
    suite.start_gateway()
    instance = suite.start_registry(env={"TSUNAGU_TESTS_ONLY_REPLY_DELAY_MS": "1500"})
    suite.wait_for_instances("registry", 1)
    with Closing(suite.client()) as client:
        request_id = client.send("registry", "area.get", {"code": "131016"}, deadline_ms=20000)
        time.sleep(0.3)
        instance.proc.send_signal(signal.SIGTERM)
        envelope, payload = client.receive(timeout_ms=10000)
    assert envelope["id"] == request_id and envelope["status"] == "ok" and payload["name"] == "千代田区"
    instance.proc.wait(timeout=15)
    assert instance.proc.returncode == 0, instance.output()[-2000:]


def test_the_gateway_exits_cleanly_on_sigterm(suite):
    assert suite.gateway.terminate() == 0


def test_the_gateway_answers_what_is_in_flight_when_stopped_gracefully(make_suite):
    """SIGTERM to the gateway: the requests it already accepted get their real answers (no reply
    is lost to closing), new ones are refused with `unavailable`, and it exits 0."""
    suite = make_suite()
    suite.start_gateway()
    suite.start_slowpoke("slow")
    suite.wait_for_instances("slowpoke", 1)
    with Closing(suite.client()) as client:
        ids = [client.send("slowpoke", "sleep", {"ms": 1500}, deadline_ms=20000) for _ in range(3)]
        time.sleep(0.3)
        suite.gateway.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        late = client.send("slowpoke", "sleep", {"ms": 1}, deadline_ms=5000)
        replies = {}
        for _ in range(4):
            envelope, payload = client.receive(timeout_ms=10000)
            replies[envelope["id"]] = envelope
    assert all(replies[i]["status"] == "ok" for i in ids), replies
    assert replies[late]["error"]["code"] == "unavailable" and "stopping" in replies[late]["error"]["message"]
    suite.gateway.proc.wait(timeout=15)
    assert suite.gateway.proc.returncode == 0


def test_the_gateway_stops_after_its_drain_timeout_even_with_work_in_flight(make_suite):
    suite = make_suite({"TSUNAGU_DRAIN_TIMEOUT_MS": "500"})
    suite.start_gateway()
    suite.start_slowpoke("slow")
    suite.wait_for_instances("slowpoke", 1)
    with Closing(suite.client()) as client:
        request_id = client.send("slowpoke", "sleep", {"ms": 5000}, deadline_ms=20000)
        time.sleep(0.3)
        suite.gateway.proc.send_signal(signal.SIGTERM)
        envelope, _ = client.receive(timeout_ms=4000)  # well before the 5 s the work takes
    assert envelope["id"] == request_id and envelope["error"]["code"] == "unavailable", envelope
    suite.gateway.proc.wait(timeout=10)
    assert suite.gateway.proc.returncode == 0
