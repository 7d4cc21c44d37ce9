"""Search and "who serves this person" on a small hand-made region in 鳥取県 whose right answers
are written here. The test first retires whatever an earlier run left in the prefecture."""
import pytest

from conftest import Closing
from test_registry_areas import token_for
from tsunagu_peer import all_pages, error_code, ok

TOTTORI = "310000"
AREAS = """kind,code,name,kana,municipality
disability_area,E,東部,とうぶ,312011
disability_area,E,東部,とうぶ,313025
disability_area,W,西部,せいぶ,312029
disability_area,W,西部,せいぶ,312045
medical_area,EM,東部医療圏,とうぶいりょうけん,312011
medical_area,EM,東部医療圏,とうぶいりょうけん,313025
daily_life_area,T1,鳥取中央,とっとりちゅうおう,312011
daily_life_area,T2,鳥取南,とっとりみなみ,312011
"""
EAST = "310000:disability_area:E"
WEST = "310000:disability_area:W"
T1 = "310000:daily_life_area:T1"
T2 = "310000:daily_life_area:T2"


@pytest.fixture
def region(suite):
    """Builds the region; returns (client factory, {short name: resource id})."""
    editor = token_for(suite, TOTTORI, ["editor"])
    national = token_for(suite, "national", ["admin"])
    with Closing(suite.client(token=national)) as admin:
        for page in all_pages(admin, "registry", "resource.search", {"area": TOTTORI, "limit": 200}):
            for r in page["resources"]:
                ok(admin.call("registry", "resource.retire", {"id": r["id"], "version": r["version"]}))
    ids = {}
    with Closing(suite.client(token=editor)) as client:
        ok(client.call("registry", "area.import", {"prefecture": TOTTORI, "csv": AREAS}))
        org = ok(client.call("registry", "organization.create", {"name": "鳥取県福祉保健部"}))["id"]

        def add(key, **fields):
            body = {"organization_id": org, "municipality_code": "312011", "category_code": "consultation"}
            body.update(fields)
            ids[key] = ok(client.call("registry", "resource.create", body))["id"]

        add("center", name="鳥取県精神保健福祉センター", kana="とっとりけんせいしんほけんふくしせんたー",
            kinds=["mental_health_welfare_center"], serves_area=TOTTORI,
            consultation_types=["complex_cases", "specialist_mental_health"])
        add("east_hc", name="鳥取保健所", kana="とっとりほけんじょ", kinds=["public_health_center"], serves_area=EAST,
            consultation_types=["specialist_mental_health"])
        add("west_hc", name="米子保健所", kana="よなごほけんじょ", kinds=["public_health_center"], municipality_code="312029",
            serves_area=WEST, consultation_types=["specialist_mental_health"])
        add("city", name="鳥取市障害福祉課", kana="とっとりししょうがいふくしか", kinds=["municipal_window"],
            consultation_types=["general", "disability"])
        add("houkatsu", name="鳥取中央地域包括支援センター", kana="とっとりちゅうおうちいきほうかつしえんせんたー",
            kinds=["community_general_support_center"], daily_life_area_id=T1, consultation_types=["elderly"])
        add("iwami", name="岩美町福祉課", kana="いわみちょうふくしか", kinds=["municipal_window"], municipality_code="313025",
            consultation_types=["general"])
        add("gh_full", name="グループホームとっとり", kana="ぐるーぷほーむとっとり", category_code="disability_welfare",
            kinds=["group_home"], access_modes=["stay"], capacity=5, vacancies=0)
        add("gh_free", name="第２グループホームすなば", kana="だいにぐるーぷほーむすなば", category_code="disability_welfare",
            kinds=["group_home"], access_modes=["stay"], capacity=4, vacancies=2, daily_life_area_id=T2)
        for backer, backed in (("center", "east_hc"), ("east_hc", "city"), ("city", "houkatsu"), ("center", "west_hc")):
            ok(client.call("registry", "backup.link", {"backer_id": ids[backer], "backed_id": ids[backed]}))
        yield client, ids


