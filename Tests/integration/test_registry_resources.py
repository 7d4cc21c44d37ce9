"""Organisations and resources: create, update with optimistic concurrency, retire with history,
vacancies, reference checks, tenancy, and the events they leave in the outbox."""
import time
import uuid

from conftest import Closing
from test_registry_areas import token_for
from tsunagu_peer import error_code, ok

TOKYO = "130001"


def make_org(client, name="千代田区保健福祉部"):
    return ok(client.call("registry", "organization.create", {"name": name, "phone": "03-0000-0000"}))


def resource_body(org_id, **overrides):
    body = {
        "organization_id": org_id, "name": "グループホームちよだ", "kana": "ぐるーぷほーむちよだ",
        "category_code": "disability_welfare", "kinds": ["group_home"], "municipality_code": "131016",
        "address": "東京都千代田区九段南1-2-1", "postal_code": "102-8688", "latitude": 35.694, "longitude": 139.753,
        "access_modes": ["stay"], "capacity": 10, "vacancies": 2,
        "hours": [{"days": ["mo", "tu", "we", "th", "fr"], "opens": "09:00", "closes": "17:00"}],
    }
    body.update(overrides)
    return body


def test_create_update_conflict_retire_and_history(suite):
    editor = token_for(suite, TOKYO, ["editor"])
    with Closing(suite.client(token=editor)) as client:
        org = make_org(client)
        assert org["tenant"] == TOKYO and org["version"] == 1
        created = ok(client.call("registry", "resource.create", resource_body(org["id"])))
        assert created["version"] == 1 and created["tenant"] == TOKYO and created["kinds"] == ["group_home"]
        assert ok(client.call("registry", "resource.get", {"id": created["id"]})) == created

        update = dict(created)  # read, modify, write back
        update["name"] = "グループホームちよだ（新館）"
        updated = ok(client.call("registry", "resource.update", update))
        assert updated["version"] == 2 and updated["name"].endswith("（新館）")

        stale = dict(update, name="stale write")  # still carries version 1
        envelope, _ = client.call("registry", "resource.update", stale)
        assert envelope["error"]["code"] == "conflict"
        assert envelope["error"]["details"]["version"] == 2
        assert ok(client.call("registry", "resource.get", {"id": created["id"]}))["name"].endswith("（新館）")

        retired = ok(client.call("registry", "resource.retire", {"id": created["id"], "version": 2}))
        assert retired["retired_at"] is not None and retired["version"] == 3
        assert error_code(client.call("registry", "resource.update", dict(update, version=3))) == "conflict"
        history = ok(client.call("registry", "resource.history", {"id": created["id"]}))["versions"]
        assert [(h["version"], h["change"]) for h in history] == [(1, "created"), (2, "updated"), (3, "retired")]
        assert history[0]["snapshot"]["name"] == "グループホームちよだ"


def test_vacancies_and_their_events(suite):
    editor = token_for(suite, TOKYO, ["editor"])
    with Closing(suite.client(token=editor)) as client:
        after = ok(client.call("registry", "events.read", {"after": 0, "limit": 1}))["head"]
        created = ok(client.call("registry", "resource.create", resource_body(make_org(client)["id"])))
        changed = ok(client.call("registry", "resource.vacancies.set", {"id": created["id"], "vacancies": 0}))
        assert changed["vacancies"] == 0 and changed["version"] == 2
        assert error_code(client.call("registry", "resource.vacancies.set", {"id": created["id"], "vacancies": 11})) == "invalid_input"
        # The change is in the history as what was answered; the refused one left no version.
        versions = ok(client.call("registry", "resource.history", {"id": created["id"]}))["versions"]
        assert [(v["version"], v["change"]) for v in versions] == [(1, "created"), (2, "vacancies")]
        assert ok(client.call("registry", "resource.get", {"id": created["id"]}))["version"] == 2
        assert {k: versions[1]["snapshot"][k] for k in ("vacancies", "version", "updated_at")} == \
            {k: changed[k] for k in ("vacancies", "version", "updated_at")}
        # The publisher numbers events within a poll of their commit; until then events.read shows none.
        subject = f"resources/{created['id']}"
        deadline = time.monotonic() + 10
        while True:
            events = [e for e in ok(client.call("registry", "events.read", {"after": after}))["events"] if e["subject"] == subject]
            if len(events) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert [e["type"] for e in events] == ["jp.tsunagu.registry.resource.created", "jp.tsunagu.registry.resource.vacancies_changed"]
        assert [e["sequence"] for e in events] == sorted(e["sequence"] for e in events)
        first = events[0]
        assert first["specversion"] == "1.0" and first["source"] == "/tsunagu/registry"
        assert first["subject"] == f"resources/{created['id']}" and first["tenant"] == TOKYO
        assert events[1]["data"]["vacancies"] == 0 and events[1]["data"]["capacity"] == 10
        only = ok(client.call("registry", "events.read", {"after": after, "types": ["jp.tsunagu.registry.resource.created"]}))
        assert [e["type"] for e in only["events"] if e["subject"] == subject] == ["jp.tsunagu.registry.resource.created"]


