"""The event stream from both ends, written from docs/protocol.md §10: a subscriber (DEALER,
TSUNAGU-EVENTS/1) that keeps the subscriber's rule — every sequence is accounted for by an EVENT
or a WITHHELD range — and a pusher that hands events and heads to the gateway's events-in
endpoint with a service credential, as a service's publisher does."""
import json
import queue
import threading
import time
import uuid

import zmq

HEADER = b"TSUNAGU-EVENTS/1"


class Subscriber:
    """One subscriber connection. A thread of its own owns the socket: it reads every message into
    a queue and answers each HEARTBEAT with a PING (so the gateway keeps the subscription), until
    an ERROR ends it. The test thread reads the queue."""

    def __init__(self, endpoint, token=None, streams=("registry",), subscribe=True, timeout=10):
        self.endpoint = endpoint
        self.messages = queue.Queue()
        self.outgoing = queue.Queue()
        self.stopped = threading.Event()
        self.events = []          # EVENT bodies, in arrival order
        self.withheld = []        # WITHHELD bodies
        self.heartbeats = []      # HEARTBEAT bodies
        self.errors = []          # ERROR bodies
        self.accounted = {}       # stream -> set of sequences accounted for
        self.subscribed = None    # the SUBSCRIBED body
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if subscribe:
            self.subscribe(token, streams, timeout)

    def _run(self):
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        pinging = True
        try:
            while not self.stopped.is_set():
                while not self.outgoing.empty():
                    sock.send_multipart(self.outgoing.get())
                if sock.poll(20):
                    frames = sock.recv_multipart()
                    self.messages.put(frames)
                    if len(frames) == 3 and frames[1] == b"HEARTBEAT" and pinging:
                        sock.send_multipart([HEADER, b"PING", b"{}"])
                    if len(frames) == 3 and frames[1] == b"ERROR":
                        pinging = False  # the subscription (if any) is gone
                    if len(frames) == 3 and frames[1] == b"SUBSCRIBED":
                        pinging = True
        finally:
            sock.close()

    def send(self, command, body=None, raw=None):
        self.outgoing.put(raw if raw is not None else [HEADER, command.encode(), json.dumps(body or {}).encode()])

    def subscribe(self, token, streams, timeout=10):
        """SUBSCRIBE; returns ("SUBSCRIBED", heads) or ("ERROR", {"code", "message"})."""
        body = {"streams": list(streams)}
        if token is not None:
            body["token"] = token
        self.send("SUBSCRIBE", body)
        command, answer = self.next(timeout, until=("SUBSCRIBED", "ERROR"))
        if command == "SUBSCRIBED":
            self.subscribed = answer
        return command, answer

    def next(self, timeout=10, until=None):
        """The next message as (command, body), recording it; with `until`, the next of those commands."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {until or 'message'} within {timeout} s")
            try:
                frames = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            assert len(frames) == 3 and frames[0] == HEADER, frames
            command, body = frames[1].decode(), json.loads(frames[2])
            self._record(command, body)
            if until is None or command in until:
                return command, body

    def _record(self, command, body):
        if command == "EVENT":
            self.events.append(body)
            self.accounted.setdefault(body["stream"] if "stream" in body else body["source"].rsplit("/", 1)[-1], set()).add(body["sequence"])
        elif command == "WITHHELD":
            self.withheld.append(body)
            self.accounted.setdefault(body["stream"], set()).update(range(body["from"], body["to"] + 1))
        elif command == "HEARTBEAT":
            self.heartbeats.append(body)
        elif command == "ERROR":
            self.errors.append(body)

    def drain(self, seconds):
        """Reads (and records) everything that arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.next(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break

    def wait_for(self, condition, timeout=10, what="the condition"):
        """Reads until `condition(self)` holds; bounded by `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not condition(self):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{what} did not happen within {timeout} s; events {[e.get('sequence') for e in self.events]}, "
                                     f"withheld {self.withheld}, errors {self.errors}")
            try:
                self.next(min(left, 0.5))
            except TimeoutError:
                pass
        return self

    def event_about(self, subject, timeout=10):
        """The first EVENT about `subject` (waiting for it)."""
        self.wait_for(lambda s: any(e.get("subject") == subject for e in s.events), timeout, f"an event about {subject}")
        return next(e for e in self.events if e.get("subject") == subject)

    def gaps(self, stream, upto=None):
        """Sequences from the first one accounted for up to `upto` (or the last) that are not."""
        seen = self.accounted.get(stream, set())
        if not seen:
            return []
        last = max(seen) if upto is None else upto
        return [n for n in range(min(seen), last + 1) if n not in seen]

    def close(self):
        self.stopped.set()
        self.thread.join(5)


class PrefixSubscriber:
    """The old SUB-style interface (`poll`, and `receive` giving `(topic, event)`) over a
    subscriber of every registry event the admin may see, filtered by topic prefix here."""

    def __init__(self, suite, prefix, token=None):
        from conftest import ADMIN_TOKEN
        self.prefix = prefix
        self.subscriber = Subscriber(suite.events_out_endpoint, token or ADMIN_TOKEN, ["registry"])
        assert self.subscriber.subscribed is not None, self.subscriber.errors
        self.taken = 0

    def poll(self, timeout_ms):
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            pending = self.subscriber.events[self.taken:]
            if any(f"{e['type']}/{e['tenant']}".startswith(self.prefix) for e in pending):
                return True
            self.taken += len(pending)
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                self.subscriber.next(min(left, 0.2))
            except TimeoutError:
                pass

    def receive(self):
        assert self.poll(10000), "no event arrived"
        while True:
            event = self.subscriber.events[self.taken]
            self.taken += 1
            topic = f"{event['type']}/{event['tenant']}"
            if topic.startswith(self.prefix):
                return topic, event

    def close(self):
        self.subscriber.close()


class Pusher:
    """Pushes frames to the gateway's events-in endpoint, as a service's publisher does."""

    def __init__(self, endpoint):
        self.sock = zmq.Context.instance().socket(zmq.PUSH)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    @staticmethod
    def event(stream, sequence, tenant, type_suffix="meeting.held", data=None, with_stream=True):
        event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": f"/tsunagu/{stream}",
                 "type": f"jp.tsunagu.{stream}.{type_suffix}", "subject": f"tests/{sequence}",
                 "time": "2026-12-01T00:00:00.000000Z", "datacontenttype": "application/json",
                 "sequence": sequence, "tenant": tenant, "data": data if data is not None else {}}
        if with_stream:
            event["stream"] = stream
        return event

    def push(self, event, credential):
        topic = f"{event['type']}/{event['tenant']}".encode()
        self.sock.send_multipart([topic, json.dumps(event).encode(), credential.encode() if isinstance(credential, str) else credential])

    def push_head(self, stream, sequence, credential):
        self.sock.send_multipart([b"tsunagu.head", json.dumps({"stream": stream, "sequence": sequence}).encode(), credential.encode()])

    def close(self):
        self.sock.close()
