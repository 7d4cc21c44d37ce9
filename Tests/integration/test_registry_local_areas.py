"""Areas people actually use (issue 9), in 長野県's 諏訪 region and 静岡市:
保健所管轄区域 as an area kind of its own, in the chain and served to its municipalities;
daily-life areas a municipality defines for itself; and a resident finding their daily-life area
by the name of the town or school district they live in, typed in kanji or kana of any width."""
from conftest import Closing
from test_registry_areas import token_for
from tsunagu_peer import all_pages, error_code, ok

NAGANO, OKAYA, SUWA, CHINO, SHIMOSUWA = "200000", "202045", "202061", "202142", "203611"
SHIZUOKA_CITY = "221007"  # a 指定都市: its wards are not areas here, its daily-life areas are its own
# The 保健所's area is not the disability area: 諏訪圏域 holds three municipalities, which two
# health centres share.
PREFECTURE_AREAS = f"""kind,code,name,kana,municipality
disability_area,SW,諏訪圏域,すわけんいき,{OKAYA}
disability_area,SW,諏訪圏域,すわけんいき,{SUWA}
disability_area,SW,諏訪圏域,すわけんいき,{CHINO}
health_centre_area,H1,諏訪保健所管内,すわほけんじょかんない,{OKAYA}
health_centre_area,H1,諏訪保健所管内,すわほけんじょかんない,{SUWA}
health_centre_area,H2,茅野保健所管内,ちのほけんじょかんない,{CHINO}
"""
H1, H2 = f"{NAGANO}:health_centre_area:H1", f"{NAGANO}:health_centre_area:H2"
SUWA_DAILY = f"""kind,code,name,kana,municipality
daily_life_area,{SUWA}-1,上諏訪,かみすわ,{SUWA}
daily_life_area,{SUWA}-2,四賀,しが,
"""
KAMISUWA, SHIGA = f"{NAGANO}:daily_life_area:{SUWA}-1", f"{NAGANO}:daily_life_area:{SUWA}-2"
SUWA_PLACES = f"""daily_life_area_id,kind,name,kana
{KAMISUWA},town,緑町,みどりまち
{KAMISUWA},town,緑ケ丘,みどりがおか
{SUWA}-2,town,緑町三丁目,みどりまちさんちょうめ
{SUWA}-2,school_district,四賀小学校区,しがしょうがっこうく
{SUWA}-1,school_district,上諏訪小学校区,かみすわしょうがっこうく
"""


def groups(client, prefecture, kind=None):
    body = {"prefecture": prefecture} | ({"kind": kind} if kind else {})
    return [(g["kind"], g["code"], g["municipalities"]) for g in ok(client.call("registry", "area.groups", body))["areas"]]


