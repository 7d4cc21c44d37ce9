"""Area definitions carry their period and keep their history: 岡山県 (used only by this file)
defines its 二次医療圏 one way from FY2023 and merges two of them from 1 April 2024. A past
year's question uses that year's areas, today's the new ones; the import that merges them
reports the resources it detaches, and leaves the other kinds as they were."""
import pytest

from conftest import Closing
from test_registry_areas import token_for
from tsunagu_peer import error_code, ok

OKAYAMA = "330001"
OKAYAMA_CITY, KURASHIKI, TSUYAMA, TAMANO, KASAOKA = "331007", "332020", "332038", "332046", "332054"
FY2023 = """kind,code,name,kana,municipality
medical_area,SE,県南東部,けんなんとうぶ,331007
medical_area,SE,県南東部,けんなんとうぶ,332046
medical_area,SW,県南西部,けんなんせいぶ,332020
medical_area,SW,県南西部,けんなんせいぶ,332054
medical_area,TS,津山・英田,つやま・あいだ,332038
disability_area,D1,県南,けんなん,331007
disability_area,D1,県南,けんなん,332020
disability_area,D1,県南,けんなん,332046
disability_area,D1,県南,けんなん,332054
disability_area,D2,県北,けんほく,332038
daily_life_area,331007-1,岡山中央,おかやまちゅうおう,331007
daily_life_area,331007-2,岡山北,おかやまきた,331007
"""
# From FY2024: 県南東部 and 県南西部 are one 県南部 (code SE kept), 津山 as before.
MERGED = """kind,code,name,kana,municipality
medical_area,SE,県南部,けんなんぶ,331007
medical_area,SE,県南部,けんなんぶ,332046
medical_area,SE,県南部,けんなんぶ,332020
medical_area,SE,県南部,けんなんぶ,332054
medical_area,TS,津山・英田,つやま・あいだ,332038
"""
SE, SW, TS = (f"{OKAYAMA}:medical_area:{c}" for c in ("SE", "SW", "TS"))
D1 = f"{OKAYAMA}:disability_area:D1"
NORTH = f"{OKAYAMA}:daily_life_area:331007-2"


HISTORY = {}  # made once per database: the imports cannot be repeated out of their order


@pytest.fixture
def okayama(suite):
    """The history, imported once; returns (client, {name: resource id}, the merge's reply)."""
    editor = token_for(suite, OKAYAMA, ["editor"])
    with Closing(suite.client(token=editor)) as client:
        if not HISTORY:
            HISTORY.update(make_history(client))
        yield client, HISTORY["ids"], HISTORY["merged"]


def make_history(client):
        ok(client.call("registry", "area.import", {"prefecture": OKAYAMA, "csv": FY2023, "valid_from": "2023-04-01"}))
        ok(client.call("registry", "area.places.import", {"municipality": OKAYAMA_CITY, "csv": (
            "daily_life_area_id,kind,name,kana\n331007-1,town,表町,おもてちょう\n331007-2,town,津島,つしま\n")}))
        org = ok(client.call("registry", "organization.create", {"name": "岡山県保健医療部"}))["id"]
        ids = {}
        for name, municipality, areas in (("岡山保健所", OKAYAMA_CITY, [SE]), ("備中保健所", KASAOKA, [SW]),
                                          ("倉敷市障がい福祉課", KURASHIKI, [])):
            ids[name] = ok(client.call("registry", "resource.create", {
                "organization_id": org, "name": name, "category_code": "consultation", "municipality_code": municipality,
                "kinds": ["public_health_center"], "serves_areas": areas}))["id"]
        merged = ok(client.call("registry", "area.import", {"prefecture": OKAYAMA, "csv": MERGED, "valid_from": "2024-04-01"}))
        # 岡山市 redraws its own daily-life areas from FY2024: one area for the whole city.
        ok(client.call("registry", "area.import", {"prefecture": OKAYAMA, "municipality": OKAYAMA_CITY, "valid_from": "2024-04-01",
                                                   "csv": "kind,code,name,kana\ndaily_life_area,331007-1,岡山,おかやま\n"}))
        return {"ids": ids, "merged": merged}


