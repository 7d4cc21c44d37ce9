"""A resource may serve several areas (`serves_areas`): a 保健所 serving two 障害保健福祉圏域 of
香川県 (used only by this file) answers residents of both and not of a third, in serve, backup.chain
and search; the older single `serves_area` still reads and writes; the CSV round trip, the HSDS
export and events carry the list."""
import time
import uuid

import pytest

from conftest import Closing
from test_registry_areas import token_for
from test_registry_directory_fields import wait_for_events
from test_registry_hsds import assert_all_valid
from tsunagu_peer import all_pages, error_code, ok

KAGAWA = "370002"
TAKAMATSU, MARUGAME, SAKAIDE, ZENTSUJI = "372013", "372021", "372030", "372048"
AREAS = """kind,code,name,kana,municipality
disability_area,E,東部,とうぶ,372013
disability_area,M,中部,ちゅうぶ,372030
disability_area,W,西部,せいぶ,372021
disability_area,W,西部,せいぶ,372048
"""
EAST, MIDDLE, WEST = (f"{KAGAWA}:disability_area:{c}" for c in ("E", "M", "W"))


@pytest.fixture
def kagawa(suite):
    editor = token_for(suite, KAGAWA, ["editor"])
    with Closing(suite.client(token=editor)) as client:
        ok(client.call("registry", "area.import", {"prefecture": KAGAWA, "csv": AREAS, "kinds": ["disability_area"]}))
        tag = uuid.uuid4().hex[:8]
        org = ok(client.call("registry", "organization.create", {"name": f"香川県健康福祉部{tag}"}))["id"]
        centre = ok(client.call("registry", "resource.create", {
            "organization_id": org, "external_id": f"{tag}-hc", "name": f"中讃保健所{tag}", "category_code": "consultation",
            "kinds": ["public_health_center"], "municipality_code": SAKAIDE, "serves_areas": [EAST, MIDDLE, EAST],
            "consultation_types": ["specialist_mental_health"]}))
        yield client, tag, centre


def served_ids(client, municipality, op="resource.serve"):
    result = ok(client.call("registry", op, {"municipality": municipality, "limit": 200}))
    return {r["id"]: level["level"] for level in result["levels"] for r in level["resources"]}


def last_sequence(client):
    after = ok(client.call("registry", "events.read", {"after": 0, "limit": 1})).get("last_sequence") or 0
    while True:
        page = ok(client.call("registry", "events.read", {"after": after, "limit": 1000}))
        if not page["events"]:
            return after
        after = page["last_sequence"]


def test_a_resource_serving_two_areas_answers_residents_of_both_and_not_of_a_third(kagawa):
    client, tag, centre = kagawa
    assert centre["serves_areas"] == [EAST, MIDDLE] and centre["serves_area"] == EAST
    for municipality in (TAKAMATSU, SAKAIDE):
        assert served_ids(client, municipality).get(centre["id"]) == "disability_area", municipality
        assert centre["id"] in served_ids(client, municipality, "backup.chain"), municipality
        found = ok(client.call("registry", "resource.search", {"area": municipality, "scope": "chain", "limit": 200}))
        assert centre["id"] in {r["id"] for r in found["resources"]}
    for municipality in (MARUGAME, ZENTSUJI):
        assert centre["id"] not in served_ids(client, municipality), municipality
        assert centre["id"] not in served_ids(client, municipality, "backup.chain"), municipality
    # Listed once, even when two of the resident's levels are among its areas.
    both = ok(client.call("registry", "resource.update", dict(centre, serves_areas=[EAST, TAKAMATSU])))
    result = ok(client.call("registry", "resource.serve", {"municipality": TAKAMATSU, "limit": 200}))
    listed = [(level["level"], r["id"]) for level in result["levels"] for r in level["resources"] if r["id"] == centre["id"]]
    assert listed == [("municipality", centre["id"])]
    # The search filter: resources naming an area among theirs.
    ok(client.call("registry", "resource.update", dict(both, serves_areas=[EAST, MIDDLE], serves_area=EAST)))
    for area, expected in ((MIDDLE, True), (WEST, False)):
        found = ok(client.call("registry", "resource.search", {"area": KAGAWA, "serves_area": area, "limit": 200}))
        assert (centre["id"] in {r["id"] for r in found["resources"]}) is expected, area
        assert all(area in r["serves_areas"] for r in found["resources"])


def test_the_single_serves_area_still_reads_and_writes(kagawa):
    client, tag, centre = kagawa
    # An older client changes serves_area only (and sends the list back as it read it): one area.
    moved = ok(client.call("registry", "resource.update", dict(centre, serves_area=WEST)))
    assert (moved["serves_area"], moved["serves_areas"]) == (WEST, [WEST])
    # A newer one changes the list only (the single field as it read it): the list.
    widened = ok(client.call("registry", "resource.update", dict(moved, serves_areas=[MIDDLE, WEST])))
    assert (widened["serves_area"], widened["serves_areas"]) == (MIDDLE, [MIDDLE, WEST])
    # Both changed, disagreeing: refused, pointing at the single one.
    envelope, _ = client.call("registry", "resource.update", dict(widened, serves_area=EAST, serves_areas=[WEST]))
    assert envelope["error"]["code"] == "invalid_input"
    assert [v["path"] for v in envelope["error"]["details"]["violations"]] == ["/serves_area"]
    # Clearing the single one clears the list.
    cleared = ok(client.call("registry", "resource.update", dict(widened, serves_area=None)))
    assert (cleared["serves_area"], cleared["serves_areas"]) == (None, [])


