"""Program participation: items per body and fiscal year, budgets, the mandatory item 1."""
from conftest import Closing
from test_registry_areas import token_for
from tsunagu_peer import error_code, ok


def test_participation_with_budgets_and_the_mandatory_item(suite):
    sapporo = token_for(suite, "011002", ["editor"])
    hokkaido = token_for(suite, "010006", ["editor"])
    with Closing(suite.client(token=sapporo)) as client:
        body = ok(client.call("registry", "participation.set", {"body_code": "011002", "fiscal_year": 2019, "items": [
            {"item": 2, "budget_thousand_yen": 1200}, {"item": 5, "budget_thousand_yen": 800, "note": "ピアサポーター養成"}]}))
        assert body["body_type"] == "designated_city" and body["name"] == "札幌市"
        assert body["budget_thousand_yen"] == 2000
        assert body["warnings"] == ["item 1 (保健・医療・福祉関係者による協議の場の設置) is mandatory and missing"]
        body = ok(client.call("registry", "participation.set", {"body_code": "011002", "fiscal_year": 2019, "items": [
            {"item": 1, "budget_thousand_yen": 500}, {"item": 2, "budget_thousand_yen": 1200}]}))
        assert body["warnings"] == [] and [i["item"] for i in body["items"]] == [1, 2]
        assert error_code(client.call("registry", "participation.set", {"body_code": "010006", "fiscal_year": 2019,
                                                                         "items": [{"item": 1}]})) == "forbidden"
        assert error_code(client.call("registry", "participation.set", {"body_code": "011002", "fiscal_year": 2019,
                                                                         "items": [{"item": 1}, {"item": 1}]})) == "invalid_input"
        assert error_code(client.call("registry", "participation.set", {"body_code": "011002", "fiscal_year": 2019,
                                                                         "items": [{"item": 12}]})) == "invalid_input"
    with Closing(suite.client(token=hokkaido)) as client:
        ok(client.call("registry", "participation.set", {"body_code": "010006", "fiscal_year": 2019,
                                                          "items": [{"item": 1, "budget_thousand_yen": 3000}, {"item": 10}]}))
        listing = ok(client.call("registry", "participation.list", {"fiscal_year": 2019, "prefecture": "010006"}))
        assert [(b["body_code"], b["body_type"]) for b in listing["bodies"]] == [("010006", "prefecture"), ("011002", "designated_city")]
        assert listing["totals"]["budget_thousand_yen"] == 4700
        assert listing["totals"]["bodies_by_item"]["1"] == 2
        nothing = ok(client.call("registry", "participation.list", {"fiscal_year": 2019, "body_code": "012025"}))
        assert nothing["bodies"][0]["body_type"] == "core_city" and nothing["bodies"][0]["warnings"]
        ward = ok(client.call("registry", "participation.list", {"fiscal_year": 2030, "body_code": "131016"}))
        assert ward["bodies"][0]["body_type"] == "special_ward"
