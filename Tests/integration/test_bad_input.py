"""Bad input of every kind gets its documented typed error, and a good call right after still works."""
import json

import pytest
import zmq

from conftest import ADMIN_TOKEN, MAX_MESSAGE_BYTES, Closing
from tsunagu_peer import Client, error_code, ok


def good_call_still_works(suite):
    with Closing(suite.client()) as client:
        assert ok(client.call("registry", "area.get", {"code": "131016"}))["name"] == "千代田区"


def raw_exchange(suite, frames, timeout_ms=5000):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(suite.client_endpoint)
    try:
        sock.send_multipart(frames)
        assert sock.poll(timeout_ms), "no reply"
        return sock.recv_multipart()
    finally:
        sock.close()


def test_a_frame_that_is_not_the_protocol(suite):
    reply = raw_exchange(suite, [b"", b"HELLO", b"registry"])
    assert reply[:2] == [b"", b"MDPC01"]
    assert reply[3] == b"TSUNAGU/1"
    assert json.loads(reply[4])["error"]["code"] == "bad_request"
    good_call_still_works(suite)


def test_a_message_without_the_empty_delimiter(suite):
    reply = raw_exchange(suite, [b"MDPC01", b"registry", b"x"])
    assert json.loads(reply[4])["error"]["code"] == "bad_request"
    good_call_still_works(suite)


def test_garbage_on_the_worker_endpoint_is_dropped(suite):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(suite.worker_endpoint)
    for frames in ([b"junk"], [b"", b"MDPW01", b"\x09"], [b"", b"MDPW01", b"\x03", b"short"], [b"", b"MDPW01", b"\x01"]):
        sock.send_multipart(frames)
    sock.close()
    good_call_still_works(suite)
    assert suite.gateway.alive()


def test_body_that_is_not_json(suite):
    with Closing(suite.client()) as client:
        assert error_code(client.call("registry", "area.get", raw_payload=b"{not json")) == "bad_request"
    good_call_still_works(suite)


def test_envelope_that_is_not_json(suite):
    reply = raw_exchange(suite, [b"", b"MDPC01", b"registry", b"TSUNAGU/1", b"{oops", b"{}"])
    assert json.loads(reply[4])["error"]["code"] == "bad_request"
    good_call_still_works(suite)


def test_envelope_of_another_version(suite):
    with Closing(suite.client()) as client:
        client.send("registry", "area.get", {"code": "131016"},
                    envelope={"v": 99, "op": "area.get", "id": "x", "token": ADMIN_TOKEN})
        envelope, _ = client.receive()
        assert envelope["id"] == "x"
        assert envelope["error"]["code"] == "bad_request"
    good_call_still_works(suite)


def test_plain_body_to_a_tsunagu_service(suite):
    reply = raw_exchange(suite, [b"", b"MDPC01", b"registry", b"hello"])
    assert json.loads(reply[4])["error"]["code"] == "bad_request"
    good_call_still_works(suite)


@pytest.mark.parametrize("payload, pointer", [
    ({"code": 131016}, "/code"),
    ({"code": "13101"}, "/code"),
    ({}, "/code"),
    ({"code": "131016", "extra": True}, "/extra"),
])
def test_json_that_breaks_the_schema(suite, payload, pointer):
    with Closing(suite.client()) as client:
        envelope, _ = client.call("registry", "area.get", payload)
    assert envelope["error"]["code"] == "invalid_input"
    assert pointer in [v["path"] for v in envelope["error"]["details"]["violations"]]
    good_call_still_works(suite)


def test_a_message_over_the_size_limit(suite):
    with Closing(suite.client()) as client:
        big = {"code": "131016", "padding": "x" * (MAX_MESSAGE_BYTES + 1)}
        assert error_code(client.call("registry", "area.get", big)) == "too_large"
    good_call_still_works(suite)


def test_an_unknown_service(suite):
    with Closing(suite.client()) as client:
        assert error_code(client.call("no-such-service", "x")) == "unknown_service"
    good_call_still_works(suite)