def test_each_named_area_must_exist(kagawa):
    client, tag, centre = kagawa
    body = {"organization_id": centre["organization_id"], "name": f"どこか{tag}", "category_code": "consultation",
            "municipality_code": SAKAIDE}
    envelope, _ = client.call("registry", "resource.create", dict(body, serves_areas=[EAST, "370002:disability_area:ZZ",
                                                                                        KAGAWA, "nowhere"]))
    assert envelope["error"]["code"] == "invalid_input"
    assert [v["path"] for v in envelope["error"]["details"]["violations"]] == ["/serves_areas/1", "/serves_areas/3"]
    envelope, _ = client.call("registry", "resource.update", dict(centre, serves_areas=[MIDDLE, "nowhere"]))
    assert [v["path"] for v in envelope["error"]["details"]["violations"]] == ["/serves_areas/1"]
    assert error_code(client.call("registry", "resource.create", dict(body, serves_areas=[EAST] * 21))) == "invalid_input"
    assert error_code(client.call("registry", "resource.create", dict(body, serves_areas=["x" * 101]))) == "invalid_input"
    csv = f"external_id,organization,name,category_code,municipality_code,serves_areas\n{tag}-bad,法人{tag},名,consultation,{SAKAIDE},{EAST}|nowhere\n"
    envelope, _ = client.call("registry", "resource.import", {"csv": csv})
    assert envelope["error"]["code"] == "invalid_input"
    assert [e["message"] for e in envelope["error"]["details"]["errors"]] == ["unknown area nowhere"]


def test_removing_one_of_its_areas_keeps_the_others(kagawa):
    client, tag, centre = kagawa
    without_middle = "\n".join(line for line in AREAS.splitlines() if ",M," not in line) + "\n"
    result = ok(client.call("registry", "area.import", {"prefecture": KAGAWA, "csv": without_middle}))
    assert {"id": centre["id"], "field": "serves_area", "area": MIDDLE, "reason": "removed"} in result["affected_resources"]
    assert ok(client.call("registry", "resource.get", {"id": centre["id"]}))["serves_areas"] == [EAST]
    ok(client.call("registry", "area.import", {"prefecture": KAGAWA, "csv": AREAS}))


def test_the_csv_round_trip_hsds_and_events_carry_the_list(kagawa):
    client, tag, centre = kagawa
    pages = all_pages(client, "registry", "resource.export", {"area": SAKAIDE, "format": "csv", "limit": 500})
    header, *lines = "".join(p["csv"] for p in pages).splitlines()
    columns = header.split(",")
    assert "serves_areas" in columns and "serves_area" not in columns
    row = next(line for line in lines if tag in line).split(",")
    index = columns.index("serves_areas")
    assert row[index] == f"{EAST}|{MIDDLE}"

    def file(cells, names=columns):
        return ",".join(names) + "\n" + ",".join(cells) + "\n"
    assert ok(client.call("registry", "resource.import", {"csv": file(row)}))["unchanged"] == 1
    # A file without the column keeps the stored list.
    keep = [i for i, c in enumerate(columns) if c != "serves_areas"]
    assert ok(client.call("registry", "resource.import", {
        "csv": file([row[i] for i in keep], [columns[i] for i in keep])}))["unchanged"] == 1
    assert ok(client.call("registry", "resource.get", {"id": centre["id"]}))["serves_areas"] == [EAST, MIDDLE]
    # The older column name reads the same way.
    older = [("serves_area" if c == "serves_areas" else c) for c in columns]
    assert ok(client.call("registry", "resource.import", {"csv": file(row[:index] + [MIDDLE] + row[index + 1:], older)}))["updated"] == 1
    assert ok(client.call("registry", "resource.get", {"id": centre["id"]}))["serves_areas"] == [MIDDLE]
    position = last_sequence(client)
    assert ok(client.call("registry", "resource.import", {"csv": file(row)}))["updated"] == 1
    version = ok(client.call("registry", "resource.get", {"id": centre["id"]}))["version"]
    deadline = time.monotonic() + 10
    while not [e for e in wait_for_events(client, position, f"resources/{centre['id']}", 1) if e["data"]["version"] == version]:
        assert time.monotonic() < deadline, "no event for the import's version"
        time.sleep(0.05)
    event = next(e for e in wait_for_events(client, position, f"resources/{centre['id']}", 1) if e["data"]["version"] == version)
    assert event["data"]["serves_areas"] == [EAST, MIDDLE]
    services = [s for p in all_pages(client, "registry", "resource.export", {"area": SAKAIDE, "format": "hsds", "limit": 500})
                for s in p["services"]]
    ours = next(s for s in services if s["id"] == centre["id"])
    assert [(a["extent"], a["name"]) for a in ours["service_areas"]] == [(EAST, "東部"), (MIDDLE, "中部")]
    assert len({a["id"] for a in ours["service_areas"]}) == 2
    assert_all_valid(services)
