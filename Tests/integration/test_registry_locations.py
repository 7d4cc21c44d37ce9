"""Several locations per service (`locations`): a 基幹相談支援センター of 愛媛県 (used only by this
file) gives consultations at its own office and at two branches, one in another city. Each
location is an HSDS service_at_location with its address, accessibility and hours, and the export
validates; the CSV round trip carries the list (as JSON in one cell); search and serve summaries
stay small; the staff-only address is never a location, nor in any public output. The export
also says who last verified the record (HSDS metadata)."""
import json
import uuid

import pytest

from conftest import Closing
from test_registry_areas import token_for
from test_registry_hsds import assert_all_valid
from tsunagu_peer import all_pages, error_code, ok

EHIME, MATSUYAMA, IMABARI = "380008", "382019", "382027"
BRANCHES = [
    {"name": "北条出張相談", "postal_code": "799-2430", "address": "愛媛県松山市北条辻600-1", "latitude": 33.97,
     "longitude": 132.77, "accessibility": "車椅子で入れます", "hours": [{"days": ["tu"], "opens": "13:00", "closes": "16:00"}]},
    {"municipality_code": IMABARI, "address": "愛媛県今治市別宮町1-4-1"},
]
STAFF_ADDRESS = "愛媛県松山市秘密町9-9-9"


@pytest.fixture
def centre(suite):
    tag = uuid.uuid4().hex[:8]
    with Closing(suite.client(token=token_for(suite, EHIME, ["editor"]))) as client:
        org = ok(client.call("registry", "organization.create", {"name": f"愛媛県障がい福祉課{tag}"}))["id"]
        created = ok(client.call("registry", "resource.create", {
            "organization_id": org, "external_id": f"{tag}-kikan", "name": f"松山基幹相談支援センター{tag}",
            "category_code": "consultation", "kinds": ["municipal_window"], "municipality_code": MATSUYAMA,
            "postal_code": "790-0001", "address": "愛媛県松山市一番町4-7-2", "locations": BRANCHES,
            "staff_address": STAFF_ADDRESS, "last_verified_at": "2026-04-01", "last_verified_by": "愛媛県障がい福祉課"}))
        yield client, tag, created


def test_a_resource_keeps_its_locations_in_full(centre):
    client, tag, created = centre
    assert [(l["name"], l["municipality_code"], l["address"], l["hours"]) for l in created["locations"]] == [
        ("北条出張相談", None, "愛媛県松山市北条辻600-1", [{"days": ["tu"], "opens": "13:00", "closes": "16:00"}]),
        ("", IMABARI, "愛媛県今治市別宮町1-4-1", [])]
    # Read and sent back unchanged, then changed: the list is replaced.
    same = ok(client.call("registry", "resource.update", created))
    assert same["locations"] == created["locations"]
    fewer = ok(client.call("registry", "resource.update", dict(same, locations=same["locations"][1:])))
    assert [l["address"] for l in fewer["locations"]] == ["愛媛県今治市別宮町1-4-1"]


def test_bad_locations_are_refused_with_a_pointer(centre):
    client, tag, created = centre

    def refused(locations, path, **more):
        envelope, _ = client.call("registry", "resource.update", dict(created, locations=locations, **more))
        assert envelope["error"]["code"] == "invalid_input", path
        assert path in [v["path"] for v in envelope["error"]["details"]["violations"]], envelope
    refused([{"address": "x", "municipality_code": "999999"}], "/locations/0/municipality_code")
    refused([BRANCHES[0], {"name": "住所なし"}], "/locations/1/address")
    refused([{"address": "x" * 301}], "/locations/0/address")
    refused([{"address": "x", "latitude": 91}], "/locations/0/latitude")
    refused([{"address": "x", "hours": [{"days": ["xx"], "opens": "09:00", "closes": "10:00"}]}], "/locations/0/hours/0/days/0")
    refused([{"address": "x", "staff_only": "y"}], "/locations/0/staff_only")
    refused([{"address": "x"}] * 11, "/locations")
    # The staff-only address cannot become public as a location (width and spaces do not matter).
    refused([{"address": "愛媛県松山市秘密町９-９-９ "}], "/locations/0/address")