def test_references_are_checked_all_at_once(suite):
    editor = token_for(suite, TOKYO, ["editor"])
    with Closing(suite.client(token=editor)) as client:
        org = make_org(client)
        body = resource_body(org["id"], category_code="medical", kinds=["group_home", "pharmacy"],
                             municipality_code="130001", serves_area="nowhere", capacity=1, vacancies=5)
        envelope, _ = client.call("registry", "resource.create", body)
        assert envelope["error"]["code"] == "invalid_input"
        paths = {v["path"] for v in envelope["error"]["details"]["violations"]}
        assert paths == {"/kinds", "/municipality_code", "/serves_area", "/vacancies"}
        missing = resource_body(str(uuid.uuid4()))
        envelope, _ = client.call("registry", "resource.create", missing)
        assert [v["path"] for v in envelope["error"]["details"]["violations"]] == ["/organization_id"]
        bad_schema = resource_body(org["id"], hours=[{"days": ["xx"], "opens": "9", "closes": "17:00"}])
        assert error_code(client.call("registry", "resource.create", bad_schema)) == "invalid_input"


def test_a_tenant_cannot_write_another_tenants_resource(suite):
    tokyo = token_for(suite, TOKYO, ["editor"])
    osaka = token_for(suite, "270008", ["editor"])
    reader = token_for(suite, TOKYO, ["staff"])
    national = token_for(suite, "national", ["admin"])
    with Closing(suite.client(token=tokyo)) as client:
        org = make_org(client)
        created = ok(client.call("registry", "resource.create", resource_body(org["id"])))
    with Closing(suite.client(token=osaka)) as client:
        assert error_code(client.call("registry", "resource.retire", {"id": created["id"], "version": 1})) == "forbidden"
        assert error_code(client.call("registry", "resource.vacancies.set", {"id": created["id"], "vacancies": 1})) == "forbidden"
        assert error_code(client.call("registry", "resource.create", resource_body(org["id"]))) == "forbidden"
        assert ok(client.call("registry", "resource.get", {"id": created["id"]}))["name"] == created["name"]  # public read
    with Closing(suite.client(token=reader)) as client:
        assert error_code(client.call("registry", "organization.create", {"name": "x"})) == "forbidden"
    with Closing(suite.client(token=national)) as client:
        assert ok(client.call("registry", "resource.vacancies.set", {"id": created["id"], "vacancies": 3}))["vacancies"] == 3


def test_taxonomy_is_seeded_and_extensible(suite):
    editor = token_for(suite, TOKYO, ["editor"])
    with Closing(suite.client(token=editor)) as client:
        taxonomy = ok(client.call("registry", "taxonomy.list"))
        categories = {c["code"]: c for c in taxonomy["categories"]}
        assert list(categories) == ["medical", "disability_welfare", "long_term_care", "housing", "consultation",
                                    "participation_employment", "mutual_help", "awareness"]
        assert categories["consultation"]["name_ja"] == "相談"
        kinds = {k["code"]: k["name_ja"] for k in categories["consultation"]["kinds"]}
        assert kinds["public_health_center"] == "保健所"
        assert len(taxonomy["consultation_types"]) == 7
        code = "tokyo_" + uuid.uuid4().hex[:8]
        made = ok(client.call("registry", "taxonomy.kind.create",
                              {"code": code, "category_code": "mutual_help", "name_ja": "見守り活動"}))
        assert made["tenant"] == TOKYO
        assert error_code(client.call("registry", "taxonomy.kind.create",
                                      {"code": code, "category_code": "mutual_help", "name_ja": "again"})) == "conflict"
        org = make_org(client)
        body = resource_body(org["id"], category_code="mutual_help", kinds=[code], access_modes=["visit"])
        assert ok(client.call("registry", "resource.create", body))["kinds"] == [code]
