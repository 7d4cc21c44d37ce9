"""Meeting bodies (協議の場) and their members: levels, municipalities, secretariat and basis, terms
of appointment, tenancy, the per-prefecture map, and bad input."""
import pytest

from conftest import Closing
from tsunagu_peer import error_code, ok

TOKYO = "130001"
CHIYODA, CHUO, MINATO = "131016", "131024", "131032"
SAPPORO = "011002"
OSAKA, TOYONAKA, IKEDA, KISHIWADA = "270008", "272035", "272043", "272027"


def token_for(suite, tenant, roles):
    """A token (and its id) of `tenant` with `roles`."""
    with Closing(suite.client()) as admin:
        issued = ok(admin.call("tsunagu.gateway", "tokens.create", {"tenant": tenant, "roles": roles}))
    return issued["token"], issued["id"]


def start_meetings(suite):
    suite.start("tsunagu-meetings", env={"TSUNAGU_SERVICE_TOKEN": suite.service_token("meetings")})
    suite.wait_for_instances("meetings", 1)


def body_input(**overrides):
    body = {"name": "千代田区 精神障害にも対応した地域包括ケアシステム協議の場", "level": "municipality",
            "prefecture_code": TOKYO, "municipalities": [CHIYODA], "secretariat": "welfare_section",
            "basis": "council_working_group"}
    body.update(overrides)
    return body


def make_body(client, **overrides):
    return ok(client.call("meetings", "body.create", body_input(**overrides)))


def violation_paths(result):
    envelope, _ = result
    assert envelope["status"] == "error" and envelope["error"]["code"] == "invalid_input", envelope
    return sorted(v["path"] for v in envelope["error"]["details"]["violations"])


@pytest.fixture
def meetings(suite):
    start_meetings(suite)
    return suite


def test_body_lifecycle_members_and_terms(meetings):
    editor, _ = token_for(meetings, CHIYODA, ["editor"])
    _, member_account = token_for(meetings, CHIYODA, ["reader"])
    with Closing(meetings.client(token=editor)) as client:
        body = make_body(client)
        assert body["tenant"] == CHIYODA and body["version"] == 1 and body["members"] == []
        assert body["municipalities"] == [CHIYODA] and body["basis"] == "council_working_group"

        chair = ok(client.call("meetings", "member.add", {
            "body_id": body["id"], "person_name": "山田 花子", "affiliation": "千代田区医師会", "sector": "medical",
            "role": "chair", "term_start": "2024-04-01", "term_end": "2099-03-31",
            "account": member_account, "case_role": "reader"}))
        assert chair["current"] is True and chair["person_name"] == "山田 花子" and chair["case_role"] == "reader"
        org = ok(client.call("meetings", "member.add", {
            "body_id": body["id"], "organization_id": "5d0c8a3e-0000-4000-8000-000000000001", "sector": "health",
            "role": "member", "term_start": "2020-04-01", "term_end": "2022-03-31"}))
        assert org["current"] is False and org["person_name"] is None and org["case_role"] is None

        got = ok(client.call("meetings", "body.get", {"id": body["id"]}))
        assert [m["role"] for m in got["members"]] == ["chair", "member"]

        # Read, modify, write back the member: its term now ends.
        changed = ok(client.call("meetings", "member.update", dict(chair, term_end="2024-04-01")))
        assert changed["term_end"] == "2024-04-01" and changed["current"] is False

        update = dict(got, name="千代田区 協議の場", basis="standalone")
        updated = ok(client.call("meetings", "body.update", update))
        assert updated["version"] == 2 and updated["basis"] == "standalone"
        stale = client.call("meetings", "body.update", dict(update, name="stale"))
        assert error_code(stale) == "conflict" and stale[0]["error"]["details"]["version"] == 2

        assert ok(client.call("meetings", "member.remove", {"id": org["id"]}))["removed"] is True
        assert [m["id"] for m in ok(client.call("meetings", "body.get", {"id": body["id"]}))["members"]] == [chair["id"]]

        retired = ok(client.call("meetings", "body.retire", {"id": body["id"], "version": 2}))
        assert retired["retired_at"] is not None
        assert error_code(client.call("meetings", "body.update", dict(update, version=3))) == "conflict"
        assert error_code(client.call("meetings", "member.add", {
            "body_id": body["id"], "person_name": "x", "sector": "user", "role": "member", "term_start": "2024-04-01"})) == "conflict"
        listed = ok(client.call("meetings", "body.list", {"tenant": CHIYODA}))["bodies"]
        assert body["id"] not in [b["id"] for b in listed]
        listed = ok(client.call("meetings", "body.list", {"tenant": CHIYODA, "include_retired": True}))["bodies"]
        assert body["id"] in [b["id"] for b in listed]