def test_the_csv_round_trip_carries_the_locations(centre):
    client, tag, created = centre
    pages = all_pages(client, "registry", "resource.export", {"area": MATSUYAMA, "format": "csv", "limit": 500})
    csv = "".join(p["csv"] for p in pages)
    header, *lines = csv.splitlines()
    ours = header + "\n" + "\n".join(line for line in lines if tag in line) + "\n"
    assert STAFF_ADDRESS not in csv
    again = ok(client.call("registry", "resource.import", {"csv": ours}))
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 1)
    # Under a new external id, a copy with the same locations.
    copy = ours.replace(f"{tag}-kikan", f"{tag}-copy").replace(f"センター{tag}", f"センター写{tag}")
    assert ok(client.call("registry", "resource.import", {"csv": copy}))["created"] == 1
    found = ok(client.call("registry", "resource.search", {"area": MATSUYAMA, "text": f"センター写{tag}"}))["resources"]
    assert ok(client.call("registry", "resource.get", {"id": found[0]["id"]}))["locations"] == created["locations"]
    # A file without the column keeps them; an empty cell clears them; a bad cell is an error on its line.
    rows = [["external_id", "organization", "name", "category_code", "municipality_code", "locations"],
            [f"{tag}-kikan", f"愛媛県障がい福祉課{tag}", created["name"], "consultation", MATSUYAMA]]

    def file(*cells, columns=6):
        return ",".join(rows[0][:columns]) + "\n" + ",".join(rows[1] + list(cells)) + "\n"
    ok(client.call("registry", "resource.import", {"csv": file(columns=5)}))
    assert ok(client.call("registry", "resource.get", {"id": created["id"]}))["locations"] == created["locations"]
    for cell in ('"[{""address"":1}]"', '"not json"', '"[{""address"":""' + STAFF_ADDRESS + '""}]"',
                 '"[{""address"":""x"",""municipality_code"":""999999""}]"'):
        envelope, _ = client.call("registry", "resource.import", {"csv": file(cell)})
        assert envelope["error"]["code"] == "invalid_input", cell
        assert [e["line"] for e in envelope["error"]["details"]["errors"]] == [2], cell
    ok(client.call("registry", "resource.import", {"csv": file("")}))
    assert ok(client.call("registry", "resource.get", {"id": created["id"]}))["locations"] == []


def test_hsds_has_a_service_at_location_for_each_and_validates(centre):
    client, tag, created = centre
    services = [s for p in all_pages(client, "registry", "resource.export", {"area": EHIME, "format": "hsds", "limit": 500})
                for s in p["services"]]
    assert_all_valid(services)
    assert STAFF_ADDRESS not in json.dumps(services, ensure_ascii=False)
    ours = next(s for s in services if s["id"] == created["id"])
    places = ours["service_at_locations"]
    assert [(p["location"]["name"], p["location"]["addresss"][0]["city"], p["location"]["addresss"][0]["address_1"])
            for p in places] == [
        (created["name"], "松山市", "愛媛県松山市一番町4-7-2"), ("北条出張相談", "松山市", "愛媛県松山市北条辻600-1"),
        (created["name"], "今治市", "愛媛県今治市別宮町1-4-1")]
    assert len({p["id"] for p in places}) == len({p["location"]["id"] for p in places}) == 3
    branch = places[1]
    assert branch["location"]["accessibilitys"][0]["description"] == "車椅子で入れます"
    assert (branch["location"]["latitude"], branch["location"]["longitude"]) == (33.97, 132.77)
    assert [(s["byday"], s["opens_at"], s["closes_at"], s["service_at_location_id"]) for s in branch["schedules"]] == [
        ("TU", "13:00:00+09:00", "16:00:00+09:00", branch["id"])]
    assert "schedules" not in places[2]
    # Who last verified the record, and when: HSDS metadata.
    assert [(m["last_action_date"], m["last_action_type"], m["updated_by"]) for m in ours["metadata"]] == [
        ("2026-04-01", "verified", "愛媛県障がい福祉課")]
    assert ours["assured_date"] == "2026-04-01"


def test_summaries_stay_small_and_public_reads_never_show_the_staff_address(suite, centre):
    client, tag, created = centre
    found = ok(client.call("registry", "resource.search", {"area": MATSUYAMA, "text": tag, "limit": 200}))["resources"]
    assert found and all("locations" not in r for r in found)
    served = ok(client.call("registry", "resource.serve", {"municipality": MATSUYAMA, "limit": 200}))
    assert all("locations" not in r for level in served["levels"] for r in level["resources"])
    with Closing(suite.client(token=token_for(suite, EHIME, ["staff"]))) as reader:
        read = ok(reader.call("registry", "resource.get", {"id": created["id"]}))
        assert "staff_address" not in read and read["locations"] == created["locations"]
        assert STAFF_ADDRESS not in json.dumps(read, ensure_ascii=False)
    assert error_code(client.call("registry", "resource.update", dict(created, locations="北条"))) == "invalid_input"
