"""The fields a directory others read needs (issue 9): typed phones, languages (日本手話 among
them), accessibility, eligibility, fees, 法人番号 and 事業所番号, last verified, status; their CSV
round trip and HSDS export; and the staff-only fields no one but the owning tenant's writers read,
tried as an attacker would."""
import json
import time
import uuid

from conftest import Closing
from test_registry_areas import token_for
from test_registry_hsds import assert_all_valid, export_hsds
from tsunagu_peer import all_pages, error_code, ok

AKITA = "050008"       # 秋田県, used only by this file
AKITA_CITY = "052019"  # 秋田市
NOSHIRO = "052027"     # 能代市
OTHER = "130001"       # 東京都
CORPORATE_NUMBER = "7000012050002"  # 国税庁's own 法人番号 (its check digit is 7)


def public_fields(tag):
    return {
        "phone": "018-000-0000",
        "phones": [{"number": "018-000-0001", "type": "fax"}, {"number": "090-0000-0000", "type": "text"},
                   {"number": "https://video.example.jp/akita", "type": "video"}],
        "languages": ["ja", "jsl", "en"],
        "accessibility": "車椅子で入れます。筆談・手話で対応します。",
        "eligibility": "秋田市に住む障害のある方",
        "fees": "無料",
        "office_number": "0512345678",
        "last_verified_at": "2025-04-01",
        "last_verified_by": "秋田市障害福祉課",
        "status": "temporarily_closed",
    }


def staff_fields(tag):
    return {"staff_phone": f"018-999-{tag[:4]}", "staff_address": f"秋田市秘密町{tag}番地"}


def make(client, tag, **extra):
    org = ok(client.call("registry", "organization.create", {"name": f"秋田市障害福祉課{tag}",
                                                              "corporate_number": CORPORATE_NUMBER}))
    body = dict({"organization_id": org["id"], "external_id": f"{tag}-gh", "name": f"グループホーム{tag}",
                 "category_code": "disability_welfare", "kinds": ["group_home"], "municipality_code": AKITA_CITY,
                 "address": "秋田県秋田市山王1-1-1"}, **public_fields(tag), **staff_fields(tag))
    body.update(extra)
    return org, ok(client.call("registry", "resource.create", body))


def test_fields_are_stored_shown_and_checked(suite):
    editor = token_for(suite, AKITA, ["editor"])
    tag = uuid.uuid4().hex[:8]
    with Closing(suite.client(token=editor)) as client:
        org, created = make(client, tag)
        assert org["corporate_number"] == CORPORATE_NUMBER
        got = ok(client.call("registry", "resource.get", {"id": created["id"]}))
        assert got == created
        for key, value in dict(public_fields(tag), **staff_fields(tag)).items():
            assert got[key] == value, key
        assert got["phone"] == "018-000-0000"  # the main voice number still works

        # Read, change, write back: every field is kept; left out, a field is emptied (update replaces).
        updated = ok(client.call("registry", "resource.update", dict(got, status="active", languages=["jsl"])))
        assert (updated["status"], updated["languages"], updated["version"]) == ("active", ["jsl"], 2)
        assert updated["phones"] == got["phones"] and updated["staff_address"] == got["staff_address"]
        minimal = {k: v for k, v in updated.items() if k not in public_fields(tag) and k not in staff_fields(tag)}
        emptied = ok(client.call("registry", "resource.update", minimal))
        assert (emptied["phones"], emptied["languages"], emptied["status"], emptied["last_verified_at"],
                emptied["office_number"], emptied["staff_phone"]) == ([], [], "active", None, "", "")

        def refused(change, field, op="resource.create", base=None):
            body = dict(base or {k: v for k, v in created.items() if k not in ("id", "version", "tenant", "created_at",
                                                                                "updated_at", "retired_at")}, **change)
            if op == "resource.create":
                body["external_id"] = f"{tag}-{uuid.uuid4().hex[:6]}"
            envelope, _ = client.call("registry", op, body)
            assert envelope["error"]["code"] == "invalid_input", (change, envelope)
            assert field in json.dumps(envelope["error"], ensure_ascii=False), (change, envelope)

        refused({"phones": [{"number": "018-000-0001", "type": "pager"}]}, "/phones")
        refused({"phones": [{"number": "018-000-0001"}]}, "/phones")
        refused({"phones": [{"number": "1", "type": "fax"}] * 11}, "/phones")
        refused({"status": "closed"}, "/status")
        refused({"status": "temporarily closed"}, "/status")  # HSDS's spelling is the export's, not ours
        refused({"office_number": "12345"}, "/office_number")
        refused({"languages": ["日本手話"]}, "/languages")
        refused({"last_verified_at": "2025-02-30"}, "/last_verified_at")
        refused({"last_verified_at": "1 April"}, "/last_verified_at")
        refused({"staff_address": "x" * 301}, "/staff_address")
        refused({"corporate_number": "7000012050003"}, "/corporate_number", op="organization.create",
                base={"name": f"誤り{tag}"})
        refused({"corporate_number": "700001205000"}, "/corporate_number", op="organization.create",
                base={"name": f"誤り{tag}"})


