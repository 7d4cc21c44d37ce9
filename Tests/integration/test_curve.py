"""CURVE: with a gateway key set, services and clients that know the gateway's public key work;
a client without it gets no answer (the handshake fails, nothing is revealed)."""
import json
import os
import subprocess
import time

import zmq

from conftest import ADMIN_TOKEN, BIN, Closing
from tsunagu_peer import Client, CurveClient, SLOWPOKE_MANIFEST


def keys():
    out = subprocess.run([os.path.join(BIN, "tsunagu"), "keys"], capture_output=True, text=True, check=True).stdout
    return {k: v.strip("'") for k, v in (line.split("=", 1) for line in out.splitlines())}


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

    with Closing(Client(suite.client_endpoint, ADMIN_TOKEN)) as plain:  # no CURVE: the handshake fails, nothing comes back
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


def curve_suite(make_suite, allowed):
    pair = keys()
    suite = make_suite({"TSUNAGU_GATEWAY_CURVE_SECRET_KEY": pair["TSUNAGU_GATEWAY_CURVE_SECRET_KEY"],
                        "TSUNAGU_GATEWAY_CURVE_PUBLIC_KEY": pair["TSUNAGU_GATEWAY_CURVE_PUBLIC_KEY"],
                        "TSUNAGU_CURVE_ALLOWED_KEYS": ",".join(k.decode() for k in allowed)})
    suite.start_gateway()
    return suite, pair["TSUNAGU_GATEWAY_CURVE_PUBLIC_KEY"]


def test_with_an_allow_list_only_listed_service_keys_connect(make_suite):
    """The gateway's ZAP handler admits, on the worker and events-in endpoints, only the public
    keys the operator listed: the allow-listed registry serves; a process with another key cannot
    even connect, though it holds a valid service credential; clients need no listed key."""
    registry_public, registry_secret = zmq.curve_keypair()
    suite, server_key = curve_suite(make_suite, [registry_public])
    suite.start_registry(env={"TSUNAGU_CURVE_SECRET_KEY": registry_secret.decode()})
    suite.wait_for_instances("registry", 1)
    with Closing(suite.client()) as client:  # any client key: clients are authenticated by token
        envelope, payload = client.call("registry", "area.get", {"code": "131016"})
    assert envelope["status"] == "ok" and payload["name"] == "千代田区"

    rogue_public, rogue_secret = zmq.curve_keypair()
    rogue = zmq.Context.instance().socket(zmq.DEALER)
    rogue.setsockopt(zmq.LINGER, 0)
    rogue.curve_publickey, rogue.curve_secretkey, rogue.curve_serverkey = rogue_public, rogue_secret, server_key.encode()
    rogue.connect(suite.worker_endpoint)
    credential = suite.service_token("registry").encode()
    rogue.send_multipart([b"", b"MDPW01", b"\x01", b"registry",
                          json.dumps(dict(SLOWPOKE_MANIFEST, service="registry")).encode(), credential])
    try:
        time.sleep(1.0)
        assert len(suite.instances("registry")) == 1
        assert "refused a CURVE connection" in suite.gateway.output()
        assert rogue.poll(200) == 0  # nothing reaches it: not even a DISCONNECT
    finally:
        rogue.close()
    with Closing(suite.client()) as client:
        for _ in range(5):
            assert client.call("registry", "area.get", {"code": "131016"})[0]["status"] == "ok"


def test_with_an_allow_list_a_service_without_its_own_key_is_refused(make_suite, tmp_path):
    """A service that does not present a listed key (here: a throwaway pair) never registers.
    The allow-list comes from a file this time (TSUNAGU_CURVE_ALLOWED_KEYS_FILE)."""
    listed_public, _ = zmq.curve_keypair()
    keys_file = tmp_path / "service-keys"
    keys_file.write_text("# service hosts, one key per line\n\n  " + listed_public.decode() + "  \n")
    pair = keys()
    suite = make_suite({"TSUNAGU_GATEWAY_CURVE_SECRET_KEY": pair["TSUNAGU_GATEWAY_CURVE_SECRET_KEY"],
                        "TSUNAGU_GATEWAY_CURVE_PUBLIC_KEY": pair["TSUNAGU_GATEWAY_CURVE_PUBLIC_KEY"],
                        "TSUNAGU_CURVE_ALLOWED_KEYS_FILE": str(keys_file)})
    suite.start_gateway()
    suite.service_token("registry")
    registry = suite.start_registry()  # no TSUNAGU_CURVE_SECRET_KEY: a throwaway key pair
    time.sleep(2.0)
    assert suite.instances("registry") == []
    assert registry.alive()
    assert "refused a CURVE connection" in suite.gateway.output()