def test_health_centre_areas_are_in_the_chain_and_serve_their_municipalities(suite):
    nagano = token_for(suite, NAGANO, ["editor"])
    with Closing(suite.client(token=nagano)) as client:
        result = ok(client.call("registry", "area.import", {"prefecture": NAGANO, "csv": PREFECTURE_AREAS}))
        assert result["kinds"] == ["disability_area", "health_centre_area"]
        assert result["areas"] == {"disability_area": 1, "health_centre_area": 2} and result["memberships"] == 6
        assert groups(client, NAGANO, "health_centre_area") == [
            ("health_centre_area", "H1", [OKAYA, SUWA]), ("health_centre_area", "H2", [CHINO])]
        # Nearest first: the 保健所's area right after the municipality, before the disability area.
        chain = ok(client.call("registry", "area.chain", {"code": CHINO}))["chain"]
        assert [(c["level"], c["id"]) for c in chain] == [
            ("municipality", CHINO), ("health_centre_area", H2), ("disability_area", f"{NAGANO}:disability_area:SW"),
            ("prefecture", NAGANO), ("nation", "national")]
        # A municipality is in one area of each kind.
        overlap = PREFECTURE_AREAS + f"health_centre_area,H2,茅野保健所管内,,{SUWA}\n"
        envelope, _ = client.call("registry", "area.import", {"prefecture": NAGANO, "csv": overlap})
        assert "already in health_centre_area H1" in envelope["error"]["details"]["errors"][0]["message"]

        org = ok(client.call("registry", "organization.create", {"name": "長野県諏訪保健福祉事務所"}))["id"]
        centre = ok(client.call("registry", "resource.create", {
            "organization_id": org, "municipality_code": SUWA, "category_code": "consultation", "name": "諏訪保健所",
            "kana": "すわほけんじょ", "kinds": ["public_health_center"], "consultation_types": ["specialist_mental_health"],
            "serves_area": H1}))["id"]

        def levels_serving(municipality):
            served = ok(client.call("registry", "resource.serve", {"municipality": municipality,
                                                                     "consultation_type": "specialist_mental_health"}))
            return [level["level"] for level in served["levels"] if any(r["id"] == centre for r in level["resources"])]
        assert levels_serving(OKAYA) == ["health_centre_area"] and levels_serving(SUWA) == ["health_centre_area"]
        assert levels_serving(CHINO) == [] and levels_serving(SHIMOSUWA) == []
        pages = all_pages(client, "registry", "resource.search", {"area": OKAYA, "scope": "chain", "limit": 200})
        assert centre in [r["id"] for page in pages for r in page["resources"]]
        within = ok(client.call("registry", "resource.search", {"area": H2, "limit": 200}))
        assert centre not in [r["id"] for r in within["resources"]]

        # Clearing the kind detaches the resource, as for any removed area.
        cleared = ok(client.call("registry", "area.import", {"prefecture": NAGANO, "kinds": ["health_centre_area"],
                                                              "csv": "kind,code,name,kana,municipality\n"}))
        assert cleared["removed_areas"] == [H1, H2]
        assert cleared["affected_resources"] == [{"id": centre, "field": "serves_area", "area": H1, "reason": "removed"}]
        assert groups(client, NAGANO, "disability_area") == [("disability_area", "SW", [OKAYA, SUWA, CHINO])]