def test_an_unknown_operation(suite):
    with Closing(suite.client()) as client:
        envelope, _ = client.call("registry", "area.delete", {"code": "131016"})
    assert envelope["error"]["code"] == "unknown_operation"
    assert "area.get" in envelope["error"]["details"]["operations"]
    good_call_still_works(suite)


def test_no_token(suite):
    with Closing(suite.client(token=None)) as client:
        assert error_code(client.call("registry", "area.get", {"code": "131016"})) == "unauthorized"
    good_call_still_works(suite)


def test_a_wrong_token(suite):
    with Closing(suite.client(token="tsg_" + "0" * 64)) as client:
        assert error_code(client.call("registry", "area.get", {"code": "131016"})) == "unauthorized"
    good_call_still_works(suite)


def test_a_revoked_token(suite):
    with Closing(suite.client()) as admin:
        issued = ok(admin.call("tsunagu.gateway", "tokens.create", {"tenant": "pref-13", "roles": ["staff"], "label": "test"}))
        assert issued["token"].startswith("tsg_") and issued["tenant"] == "pref-13"
        with Closing(suite.client(token=issued["token"])) as user:
            assert ok(user.call("registry", "area.get", {"code": "131016"}))["name"] == "千代田区"
            assert ok(admin.call("tsunagu.gateway", "tokens.revoke", {"id": issued["id"]}))["revoked"] == "true"
            assert error_code(user.call("registry", "area.get", {"code": "131016"})) == "unauthorized"
        listed = {t["id"]: t for t in ok(admin.call("tsunagu.gateway", "tokens.list"))["tokens"]}
        assert listed[issued["id"]]["revoked_at"] is not None
        assert "token" not in listed[issued["id"]]
    good_call_still_works(suite)


def test_a_token_without_the_admin_role_cannot_make_tokens(suite):
    with Closing(suite.client()) as admin:
        issued = ok(admin.call("tsunagu.gateway", "tokens.create", {"tenant": "city-131016", "roles": ["staff"]}))
    with Closing(suite.client(token=issued["token"])) as user:
        assert error_code(user.call("tsunagu.gateway", "tokens.create", {"tenant": "x", "roles": ["admin"]})) == "forbidden"
        assert error_code(user.call("tsunagu.gateway", "tokens.nothing")) == "unknown_operation"
    good_call_still_works(suite)


def test_only_hashes_of_tokens_are_stored(suite):
    import psycopg
    from conftest import DATABASE_URL
    with psycopg.connect(DATABASE_URL) as connection:
        rows = connection.execute("SELECT token_hash FROM gateway.tokens").fetchall()
        assert rows and all(len(bytes(r[0])) == 32 for r in rows)
        text = connection.execute("SELECT string_agg(t::text, ' ') FROM gateway.tokens t").fetchone()[0]
        assert ADMIN_TOKEN not in text


def test_a_tenant_admin_manages_only_its_own_tenants_tokens(suite):
    with Closing(suite.client()) as national:
        tokyo_admin = ok(national.call("tsunagu.gateway", "tokens.create", {"tenant": "130001", "roles": ["admin"]}))
        osaka = ok(national.call("tsunagu.gateway", "tokens.create", {"tenant": "270008", "roles": ["editor"]}))
    with Closing(suite.client(token=tokyo_admin["token"])) as client:
        assert error_code(client.call("tsunagu.gateway", "tokens.create", {"tenant": "national", "roles": ["admin"]})) == "forbidden"
        own = ok(client.call("tsunagu.gateway", "tokens.create", {"tenant": "130001", "roles": ["editor"]}))
        listed = ok(client.call("tsunagu.gateway", "tokens.list"))["tokens"]
        assert {t["tenant"] for t in listed} == {"130001"} and own["id"] in {t["id"] for t in listed}
        assert error_code(client.call("tsunagu.gateway", "tokens.revoke", {"id": osaka["id"]})) == "not_found"
        assert ok(client.call("tsunagu.gateway", "tokens.revoke", {"id": own["id"]}))["revoked"] == "true"
    good_call_still_works(suite)


