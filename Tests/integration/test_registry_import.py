"""CSV import of resources: all or nothing with line numbers, idempotent, chunked."""
import uuid

from conftest import Closing
from test_registry_areas import token_for
from tsunagu_peer import error_code, ok

SHIMANE = "320005"  # 島根県, used only by this file
HEADER = "external_id,organization,name,kana,category_code,kinds,municipality_code,address,latitude,longitude,access_modes,capacity,vacancies,consultation_types"


def rows(prefix, count, start=0):
    return [f"{prefix}-{i},松江市障害福祉課,相談窓口{i},そうだんまどぐち{i},consultation,municipal_window,322016,"
            f"\"島根県松江市末次町86, {i}階\",35.46,133.05,visit,,,general|disability" for i in range(start, start + count)]


def search_ids(client, text):
    page = ok(client.call("registry", "resource.search", {"area": SHIMANE, "text": text, "limit": 200}))
    return sorted(r["id"] for r in page["resources"])


def test_a_bad_row_stores_nothing_and_is_reported_by_line(suite):
    prefix = uuid.uuid4().hex[:8]
    editor = token_for(suite, SHIMANE, ["editor"])
    good = rows(prefix, 3)
    bad = [
        good[0], good[1],
        f"{prefix}-x,松江市,名前,,consultation,pharmacy,322016,,,,visit,,,",      # line 4: pharmacy is not a consultation kind
        f"{prefix}-y,松江市,名前,,medical,,999999,,abc,,,,,",                     # line 5: bad latitude and municipality
        f"{prefix}-0,松江市,名前,,medical,,322016,,,,teleport,2,5,",              # line 6: duplicate id, mode, vacancies
    ]
    csv = HEADER + "\n" + "\n".join(bad) + "\n"
    with Closing(suite.client(token=editor)) as client:
        envelope, _ = client.call("registry", "resource.import", {"csv": csv})
        assert envelope["error"]["code"] == "invalid_input"
        errors = [(e["line"], e["message"]) for e in envelope["error"]["details"]["errors"]]
        assert [line for line, _ in errors] == [4, 5, 6, 6, 6]
        assert "not a kind of consultation" in errors[0][1]
        assert "latitude" in errors[1][1]
        assert any("also on line 2" in m for _, m in errors)
        assert search_ids(client, prefix) == []


def test_the_same_file_twice_makes_no_duplicates_and_changes_become_versions(suite):
    prefix = uuid.uuid4().hex[:8]
    editor = token_for(suite, SHIMANE, ["editor"])
    csv = HEADER + "\n" + "\n".join(rows(prefix, 5)) + "\n"
    with Closing(suite.client(token=editor)) as client:
        first = ok(client.call("registry", "resource.import", {"csv": csv}))
        assert (first["created"], first["updated"], first["unchanged"]) == (5, 0, 0)
        ids = search_ids(client, f"相談窓口")
        again = ok(client.call("registry", "resource.import", {"csv": csv}))
        assert (again["created"], again["updated"], again["unchanged"], again["organizations_created"]) == (0, 0, 5, 0)
        assert search_ids(client, "相談窓口") == ids
        changed = csv.replace(f"{prefix}-2,松江市障害福祉課,相談窓口2", f"{prefix}-2,松江市障害福祉課,相談窓口2（移転）")
        third = ok(client.call("registry", "resource.import", {"csv": changed}))
        assert (third["created"], third["updated"], third["unchanged"]) == (0, 1, 4)
        hit = ok(client.call("registry", "resource.search", {"area": SHIMANE, "text": "移転"}))["resources"]
        assert len(hit) >= 1
        history = ok(client.call("registry", "resource.history", {"id": [r for r in hit if r["name"] == "相談窓口2（移転）"][0]["id"]}))
        assert [v["change"] for v in history["versions"]][-2:] == ["created", "updated"]


