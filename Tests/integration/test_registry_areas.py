"""Prefecture-defined areas: CSV import (good and bad files), roll-up chain, tenancy."""
from conftest import Closing
from tsunagu_peer import error_code, ok

TOKYO = "130001"
GOOD = """kind,code,name,kana,municipality
disability_area,D1,区中央部,くちゅうおうぶ,131016
disability_area,D1,区中央部,くちゅうおうぶ,131024
disability_area,D2,区南部,くなんぶ,131091
medical_area,M1,区中央部,,131016
medical_area,M1,区中央部,,131024
daily_life_area,131016-1,麹町,こうじまち,131016
daily_life_area,131016-2,神田,かんだ,131016
"""


def token_for(suite, tenant, roles):
    with Closing(suite.client()) as admin:
        return ok(admin.call("tsunagu.gateway", "tokens.create", {"tenant": tenant, "roles": roles}))["token"]


def test_import_then_roll_up_and_down(suite):
    tokyo = token_for(suite, TOKYO, ["editor"])
    with Closing(suite.client(token=tokyo)) as client:
        result = ok(client.call("registry", "area.import", {"prefecture": TOKYO, "csv": GOOD}))
        assert result["areas"] == {"disability_area": 2, "medical_area": 1, "daily_life_area": 2}
        again = ok(client.call("registry", "area.import", {"prefecture": TOKYO, "csv": GOOD}))
        assert again == result
        groups = ok(client.call("registry", "area.groups", {"prefecture": TOKYO, "kind": "disability_area"}))["areas"]
        assert [(g["code"], g["municipalities"]) for g in groups] == [("D1", ["131016", "131024"]), ("D2", ["131091"])]
        chain = ok(client.call("registry", "area.chain", {"code": "131016"}))["chain"]
        assert [(c["level"], c["name"]) for c in chain] == [
            ("daily_life_area", "麹町"), ("daily_life_area", "神田"), ("municipality", "千代田区"),
            ("disability_area", "区中央部"), ("medical_area", "区中央部"), ("prefecture", "東京都"), ("nation", "国")]
        # A smaller file replaces the definitions: D2 and 神田 are gone.
        smaller = "\n".join(line for line in GOOD.splitlines() if "D2" not in line and "神田" not in line)
        ok(client.call("registry", "area.import", {"prefecture": TOKYO, "csv": smaller}))
        groups = ok(client.call("registry", "area.groups", {"prefecture": TOKYO}))["areas"]
        assert sorted(g["code"] for g in groups) == ["131016-1", "D1", "M1"]


def test_bad_files_are_rejected_whole_with_line_numbers(suite):
    tokyo = token_for(suite, TOKYO, ["editor"])
    bad = """kind,code,name,kana,municipality
disability_area,X1,ひとつ,,131016
disability_area,X2,ふたつ,,131016
medical_area,Y1,よそ,,011002
medical_area,Y2,ないところ,,999999
town_area,Z1,なに,,131016
daily_life_area,L1,ここ,,131016
daily_life_area,L1,ここ,,131024
"""
    with Closing(suite.client(token=tokyo)) as client:
        before = ok(client.call("registry", "area.groups", {"prefecture": TOKYO}))
        envelope, _ = client.call("registry", "area.import", {"prefecture": TOKYO, "csv": bad})
        assert envelope["error"]["code"] == "invalid_input"
        errors = envelope["error"]["details"]["errors"]
        assert [e["line"] for e in errors] == [3, 4, 5, 6, 8]
        assert "already in disability_area X1" in errors[0]["message"]
        assert "belongs to prefecture 010006" in errors[1]["message"]
        assert "unknown municipality" in errors[2]["message"]
        assert "unknown kind" in errors[3]["message"]
        assert "cannot also lie in 131024" in errors[4]["message"]
        assert ok(client.call("registry", "area.groups", {"prefecture": TOKYO})) == before
        broken = 'kind,code,name,kana,municipality\ndisability_area,"open,x,,131016\n'
        envelope, _ = client.call("registry", "area.import", {"prefecture": TOKYO, "csv": broken})
        assert envelope["error"]["details"]["errors"][0]["line"] == 2
        envelope, _ = client.call("registry", "area.import", {"prefecture": TOKYO, "csv": "code,name\n"})
        assert "no column kind" in envelope["error"]["details"]["errors"][0]["message"]


def test_only_the_prefecture_itself_imports_its_areas(suite):
    osaka = token_for(suite, "270008", ["editor"])
    reader = token_for(suite, TOKYO, ["staff"])
    with Closing(suite.client(token=osaka)) as client:
        assert error_code(client.call("registry", "area.import", {"prefecture": TOKYO, "csv": GOOD})) == "forbidden"
    with Closing(suite.client(token=reader)) as client:
        assert error_code(client.call("registry", "area.import", {"prefecture": TOKYO, "csv": GOOD})) == "forbidden"
        assert error_code(client.call("registry", "area.chain", {"code": "130001"})) == "not_found"