def medical(client, **when):
    areas = ok(client.call("registry", "area.groups", {"prefecture": OKAYAMA, "kind": "medical_area", **when}))["areas"]
    return {a["code"]: (a["name"], a["municipalities"], a["valid_from"], a["valid_until"]) for a in areas}


def chain_of(client, municipality, **when):
    return [(c["level"], c["id"]) for c in ok(client.call("registry", "area.chain", {"code": municipality, **when}))["chain"]]


def test_a_past_years_question_uses_that_years_areas(okayama):
    client, ids, _ = okayama
    assert medical(client, as_of="2023-10-01") == {
        "SE": ("県南東部", [OKAYAMA_CITY, TAMANO], "2023-04-01", None),
        "SW": ("県南西部", [KURASHIKI, KASAOKA], "2023-04-01", "2024-04-01"),
        "TS": ("津山・英田", [TSUYAMA], "2023-04-01", None)}
    now = {"SE": ("県南部", [OKAYAMA_CITY, KURASHIKI, TAMANO, KASAOKA], "2023-04-01", None),
           "TS": ("津山・英田", [TSUYAMA], "2023-04-01", None)}
    assert medical(client) == now and medical(client, as_of="2024-04-01") == now
    assert medical(client, as_of="2024-03-31")["SW"][1] == [KURASHIKI, KASAOKA]
    assert medical(client, as_of="2023-03-31") == {}  # before the first definition
    assert ("medical_area", SW) in chain_of(client, KURASHIKI, as_of="2023-10-01")
    # Each day's name: the code SE was 県南東部 before the merge, 県南部 after.
    names = {c["id"]: c["name"] for c in ok(client.call("registry", "area.chain", {"code": TAMANO, "as_of": "2024-03-31"}))["chain"]}
    assert names[SE] == "県南東部"
    assert {c["id"]: c["name"] for c in ok(client.call("registry", "area.chain", {"code": TAMANO}))["chain"]}[SE] == "県南部"
    assert ("medical_area", SE) in chain_of(client, KURASHIKI) and ("medical_area", SW) not in chain_of(client, KURASHIKI)
    # 岡山市's own daily-life areas of each year.
    assert [i for level, i in chain_of(client, OKAYAMA_CITY, as_of="2023-10-01") if level == "daily_life_area"] == [
        f"{OKAYAMA}:daily_life_area:331007-1", NORTH]
    assert [i for level, i in chain_of(client, OKAYAMA_CITY) if level == "daily_life_area"] == [f"{OKAYAMA}:daily_life_area:331007-1"]
    # Who serves a resident of 倉敷 then and now: 岡山保健所 serves 県南東部, which took 倉敷 in 2024.
    def served(municipality, **when):
        result = ok(client.call("registry", "resource.serve", {"municipality": municipality, "limit": 200, **when}))
        return {r["id"]: level["level"] for level in result["levels"] for r in level["resources"]}
    assert ids["岡山保健所"] not in served(KURASHIKI, as_of="2023-10-01")
    assert served(KURASHIKI).get(ids["岡山保健所"]) == "medical_area"
    assert ok(client.call("registry", "backup.chain", {"municipality": KURASHIKI, "as_of": "2023-10-01"}))["as_of"] == "2023-10-01"
    # Search within an area reads its members of that day.
    def within(area, **when):
        found = ok(client.call("registry", "resource.search", {"area": area, "limit": 200, **when}))["resources"]
        return {r["id"] for r in found}
    assert ids["倉敷市障がい福祉課"] not in within(SE, as_of="2023-10-01") and ids["倉敷市障がい福祉課"] in within(SE)
    assert ids["倉敷市障がい福祉課"] in within(SW, as_of="2023-10-01")
    # A resident finds the daily-life area of that day by where they live.
    def found(text, **when):
        return [a["id"] for a in ok(client.call("registry", "area.find", {"text": text, "municipality": OKAYAMA_CITY, **when}))["areas"]]
    assert found("つしま", as_of="2023-10-01") == [NORTH] and found("つしま") == []
    assert [a["name"] for a in ok(client.call("registry", "area.find", {"text": "おもてちょう", "as_of": "2023-10-01"}))["areas"]] == ["岡山中央"]
    assert [a["name"] for a in ok(client.call("registry", "area.find", {"text": "おもてちょう"}))["areas"]] == ["岡山"]