def names(result, ids):
    by_id = {v: k for k, v in ids.items()}
    return sorted(by_id[r["id"]] for r in result["resources"])


def test_who_serves_a_person_nearest_level_first(region):
    client, ids = region
    by_id = {v: k for k, v in ids.items()}
    chain = ok(client.call("registry", "backup.chain", {"municipality": "312011"}))
    levels = [(level["level"], level["name"], [(by_id[r["id"]], [(by_id[b["id"]], b["depth"]) for b in r["backed_up_by"]])
                                               for r in level["resources"]])
              for level in chain["levels"]]
    # Without the resident's daily-life area, none of the city's daily-life areas (they serve
    # other people); the nation backs up bodies, it serves no resident.
    assert levels == [
        ("municipality", "鳥取市", [("city", [("east_hc", 1), ("center", 2)])]),
        ("disability_area", "東部", [("east_hc", [("center", 1)])]),
        ("medical_area", "東部医療圏", []),
        ("prefecture", "鳥取県", [("center", [])]),
    ]
    own = ok(client.call("registry", "backup.chain", {"municipality": "312011", "daily_life_area_id": T1}))
    assert [(l["level"], l["name"], [by_id[r["id"]] for r in l["resources"]]) for l in own["levels"]][0] == (
        "daily_life_area", "鳥取中央", ["houkatsu"])
    # A person in 岩美町 who needs a general consultation: the town's window, nothing above takes general.
    served = ok(client.call("registry", "resource.serve", {"municipality": "313025", "consultation_type": "general"}))
    assert [(l["level"], [by_id[r["id"]] for r in l["resources"]]) for l in served["levels"]] == [
        ("municipality", [("iwami")]), ("disability_area", []), ("medical_area", []), ("prefecture", [])]
    # A person in 鳥取市's 鳥取南 area who needs a group home with a free place.
    served = ok(client.call("registry", "resource.serve", {"municipality": "312011", "daily_life_area_id": T2,
                                                           "kinds": ["group_home"], "has_vacancy": True}))
    assert [(l["level"], [by_id[r["id"]] for r in l["resources"]]) for l in served["levels"]][:2] == [
        ("daily_life_area", ["gh_free"]), ("municipality", [])]
    assert error_code(client.call("registry", "resource.serve", {"municipality": "312011", "daily_life_area_id": "nope"})) == "not_found"


def test_each_backer_once_with_every_path_and_its_roles_and_pages_nearest_first(region):
    client, ids = region
    by_id = {v: k for k, v in ids.items()}
    # The centre also backs up the city's window directly: two paths, one entry.
    ok(client.call("registry", "backup.link", {"backer_id": ids["center"], "backed_id": ids["city"],
                                                "roles": ["difficult_cases", "training", "training"]}))
    ok(client.call("registry", "backup.link", {"backer_id": ids["east_hc"], "backed_id": ids["city"], "roles": ["technical_advice"]}))
    chain = ok(client.call("registry", "backup.chain", {"municipality": "312011"}))
    city = next(r for level in chain["levels"] for r in level["resources"] if r["id"] == ids["city"])
    backers = {by_id[b["id"]]: b for b in city["backed_up_by"]}
    assert [by_id[b["id"]] for b in city["backed_up_by"]] == ["east_hc", "center"]
    assert backers["center"]["depth"] == 1 and backers["center"]["roles"] == ["difficult_cases", "training"]
    assert sorted(([by_id[i] for i in p["via"]], p["roles"]) for p in backers["center"]["paths"]) == [
        (["city"], ["difficult_cases", "training"]), (["east_hc", "city"], [])]
    assert backers["east_hc"]["roles"] == ["technical_advice"]
    assert error_code(client.call("registry", "backup.link", {"backer_id": ids["center"], "backed_id": ids["city"],
                                                               "roles": ["everything"]})) == "invalid_input"
    # A phone screen's pages: one resource each, nearest level first, then done.
    seen, after = [], None
    for _ in range(10):
        page = ok(client.call("registry", "backup.chain", {"municipality": "312011", "limit": 1, **({"after": after} if after else {})}))
        seen += [(l["level"], by_id[r["id"]]) for l in page["levels"] for r in l["resources"]]
        assert page["total"] == 3
        after = page["next_after"]
        if after is None:
            break
    assert seen == [("municipality", "city"), ("disability_area", "east_hc"), ("prefecture", "center")]


