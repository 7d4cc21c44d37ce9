"""CURVE: with a gateway key set, services and clients that know the gateway's public key work;
a client without it gets no answer (the handshake fails, nothing is revealed)."""
import os
import subprocess
import time

import zmq

from conftest import ADMIN_TOKEN, BIN, Closing
from tsunagu_peer import Client


def keys():
    out = subprocess.run([os.path.join(BIN, "tsunagu"), "keys"], capture_output=True, text=True, check=True).stdout
    return {k: v.strip("'") for k, v in (line.split("=", 1) for line in out.splitlines())}


class CurveClient(Client):
    """The test client over a CURVE socket with a key pair of its own."""

    def __init__(self, endpoint, token, server_key):
        super().__init__(endpoint, token)
        self.sock.close()
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.curve_publickey, self.sock.curve_secretkey = zmq.curve_keypair()
        self.sock.curve_serverkey = server_key.encode()
        self.sock.connect(endpoint)


def test_everything_speaks_curve_when_the_gateway_has_a_key(make_suite):
    pair = keys()
    public = pair["TSUNAGU_GATEWAY_CURVE_PUBLIC_KEY"]
    suite = make_suite({"TSUNAGU_GATEWAY_CURVE_SECRET_KEY": pair["TSUNAGU_GATEWAY_CURVE_SECRET_KEY"],
                        "TSUNAGU_GATEWAY_CURVE_PUBLIC_KEY": public})
    suite.start_gateway()
    suite.start_registry()  # reads the public key from its environment

    client = CurveClient(suite.client_endpoint, ADMIN_TOKEN, public)
    try:
        deadline = time.monotonic() + 20
        while True:  # until the registry has registered over its CURVE link
            envelope, payload = client.call("registry", "area.get", {"code": "131016"}, timeout_ms=2000)
            if envelope["status"] == "ok" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert envelope["status"] == "ok" and payload["name"] == "千代田区", envelope
    finally:
        client.close()

    env = dict(suite.env, TSUNAGU_TOKEN=ADMIN_TOKEN)  # the CLI reads the public key too
    result = subprocess.run([os.path.join(BIN, "tsunagu"), "call", "registry", "area.get", '{"code":"130001"}'],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "東京都" in result.stdout, result.stderr

    with Closing(suite.client()) as plain:  # no CURVE: the handshake fails and nothing comes back
        try:
            plain.call("registry", "area.get", {"code": "131016"}, timeout_ms=1500)
            raise AssertionError("a client without CURVE must not be answered")
        except TimeoutError:
            pass


def test_a_malformed_key_is_a_clear_configuration_error(suite):
    env = dict(suite.env, TSUNAGU_GATEWAY_CURVE_PUBLIC_KEY="short")
    result = subprocess.run([os.path.join(BIN, "tsunagu"), "call", "registry", "area.get", '{"code":"130001"}'],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "TSUNAGU_GATEWAY_CURVE_PUBLIC_KEY" in result.stderr
