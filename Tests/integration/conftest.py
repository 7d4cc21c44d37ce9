"""Fixtures that start real processes: the gateway and services built by the test command, on free
loopback ports, against the throwaway PostgreSQL that deploy/test.sh started."""
import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time

import pytest

from tsunagu_peer import Client, CurveClient, ok

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("TSUNAGU_BIN")
# The admin URL, for tests that look at the data; each service connects as its own role, which
# owns only its schema (deploy/database-roles.sql, run by deploy/test.sh).
DATABASE_URL = os.environ.get("TSUNAGU_DATABASE_URL")
SERVICE_DATABASE_URLS = {
    "tsunagu-gateway": os.environ.get("TSUNAGU_GATEWAY_DATABASE_URL", DATABASE_URL),
    "tsunagu-registry": os.environ.get("TSUNAGU_REGISTRY_DATABASE_URL", DATABASE_URL),
    "tsunagu-meetings": os.environ.get("TSUNAGU_MEETINGS_DATABASE_URL", DATABASE_URL),
}
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
HEARTBEAT_MS = 200
EVENTS_HEARTBEAT_MS = 500
MAX_MESSAGE_BYTES = 65536


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """One child process with its output in a log file; stopped by SIGTERM (or killed) at teardown."""

    def __init__(self, name, argv, env, log_dir):
        self.name = name
        self.log_path = os.path.join(log_dir, f"{name}-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def terminate(self, timeout=15):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as handle:
            return handle.read().decode(errors="replace")


class Suite:
    """A gateway plus service instances on ports of their own."""

    def __init__(self, tmp_path, extra_env=None):
        assert BIN and DATABASE_URL, "run through deploy/test.sh (TSUNAGU_BIN, TSUNAGU_DATABASE_URL)"
        self.tmp = str(tmp_path)
        self.env = dict(os.environ)
        self.set_endpoints()
        self.env.update({
            "TSUNAGU_DATABASE_URL": DATABASE_URL,
            "TSUNAGU_ADMIN_TOKEN": ADMIN_TOKEN,
            "TSUNAGU_HEARTBEAT_MS": str(HEARTBEAT_MS),
            "TSUNAGU_EVENTS_HEARTBEAT_MS": str(EVENTS_HEARTBEAT_MS),
            "TSUNAGU_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
            "TSUNAGU_TOKEN_CACHE_MS": "30000",
            "TSUNAGU_LOG_LEVEL": "info",
            # The meetings service does not start without a case master key: one per suite.
            "TSUNAGU_MEETINGS_CASE_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        })
        self.env.update(extra_env or {})
        self.processes = []
        self.gateway = None
        self.service_tokens = {}
        self.service_token_ids = {}

    def start(self, name, argv=None, env=None):
        argv = argv or [os.path.join(BIN, name)]
        own = {"TSUNAGU_DATABASE_URL": SERVICE_DATABASE_URLS[name]} if name in SERVICE_DATABASE_URLS else {}
        # `env` wins, even over the service's own database URL.
        process = Process(name, argv, {**self.env, **own, **(env or {})}, self.tmp)
        self.processes.append(process)
        return process

    def start_gateway(self):
        """Starts the gateway and waits until it listens. free_port only saw a port free: another
        process may take it before the gateway binds. A gateway that exits with "address in use"
        is started again on new ports (at most five times), before any service is told them."""
        for _ in range(5):
            self.gateway = self.start("tsunagu-gateway")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.gateway.alive() and "gateway listening" not in self.gateway.output():
                time.sleep(0.02)
            if self.gateway.alive() or "addressInUse" not in self.gateway.output():
                return self.gateway
            self.processes.remove(self.gateway)
            self.set_endpoints()
        return self.gateway

    def set_endpoints(self):
        self.client_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.worker_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.events_in_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.events_out_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.env.update({
            "TSUNAGU_CLIENT_ENDPOINT": self.client_endpoint,
            "TSUNAGU_WORKER_ENDPOINT": self.worker_endpoint,
            "TSUNAGU_EVENTS_IN_ENDPOINT": self.events_in_endpoint,
            "TSUNAGU_EVENTS_OUT_ENDPOINT": self.events_out_endpoint,
        })

    def service_token(self, service):
        """The service credential for `service`, issued once per suite by the admin (as an
        operator does with `tsunagu token create --service NAME`)."""
        if service not in self.service_tokens:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with Closing(self.client()) as client:
                        issued = ok(client.call("tsunagu.gateway", "service_tokens.create",
                                                {"service": service, "label": "tests"}, timeout_ms=2000))
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
            self.service_tokens[service] = issued["token"]
            self.service_token_ids[service] = issued["id"]
        return self.service_tokens[service]

    def start_registry(self, env=None):
        return self.start("tsunagu-registry", env=dict({"TSUNAGU_SERVICE_TOKEN": self.service_token("registry")}, **(env or {})))

    def start_slowpoke(self, name, credential=None, service="slowpoke"):
        credential = self.service_token(service) if credential is None else credential
        return self.start("slowpoke-" + name, [sys.executable, os.path.join(HERE, "tsunagu_peer.py"),
                                               self.worker_endpoint, name, str(HEARTBEAT_MS), credential, service])

    def client(self, token=ADMIN_TOKEN):
        """A client of this suite's gateway; over CURVE when the gateway has a key."""
        server_key = self.env.get("TSUNAGU_GATEWAY_CURVE_PUBLIC_KEY")
        if server_key and self.env.get("TSUNAGU_GATEWAY_CURVE_SECRET_KEY"):
            return CurveClient(self.client_endpoint, token, server_key)
        return Client(self.client_endpoint, token)

    def instances(self, service):
        with Closing(self.client()) as client:
            catalogue = ok(client.call("tsunagu.gateway", "services.list"))
        for entry in catalogue["services"]:
            if entry["name"] == service:
                return entry["instances"]
        return []

    def wait_for_instances(self, service, count, timeout=20):
        """Waits until the gateway lists exactly `count` live instances of `service`."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            try:
                seen = [i for i in self.instances(service) if not i["draining"]]
                if len(seen) == count:
                    return seen
            except (TimeoutError, AssertionError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"{service}: expected {count} instances, saw {seen}\n" + self.logs())

    def logs(self):
        return "\n".join(f"--- {p.name} ---\n{p.output()[-4000:]}" for p in self.processes)

    def stop(self):
        for process in reversed(self.processes):
            process.terminate()


def load_and_interrupt(suite, interrupt, total=600, in_flight_max=16, interrupt_after=150, service="registry"):
    """Keeps `in_flight_max` area.get calls in flight until `total` are answered, calling
    `interrupt()` once after `interrupt_after` answers. Every answer must be ok. Bounded to 30 s."""
    with Closing(suite.client()) as client:
        sent = answered = in_flight = 0
        interrupted = False
        start = time.monotonic()
        while answered < total and time.monotonic() - start < 30:
            while in_flight < in_flight_max and sent < total:
                client.send(service, "area.get", {"code": "130001"})
                sent += 1
                in_flight += 1
            envelope, _ = client.receive()
            assert envelope["status"] == "ok", envelope
            answered += 1
            in_flight -= 1
            if answered == interrupt_after and not interrupted:
                interrupt()
                interrupted = True
    assert interrupted and answered == total, (answered, total)


def holder_of(suite, request_id, processes, timeout=10):
    """The slowpoke process among `processes` that holds `request_id` (it prints `got <id>`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = next((p for p in processes if f"got {request_id}" in p.output()), None)
        if holder is not None:
            return holder
        time.sleep(0.02)
    raise AssertionError(f"no instance got {request_id}\n" + suite.logs())


class Closing:
    def __init__(self, client):
        self.client = client

    def __enter__(self):
        return self.client

    def __exit__(self, *exc):
        self.client.close()


@pytest.fixture
def suite(tmp_path):
    s = Suite(tmp_path)
    s.start_gateway()
    s.start_registry()
    s.wait_for_instances("registry", 1)
    yield s
    s.stop()


@pytest.fixture
def make_suite(tmp_path):
    made = []

    def factory(extra_env=None):
        s = Suite(tmp_path, extra_env)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.stop()