def wait_for_events(client, after, subject, count, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        events = [e for e in ok(client.call("registry", "events.read", {"after": after, "limit": 1000}))["events"]
                  if e["subject"] == subject]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def test_staff_fields_are_read_only_by_the_owning_tenant(suite):
    """An editor of another tenant, a reader of the same tenant, the public read paths, the export
    of the whole nation, free-text search for the staff address and the event stream: none of them
    gets the staff phone or address. The owner's writers and a national admin do."""
    owner = token_for(suite, AKITA, ["editor"])
    reader = token_for(suite, AKITA, ["staff"])
    stranger = token_for(suite, OTHER, ["editor"])
    stranger_admin = token_for(suite, OTHER, ["admin"])
    tag = uuid.uuid4().hex[:8]
    secret = staff_fields(tag)
    with Closing(suite.client(token=owner)) as client:
        after = ok(client.call("registry", "events.read", {"after": 0, "limit": 1}))["head"]
        _, resource = make(client, tag, serves_area=AKITA)
        window = ok(client.call("registry", "resource.create", {
            "organization_id": resource["organization_id"], "name": f"相談窓口{tag}", "category_code": "consultation",
            "municipality_code": AKITA_CITY, **secret}))
        ok(client.call("registry", "backup.link", {"backer_id": resource["id"], "backed_id": window["id"]}))
        changed = ok(client.call("registry", "resource.update", dict(resource, description="更新")))
        ok(client.call("registry", "resource.vacancies.set", {"id": resource["id"], "vacancies": 0}))
        for key, value in secret.items():
            assert changed[key] == value
            assert ok(client.call("registry", "resource.get", {"id": resource["id"]}))[key] == value
        history = ok(client.call("registry", "resource.history", {"id": resource["id"]}))["versions"]
        assert all(v["snapshot"]["staff_address"] == secret["staff_address"] for v in history)
        events = wait_for_events(client, after, f"resources/{resource['id']}", 3)
        assert len(events) >= 3
        assert_no_secret(events + wait_for_events(client, after, f"resources/{window['id']}", 1), secret)

    with Closing(suite.client()) as national:  # a national admin may write any tenant's rows, so reads them
        assert ok(national.call("registry", "resource.get", {"id": resource["id"]}))["staff_phone"] == secret["staff_phone"]

    for token in (stranger, stranger_admin, reader):
        with Closing(suite.client(token=token)) as client:
            got = ok(client.call("registry", "resource.get", {"id": resource["id"]}))
            assert got["name"] == resource["name"] and got["phones"] == resource["phones"]  # the public fields are there
            for key in secret:
                assert key not in got
            history = ok(client.call("registry", "resource.history", {"id": resource["id"]}))
            assert len(history["versions"]) >= 3
            assert_no_secret(history, secret)
            # The attacker's own write is refused and gives nothing away either.
            envelope, _ = client.call("registry", "resource.update", dict(got, name="乗っ取り"))
            assert envelope["error"]["code"] in ("forbidden", "unauthorized")
            assert_no_secret(envelope, secret)

            # Free text naming the staff address or phone finds nothing; the public address does find it.
            for text in (f"秘密町{tag}", tag + "番地", secret["staff_phone"]):
                found = ok(client.call("registry", "resource.search", {"text": text}))
                assert found["resources"] == [], text
            found = ok(client.call("registry", "resource.search", {"area": AKITA, "text": resource["name"]}))["resources"]
            assert [r["id"] for r in found] == [resource["id"]]
            assert_no_secret(found, secret)
            assert_no_secret(ok(client.call("registry", "resource.search", {"area": AKITA, "limit": 200})), secret)
            assert_no_secret(ok(client.call("registry", "resource.serve", {"municipality": AKITA_CITY})), secret)
            assert_no_secret(ok(client.call("registry", "backup.chain", {"municipality": AKITA_CITY})), secret)

            # The export of the whole nation, in both forms.
            for form in ("csv", "hsds"):
                pages = all_pages(client, "registry", "resource.export", {"format": form, "limit": 2000})
                assert_no_secret(pages, secret)
            csv = "".join(p["csv"] for p in all_pages(client, "registry", "resource.export", {"area": AKITA, "format": "csv"}))
            assert resource["name"] in csv and "staff" not in csv.splitlines()[0]
            # The stream shows the owner's tenant its events; another tenant sees none of them (withheld).
            events = wait_for_events(client, after, f"resources/{resource['id']}", 3 if token == reader else 0)
            assert len(events) >= 3 if token == reader else events == []
            assert_no_secret(events, secret)
            assert_no_secret(ok(client.call("registry", "events.read", {"after": after, "limit": 1000})), secret)

    # The owner's own export and search carry them no more than anyone's.
    with Closing(suite.client(token=owner)) as client:
        assert_no_secret(all_pages(client, "registry", "resource.export", {"area": AKITA, "format": "csv"}), secret)
        assert_no_secret(all_pages(client, "registry", "resource.export", {"area": AKITA, "format": "hsds"}), secret)
        assert_no_secret(ok(client.call("registry", "resource.search", {"area": AKITA, "limit": 200})), secret)


def assert_no_secret(value, secret):
    text = json.dumps(value, ensure_ascii=False)
    for key, secret_value in secret.items():
        assert key not in text, key
        assert secret_value not in text, secret_value


def resource_by_external_id(client, tag, external_id):
    for r in ok(client.call("registry", "resource.search", {"area": NOSHIRO, "text": tag, "limit": 200}))["resources"]:
        got = ok(client.call("registry", "resource.get", {"id": r["id"]}))
        if got["external_id"] == external_id:
            return got
    raise AssertionError(f"no {external_id}")


def test_the_csv_round_trip_keeps_every_field(suite):
    editor = token_for(suite, AKITA, ["editor"])
    tag = uuid.uuid4().hex[:8]
    with Closing(suite.client(token=editor)) as client:
        org, first = make(client, tag, municipality_code=NOSHIRO, name=f"能代の家{tag}")
        second = ok(client.call("registry", "resource.create", {
            "organization_id": org["id"], "external_id": f"{tag}-bare", "name": f"能代の窓口{tag}",
            "category_code": "consultation", "municipality_code": NOSHIRO}))
        csv = "".join(p["csv"] for p in all_pages(client, "registry", "resource.export", {"area": NOSHIRO, "format": "csv"}))
        header, *lines = csv.splitlines()
        columns = header.split(",")
        for column in list(public_fields(tag)) + ["corporate_number"]:
            assert column in columns, column
        assert not any(c.startswith("staff") for c in columns)
        lines = [line for line in lines if tag in line]
        assert len(lines) == 2
        ours = header + "\n" + "\n".join(lines) + "\n"
        assert "fax:018-000-0001|text:090-0000-0000|video:https://video.example.jp/akita" in ours
        assert "ja|jsl|en" in ours and CORPORATE_NUMBER in ours

        # The same file back changes nothing, the staff-only fields included (they are no CSV column).
        again = ok(client.call("registry", "resource.import", {"csv": ours}))
        assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
        kept = resource_by_external_id(client, tag, f"{tag}-gh")
        assert kept == ok(client.call("registry", "resource.get", {"id": first["id"]}))
        assert {k: kept[k] for k in public_fields(tag)} == public_fields(tag)
        assert {k: kept[k] for k in staff_fields(tag)} == staff_fields(tag)

        # Under new external ids and another organisation, copies with every field.
        copies = ours.replace(f"{tag}-", f"{tag}-copy-").replace(f"秋田市障害福祉課{tag}", f"写し{tag}")
        assert ok(client.call("registry", "resource.import", {"csv": copies}))["created"] == 2
        copy = resource_by_external_id(client, tag, f"{tag}-copy-gh")
        assert {k: copy[k] for k in public_fields(tag)} == public_fields(tag)
        assert ok(client.call("registry", "organization.get", {"id": copy["organization_id"]}))["corporate_number"] == CORPORATE_NUMBER
        assert copy["staff_phone"] == "" and copy["staff_address"] == ""
        bare = resource_by_external_id(client, tag, f"{tag}-copy-bare")
        assert (bare["phones"], bare["languages"], bare["status"], bare["last_verified_at"]) == ([], [], "active", None)

        # A file without the new columns keeps the stored values; a changed cell replaces one.
        new_columns = set(public_fields(tag)) - {"phone"} | {"corporate_number"}
        keep = [i for i, c in enumerate(columns) if c not in new_columns]
        rows = [line.split(",") for line in ours.splitlines()]  # no quoted commas in these rows
        without = "\n".join(",".join(row[i] for i in keep) for row in rows) + "\n"
        assert ok(client.call("registry", "resource.import", {"csv": without}))["unchanged"] == 2
        assert resource_by_external_id(client, tag, f"{tag}-gh") == kept
        changed = ours.replace("temporarily_closed", "active").replace("2025-04-01", "")
        assert ok(client.call("registry", "resource.import", {"csv": changed}))["updated"] == 1
        now = resource_by_external_id(client, tag, f"{tag}-gh")
        assert (now["status"], now["last_verified_at"], now["phones"]) == ("active", None, public_fields(tag)["phones"])
        assert now["staff_address"] == staff_fields(tag)["staff_address"]

        # Bad cells are errors by line, and nothing is stored.
        bad = ours.replace("fax:018-000-0001", "pager:018-000-0001").replace("0512345678", "05123")
        envelope, _ = client.call("registry", "resource.import", {"csv": bad})
        assert envelope["error"]["code"] == "invalid_input"
        messages = [e["message"] for e in envelope["error"]["details"]["errors"]]
        assert any(m.startswith("phones") for m in messages) and any(m.startswith("office_number") for m in messages)
        wrong = ours.replace(CORPORATE_NUMBER, "1000012050002")
        envelope, _ = client.call("registry", "resource.import", {"csv": wrong})
        assert envelope["error"]["code"] == "invalid_input"


def test_hsds_export_carries_the_directory_fields(suite):
    editor = token_for(suite, AKITA, ["editor"])
    tag = uuid.uuid4().hex[:8]
    with Closing(suite.client(token=editor)) as client:
        org, resource = make(client, tag)
        open_one = ok(client.call("registry", "resource.create", {
            "organization_id": org["id"], "name": f"窓口{tag}", "category_code": "consultation", "municipality_code": AKITA_CITY,
            "languages": ["ko", "xyz"]}))
        services = export_hsds(client, AKITA)
        assert_all_valid(services)
        by_id = {s["id"]: s for s in services}
        service = by_id[resource["id"]]
        assert service["status"] == "temporarily closed"  # HSDS's enum spells it with a space
        assert service["eligibility_description"] == "秋田市に住む障害のある方" and service["fees_description"] == "無料"
        assert service["assured_date"] == "2025-04-01"
        # Who verified it: HSDS's provenance record (a role or office, never a person's name).
        assert [(m["last_action_date"], m["last_action_type"], m["field_name"], m["updated_by"], m["resource_id"])
                for m in service["metadata"]] == [("2025-04-01", "verified", "assured_date", "秋田市障害福祉課", resource["id"])]
        assert [(p["number"], p["type"]) for p in service["phones"]] == [
            ("018-000-0000", "voice"), ("018-000-0001", "fax"), ("090-0000-0000", "text"),
            ("https://video.example.jp/akita", "video")]
        assert len({p["id"] for p in service["phones"]}) == 4
        assert [(l["code"], l.get("name")) for l in service["languages"]] == [("ja", "日本語"), ("jsl", "日本手話"), ("en", "英語")]
        location = service["service_at_locations"][0]["location"]
        assert location["accessibilitys"][0]["description"] == "車椅子で入れます。筆談・手話で対応します。"
        assert (location["external_identifier"], location["external_identifier_type"]) == ("0512345678", "事業所番号")
        identifiers = service["organization"]["organization_identifiers"]
        assert [(i["identifier_type"], i["identifier"]) for i in identifiers] == [("法人番号", CORPORATE_NUMBER)]
        plain = by_id[open_one["id"]]
        assert plain["status"] == "active"
        assert [(l["code"], l.get("name")) for l in plain["languages"]] == [("ko", "韓国語"), ("xyz", None)]
        for absent in ("eligibility_description", "fees_description", "assured_date", "phones", "metadata"):
            assert absent not in plain, absent
        assert "accessibilitys" not in plain["service_at_locations"][0]["location"]
        # Ids stay the same from one export to the next.
        assert export_hsds(client, AKITA) == services
