"""A misbehaving client, run as its own process so its loop does not share the test's Python
interpreter (and GIL) with the client being measured. Bounded in count and time.

    flooder.py ENDPOINT unknown-tokens SECONDS MAX      requests with ever-new unknown tokens, replies read and dropped
    flooder.py ENDPOINT never-reads SECONDS MAX TOKEN   valid requests, no reply ever read

Prints the number of requests sent."""
import os
import sys
import time

import zmq

MARKER = b"TSUNAGU/1"


def main():
    endpoint, mode, seconds, limit = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    token = sys.argv[5] if len(sys.argv) > 5 else ""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if mode == "never-reads":
        sock.setsockopt(zmq.RCVHWM, 10)
        sock.setsockopt(zmq.RCVBUF, 4096)
    sock.connect(endpoint)
    end = time.monotonic() + seconds
    sent = 0
    salt = os.urandom(4).hex()
    while time.monotonic() < end and sent < limit:
        if mode == "unknown-tokens":
            envelope = b'{"v":1,"op":"area.get","id":"f%d","token":"tsg_flood_%d_%s"}' % (sent, sent, salt.encode())
            body = b'{"code":"131016"}'
        else:
            envelope = b'{"v":1,"op":"area.list","id":"n%d","token":"%s"}' % (sent, token.encode())
            body = b'{"parent":"130001","limit":100}'
        try:
            sock.send_multipart([b"", b"MDPC01", b"registry", MARKER, envelope, body], zmq.NOBLOCK)
            sent += 1
        except zmq.Again:
            time.sleep(0.001)
        if mode == "unknown-tokens":
            while sock.poll(0):
                sock.recv_multipart()
    print(sent, flush=True)
    sock.close()


if __name__ == "__main__":
    main()