def test_a_file_in_chunks_is_applied_at_commit_only(suite):
    prefix = uuid.uuid4().hex[:8]
    editor = token_for(suite, SHIMANE, ["editor"])
    body = rows(prefix, 25)
    with Closing(suite.client(token=editor)) as client:
        started = ok(client.call("registry", "resource.import.begin"))
        for start in range(0, 25, 10):
            chunk = HEADER + "\n" + "\n".join(body[start:start + 10]) + "\n"
            ok(client.call("registry", "resource.import.chunk", {"import_id": started["import_id"], "csv": chunk,
                                                                "first_line": start + 2}))
        assert [r for r in search_ids(client, prefix)] == []  # nothing visible before commit
        result = ok(client.call("registry", "resource.import.commit", {"import_id": started["import_id"]}))
        assert result["created"] == 25
        envelope, _ = client.call("registry", "resource.import.commit", {"import_id": started["import_id"]})
        assert envelope["error"]["code"] == "conflict" and envelope["error"]["details"]["result"] == result
        other = token_for(suite, "270008", ["editor"])
    with Closing(suite.client(token=other)) as client:
        assert error_code(client.call("registry", "resource.import.commit", {"import_id": started["import_id"]})) == "forbidden"


def test_chunk_line_numbers_are_lines_of_the_whole_file(suite):
    prefix = uuid.uuid4().hex[:8]
    editor = token_for(suite, SHIMANE, ["editor"])
    body = rows(prefix, 12)
    body[10] = body[10].replace(",consultation,", ",nonsense,")
    with Closing(suite.client(token=editor)) as client:
        started = ok(client.call("registry", "resource.import.begin"))
        for start in (0, 6):
            chunk = HEADER + "\n" + "\n".join(body[start:start + 6]) + "\n"
            ok(client.call("registry", "resource.import.chunk", {"import_id": started["import_id"], "csv": chunk,
                                                                "first_line": start + 2}))
        envelope, _ = client.call("registry", "resource.import.commit", {"import_id": started["import_id"]})
        assert {e["line"] for e in envelope["error"]["details"]["errors"]} == {12}  # unknown category, and so its kind


def test_cli_import_and_export_with_progress_and_hsds(suite, tmp_path):
    import json
    import os
    import subprocess
    from conftest import BIN

    prefix = uuid.uuid4().hex[:8]
    editor = token_for(suite, SHIMANE, ["editor"])
    source = tmp_path / "resources.csv"
    source.write_text(HEADER + "\n" + "\n".join(rows(prefix, 30)) + "\n", encoding="utf-8")
    env = dict(suite.env, TSUNAGU_TOKEN=editor)

    def tsunagu(*args):
        return subprocess.run([os.path.join(BIN, "tsunagu"), *args], env=env, capture_output=True, text=True, timeout=120)

    imported = tsunagu("import", str(source), "--chunk-rows", "7", "--progress")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["created"] == 30
    assert "importing [" in imported.stderr and "100% 30/30" in imported.stderr

    exported = tmp_path / "export.csv"
    result = tsunagu("export", "--area", "322016", "--output", str(exported), "--page-size", "10", "--progress")
    assert result.returncode == 0, result.stderr
    assert "exporting [" in result.stderr and "100%" in result.stderr
    text = exported.read_text(encoding="utf-8")
    assert text.startswith("id,external_id,organization,name")
    assert sum(1 for line in text.splitlines() if f"{prefix}-" in line) == 30
    again = tsunagu("import", str(exported), "--chunk-bytes", "30000")  # the test gateway takes 64 KiB messages
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["created"] == 0 and json.loads(again.stdout)["updated"] == 0

    hsds = tmp_path / "export.json"
    assert tsunagu("export", "--area", "322016", "--format", "hsds", "--output", str(hsds)).returncode == 0
    services = [s for s in json.loads(hsds.read_text(encoding="utf-8")) if s["name"].startswith("相談窓口")]
    assert len(services) >= 30
    service = services[0]
    assert service["status"] == "active" and service["organization"]["name"] == "松江市障害福祉課"
    location = service["service_at_locations"][0]["location"]
    address = location["addresss"][0]  # HSDS 3.0 spells it so
    assert location["latitude"] == 35.46 and address["city"] == "松江市"
    assert address["state_province"] == "島根県" and address["country"] == "JP"
    assert {(a["link_type"], a["taxonomy_term"]["code"]) for a in service["attributes"]} == {
        ("service_type", "consultation"), ("service_type", "municipal_window"),
        ("consultation_type", "general"), ("consultation_type", "disability")}

    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "\n" + rows(prefix, 1)[0].replace(",consultation,", ",nope,") + "\n", encoding="utf-8")
    failed = tsunagu("import", str(bad))
    assert failed.returncode == 2 and "invalid_input" in failed.stderr and '"line" : 2' in failed.stderr
