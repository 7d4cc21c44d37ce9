"""Implementing bodies as data: a hand-made region in 北海道 with a designated city (札幌市), a
core city (函館市) and ordinary towns (北斗市, 七飯町), whose right answers are written here. The
prefecture's 精神保健福祉センター serves "the prefecture except the bodies that run their own", and
its 渡島保健所 the 南渡島 area except them: a resident of 札幌 gets the city's own centre and health
centre, a resident of 函館 the prefecture's centre and the city's health centre, a resident of 七飯
the prefecture's both."""
import pytest

from conftest import Closing
from test_registry_areas import token_for
from tsunagu_peer import all_pages, error_code, ok

HOKKAIDO, SAPPORO, HAKODATE, HOKUTO, NANAE = "010006", "011002", "012025", "012360", "013374"
AREAS = """kind,code,name,kana,municipality
disability_area,MN,南渡島,みなみおしま,012025
disability_area,MN,南渡島,みなみおしま,012360
disability_area,MN,南渡島,みなみおしま,013374
disability_area,SP,札幌,さっぽろ,011002
"""
MINAMI_OSHIMA = "010006:disability_area:MN"


@pytest.fixture
def region(suite):
    national = token_for(suite, "national", ["admin"])
    with Closing(suite.client(token=national)) as admin:
        for area in (SAPPORO, HAKODATE, HOKUTO, NANAE):
            for page in all_pages(admin, "registry", "resource.search", {"area": area, "limit": 200}):
                for r in page["resources"]:
                    ok(admin.call("registry", "resource.retire", {"id": r["id"], "version": r["version"]}))
    ids = {}

    def adder(tenant):
        client = suite.client(token=token_for(suite, tenant, ["editor"]))
        org = ok(client.call("registry", "organization.create", {"name": f"{tenant} 保健福祉部"}))["id"]

        def add(key, municipality, kind, types, **fields):
            body = {"organization_id": org, "municipality_code": municipality, "category_code": "consultation",
                    "name": key, "kana": key, "kinds": [kind], "consultation_types": types}
            body.update(fields)
            ids[key] = ok(client.call("registry", "resource.create", body))["id"]
        return client, add

    prefecture, add = adder(HOKKAIDO)
    with Closing(prefecture):
        ok(prefecture.call("registry", "area.import", {"prefecture": HOKKAIDO, "csv": AREAS, "kinds": ["disability_area"]}))
        # The prefecture's centre sits in 札幌; it serves the whole prefecture but 札幌.
        add("道立センター", SAPPORO, "mental_health_welfare_center", ["complex_cases"], serves_area=HOKKAIDO,
            serves_except_own_bodies=True)
        add("渡島保健所", HOKUTO, "public_health_center", ["specialist_mental_health"], serves_area=MINAMI_OSHIMA,
            serves_except_own_bodies=True)
    city, add = adder(SAPPORO)
    with Closing(city):
        add("札幌こころのセンター", SAPPORO, "mental_health_welfare_center", ["complex_cases"])
        add("札幌市保健所", SAPPORO, "public_health_center", ["specialist_mental_health"])
        add("札幌市障がい福祉課", SAPPORO, "municipal_window", ["general"])
    hakodate, add = adder(HAKODATE)
    with Closing(hakodate):
        add("函館市保健所", HAKODATE, "public_health_center", ["specialist_mental_health"])
        add("函館市障がい保健福祉課", HAKODATE, "municipal_window", ["general"])
    nanae, add = adder(NANAE)
    with Closing(nanae):
        add("七飯町福祉課", NANAE, "municipal_window", ["general"])
    with Closing(suite.client(token=national)) as client:
        yield client, {v: k for k, v in ids.items()}


def served(client, names, municipality, need):
    result = ok(client.call("registry", "resource.serve", {"municipality": municipality, "consultation_type": need}))
    return [(level["level"], names[r["id"]]) for level in result["levels"] for r in level["resources"] if r["id"] in names]


def test_each_resident_is_served_by_the_right_body_nearest_first(region):
    client, names = region
    expected = {
        (SAPPORO, "complex_cases"): [("municipality", "札幌こころのセンター")],
        (SAPPORO, "specialist_mental_health"): [("municipality", "札幌市保健所")],
        (SAPPORO, "general"): [("municipality", "札幌市障がい福祉課")],
        (HAKODATE, "complex_cases"): [("prefecture", "道立センター")],
        (HAKODATE, "specialist_mental_health"): [("municipality", "函館市保健所")],
        (HAKODATE, "general"): [("municipality", "函館市障がい保健福祉課")],
        (NANAE, "complex_cases"): [("prefecture", "道立センター")],
        (NANAE, "specialist_mental_health"): [("disability_area", "渡島保健所")],
        (NANAE, "general"): [("municipality", "七飯町福祉課")],
    }
    for (municipality, need), answer in expected.items():
        assert served(client, names, municipality, need) == answer, (municipality, need)
    # The same rule holds for the consultation windows' chain and for search by chain.
    chain = ok(client.call("registry", "backup.chain", {"municipality": SAPPORO}))
    listed = [names[r["id"]] for level in chain["levels"] for r in level["resources"] if r["id"] in names]
    assert "道立センター" not in listed and "札幌こころのセンター" in listed
    found = ok(client.call("registry", "resource.search", {"area": HAKODATE, "scope": "chain", "limit": 200}))
    listed = {names[r["id"]] for r in found["resources"] if r["id"] in names}
    assert "渡島保健所" not in listed and {"道立センター", "函館市保健所"} <= listed


