"""A plain 7/MDP client and worker, written from the ZeroMQ RFC 7/MDP alone: no Tsunagu code,
no envelope, no manifest. The tests use them to show that existing Majordomo peers interoperate."""
import zmq

C_CLIENT = b"MDPC01"
W_WORKER = b"MDPW01"
W_READY, W_REQUEST, W_REPLY, W_HEARTBEAT, W_DISCONNECT = b"\x01", b"\x02", b"\x03", b"\x04", b"\x05"


def plain_request(context, endpoint, service, frames, timeout_ms=5000):
    """REQ client: sends [MDPC01, service, body...], returns the reply frames after the header."""
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart([C_CLIENT, service.encode()] + list(frames))
        if not sock.poll(timeout_ms):
            raise TimeoutError("no reply")
        reply = sock.recv_multipart()
        assert reply[0] == C_CLIENT, reply
        assert reply[1] == service.encode(), reply
        return reply[2:]
    finally:
        sock.close()


def run_echo_worker(endpoint, service, stop_event, heartbeat_ms=500, transform=lambda frames: frames):
    """DEALER worker: READY, then answers each REQUEST with the same body; heartbeats both ways."""
    context = zmq.Context.instance()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    sock.send_multipart([b"", W_WORKER, W_READY, service.encode()])
    import time
    next_heartbeat = time.monotonic() + heartbeat_ms / 1000
    try:
        while not stop_event.is_set():
            if sock.poll(50):
                msg = sock.recv_multipart()
                assert msg[0] == b"" and msg[1] == W_WORKER, msg
                if msg[2] == W_REQUEST:
                    client, empty, body = msg[3], msg[4], msg[5:]
                    assert empty == b""
                    sock.send_multipart([b"", W_WORKER, W_REPLY, client, b""] + transform(body))
                elif msg[2] == W_DISCONNECT:
                    sock.send_multipart([b"", W_WORKER, W_READY, service.encode()])
            if time.monotonic() >= next_heartbeat:
                sock.send_multipart([b"", W_WORKER, W_HEARTBEAT])
                next_heartbeat = time.monotonic() + heartbeat_ms / 1000
        sock.send_multipart([b"", W_WORKER, W_DISCONNECT])
    finally:
        sock.close()
