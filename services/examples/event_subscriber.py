#!/usr/bin/env python3
"""An example Tsunagu event subscriber, written from docs/events.md with pyzmq alone.

It subscribes to the gateway's events-out endpoint with a token, replays with `events.read`
(through the gateway's client endpoint, 7/MDP + TSUNAGU/1) whatever it missed since the last
sequence stored in its state file, then follows the live stream: it accounts for every sequence
number (an EVENT or a WITHHELD range), replays any gap (a jump, or a heartbeat above what it has
accounted for), and hands each event on once, deduplicated by id, as one JSON line on --output.

    python3 services/examples/event_subscriber.py --token "$TOKEN" --streams registry \\
        --state registry-events.json --output events.jsonl

Exit status: 0 after SIGTERM/SIGINT; 2 bad request; 3 unauthorized (bad or revoked token);
4 the gateway did not answer a replay. An `unavailable` refusal (the gateway is full or stopping)
is retried. Log lines (stderr) carry sequence numbers, never event content.
"""
import argparse
import collections
import json
import os
import signal
import sys
import time
import uuid

import zmq

EVENTS_MARKER = b"TSUNAGU-EVENTS/1"
CLIENT_MARKER = b"TSUNAGU/1"
MAX_REMEMBERED_IDS = 10_000  # ids kept for deduplication (the newest ones)
PAGE = 1000  # events.read limit


def log(message):
    print(f"event_subscriber: {message}", file=sys.stderr, flush=True)


class Retry(Exception):
    """The gateway asked to come back later (ERROR unavailable): subscribe again."""