def test_a_message_of_very_many_frames_is_refused_and_not_forwarded(suite):
    """100,000 empty frames: refused as `bad_request` (at most 16 frames), nothing reaches a worker."""
    before = sum(i["served"] for i in suite.instances("registry"))
    frames = [b"", b"MDPC01", b"registry", b"TSUNAGU/1",
              json.dumps({"v": 1, "op": "area.get", "id": "many", "token": ADMIN_TOKEN}).encode()] + [b""] * 100_000
    reply = raw_exchange(suite, frames, timeout_ms=15000)
    assert json.loads(reply[4])["error"]["code"] == "bad_request"
    assert sum(i["served"] for i in suite.instances("registry")) == before
    good_call_still_works(suite)


def test_two_payload_frames_are_refused_by_the_service(suite):
    frames = [b"", b"MDPC01", b"registry", b"TSUNAGU/1",
              json.dumps({"v": 1, "op": "area.get", "id": "two", "token": ADMIN_TOKEN}).encode(),
              b'{"code":"131016"}', b'{"code":"130001"}']
    reply = raw_exchange(suite, frames)
    assert json.loads(reply[4])["error"]["code"] == "bad_request"
    good_call_still_works(suite)


@pytest.mark.parametrize("envelope", [
    b'{"v":1,"op":"area.get","op":"area.list","id":"d","token":"%s"}',
    b'{"v":1,"op":"area.get","id":"d","token":"%s","token":"tsg_other"}',
    b'{"v":1,"op":"area.get","id":"d","token":"%s","principal":{"tenant":"x","roles":[],"tenant":"national"}}',
])
def test_duplicate_keys_in_the_envelope_are_a_bad_request(suite, envelope):
    reply = raw_exchange(suite, [b"", b"MDPC01", b"registry", b"TSUNAGU/1", envelope.replace(b"%s", ADMIN_TOKEN.encode()),
                                 b'{"code":"131016"}'])
    assert json.loads(reply[4])["error"]["code"] == "bad_request"
    good_call_still_works(suite)


@pytest.mark.parametrize("payload", [
    b'{"code":"131016","code":"99999x"}',
    b'{"code":"999999","code":"131016"}',
    b'{"parent":"130001","limit":5,"limit":1000000000000}',
])
def test_duplicate_keys_in_the_payload_are_a_bad_request(suite, payload):
    operation = "area.list" if b"parent" in payload else "area.get"
    with Closing(suite.client()) as client:
        envelope, _ = client.call("registry", operation, raw_payload=payload)
    assert envelope["error"]["code"] == "bad_request" and "duplicate" in envelope["error"]["message"]
    good_call_still_works(suite)


@pytest.mark.parametrize("payload", [
    b'{"parent":"130001","limit":9223372036854775807}',
    b'{"parent":"130001","limit":-9223372036854775808}',
    b'{"parent":"130001","limit":18446744073709551616}',
    b'{"parent":"130001","limit":1e308}',
    b'{"parent":"130001","limit":5.0e0}',
])
def test_huge_and_odd_numbers_are_refused_never_trap(suite, payload):
    with Closing(suite.client()) as client:
        envelope, _ = client.call("registry", "area.list", raw_payload=payload)
    assert envelope["status"] == "ok" or envelope["error"]["code"] in ("invalid_input", "bad_request"), envelope
    good_call_still_works(suite)
    assert all(p.alive() for p in suite.processes)


def test_nul_in_text_is_invalid_input_not_internal(suite):
    with Closing(suite.client()) as client:
        envelope, _ = client.call("registry", "organization.create", raw_payload=b'{"name":"\\u0000bad"}')
    assert envelope["error"]["code"] == "invalid_input"
    assert envelope["error"]["details"]["violations"][0]["path"] == "/name"
    good_call_still_works(suite)


def test_a_huge_deadline_is_clamped_not_a_crash(suite):
    with Closing(suite.client()) as client:
        client.send("registry", "area.get", {"code": "131016"}, deadline_ms=9223372036854775807)
        envelope, payload = client.receive()
    assert envelope["status"] == "ok" and payload["name"] == "千代田区"
    good_call_still_works(suite)
