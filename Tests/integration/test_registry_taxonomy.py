"""The taxonomy as the law names it (migration 0016): the kinds `taxonomy.list` shows, their
在宅系 / 施設・居住系 grouping, and existing resources moved to the new codes with nothing lost."""
import contextlib
import os
import shutil
import subprocess
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from conftest import BIN, DATABASE_URL, Closing
from test_registry_integrity import CHANGED, read_events
from tsunagu_peer import ok

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MIGRATIONS = os.path.join(ROOT, "services", "registry", "migrations")
TAXONOMY_MIGRATION = "0016_taxonomy_as_the_law_names_it"

REMOVED = {"consultation_support_provider", "independence_training", "continuous_employment_support",
           "group_home_housing"}
# code: (category, name_ja, grouping)
EXPECTED = {
    "general_consultation_support_provider": ("consultation", "指定一般相談支援事業者", None),
    "specific_consultation_support_provider": ("consultation", "指定特定相談支援事業者", None),
    "child_consultation_support_provider": ("consultation", "指定障害児相談支援事業者", None),
    "community_transition_support": ("consultation", "地域移行支援", None),
    "community_settlement_support": ("consultation", "地域定着支援", None),
    "planning_consultation_support": ("consultation", "計画相談支援", None),
    "municipal_health_center": ("consultation", "市町村保健センター", None),
    "prefectural_office": ("consultation", "都道府県本庁", None),
    "employment_transition_support": ("disability_welfare", "就労移行支援", "home_based"),
    "independence_training_functional": ("disability_welfare", "自立訓練（機能訓練）", "home_based"),
    "independence_training_daily_living": ("disability_welfare", "自立訓練（生活訓練）", "home_based"),
    "continuous_employment_support_a": ("disability_welfare", "就労継続支援A型", "home_based"),
    "continuous_employment_support_b": ("disability_welfare", "就労継続支援B型", "home_based"),
    "employment_retention_support": ("disability_welfare", "就労定着支援", "home_based"),
    "independent_living_assistance": ("disability_welfare", "自立生活援助", "home_based"),
    "community_activity_support_center": ("disability_welfare", "地域活動支援センター", None),
    "community_life_support_hub": ("disability_welfare", "地域生活支援拠点等", None),
    "group_home": ("disability_welfare", "共同生活援助（グループホーム）", "residential"),
    "home_care": ("disability_welfare", "居宅介護", "home_based"),
    "daily_life_care": ("disability_welfare", "生活介護", "home_based"),
    "short_stay": ("disability_welfare", "短期入所", "home_based"),
    "facility_residential_support": ("disability_welfare", "施設入所支援", "residential"),
    "residential_independence_training": ("disability_welfare", "宿泊型自立訓練", "residential"),
    "home_help": ("long_term_care", "訪問介護", "home_based"),
    "home_nursing": ("long_term_care", "訪問看護", "home_based"),
    "day_service": ("long_term_care", "通所介護", "home_based"),
    "small_multifunctional_care": ("long_term_care", "小規模多機能型居宅介護", "home_based"),
    "short_stay_care": ("long_term_care", "短期入所生活介護", "home_based"),
    "welfare_equipment": ("long_term_care", "福祉用具", "home_based"),
    "round_the_clock_visits": ("long_term_care", "24時間対応の訪問サービス", "home_based"),
    "special_nursing_home": ("long_term_care", "介護老人福祉施設", "residential"),
    "geriatric_health_facility": ("long_term_care", "介護老人保健施設", "residential"),
    "dementia_group_home": ("long_term_care", "認知症対応型共同生活介護", "residential"),
    "preventive_care": ("long_term_care", "介護予防サービス", None),
    "housing_support_corporation": ("housing", "居住支援法人", None),
    "housing_support_council": ("housing", "居住支援協議会", None),
    "family_association": ("mutual_help", "家族会", None),
    "psychiatric_emergency_information_center": ("medical", "精神科救急情報センター", None),
}


def kinds_by_code(taxonomy):
    return {k["code"]: dict(k, category_code=c["code"]) for c in taxonomy["categories"] for k in c["kinds"]}


def test_taxonomy_list_names_the_kinds_as_the_law_does(suite):
    with Closing(suite.client()) as client:
        kinds = kinds_by_code(ok(client.call("registry", "taxonomy.list")))
    assert not REMOVED & set(kinds), REMOVED & set(kinds)
    for code, (category, name_ja, grouping) in EXPECTED.items():
        kind = kinds.get(code)
        assert kind is not None, f"{code} missing"
        assert (kind["category_code"], kind["name_ja"], kind["grouping"], kind["tenant"]) == (category, name_ja, grouping, None), kind
    # One group home; every kind says its grouping, null outside disability welfare and long-term care.
    assert [c for c, k in kinds.items() if "グループホーム" in k["name_ja"]] == ["group_home"]
    assert all("grouping" in k for k in kinds.values())
    assert {k["grouping"] for k in kinds.values() if k["category_code"] not in ("disability_welfare", "long_term_care")} == {None}