def test_bodies_and_their_types_come_from_the_dated_list(suite):
    admin = token_for(suite, "national", ["admin"])
    with Closing(suite.client(token=admin)) as client:
        def body_type(code, year):
            listing = ok(client.call("registry", "participation.list", {"fiscal_year": year, "body_code": code}))
            return listing["bodies"][0]["body_type"] if listing["bodies"] else None
        assert body_type(SAPPORO, 2020) == "designated_city"
        assert body_type(HOKKAIDO, 2020) == "prefecture"
        assert body_type("131016", 2020) == "special_ward"
        assert body_type(HAKODATE, 2020) == "core_city"
        assert body_type("012033", 2020) == "health_centre_city"  # 小樽市 runs its own 保健所
        # 鳥取市 became a core city on 1 April 2018: not one in fiscal year 2017.
        assert body_type("312011", 2017) is None and body_type("312011", 2018) == "core_city"
        # An ordinary town runs no promotion project of its own: participation is refused.
        assert error_code(client.call("registry", "participation.set", {"body_code": NANAE, "fiscal_year": 2020,
                                                                          "items": [{"item": 1}]})) == "invalid_input"


def test_each_fiscal_year_has_its_own_item_list_and_budgets_add_up(suite):
    sapporo = token_for(suite, SAPPORO, ["editor"])
    with Closing(suite.client(token=sapporo)) as client:
        def items_of(year):
            return [i["item"] for i in ok(client.call("registry", "participation.list", {"fiscal_year": year}))["program_items"]]
        assert items_of(2017) == [1, 3, 4, 5, 6, 7, 8, 9, 10, 11] and items_of(2019) == list(range(1, 12))
        # 普及啓発 (item 2) began in FY2019.
        assert error_code(client.call("registry", "participation.set", {"body_code": SAPPORO, "fiscal_year": 2018,
                                                                          "items": [{"item": 1}, {"item": 2}]})) == "invalid_input"
        body = ok(client.call("registry", "participation.set", {
            "body_code": SAPPORO, "fiscal_year": 2017, "budget_total_thousand_yen": 1500,
            "items": [{"item": 1, "budget_thousand_yen": 1000}, {"item": 3, "budget_thousand_yen": 500}]}))
        assert body["budget_thousand_yen"] == 1500
        assert error_code(client.call("registry", "participation.set", {
            "body_code": SAPPORO, "fiscal_year": 2019, "budget_total_thousand_yen": 1501,
            "items": [{"item": 1, "budget_thousand_yen": 1000}, {"item": 2, "budget_thousand_yen": 500}]})) == "invalid_input"
        # Eleven budgets at the schema's maximum still add up exactly.
        top = 100_000_000
        body = ok(client.call("registry", "participation.set", {
            "body_code": SAPPORO, "fiscal_year": 2020, "budget_total_thousand_yen": 11 * top,
            "items": [{"item": n, "budget_thousand_yen": top} for n in range(1, 12)]}))
        assert body["budget_thousand_yen"] == 11 * top


def test_the_csv_round_trip_keeps_the_rule(suite):
    import uuid
    tag = uuid.uuid4().hex[:8]
    with Closing(suite.client(token=token_for(suite, HOKKAIDO, ["editor"]))) as client:
        org = ok(client.call("registry", "organization.create", {"name": f"北海道保健福祉部{tag}"}))["id"]
        created = ok(client.call("registry", "resource.create", {
            "organization_id": org, "external_id": f"{tag}-center", "name": f"道立センター{tag}", "category_code": "consultation",
            "kinds": ["mental_health_welfare_center"], "municipality_code": SAPPORO, "serves_area": HOKKAIDO,
            "serves_except_own_bodies": True}))
        assert created["serves_except_own_bodies"] is True
        pages = all_pages(client, "registry", "resource.export", {"area": SAPPORO, "format": "csv", "limit": 500})
        header, *lines = "".join(p["csv"] for p in pages).splitlines()
        ours = header + "\n" + "\n".join(line for line in lines if tag in line) + "\n"
        columns = header.split(",")
        rule = columns.index("serves_except_own_bodies")

        def with_rule(value):  # the file with the rule's cell set to value (no quoted commas in these rows)
            head, row = ours.splitlines()
            cells = row.split(",")
            cells[rule] = value
            return head + "\n" + ",".join(cells) + "\n"

        assert ours.splitlines()[1].split(",")[rule] == "true"
        again = ok(client.call("registry", "resource.import", {"csv": ours}))
        assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 1)
        keep = [i for i, c in enumerate(columns) if c != "serves_except_own_bodies"]
        without = "\n".join(",".join(row[i] for i in keep) for row in (l.split(",") for l in ours.splitlines())) + "\n"
        assert ok(client.call("registry", "resource.import", {"csv": without}))["unchanged"] == 1
        assert ok(client.call("registry", "resource.import", {"csv": with_rule("false")}))["updated"] == 1
        assert ok(client.call("registry", "resource.get", {"id": created["id"]}))["serves_except_own_bodies"] is False
        assert error_code(client.call("registry", "resource.import", {"csv": with_rule("maybe")})) == "invalid_input"