def test_levels_map_and_escalation_targets(meetings):
    # Osaka: no other test makes bodies there, so the map's counts are this test's alone.
    osaka, _ = token_for(meetings, OSAKA, ["editor"])
    with Closing(meetings.client(token=osaka)) as client:
        prefectural = make_body(client, name="大阪府 協議の場", level="prefecture", prefecture_code=OSAKA, municipalities=[],
                                secretariat="health_centre", basis="standalone")
        area = make_body(client, name="豊能圏域 協議の場", level="disability_area", prefecture_code=OSAKA,
                         municipalities=[TOYONAKA, IKEDA], area_code="D1", secretariat="health_centre", basis="area_council",
                         escalates_to=prefectural["id"])
        own = make_body(client, name="豊中市 協議の場", prefecture_code=OSAKA, municipalities=[TOYONAKA], escalates_to=area["id"])
        joint = make_body(client, name="池田市・岸和田市 合同協議の場", level="joint", prefecture_code=OSAKA,
                          municipalities=[IKEDA, KISHIWADA], secretariat="core_consultation_centre", escalates_to=area["id"])
        assert own["escalates_to"] == area["id"] and joint["level"] == "joint"

        osaka_map = ok(client.call("meetings", "body.map", {"prefecture_code": OSAKA}))
        status = {m["code"]: m for m in osaka_map["municipalities"]}
        assert status[TOYONAKA]["status"] == "own" and [b["id"] for b in status[TOYONAKA]["bodies"]] == [own["id"]]
        assert status[IKEDA]["status"] == "joint" and status[KISHIWADA]["status"] == "joint"
        assert status["271004"]["status"] == "none" and status["271004"]["bodies"] == []
        assert osaka_map["counts"] == {"own": 1, "joint": 2, "none": 40} and len(osaka_map["municipalities"]) == 43
        assert osaka_map["name"] == "大阪府"

        # Downwards or sideways escalation, and a body escalating to itself, are refused.
        assert violation_paths(client.call("meetings", "body.create", body_input(
            prefecture_code=OSAKA, municipalities=[TOYONAKA], escalates_to=own["id"]))) == ["/escalates_to"]
        assert violation_paths(client.call("meetings", "body.update", dict(prefectural, escalates_to=area["id"]))) == ["/escalates_to"]
        assert violation_paths(client.call("meetings", "body.update", dict(area, escalates_to=area["id"]))) == ["/escalates_to"]
        assert violation_paths(client.call("meetings", "body.create", body_input(
            prefecture_code=OSAKA, municipalities=[TOYONAKA], escalates_to="00000000-0000-4000-8000-000000000000"))) == ["/escalates_to"]
        # A retired body leaves the map.
        ok(client.call("meetings", "body.retire", {"id": own["id"], "version": 1}))
        assert {m["code"]: m["status"] for m in ok(client.call("meetings", "body.map", {"prefecture_code": OSAKA}))["municipalities"]}[TOYONAKA] == "none"

    sapporo, _ = token_for(meetings, SAPPORO, ["editor"])
    with Closing(meetings.client(token=sapporo)) as client:
        ward = make_body(client, name="札幌市中央区 協議の場", level="ward", prefecture_code="010006",
                         municipalities=[SAPPORO], ward_name="中央区")
        hokkaido = ok(client.call("meetings", "body.map", {"prefecture_code": "010006"}))
        assert {m["code"]: m["status"] for m in hokkaido["municipalities"]}[SAPPORO] == "own"
        assert ward["ward_name"] == "中央区"