def database_url(base, database, user=None):
    """`base` with another database (and user)."""
    parts = urlsplit(base)
    netloc = parts.netloc if user is None else f"{user}@{parts.netloc.split('@', 1)[-1]}"
    return urlunsplit((parts.scheme, netloc, "/" + database, parts.query, parts.fragment))


@contextlib.contextmanager
def registry_database_before(tmp_path, name_prefix, first_left_out):
    """A database of its own with the registry schema migrated up to (not including) migration
    `first_left_out` ("0015"), as a registry deployed before it has it: made with
    deploy/database-roles.sql (as deploy/test.sh does for the suite's database), then `tsunagu
    migrate` on a folder holding the earlier migrations (the same files, so the same checksums).
    Yields (the registry role's URL, the number of migrations applied); dropped afterwards."""
    name = name_prefix + uuid.uuid4().hex[:8]
    with psycopg.connect(DATABASE_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(database_url(DATABASE_URL, name), autocommit=True) as admin:
            with open(os.path.join(ROOT, "deploy", "database-roles.sql"), encoding="utf-8") as handle:
                admin.execute(handle.read())
        before = tmp_path / f"migrations-before-{first_left_out}"
        before.mkdir()
        for file in sorted(os.listdir(MIGRATIONS)):
            if file.endswith(".sql") and file[:4] < first_left_out:
                shutil.copy(os.path.join(MIGRATIONS, file), before / file)
        url = database_url(DATABASE_URL, name, user="tsunagu_registry")
        result = subprocess.run([os.path.join(BIN, "tsunagu"), "migrate", "--schema", "registry", "--dir", str(before),
                                 "--database-url", url], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        yield url, len(os.listdir(before))
    finally:
        with psycopg.connect(DATABASE_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_at_0014(tmp_path):
    """A database with the registry's migrations 0001–0014 only (`registry_database_before`)."""
    with registry_database_before(tmp_path, "tsunagu_taxonomy_", "0015") as (url, applied):
        assert applied == 14
        yield url


TOKYO, SAPPORO = "130001", "011002"
# name: (tenant, category, kinds before, category after, kinds after)
RESOURCES = {
    "相談支援": (TOKYO, "consultation", ["core_consultation_center", "consultation_support_provider"],
             "consultation", ["core_consultation_center", "general_consultation_support_provider",
                              "specific_consultation_support_provider"]),
    "訓練と就労": (TOKYO, "disability_welfare", ["independence_training", "continuous_employment_support", "short_stay"],
              "disability_welfare", ["independence_training_functional", "independence_training_daily_living",
                                     "continuous_employment_support_a", "continuous_employment_support_b", "short_stay"]),
    "就労移行": (SAPPORO, "participation_employment", ["employer", "employment_transition_support", "peer_support"],
             "disability_welfare", ["employment_transition_support"]),
    "グループホーム（住まい）": (SAPPORO, "housing", ["public_housing", "group_home_housing"],
                      "disability_welfare", ["group_home"]),
    "退去済みの就労": (TOKYO, "disability_welfare", ["continuous_employment_support"],  # retired: moved too
                "disability_welfare", ["continuous_employment_support_a", "continuous_employment_support_b"]),
    # A tenant's own kind whose code the law's taxonomy now takes (under another category).
    "家族の集い": (SAPPORO, "awareness", ["public_education", "family_association"], "mutual_help", ["family_association"]),
    "薬局": (SAPPORO, "medical", ["pharmacy"], "medical", ["pharmacy"]),  # untouched
    "共同生活援助": (TOKYO, "disability_welfare", ["group_home"], "disability_welfare", ["group_home"]),  # untouched
}
RETIRED = {"退去済みの就労"}


# database_at_0014 comes first: fixtures are torn down in reverse, so the suite's registry has
# stopped before its database is dropped.
def test_migration_moves_existing_resources_to_the_new_codes(database_at_0014, make_suite):
    """Existing records move to the new codes and nothing is lost. Migrations run when a registry
    starts, so the test starts from a database at 0014 (the fixture), writes resources with the old
    codes there as the registry of that time wrote them (row, version 1, history row 'created'),
    then starts a registry on it, which applies 0016 (and any other migration after 0014) as any
    deployed registry would, and reads the result through the API: each resource's kinds and
    category, its history (the version before keeps the old ones), and one resource.changed event
    per changed resource. The resource count is the same before and after."""
    with psycopg.connect(database_at_0014, autocommit=True) as db:
        db.execute("""INSERT INTO registry.kinds (code, category_code, name_ja, tenant)
                      VALUES ('family_association', 'awareness', '家族の会（札幌）', %s)""", (SAPPORO,))
        orgs = {t: db.execute("INSERT INTO registry.organizations (tenant, name) VALUES (%s, %s) RETURNING id::text",
                              (t, f"{t}の法人")).fetchone()[0] for t in (TOKYO, SAPPORO)}
        ids = {}
        for name, (tenant, category, kinds, _, _) in RESOURCES.items():
            municipality = "131016" if tenant == TOKYO else "011002"
            ids[name] = db.execute("""
                INSERT INTO registry.resources (tenant, organization_id, name, category_code, kinds, municipality_code, retired_at)
                VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END) RETURNING id::text
                """, (tenant, orgs[tenant], name, category, kinds, municipality, name in RETIRED)).fetchone()[0]
        db.execute("""INSERT INTO registry.resource_history (resource_id, version, changed_by, change, snapshot)
                      SELECT id, version, 'test', 'created', to_jsonb(r) - 'search_text' FROM registry.resources r""")
        count_before = db.execute("SELECT count(*) FROM registry.resources").fetchone()[0]
        assert count_before == len(RESOURCES)

    suite = make_suite()
    suite.start_gateway()
    suite.start_registry(env={"TSUNAGU_DATABASE_URL": database_at_0014})
    suite.wait_for_instances("registry", 1)

    changed = {name for name, (_, category, kinds, category_after, kinds_after) in RESOURCES.items()
               if (category, kinds) != (category_after, kinds_after)}
    with Closing(suite.client()) as client:
        assert not REMOVED & set(kinds_by_code(ok(client.call("registry", "taxonomy.list"))))
        for name, (tenant, category, kinds, category_after, kinds_after) in RESOURCES.items():
            resource = ok(client.call("registry", "resource.get", {"id": ids[name]}))
            assert (resource["category_code"], resource["kinds"]) == (category_after, kinds_after), name
            assert (resource["retired_at"] is not None) == (name in RETIRED)
            versions = ok(client.call("registry", "resource.history", {"id": ids[name]}))["versions"]
            if name not in changed:
                assert resource["version"] == 1 and [v["change"] for v in versions] == ["created"], name
                continue
            assert resource["version"] == 2, name
            assert [(v["version"], v["change"]) for v in versions] == [(1, "created"), (2, "taxonomy_changed")], name
            previous, now = versions[0]["snapshot"], versions[1]["snapshot"]
            assert (previous["category_code"], previous["kinds"]) == (category, kinds), name  # nothing lost
            assert (now["category_code"], now["kinds"]) == (category_after, kinds_after), name
            assert versions[1]["changed_by"] == "migration:0016"
            assert now["updated_at"] > previous["updated_at"]
        # The fresh database had no events before: exactly one resource.changed per changed resource.
        events = read_events(client, 0, lambda es: len(es) >= len(changed))
        assert sorted(e["subject"] for e in events) == sorted(f"resources/{ids[n]}" for n in changed)
        for event in events:
            name = next(n for n in changed if event["subject"] == f"resources/{ids[n]}")
            tenant, _, _, category_after, kinds_after = RESOURCES[name]
            assert event["type"] == CHANGED and event["tenant"] == tenant
            assert {k: event["data"][k] for k in ("id", "version", "category_code", "kinds")} == \
                {"id": ids[name], "version": 2, "category_code": category_after, "kinds": kinds_after}

    with psycopg.connect(database_at_0014, autocommit=True) as db:
        assert db.execute("SELECT count(*) FROM registry.resources").fetchone()[0] == count_before
        assert db.execute("SELECT 1 FROM registry.schema_migrations WHERE id = %s", (TAXONOMY_MIGRATION,)).fetchone()
        # Every resource's kinds are kinds of its category; no old code is left anywhere.
        assert db.execute("""SELECT r.name, k FROM registry.resources r, unnest(r.kinds) k
                             WHERE NOT EXISTS (SELECT 1 FROM registry.kinds x WHERE x.code = k AND x.category_code = r.category_code)
                          """).fetchall() == []
        assert db.execute("SELECT code FROM registry.kinds WHERE code = ANY(%s)", (list(REMOVED),)).fetchall() == []
        assert db.execute("SELECT category_code, tenant FROM registry.kinds WHERE code = 'family_association'").fetchone() \
            == ("mutual_help", None)