def test_search_by_every_filter(region):
    client, ids = region
    s = lambda **body: names(ok(client.call("registry", "resource.search", body)), ids)
    assert s(area=TOTTORI, category_code="disability_welfare") == ["gh_free", "gh_full"]
    assert s(area=TOTTORI, category_code="disability_welfare", has_vacancy=True) == ["gh_free"]
    assert s(area=EAST, category_code="consultation") == ["center", "city", "east_hc", "houkatsu", "iwami"]
    assert s(area=T1) == ["houkatsu"]
    assert s(area="312029") == ["west_hc"]
    assert s(area="312011", scope="chain", category_code="consultation") == ["center", "city", "east_hc", "houkatsu"]
    assert s(area=TOTTORI, kinds=["public_health_center"]) == ["east_hc", "west_hc"]
    assert s(area=TOTTORI, consultation_type="specialist_mental_health") == ["center", "east_hc", "west_hc"]
    assert s(area=TOTTORI, access_mode="stay") == ["gh_free", "gh_full"]
    assert error_code(client.call("registry", "resource.search", {"area": "nowhere"})) == "not_found"
    assert error_code(client.call("registry", "resource.search", {"area": TOTTORI, "after": "bogus"})) == "invalid_input"


@pytest.mark.parametrize("text, expected", [
    ("ちゅうおう", ["houkatsu"]),       # hiragana finds the kana
    ("ﾁｭｳｵｳ", ["houkatsu"]),          # half-width katakana
    ("チュウオウ", ["houkatsu"]),       # full-width katakana
    ("第2", ["gh_free"]),              # half-width digit finds a full-width one
    ("第２", ["gh_free"]),
    ("保健所", ["east_hc", "west_hc"]),
    ("%", []),                         # wildcards match literally
])
def test_free_text_in_japanese(region, text, expected):
    client, ids = region
    assert names(ok(client.call("registry", "resource.search", {"area": TOTTORI, "text": text})), ids) == expected


def test_paging_is_stable_and_complete(region):
    client, ids = region
    pages = all_pages(client, "registry", "resource.search", {"area": TOTTORI, "limit": 3})
    seen = [r["id"] for page in pages for r in page["resources"]]
    assert sorted(seen) == sorted(ids.values()) and len(seen) == len(set(seen))


def test_retired_resources_are_not_found_and_cycles_are_refused(region):
    client, ids = region
    assert error_code(client.call("registry", "backup.link", {"backer_id": ids["houkatsu"], "backed_id": ids["center"]})) == "conflict"
    gh = ok(client.call("registry", "resource.get", {"id": ids["gh_full"]}))
    ok(client.call("registry", "resource.retire", {"id": gh["id"], "version": gh["version"]}))
    assert names(ok(client.call("registry", "resource.search", {"area": TOTTORI, "kinds": ["group_home"]})), ids) == ["gh_free"]
    ok(client.call("registry", "backup.unlink", {"backer_id": ids["city"], "backed_id": ids["houkatsu"]}))
    chain = ok(client.call("registry", "backup.chain", {"municipality": "312011", "daily_life_area_id": T1}))
    assert chain["levels"][0]["level"] == "daily_life_area" and chain["levels"][0]["resources"][0]["backed_up_by"] == []