def test_level_rules_and_bad_input(meetings):
    editor, _ = token_for(meetings, CHIYODA, ["editor"])
    with Closing(meetings.client(token=editor)) as client:
        assert violation_paths(client.call("meetings", "body.create", body_input(municipalities=[CHIYODA, CHUO]))) == ["/municipalities"]
        assert violation_paths(client.call("meetings", "body.create", body_input(level="joint"))) == ["/municipalities"]
        assert violation_paths(client.call("meetings", "body.create", body_input(level="ward"))) == ["/ward_name"]
        assert violation_paths(client.call("meetings", "body.create", body_input(municipalities=[SAPPORO]))) == ["/municipalities"]
        assert violation_paths(client.call("meetings", "body.create", body_input(municipalities=["999999"]))) == ["/municipalities"]
        assert violation_paths(client.call("meetings", "body.create", body_input(
            level="joint", municipalities=[CHUO, CHUO]))) == ["/municipalities"]
        assert "/prefecture_code" in violation_paths(client.call("meetings", "body.create", body_input(prefecture_code="999999")))
        for bad in [body_input(level="galaxy"), body_input(name=""), body_input(name="x" * 201), body_input(municipalities="131016"),
                    body_input(municipalities=[CHIYODA] * 201), body_input(secretariat=7), body_input(unknown=1),
                    body_input(prefecture_code="13000"), {"name": "only a name"}]:
            assert error_code(client.call("meetings", "body.create", bad)) == "invalid_input", bad

        body = make_body(client)
        member = {"body_id": body["id"], "person_name": "佐藤", "sector": "family", "role": "member", "term_start": "2024-04-01"}
        assert violation_paths(client.call("meetings", "member.add", dict(member, organization_id="5d0c8a3e-0000-4000-8000-000000000001"))) == ["/organization_id"]
        assert violation_paths(client.call("meetings", "member.add", dict(member, person_name=None))) == ["/organization_id"]
        assert violation_paths(client.call("meetings", "member.add", dict(member, term_end="2024-03-31"))) == ["/term_end"]
        for bad in [dict(member, sector="astrology"), dict(member, role="king"), dict(member, term_start="2024-13-45"),
                    dict(member, term_start="yesterday"), dict(member, case_role="owner"), dict(member, body_id="not-a-uuid"),
                    dict(member, person_name="x" * 101)]:
            assert error_code(client.call("meetings", "member.add", bad)) == "invalid_input", bad
        assert error_code(client.call("meetings", "member.add", dict(member, body_id="00000000-0000-4000-8000-000000000000"))) == "not_found"
        assert error_code(client.call("meetings", "member.update", dict(member, id="00000000-0000-4000-8000-000000000000"))) == "not_found"
        assert error_code(client.call("meetings", "body.get", {"id": "00000000-0000-4000-8000-000000000000"})) == "not_found"
        assert error_code(client.call("meetings", "body.get", {"id": "x"})) == "invalid_input"
        assert error_code(client.call("meetings", "body.map", {"prefecture_code": "990009"})) == "not_found"
        assert error_code(client.call("meetings", "body.update", dict(body, version=2**40))) == "invalid_input"


def test_tenancy(meetings):
    chiyoda, _ = token_for(meetings, CHIYODA, ["editor"])
    chuo, _ = token_for(meetings, CHUO, ["editor"])
    chuo_reader, _ = token_for(meetings, CHUO, ["reader"])
    with Closing(meetings.client(token=chiyoda)) as client:
        body = make_body(client)
        member = ok(client.call("meetings", "member.add", {
            "body_id": body["id"], "person_name": "田中 一郎", "sector": "peer_supporter", "role": "member",
            "term_start": "2024-04-01", "account": "some-token-id"}))
        # Only a national admin creates a body for another tenant.
        assert error_code(client.call("meetings", "body.create", body_input(tenant=CHUO))) == "forbidden"
    with Closing(meetings.client(token=chuo)) as client:
        assert error_code(client.call("meetings", "body.update", body)) == "forbidden"
        assert error_code(client.call("meetings", "body.retire", {"id": body["id"], "version": 1})) == "forbidden"
        assert error_code(client.call("meetings", "member.add", {
            "body_id": body["id"], "person_name": "x", "sector": "user", "role": "member", "term_start": "2024-04-01"})) == "forbidden"
        assert error_code(client.call("meetings", "member.update", member)) == "forbidden"
        assert error_code(client.call("meetings", "member.remove", {"id": member["id"]})) == "forbidden"
        # Another tenant reads the body, but not the names of people or their accounts.
        seen = ok(client.call("meetings", "body.get", {"id": body["id"]}))["members"][0]
        assert seen["person_name"] is None and seen["account"] is None and seen["sector"] == "peer_supporter"
    with Closing(meetings.client(token=chuo_reader)) as client:
        assert error_code(client.call("meetings", "body.create", body_input())) == "forbidden"
    with Closing(meetings.client()) as admin:  # the national admin
        made = ok(admin.call("meetings", "body.create", body_input(tenant=CHUO, municipalities=[CHUO])))
        assert made["tenant"] == CHUO
        assert ok(admin.call("meetings", "body.get", {"id": body["id"]}))["members"][0]["person_name"] == "田中 一郎"
