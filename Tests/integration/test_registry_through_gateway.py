"""A call through the gateway reaches the registry and returns the right areas."""
from conftest import Closing
from tsunagu_peer import all_pages, ok


def test_area_get_returns_chiyoda_as_child_of_tokyo(suite):
    with Closing(suite.client()) as client:
        chiyoda = ok(client.call("registry", "area.get", {"code": "131016"}))
        tokyo = ok(client.call("registry", "area.get", {"code": "130001"}))
    assert chiyoda["name"] == "千代田区"
    assert chiyoda["level"] == "municipality"
    assert chiyoda["parent_code"] == "130001"
    assert chiyoda["prefecture_code"] == "130001"
    assert tokyo["name"] == "東京都"
    assert tokyo["level"] == "prefecture"
    assert tokyo.get("parent_code") is None


def test_area_counts_are_47_and_1741(suite):
    with Closing(suite.client()) as client:
        prefectures = ok(client.call("registry", "area.list", {"level": "prefecture", "limit": 2000}))
        municipalities = ok(client.call("registry", "area.list", {"level": "municipality", "limit": 2000}))
    assert len(prefectures["areas"]) == 47
    assert len(municipalities["areas"]) == 1741
    assert "next_after" not in prefectures and "next_after" not in municipalities


def test_children_of_tokyo_paged_in_code_order(suite):
    with Closing(suite.client()) as client:
        pages = all_pages(client, "registry", "area.list", {"parent": "130001", "limit": 10})
    seen = [a["code"] for page in pages for a in page["areas"]]
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen)) == 62  # 23 special wards, 26 cities, 5 towns, 8 villages
    assert seen[0] == "131016"


def test_prefix_search_folds_kana_and_width(suite):
    with Closing(suite.client()) as client:
        by_hiragana = ok(client.call("registry", "area.list", {"prefix": "ちよだ"}))
        by_halfwidth = ok(client.call("registry", "area.list", {"prefix": "ﾁﾖﾀﾞ"}))
        by_name = ok(client.call("registry", "area.list", {"prefix": "千代田"}))
        literal_percent = ok(client.call("registry", "area.list", {"prefix": "%"}))
    codes = {a["code"] for a in by_hiragana["areas"]}
    assert "131016" in codes
    assert codes == {a["code"] for a in by_halfwidth["areas"]} == {a["code"] for a in by_name["areas"]}
    assert literal_percent["areas"] == []
    # Shown as people write it: the code list's half-width ﾁﾖﾀﾞｸ is full-width katakana, searched either way.
    assert {a["code"]: a["kana"] for a in by_name["areas"]}["131016"] == "チヨダク"
    assert ok(client_kana(suite, "130001"))["kana"] == "トウキョウト"


def client_kana(suite, code):
    with Closing(suite.client()) as client:
        return client.call("registry", "area.get", {"code": code})


def test_unknown_area_is_not_found(suite):
    with Closing(suite.client()) as client:
        envelope, _ = client.call("registry", "area.get", {"code": "999999"})
        assert envelope["error"]["code"] == "not_found"
        envelope, _ = client.call("registry", "area.list", {"parent": "999999"})
        assert envelope["error"]["code"] == "not_found"
