"""Open Referral HSDS 3.0 export: every exported service validates against the HSDS JSON Schemas
(vendored in hsds/schema, see hsds/README.md), and a CSV export imports back with its hours."""
import copy
import json
import pathlib
import re
import uuid

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from conftest import Closing
from test_registry_areas import token_for
from tsunagu_peer import all_pages, ok

TOKUSHIMA = "360007"       # 徳島県, used only by this file
TOKUSHIMA_CITY = "362018"  # 徳島市
NARUTO = "362026"          # 鳴門市
AREAS = """kind,code,name,kana,municipality
disability_area,E1,東部圏域,とうぶけんいき,362018
disability_area,E1,東部圏域,とうぶけんいき,362026
daily_life_area,362018-1,新町,しんまち,362018
"""
SCHEMA_DIR = pathlib.Path(__file__).parent / "hsds" / "schema"
# The schemas refer to each other by file name ("schedule.json"): registered under the address
# they are published at, those references resolve to the vendored files and nothing is fetched.
SCHEMA_BASE = "https://raw.githubusercontent.com/openreferral/specification/3.0/schema/"
# Keys of ours beyond HSDS (HSDS 3.0 allows more properties than it defines).
SERVICE_EXTENSIONS = {"capacity": {"type": "integer"}, "vacancies": {"type": "integer"}, "last_modified": {"type": "string"}}
# What HSDS says in words where its schema has no enum or format.
PHONE_TYPES = {"text", "voice", "fax", "cell", "video", "pager", "textphone"}  # RFC 6350, phone.type
EXTENT_TYPES = {"geojson", "topojson", "kml", "text"}                             # service_area.extent_type
TIME_WITH_OFFSET = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\+09:00$")  # schedule.opens_at, Japan


def validator(strict):
    """The HSDS `service` schema with its references. Strict: every object also refuses keys its
    schema does not define (but our extensions), so a misspelt key is not silently ignored."""
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        if strict:
            schema = copy.deepcopy(schema)
            if path.name == "service.json":
                schema["properties"].update(SERVICE_EXTENSIONS)
            schema["additionalProperties"] = False
        resources.append((SCHEMA_BASE + path.name, Resource(schema, specification=DRAFT202012)))
    registry = Registry().with_resources(resources)
    return Draft202012Validator({"$ref": SCHEMA_BASE + "service.json"}, registry=registry, format_checker=FormatChecker())


HSDS = validator(strict=False)
HSDS_STRICT = validator(strict=True)


def problems(service):
    """Every way `service` falls short of HSDS 3.0, as readable lines (none when it conforms)."""
    found = [f"{e.json_path}: {e.message}" for e in HSDS.iter_errors(service)]
    found += [f"{e.json_path}: {e.message} (strict)" for e in HSDS_STRICT.iter_errors(service)
              if e.validator == "additionalProperties"]
    for i, schedule in enumerate(service.get("schedules", [])):
        for key in ("opens_at", "closes_at"):
            if not TIME_WITH_OFFSET.match(schedule.get(key, "")):
                found.append(f"$.schedules[{i}].{key}: {schedule.get(key)!r} is not HH:MM:SS+09:00")
    phones = service.get("phones", []) + service.get("organization", {}).get("phones", [])
    found += [f"phone {p.get('number')!r}: type {p.get('type')!r}" for p in phones if p.get("type") not in PHONE_TYPES]
    found += [f"service area {a.get('id')!r}: extent_type {a['extent_type']!r}" for a in service.get("service_areas", [])
              if "extent_type" in a and a["extent_type"] not in EXTENT_TYPES]
    return found + [f"{path}: null" for path in nulls(service)]