def test_the_merge_keeps_the_other_kinds_and_reports_what_it_detaches(okayama):
    client, ids, merged = okayama
    assert merged["valid_from"] == "2024-04-01" and merged["removed_areas"] == [SW]
    assert merged["affected_resources"] == [{"id": ids["備中保健所"], "field": "serves_area",
                                             "area": SW, "reason": "removed"}]
    assert ok(client.call("registry", "resource.get", {"id": ids["備中保健所"]}))["serves_areas"] == []
    for when in ({}, {"as_of": "2023-10-01"}):
        disability = ok(client.call("registry", "area.groups", {"prefecture": OKAYAMA, "kind": "disability_area", **when}))["areas"]
        assert [(a["code"], a["municipalities"]) for a in disability] == [
            ("D1", [OKAYAMA_CITY, KURASHIKI, TAMANO, KASAOKA]), ("D2", [TSUYAMA])]
    # An ended area can no longer be named by a write.
    envelope, _ = client.call("registry", "resource.update", dict(
        ok(client.call("registry", "resource.get", {"id": ids["備中保健所"]})), serves_areas=[SW]))
    assert [v["path"] for v in envelope["error"]["details"]["violations"]] == ["/serves_areas/0"]


def test_definitions_follow_one_another(okayama):
    client, ids, _ = okayama
    # The same file on the same day again changes nothing.
    again = ok(client.call("registry", "area.import", {"prefecture": OKAYAMA, "csv": MERGED, "valid_from": "2024-04-01"}))
    assert (again["removed_areas"], again["affected_resources"]) == ([], [])
    assert medical(client, as_of="2023-10-01")["SW"][3] == "2024-04-01"
    # A definition cannot start before the latest one.
    envelope, _ = client.call("registry", "area.import", {"prefecture": OKAYAMA, "csv": FY2023, "valid_from": "2023-10-01"})
    assert envelope["error"]["code"] == "invalid_input"
    assert [v["path"] for v in envelope["error"]["details"]["violations"]] == ["/valid_from"]
    # An ended area does not come back after a gap under its old code.
    envelope, _ = client.call("registry", "area.import", {"prefecture": OKAYAMA, "csv": FY2023, "valid_from": "2025-04-01"})
    assert envelope["error"]["code"] == "invalid_input"
    assert [e["line"] for e in envelope["error"]["details"]["errors"]] == [4, 13]  # 県南西部, 岡山北
    for bad in ({"valid_from": "2024-02-30"}, {"valid_from": "1800-01-01"}):
        envelope, _ = client.call("registry", "area.import", {"prefecture": OKAYAMA, "csv": MERGED, **bad})
        assert [v["path"] for v in envelope["error"]["details"]["violations"]] == ["/valid_from"]
    for op, body in (("area.groups", {"prefecture": OKAYAMA}), ("area.chain", {"code": KURASHIKI}),
                     ("resource.serve", {"municipality": KURASHIKI}), ("backup.chain", {"municipality": KURASHIKI}),
                     ("resource.search", {"area": SE}), ("area.find", {"text": "つしま"})):
        envelope, _ = client.call("registry", op, dict(body, as_of="2023-13-01"))
        assert [v["path"] for v in envelope["error"]["details"]["violations"]] == ["/as_of"], op
        assert error_code(client.call("registry", op, dict(body, as_of="2023/10/01"))) == "invalid_input", op
