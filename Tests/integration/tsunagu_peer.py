"""A Tsunagu client and a Tsunagu worker in Python, written from docs/protocol.md: 7/MDP with the
TSUNAGU/1 body envelope. The worker serves a test-only service ("slowpoke") whose operation
sleeps, so a test can hold a request in flight while it kills the instance serving it."""
import json
import sys
import threading
import time
import uuid

import zmq

MARKER = b"TSUNAGU/1"


class Client:
    def __init__(self, endpoint, token=None, context=None):
        self.context = context or zmq.Context.instance()
        self.sock = self.context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.token = token

    def close(self):
        self.sock.close()

    def send(self, service, op, payload=None, token="default", deadline_ms=10000, raw_payload=None, envelope=None,
             idempotency_key=None):
        request_id = uuid.uuid4().hex
        env = {"v": 1, "op": op, "id": request_id, "deadline_ms": deadline_ms}
        if idempotency_key is not None:
            env["idempotency_key"] = idempotency_key
        tok = self.token if token == "default" else token
        if tok is not None:
            env["token"] = tok
        if envelope is not None:
            env = envelope
        body = raw_payload if raw_payload is not None else json.dumps(payload if payload is not None else {}).encode()
        self.sock.send_multipart([b"", b"MDPC01", service.encode(), MARKER, json.dumps(env).encode(), body])
        return request_id

    def receive(self, timeout_ms=15000):
        if not self.sock.poll(timeout_ms):
            raise TimeoutError("no reply within %d ms" % timeout_ms)
        frames = self.sock.recv_multipart()
        assert frames[0] == b"" and frames[1] == b"MDPC01", frames
        assert frames[3] == MARKER, frames
        envelope = json.loads(frames[4])
        payload = json.loads(frames[5]) if len(frames) > 5 else None
        return envelope, payload

    def call(self, service, op, payload=None, timeout_ms=15000, **kwargs):
        request_id = self.send(service, op, payload, **kwargs)
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            envelope, body = self.receive(max(1, int((deadline - time.monotonic()) * 1000)))
            if envelope["id"] in (request_id, ""):
                return envelope, body


class CurveClient(Client):
    """The client over a CURVE socket, with a key pair of its own unless one is given."""

    def __init__(self, endpoint, token, server_key, keypair=None):
        super().__init__(endpoint, token)
        self.sock.close()
        self.sock = self.context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.curve_publickey, self.sock.curve_secretkey = keypair or zmq.curve_keypair()
        self.sock.curve_serverkey = server_key.encode() if isinstance(server_key, str) else server_key
        self.sock.connect(endpoint)


def ok(result):
    envelope, payload = result
    assert envelope["status"] == "ok", envelope
    return payload


def all_pages(client, service, op, body, cursor_field="next_after", items_field=None):
    """Calls a paged operation until its last page; returns every page's payload."""
    pages, after = [], None
    while True:
        request = dict(body)
        if after:
            request["after"] = after
        page = ok(client.call(service, op, request))
        pages.append(page)
        after = page.get(cursor_field)
        if not after:
            return pages


def error_code(result):
    envelope, _ = result
    assert envelope["status"] == "error", envelope
    return envelope["error"]["code"]


SLOWPOKE_MANIFEST = {
    "v": 1,
    "service": "slowpoke",
    "version": "1.0.0",
    "concurrency": 4,
    "operations": [
        {
            "name": "sleep",
            "summary": "Sleeps, then answers with the instance name.",
            "roles": [],
            "input": {
                "type": "object",
                "required": ["ms"],
                "properties": {"ms": {"type": "integer", "minimum": 0, "maximum": 60000}},
            },
            "read_only": True,
        },
        {
            "name": "write",
            "summary": "Sleeps, then answers; not read-only, so the gateway never sends it twice.",
            "roles": [],
            "input": {
                "type": "object",
                "required": ["ms"],
                "properties": {"ms": {"type": "integer", "minimum": 0, "maximum": 60000}},
            },
        },
        {
            "name": "envelope",
            "summary": "Answers with the envelope this instance received (for tests of what the gateway forwards).",
            "roles": [],
            "input": {"type": "object"},
        },
    ],
}


def serve_slowpoke(endpoint, name, heartbeat_ms, credential=b"", service=b"slowpoke"):
    """Runs until killed. Prints 'got <request id>' when a request arrives. READY carries the
    service credential (docs/protocol.md); without a valid one the gateway refuses it."""
    context = zmq.Context.instance()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    manifest = dict(SLOWPOKE_MANIFEST, service=service.decode())
    ready = [b"", b"MDPW01", b"\x01", service, json.dumps(manifest).encode(), credential]
    sock.send_multipart(ready)
    lock = threading.Lock()
    replies = []

    def work(client, envelope, payload):
        if envelope["op"] == "envelope":
            answer = {"instance": name, "envelope": envelope}
        else:
            time.sleep(payload.get("ms", 0) / 1000)
            answer = {"instance": name}
        reply_env = {"v": 1, "id": envelope["id"], "status": "ok"}
        with lock:
            replies.append([b"", b"MDPW01", b"\x03", client, b"", MARKER, json.dumps(reply_env).encode(),
                            json.dumps(answer).encode()])

    next_heartbeat = time.monotonic() + heartbeat_ms / 1000
    while True:
        if sock.poll(10):
            msg = sock.recv_multipart()
            if msg[2] == b"\x02":
                client, body = msg[3], msg[5:]
                envelope, payload = json.loads(body[1]), json.loads(body[2])
                print("got", envelope["id"], flush=True)
                threading.Thread(target=work, args=(client, envelope, payload), daemon=True).start()
            elif msg[2] == b"\x05":
                print("disconnected", flush=True)
                sock.send_multipart(ready)
        with lock:
            pending, replies[:] = list(replies), []
        for reply in pending:
            sock.send_multipart(reply)
        if time.monotonic() >= next_heartbeat:
            sock.send_multipart([b"", b"MDPW01", b"\x04"])
            next_heartbeat = time.monotonic() + heartbeat_ms / 1000


if __name__ == "__main__":
    serve_slowpoke(sys.argv[1], sys.argv[2], int(sys.argv[3]), (sys.argv[4] if len(sys.argv) > 4 else "").encode(),
                   (sys.argv[5] if len(sys.argv) > 5 else "slowpoke").encode())