def test_a_municipality_defines_its_own_daily_life_areas(suite):
    suwa, okaya = token_for(suite, SUWA, ["editor"]), token_for(suite, OKAYA, ["editor"])
    nagano = token_for(suite, NAGANO, ["editor"])
    with Closing(suite.client(token=nagano)) as prefecture:
        ok(prefecture.call("registry", "area.import", {"prefecture": NAGANO, "csv": f"""kind,code,name,kana,municipality
daily_life_area,{OKAYA}-1,岡谷中部,おかやちゅうぶ,{OKAYA}
"""}))
    with Closing(suite.client(token=suwa)) as client:
        result = ok(client.call("registry", "area.import", {"prefecture": NAGANO, "municipality": SUWA, "csv": SUWA_DAILY}))
        assert result["municipality"] == SUWA and result["areas"] == {"daily_life_area": 2}
        assert ok(client.call("registry", "area.import", {"prefecture": NAGANO, "municipality": SUWA, "csv": SUWA_DAILY})) == result
        daily = groups(client, NAGANO, "daily_life_area")
        assert daily == [("daily_life_area", f"{OKAYA}-1", [OKAYA]), ("daily_life_area", f"{SUWA}-1", [SUWA]),
                         ("daily_life_area", f"{SUWA}-2", [SUWA])]
        chain = ok(client.call("registry", "area.chain", {"code": SUWA}))["chain"]
        assert [c["name"] for c in chain[:3]] == ["上諏訪", "四賀", "諏訪市"]
        # Only its own daily-life areas: not another kind, not another municipality's, not a code
        # another municipality's area has; nothing is stored.
        bad = f"""kind,code,name,kana,municipality
disability_area,X,諏訪東部,,{SUWA}
daily_life_area,{OKAYA}-2,岡谷西部,,{OKAYA}
daily_life_area,{OKAYA}-1,岡谷中部,,{SUWA}
daily_life_area,{SUWA}-3,,,{SUWA}
"""
        envelope, _ = client.call("registry", "area.import", {"prefecture": NAGANO, "municipality": SUWA, "csv": bad})
        errors = envelope["error"]["details"]["errors"]
        assert [e["line"] for e in errors] == [2, 3, 4, 5]
        assert "prefecture's" in errors[0]["message"] and "lies in 202045" in errors[1]["message"]
        assert "already the daily-life area of 岡谷市" in errors[2]["message"] and "name is empty" in errors[3]["message"]
        assert error_code(client.call("registry", "area.import", {"prefecture": NAGANO, "municipality": SUWA, "kinds": ["medical_area"],
                                                                   "csv": SUWA_DAILY})) == "invalid_input"
        assert error_code(client.call("registry", "area.import", {"prefecture": "220001", "municipality": SUWA,
                                                                   "csv": SUWA_DAILY})) == "invalid_input"
        # A file with no rows clears only when kinds says so; a municipality is named by its code.
        assert error_code(client.call("registry", "area.import", {"prefecture": NAGANO, "municipality": SUWA,
                                                                   "csv": "kind,code,name,kana\n"})) == "invalid_input"
        assert error_code(client.call("registry", "area.import", {"prefecture": NAGANO, "municipality": NAGANO,
                                                                   "csv": SUWA_DAILY})) == "not_found"
        # A smaller file replaces only this municipality's: 岡谷's area stays.
        smaller = "\n".join(line for line in SUWA_DAILY.splitlines() if "四賀" not in line) + "\n"
        result = ok(client.call("registry", "area.import", {"prefecture": NAGANO, "municipality": SUWA, "csv": smaller}))
        assert result["removed_areas"] == [SHIGA]
        assert [g[1] for g in groups(client, NAGANO, "daily_life_area")] == [f"{OKAYA}-1", f"{SUWA}-1"]
        # The other kinds stay the prefecture's.
        envelope = client.call("registry", "area.import", {"prefecture": NAGANO, "csv": PREFECTURE_AREAS})
        assert error_code(envelope) == "forbidden"
    with Closing(suite.client(token=okaya)) as client:
        assert error_code(client.call("registry", "area.import", {"prefecture": NAGANO, "municipality": SUWA, "csv": SUWA_DAILY})) == "forbidden"
    # The prefecture still writes any of its municipalities' daily-life areas.
    with Closing(suite.client(token=nagano)) as client:
        ok(client.call("registry", "area.import", {"prefecture": NAGANO, "municipality": SUWA, "csv": SUWA_DAILY}))
    # A designated city's editor defines the city's own.
    shizuoka = token_for(suite, SHIZUOKA_CITY, ["editor"])
    with Closing(suite.client(token=shizuoka)) as client:
        result = ok(client.call("registry", "area.import", {"prefecture": "220001", "municipality": SHIZUOKA_CITY,
                                                              "csv": f"""kind,code,name,kana
daily_life_area,{SHIZUOKA_CITY}-aoi-1,葵北部,あおいほくぶ
"""}))
        assert result["prefecture"] == "220001" and result["areas"] == {"daily_life_area": 1}


