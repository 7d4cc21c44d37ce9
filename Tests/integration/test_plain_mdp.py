"""Plain 7/MDP peers (pyzmq, written from the RFC alone) call and serve through the gateway."""
import json
import threading
import time

import zmq

from conftest import Closing
from mdp_plain import plain_request, run_echo_worker
from tsunagu_peer import ok


def start_echo(suite, service="echo"):
    stop = threading.Event()
    thread = threading.Thread(target=run_echo_worker, args=(suite.worker_endpoint, service, stop), daemon=True)
    thread.start()
    return stop, thread


def test_plain_client_and_plain_worker_through_the_gateway(make_suite):
    suite = make_suite({"TSUNAGU_OPEN_SERVICES": "echo"})
    suite.start_gateway()
    stop, thread = start_echo(suite)
    try:
        suite.wait_for_instances("echo", 1)
        context = zmq.Context.instance()
        assert plain_request(context, suite.client_endpoint, "echo", [b"hello", b"world"]) == [b"hello", b"world"]
        # 8/MMI service discovery
        assert plain_request(context, suite.client_endpoint, "mmi.service", [b"echo"]) == [b"200"]
        assert plain_request(context, suite.client_endpoint, "mmi.service", [b"nothing-here"]) == [b"404"]
        assert plain_request(context, suite.client_endpoint, "mmi.unknown", [b"x"]) == [b"501"]
        with Closing(suite.client()) as client:
            catalogue = {s["name"]: s for s in ok(client.call("tsunagu.gateway", "services.list"))["services"]}
        assert catalogue["echo"]["kind"] == "opaque"
    finally:
        stop.set()
        thread.join(5)


def test_tsunagu_client_calls_an_opaque_worker_and_gets_a_wrapped_reply(make_suite):
    suite = make_suite({"TSUNAGU_OPEN_SERVICES": "echo"})
    suite.start_gateway()
    stop, thread = start_echo(suite)
    try:
        suite.wait_for_instances("echo", 1)
        with Closing(suite.client()) as client:
            envelope, payload = client.call("echo", "anything", {"x": 1})
        assert envelope["status"] == "ok"
        assert payload == {"x": 1}
    finally:
        stop.set()
        thread.join(5)


def test_a_plain_worker_may_serve_only_an_open_service(make_suite):
    """A plain 7/MDP worker carries no credential: for a service the operator did not list in
    TSUNAGU_OPEN_SERVICES, the gateway refuses it (and logs it), and callers find no such service."""
    suite = make_suite()  # echo is not listed in TSUNAGU_OPEN_SERVICES
    suite.start_gateway()
    suite.wait_for_instances("registry", 0)
    stop, thread = start_echo(suite)
    try:
        time.sleep(1.0)
        assert suite.instances("echo") == []
        with Closing(suite.client()) as client:
            envelope, _ = client.call("echo", "anything", {"x": 1})
        assert envelope["error"]["code"] == "unknown_service"
        assert "refused an instance" in suite.gateway.output()
    finally:
        stop.set()
        thread.join(5)


def test_a_plain_client_needs_an_open_service(make_suite):
    """A plain client (no envelope, so no token) reaches only open services."""
    suite = make_suite({"TSUNAGU_OPEN_SERVICES": "echo"})
    suite.start_gateway()
    suite.start_slowpoke("tsunagu")
    suite.wait_for_instances("slowpoke", 1)
    reply = plain_request(zmq.Context.instance(), suite.client_endpoint, "slowpoke", [b"hello"])
    assert reply[0] == b"TSUNAGU/1"
    assert json.loads(reply[1])["error"]["code"] == "bad_request"