def nulls(value, path="$"):
    """JSON paths of every null in `value`: HSDS has no nullable field, so we leave keys out instead."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nulls(v, f"{path}[{i}]")]
    return []


def assert_all_valid(services):
    failures = {s["id"]: found for s in services if (found := problems(s))}
    assert failures == {}, json.dumps(failures, ensure_ascii=False, indent=1)


def export_hsds(client, area):
    pages = all_pages(client, "registry", "resource.export", {"area": area, "format": "hsds", "limit": 3})
    assert pages[0]["total"] == sum(p["count"] for p in pages)
    return [s for p in pages for s in p["services"]]


def test_the_validator_catches_what_hsds_refuses():
    """The checks themselves, on hand-made services: a conforming one passes, each fault is found."""
    good = {"id": "s1", "name": "窓口", "status": "active",
            "schedules": [{"id": "h1", "opens_at": "09:00:00+09:00", "closes_at": "17:00:00+09:00"}],
            "phones": [{"id": "p1", "number": "088-000-0000", "type": "voice"}],
            "service_areas": [{"id": "a1", "extent": "362018", "extent_type": "text"}],
            "attributes": [{"id": "t1", "link_type": "service_type",
                            "taxonomy_term": {"id": "k1", "name": "相談", "description": "Consultation"}}]}
    assert problems(good) == []
    faults = {
        "null": {"description": None},
        "no term description": {"attributes": [{"id": "t1", "link_type": "x", "taxonomy_term": {"id": "k1", "name": "相談"}}]},
        "no offset": {"schedules": [{"id": "h1", "opens_at": "09:00", "closes_at": "17:00:00+09:00"}]},
        "untyped phone": {"phones": [{"id": "p1", "number": "088-000-0000"}]},
        "unknown extent type": {"service_areas": [{"id": "a1", "extent": "x", "extent_type": "other"}]},
        "not a uri": {"url": "www.example.jp"},
        "misspelt key": {"service_at_locations": [{"id": "l1", "location": {"id": "x", "location_type": "physical",
                                                                             "addresses": []}}]},
    }
    for name, change in faults.items():
        assert problems(dict(good, **change)) != [], name


def test_every_exported_service_validates_against_hsds_3(suite):
    editor = token_for(suite, TOKUSHIMA, ["editor"])
    tag = uuid.uuid4().hex[:8]
    with Closing(suite.client(token=editor)) as client:
        ok(client.call("registry", "area.import", {"prefecture": TOKUSHIMA, "csv": AREAS}))
        kind = ok(client.call("registry", "taxonomy.kind.create", {"code": f"hsds_{tag}", "category_code": "mutual_help",
                                                                   "name_ja": "見守りの会"}))  # no English name
        org = ok(client.call("registry", "organization.create", {
            "name": "徳島市障害福祉課", "kana": "とくしましょうがいふくしか", "description": "市の障害福祉の窓口",
            "url": "https://www.city.tokushima.tokushima.jp/", "email": "shogai@example.jp", "phone": "088-621-5177"}))
        bare_org = ok(client.call("registry", "organization.create", {"name": f"見守りの会{tag}"}))

        def create(organization, **fields):
            return ok(client.call("registry", "resource.create", dict({"organization_id": organization["id"]}, **fields)))

        everything = create(
            org, name="グループホームしんまち", kana="ぐるーぷほーむしんまち", category_code="disability_welfare",
            kinds=["group_home"], municipality_code=TOKUSHIMA_CITY, daily_life_area_id=f"{TOKUSHIMA}:daily_life_area:362018-1",
            postal_code="770-8571", address="徳島県徳島市幸町2-5", latitude=34.0703, longitude=134.5548, phone="088-621-5177",
            email="home@example.jp", url="https://example.jp/home?id=1#top", description="定員10名の共同生活援助",
            hours=[{"days": ["mo", "tu", "we", "th", "fr"], "opens": "09:00", "closes": "17:00"},
                   {"days": ["sa"], "opens": "09:00", "closes": "12:00"}],
            access_modes=["stay"], capacity=10, vacancies=2)
        window = create(
            org, name="東部圏域基幹相談支援センター", category_code="consultation", kinds=["municipal_window"],
            municipality_code=NARUTO, serves_area=f"{TOKUSHIMA}:disability_area:E1", phone="088-685-0000",
            consultation_types=["general", "disability", "developmental"], access_modes=["visit", "home_visit"],
            hours=[{"days": ["mo", "we", "holiday"], "opens": "08:30", "closes": "24:00"},
                   {"days": ["holiday"], "opens": "10:00", "closes": "15:00"}])
        bare = create(bare_org, name=f"見守り{tag}", category_code="mutual_help", kinds=[kind["code"]],
                      municipality_code=NARUTO)
        odd = create(org, name="県域の相談窓口", category_code="consultation", municipality_code=TOKUSHIMA_CITY,
                     serves_area=TOKUSHIMA, url="www.example.jp", email="not an address", address="徳島市万代町1-1")
        national = create(bare_org, name="全国の電話相談", category_code="consultation", municipality_code=TOKUSHIMA_CITY,
                          serves_area="national", url="https://example.jp/相談", consultation_types=["general"])

        services = export_hsds(client, TOKUSHIMA)
        # Serving the whole nation, it would turn up in the other tests' chain searches.
        ok(client.call("registry", "resource.retire", {"id": national["id"], "version": national["version"]}))
        by_id = {s["id"]: s for s in services}
        ours = [everything, window, bare, odd, national]
        assert {r["id"] for r in ours} <= set(by_id)
        assert_all_valid(services)

        full = by_id[everything["id"]]
        assert full["alternate_name"] == "ぐるーぷほーむしんまち" and full["url"] == "https://example.jp/home?id=1#top"
        assert (full["capacity"], full["vacancies"]) == (10, 2)
        assert [(s["freq"], s["byday"], s["opens_at"], s["closes_at"], s["timezone"]) for s in full["schedules"]] == [
            ("WEEKLY", "MO,TU,WE,TH,FR", "09:00:00+09:00", "17:00:00+09:00", 9),
            ("WEEKLY", "SA", "09:00:00+09:00", "12:00:00+09:00", 9)]
        assert [(p["number"], p["type"]) for p in full["phones"]] == [("088-621-5177", "voice")]
        assert full["organization"]["phones"][0]["type"] == "voice"
        location = full["service_at_locations"][0]["location"]
        assert (location["latitude"], location["longitude"]) == (34.0703, 134.5548)
        address = location["addresss"][0]
        assert (address["address_1"], address["city"], address["state_province"], address["postal_code"], address["country"]) == (
            "徳島県徳島市幸町2-5", "徳島市", "徳島県", "770-8571", "JP")
        assert [(a["name"], a["extent"], a["extent_type"]) for a in full["service_areas"]] == [
            ("新町", f"{TOKUSHIMA}:daily_life_area:362018-1", "text")]
        terms = {a["taxonomy_term"]["code"]: a["taxonomy_term"] for a in full["attributes"]}
        assert terms["disability_welfare"]["description"] == "Disability welfare services"
        assert terms["group_home"]["parent_id"] == terms["disability_welfare"]["id"]

        consultation = by_id[window["id"]]
        assert [(s.get("freq"), s.get("byday"), s["opens_at"], s["closes_at"], s["description"])
                for s in consultation["schedules"]] == [
            ("WEEKLY", "MO,WE", "08:30:00+09:00", "00:00:00+09:00", "月水祝 08:30-24:00"),
            (None, None, "10:00:00+09:00", "15:00:00+09:00", "祝 10:00-15:00")]
        assert consultation["service_areas"][0]["name"] == "東部圏域"
        assert {(a["link_type"], a["taxonomy_term"]["code"]) for a in consultation["attributes"]} == {
            ("service_type", "consultation"), ("service_type", "municipal_window"), ("consultation_type", "general"),
            ("consultation_type", "disability"), ("consultation_type", "developmental")}
        assert "addresss" not in consultation["service_at_locations"][0]["location"]

        minimal = by_id[bare["id"]]
        for absent in ("alternate_name", "description", "url", "email", "phones", "schedules", "capacity", "vacancies"):
            assert absent not in minimal, absent
        assert minimal["organization"] == {"id": bare_org["id"], "name": bare_org["name"], "description": ""}
        assert minimal["service_areas"][0]["name"] == "鳴門市"
        own_kind = next(a["taxonomy_term"] for a in minimal["attributes"] if a["taxonomy_term"]["code"] == kind["code"])
        assert own_kind["description"] == "見守りの会"

        # Free text that is not a URL or an address is left out rather than published as one.
        assert "url" not in by_id[odd["id"]] and "email" not in by_id[odd["id"]]
        assert "url" not in by_id[national["id"]]
        assert by_id[odd["id"]]["service_areas"][0]["name"] == "徳島県"
        assert by_id[national["id"]]["service_areas"][0]["name"] == "全国"


def test_the_whole_directory_exports_as_valid_hsds(suite):
    """Whatever the other tests (the property fuzzing among them) have stored, nationwide."""
    with Closing(suite.client()) as client:
        pages = all_pages(client, "registry", "resource.export", {"format": "hsds", "limit": 200})
    services = [s for p in pages for s in p["services"]]
    assert len(services) == pages[0]["total"] > 0
    assert_all_valid(services)


def resource_by_name(client, area, name):
    found = [r for r in ok(client.call("registry", "resource.search", {"area": area, "text": name}))["resources"]
             if r["name"] == name]
    assert len(found) == 1, found
    return ok(client.call("registry", "resource.get", {"id": found[0]["id"]}))


def test_a_csv_export_imports_back_with_its_hours(suite):
    editor = token_for(suite, TOKUSHIMA, ["editor"])
    tag = uuid.uuid4().hex[:8]
    weekdays = [{"days": ["mo", "tu", "we", "th", "fr"], "opens": "09:00", "closes": "17:00"},
                {"days": ["sa", "holiday"], "opens": "10:00", "closes": "24:00"}]
    with Closing(suite.client(token=editor)) as client:
        org = ok(client.call("registry", "organization.create", {"name": f"鳴門市福祉課{tag}"}))
        for name, hours in [(f"通所{tag}", weekdays), (f"訪問{tag}", [])]:
            ok(client.call("registry", "resource.create", {
                "organization_id": org["id"], "external_id": f"{tag}-{name}", "name": name, "category_code": "disability_welfare",
                "municipality_code": NARUTO, "hours": hours}))
        pages = all_pages(client, "registry", "resource.export", {"area": NARUTO, "format": "csv", "limit": 500})
        csv = "".join(p["csv"] for p in pages)
        header, *lines = csv.splitlines()
        lines = [line for line in lines if tag in line]
        assert len(lines) == 2 and "hours" in header.split(",")
        assert any("mo tu we th fr 09:00-17:00|sa holiday 10:00-24:00" in line for line in lines)
        ours = header + "\n" + "\n".join(lines) + "\n"

        # The same file back changes nothing; under new external ids it makes copies with the same hours.
        again = ok(client.call("registry", "resource.import", {"csv": ours}))
        assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
        copies = ours.replace(f"{tag}-", f"{tag}-copy-").replace(f"通所{tag}", f"通所写{tag}").replace(f"訪問{tag}", f"訪問写{tag}")
        assert ok(client.call("registry", "resource.import", {"csv": copies}))["created"] == 2
        assert resource_by_name(client, NARUTO, f"通所写{tag}")["hours"] == weekdays
        assert resource_by_name(client, NARUTO, f"訪問写{tag}")["hours"] == []

        # A changed cell replaces the hours; a file without the column keeps them.
        changed = ours.replace("mo tu we th fr 09:00-17:00|sa holiday 10:00-24:00", "th 13:00-16:00")
        assert ok(client.call("registry", "resource.import", {"csv": changed}))["updated"] == 1
        assert resource_by_name(client, NARUTO, f"通所{tag}")["hours"] == [{"days": ["th"], "opens": "13:00", "closes": "16:00"}]
        columns = header.split(",")
        keep = [i for i, c in enumerate(columns) if c != "hours"]
        rows = [line.split(",") for line in changed.splitlines()]  # no quoted commas in these rows
        without = "\n".join(",".join(row[i] for i in keep) for row in rows) + "\n"
        assert ok(client.call("registry", "resource.import", {"csv": without}))["unchanged"] == 2
        assert resource_by_name(client, NARUTO, f"通所{tag}")["hours"] == [{"days": ["th"], "opens": "13:00", "closes": "16:00"}]

        bad = ours.replace("mo tu we th fr 09:00-17:00|sa holiday 10:00-24:00", "mo 9時-17時")
        envelope, _ = client.call("registry", "resource.import", {"csv": bad})
        assert envelope["error"]["code"] == "invalid_input"
        line = 2 + next(i for i, text in enumerate(lines) if f"通所{tag}" in text)
        assert [(e["line"], e["message"]) for e in envelope["error"]["details"]["errors"]] == [
            (line, 'hours "mo 9時-17時" is not like "mo tu we th fr 09:00-17:00|sa 09:00-12:00"')]