def test_a_resident_finds_their_daily_life_area_by_where_they_live(suite):
    suwa, okaya = token_for(suite, SUWA, ["editor"]), token_for(suite, OKAYA, ["editor"])
    resident = token_for(suite, SUWA, ["staff"])
    with Closing(suite.client(token=suwa)) as client:
        ok(client.call("registry", "area.import", {"prefecture": NAGANO, "municipality": SUWA, "csv": SUWA_DAILY}))
        result = ok(client.call("registry", "area.places.import", {"municipality": SUWA, "csv": SUWA_PLACES}))
        assert result["places"] == {"town": 3, "school_district": 2} and result["areas"] == 2
        assert ok(client.call("registry", "area.places.import", {"municipality": SUWA, "csv": SUWA_PLACES}))["replaced"] == 5
    with Closing(suite.client(token=resident)) as client:
        def find(text, **more):
            found = ok(client.call("registry", "area.find", {"text": text} | more))
            return [(a["id"], sorted(p["name"] for p in a["places"])) for a in found["areas"]]
        for typed in ("緑町", "みどりまち", "ミドリマチ", "ﾐﾄﾞﾘﾏﾁ", "みどりま"):
            assert find(typed, municipality=SUWA) == [(KAMISUWA, ["緑町"]), (SHIGA, ["緑町三丁目"])], typed
        assert find("緑町三") == [(SHIGA, ["緑町三丁目"])]
        # 3丁目 is 三丁目; a whole address finds the most specific place it starts with.
        assert find("緑町3丁目") == [(SHIGA, ["緑町三丁目"])] == find("緑町３丁目")
        assert find("緑町三丁目5番12号") == [(SHIGA, ["緑町三丁目"])] == find("緑町3-5-12".replace("3-", "3丁目"))
        assert find("緑町1丁目") == [(KAMISUWA, ["緑町"])] and find("みどりまちさんちょうめ5ばん") == [(SHIGA, ["緑町三丁目"])]
        assert find("ﾐﾄﾞﾘ") == [(KAMISUWA, ["緑ケ丘", "緑町"]), (SHIGA, ["緑町三丁目"])]
        assert find("しがしょう") == [(SHIGA, ["四賀小学校区"])]
        assert find("上諏訪小") == [(KAMISUWA, ["上諏訪小学校区"])]
        assert find("緑町", municipality=OKAYA) == [] and find("%") == [] and find("ちょうめ") == []
        one = ok(client.call("registry", "area.find", {"text": "みどり", "limit": 1}))
        assert [a["id"] for a in one["areas"]] == [KAMISUWA] and one["next_after"] == KAMISUWA
        assert one["areas"][0]["municipality"] == SUWA and one["areas"][0]["municipality_name"] == "諏訪市"
        rest = ok(client.call("registry", "area.find", {"text": "みどり", "limit": 1, "after": KAMISUWA}))
        assert [a["id"] for a in rest["areas"]] == [SHIGA] and rest["next_after"] is None
        assert error_code(client.call("registry", "area.find", {"text": "緑", "municipality": "999999"})) == "not_found"
        assert error_code(client.call("registry", "area.find", {"text": "　"})) == "invalid_input"
        assert error_code(client.call("registry", "area.places.import", {"municipality": SUWA, "csv": SUWA_PLACES})) == "forbidden"
    # Another municipality's editor cannot import places for this one.
    with Closing(suite.client(token=okaya)) as client:
        assert error_code(client.call("registry", "area.places.import", {"municipality": SUWA, "csv": SUWA_PLACES})) == "forbidden"
        # Nor name 諏訪's areas in its own list.
        envelope, _ = client.call("registry", "area.places.import", {"municipality": OKAYA, "csv": SUWA_PLACES})
        assert [e["line"] for e in envelope["error"]["details"]["errors"]] == [2, 3, 4, 5, 6]
    with Closing(suite.client(token=suwa)) as client:
        bad = f"""daily_life_area_id,kind,name,kana
{SUWA}-1,town,緑町,
{SUWA}-1,town,緑町,みどりちょう
{SUWA}-1,street,本町,
{SUWA}-2,town,,
"""
        envelope, _ = client.call("registry", "area.places.import", {"municipality": SUWA, "csv": bad})
        errors = envelope["error"]["details"]["errors"]
        assert [e["line"] for e in errors] == [3, 4, 5] and "line 2 already" in errors[0]["message"]
        # Removing a daily-life area removes its places; an empty list clears the rest.
        smaller = "\n".join(line for line in SUWA_DAILY.splitlines() if "四賀" not in line) + "\n"
        assert ok(client.call("registry", "area.import", {"prefecture": NAGANO, "municipality": SUWA, "csv": smaller}))["removed_places"] == 2
        assert [a["id"] for a in ok(client.call("registry", "area.find", {"text": "みどり"}))["areas"]] == [KAMISUWA]
        ok(client.call("registry", "area.places.import", {"municipality": SUWA, "csv": "daily_life_area_id,kind,name,kana\n"}))
        assert ok(client.call("registry", "area.find", {"text": "みどり"}))["areas"] == []
        # Clearing the municipality's own daily-life areas says so.
        cleared = ok(client.call("registry", "area.import", {"prefecture": NAGANO, "municipality": SUWA, "kinds": ["daily_life_area"],
                                                              "csv": "kind,code,name,kana\n"}))
        assert cleared["removed_areas"] == [KAMISUWA] and cleared["areas"] == {"daily_life_area": 0}