class Fatal(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class State:
    """Per stream, the last sequence accounted for; and the ids handled lately. Kept in a JSON
    file that is replaced whole (write, fsync, rename), so a crash leaves the old or the new one."""

    def __init__(self, path, streams):
        self.path = path
        data = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        self.last = {s: int(data.get("last", {}).get(s, 0)) for s in streams}
        self.ids = collections.deque(data.get("ids", []), maxlen=MAX_REMEMBERED_IDS)
        self.id_set = set(self.ids)

    def seen(self, event_id):
        return event_id in self.id_set

    def remember(self, event_id):
        if len(self.ids) == self.ids.maxlen:
            self.id_set.discard(self.ids[0])
        self.ids.append(event_id)
        self.id_set.add(event_id)

    def save(self):
        temporary = f"{self.path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({"last": self.last, "ids": list(self.ids)}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)


def curve(sock, server_key):
    if server_key:
        sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
        sock.curve_serverkey = server_key.encode()


class Replayer:
    """`events.read` through the gateway's client endpoint: 7/MDP client frames with the
    TSUNAGU/1 envelope (docs/protocol.md)."""

    def __init__(self, context, endpoint, token, server_key, timeout_ms=15_000):
        self.sock = context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        curve(self.sock, server_key)
        self.sock.connect(endpoint)
        self.token = token
        self.timeout_ms = timeout_ms

    def read(self, stream, after):
        request_id = uuid.uuid4().hex
        envelope = {"v": 1, "op": "events.read", "id": request_id, "deadline_ms": self.timeout_ms, "token": self.token}
        body = {"after": after, "limit": PAGE}
        self.sock.send_multipart([b"", b"MDPC01", stream.encode(), CLIENT_MARKER, json.dumps(envelope).encode(),
                                  json.dumps(body).encode()])
        deadline = time.monotonic() + self.timeout_ms / 1000
        while True:
            left = int((deadline - time.monotonic()) * 1000)
            if left <= 0 or not self.sock.poll(left):
                raise Fatal(4, f"no answer to events.read on {stream} within {self.timeout_ms} ms")
            frames = self.sock.recv_multipart()
            if len(frames) < 5 or frames[1] != b"MDPC01" or frames[3] != CLIENT_MARKER:
                continue
            reply = json.loads(frames[4])
            if reply.get("id") not in (request_id, ""):
                continue  # a late answer to an earlier request
            if reply.get("status") != "ok":
                error = reply.get("error", {})
                status = 3 if error.get("code") in ("unauthorized", "forbidden") else 2
                raise Fatal(status, f"events.read on {stream}: {error.get('code')}: {error.get('message')}")
            return json.loads(frames[5])

    def close(self):
        self.sock.close()


class Subscriber:
    def __init__(self, args):
        self.args = args
        self.streams = [s for s in args.streams.split(",") if s]
        self.state = State(args.state, self.streams)
        self.context = zmq.Context.instance()
        self.replayer = Replayer(self.context, args.client_endpoint, args.token, args.server_key)
        self.output = sys.stdout if args.output == "-" else open(args.output, "a", encoding="utf-8")
        self.interval = args.heartbeat_ms / 1000
        self.sock = None
        self.stopping = False

    # MARK: handing events on

    def handle(self, event):
        """Hands an event on once (by id); returns whether it was new."""
        if self.state.seen(event["id"]):
            return False
        self.output.write(json.dumps(event, ensure_ascii=False) + "\n")
        self.output.flush()
        self.state.remember(event["id"])
        return True

    def replay(self, stream, target):
        """events.read from the last accounted sequence until it covers `target` (or the head)."""
        last = self.state.last[stream]
        if last < target:
            log(f"replaying {stream} after {last} (up to at least {target})")
        while last < target:
            page = self.replayer.read(stream, last)
            for event in page["events"]:
                self.handle(event)
            if page["last_sequence"] <= last:
                break  # the service has not numbered that far: nothing more to read now
            last = page["last_sequence"]
            self.state.last[stream] = last
            if last >= page["head"]:
                break
        self.state.save()

    # MARK: the live stream

    def send(self, command, body):
        self.sock.send_multipart([EVENTS_MARKER, command, json.dumps(body).encode()])

    def subscribe(self):
        """(Re)subscribes and replays up to the gateway's heads. Returns when live."""
        if self.sock is not None:
            self.sock.close()
        self.sock = self.context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        curve(self.sock, self.args.server_key)
        self.sock.connect(self.args.events_endpoint)
        self.send(b"SUBSCRIBE", {"token": self.args.token, "streams": self.streams})
        deadline = time.monotonic() + 3 * self.interval
        while True:
            left = int((deadline - time.monotonic()) * 1000)
            if self.stopping:
                return False
            if left <= 0 or not self.sock.poll(left):
                log("no answer to SUBSCRIBE; trying again")
                return False
            command, body = self.receive()
            if command == b"SUBSCRIBED":
                heads = body.get("streams", {})
                log("subscribed: " + ", ".join(f"{s} head {heads.get(s, 0)}, resuming after {self.state.last[s]}"
                                               for s in self.streams))
                for stream in self.streams:
                    self.replay(stream, int(heads.get(stream, 0)))
                return True
            if command == b"ERROR":
                try:
                    self.refused(body)
                except Retry:
                    return False
            # Anything else before SUBSCRIBED (a late message of an earlier subscription) is dropped.

    def refused(self, body):
        code = body.get("code")
        if code == "unavailable":
            log(f"the gateway cannot take the subscription now ({body.get('message')}); trying again")
            raise Retry()
        raise Fatal(3 if code == "unauthorized" else 2, f"the gateway refused the subscription: {code}: {body.get('message')}")

    def receive(self):
        frames = self.sock.recv_multipart()
        if len(frames) != 3 or frames[0] != EVENTS_MARKER:
            log("dropped a message with an unknown header")
            return None, None
        try:
            return frames[1], json.loads(frames[2])
        except ValueError:
            log("dropped a message whose body is not JSON")
            return None, None

    def on_event(self, event):
        stream, sequence = event.get("stream"), event.get("sequence")
        if stream not in self.state.last or not isinstance(sequence, int):
            return
        last = self.state.last[stream]
        if sequence <= last or self.state.seen(event["id"]):
            return  # a duplicate (at least once)
        if sequence > last + 1:
            log(f"gap in {stream}: {last + 1}..{sequence - 1} not accounted for")
            self.replay(stream, sequence - 1)
        if sequence > self.state.last[stream]:
            self.handle(event)
            self.state.last[stream] = sequence

    def on_withheld(self, body):
        stream, first, end = body.get("stream"), body.get("from"), body.get("to")
        if stream not in self.state.last or not isinstance(first, int) or not isinstance(end, int):
            return
        last = self.state.last[stream]
        if end <= last:
            return
        if first > last + 1:
            log(f"gap in {stream}: {last + 1}..{first - 1} not accounted for")
            self.replay(stream, first - 1)
        self.state.last[stream] = max(self.state.last[stream], end)

    def on_heartbeat(self, body):
        for stream, head in body.get("streams", {}).items():
            if stream in self.state.last and isinstance(head, int) and head > self.state.last[stream]:
                log(f"gap in {stream}: the head is {head}, accounted for up to {self.state.last[stream]}")
                self.replay(stream, head)

    def run(self):
        while not self.stopping and not self.subscribe():
            time.sleep(self.interval)
        heard = next_ping = time.monotonic()
        while not self.stopping:
            now = time.monotonic()
            if now >= next_ping:
                self.send(b"PING", {})
                next_ping = now + self.interval
            if now - heard > 3 * self.interval:
                log("the gateway is silent; subscribing again")
                while not self.stopping and not self.subscribe():
                    time.sleep(self.interval)
                heard = time.monotonic()
                continue
            if not self.sock.poll(int(max(0.0, min(next_ping, heard + 3 * self.interval) - now) * 1000) + 1):
                continue
            # Drain what is there, then store the state once.
            try:
                while self.sock.poll(0):
                    command, body = self.receive()
                    heard = time.monotonic()
                    if command == b"EVENT":
                        self.on_event(body)
                    elif command == b"WITHHELD":
                        self.on_withheld(body)
                    elif command == b"HEARTBEAT":
                        self.on_heartbeat(body)
                    elif command == b"ERROR":
                        self.refused(body)
            except Retry:
                self.state.save()
                time.sleep(self.interval)
                while not self.stopping and not self.subscribe():
                    time.sleep(self.interval)
                heard = time.monotonic()
                continue
            self.state.save()
        if self.sock is not None:
            self.send(b"UNSUBSCRIBE", {})
        self.state.save()

    def close(self):
        if self.sock is not None:
            self.sock.close()
        self.replayer.close()
        if self.output is not sys.stdout:
            self.output.close()


def main():
    parser = argparse.ArgumentParser(description="Follow Tsunagu event streams; resume, replay gaps, deduplicate.")
    parser.add_argument("--events-endpoint", default=os.environ.get("TSUNAGU_EVENTS_OUT_ENDPOINT", "tcp://127.0.0.1:5558"))
    parser.add_argument("--client-endpoint", default=os.environ.get("TSUNAGU_CLIENT_ENDPOINT", "tcp://127.0.0.1:5555"))
    parser.add_argument("--token", default=os.environ.get("TSUNAGU_TOKEN"), help="default: TSUNAGU_TOKEN")
    parser.add_argument("--streams", default="registry", help="comma-separated streams (service names)")
    parser.add_argument("--state", required=True, help="JSON file of the last sequence per stream and recent ids")
    parser.add_argument("--output", default="-", help="where each event goes, one JSON line (default stdout)")
    parser.add_argument("--heartbeat-ms", type=int, default=1000, help="the gateway's TSUNAGU_EVENTS_HEARTBEAT_MS")
    parser.add_argument("--server-key", default=os.environ.get("TSUNAGU_GATEWAY_CURVE_PUBLIC_KEY"),
                        help="the gateway's CURVE public key, when it has one")
    args = parser.parse_args()
    if not args.token:
        parser.error("a token is needed (--token or TSUNAGU_TOKEN)")
    subscriber = Subscriber(args)

    def stop(*_):
        subscriber.stopping = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        subscriber.run()
        return 0
    except Fatal as failure:
        log(str(failure))
        return failure.status
    finally:
        subscriber.close()


if __name__ == "__main__":
    sys.exit(main())
