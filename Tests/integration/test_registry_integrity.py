"""Registry integrity under change and concurrency: area imports that touch only their kinds and
report the resources they detach, import staging that survives a crash and expires, backup links
that cannot form a cycle however they race, and an event outbox no writer waits on."""
import threading
import time
import uuid

import psycopg

from conftest import DATABASE_URL, Closing, free_port
from test_events import receive, subscriber
from test_registry_areas import token_for
from test_registry_resources import make_org, resource_body
from tsunagu_peer import error_code, ok

TOKYO = "130001"


def database():
    return psycopg.connect(DATABASE_URL, autocommit=True)


# MARK: backup links

CYCLES = """
    WITH RECURSIVE walk(start, node, path) AS (
        SELECT backer_id, backed_id, ARRAY[backer_id] FROM registry.backups WHERE backer_id = ANY(%(ids)s::uuid[])
        UNION ALL
        SELECT w.start, b.backed_id, w.path || b.backer_id FROM walk w JOIN registry.backups b ON b.backer_id = w.node
        WHERE NOT b.backer_id = ANY(w.path))
    SELECT count(*) FROM walk WHERE node = start
    """


def test_concurrent_backup_links_never_form_a_cycle(suite):
    """Each round, eight threads released together link four resources both ways round a ring:
    every pair of opposite links and each full ring would be a cycle, and each link alone passes
    the cycle check. Serialised, some are refused and no cycle is stored."""
    editor = token_for(suite, TOKYO, ["editor"])
    rounds, threads = 6, 8
    with Closing(suite.client(token=editor)) as client:
        org = make_org(client, "バックアップ検証法人")
        rings = [[ok(client.call("registry", "resource.create", resource_body(org["id"], name=f"拠点{r}-{i}")))["id"]
                  for i in range(4)] for r in range(rounds)]
    barrier = threading.Barrier(threads, timeout=30)
    outcomes, failures = [], []

    def worker(t):
        try:
            with Closing(suite.client(token=editor)) as mine:
                for ring in rings:
                    i = t % 4
                    backer, backed = (ring[i], ring[(i + 1) % 4]) if t < 4 else (ring[(i + 1) % 4], ring[i])
                    barrier.wait()
                    envelope, _ = mine.call("registry", "backup.link", {"backer_id": backer, "backed_id": backed},
                                            timeout_ms=20000)
                    outcomes.append(envelope["status"] if envelope["status"] == "ok" else envelope["error"]["code"])
        except Exception as error:  # reported below; a broken barrier releases the others
            failures.append(repr(error))
            barrier.abort()

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not failures and not any(w.is_alive() for w in workers), (failures, suite.logs())
    assert len(outcomes) == rounds * threads
    assert set(outcomes) <= {"ok", "conflict"}, outcomes
    assert outcomes.count("ok") >= rounds and outcomes.count("conflict") >= rounds, outcomes
    ids = [i for ring in rings for i in ring]
    with database() as db:
        assert db.execute(CYCLES, {"ids": ids}).fetchone()[0] == 0
        links = db.execute("SELECT count(*) FROM registry.backups WHERE backer_id = ANY(%(ids)s::uuid[])", {"ids": ids}).fetchone()[0]
    assert links == outcomes.count("ok")


# MARK: events, read back

def last_sequence(client):
    """The newest sequence `events.read` shows now (its head)."""
    return ok(client.call("registry", "events.read", {"after": 0, "limit": 1}))["head"]


def read_events(client, after, until, timeout=10):
    """Events after `after`, polled (sequences are assigned by the publisher, within a poll of the
    commit) until `until(events)` holds; bounded by `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        events, cursor = [], after
        while True:
            page = ok(client.call("registry", "events.read", {"after": cursor, "limit": 1000}))
            events += page["events"]
            cursor = page["last_sequence"]
            if cursor >= page["head"]:
                break
        if until(events) or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def about(events, resource_id):
    return [e for e in events if e["subject"] == f"resources/{resource_id}"]


CHANGED = "jp.tsunagu.registry.resource.changed"


def changes(events, resource_id):
    return [e for e in about(events, resource_id) if e["type"] == CHANGED]


# MARK: area imports

KOCHI = "390003"  # 高知県, used only by this file
KOCHI_CITY, MUROTO, AKI, NANKOKU = "392014", "392022", "392031", "392049"
AREAS = f"""kind,code,name,kana,municipality
disability_area,D1,中央,ちゅうおう,{KOCHI_CITY}
disability_area,D1,中央,ちゅうおう,{MUROTO}
disability_area,D2,安芸,あき,{AKI}
medical_area,M1,中央医療圏,,{KOCHI_CITY}
medical_area,M1,中央医療圏,,{MUROTO}
medical_area,M2,物部川医療圏,,{NANKOKU}
daily_life_area,L1,高知北,こうちきた,{KOCHI_CITY}
daily_life_area,L2,高知南,こうちみなみ,{KOCHI_CITY}
"""


def area(kind, code):
    return f"{KOCHI}:{kind}:{code}"


def groups(client):
    return sorted((g["kind"], g["code"], tuple(g["municipalities"]))
                  for g in ok(client.call("registry", "area.groups", {"prefecture": KOCHI}))["areas"])


def dangling_references(db):
    return db.execute("""
        SELECT count(*) FROM registry.resources r
        WHERE EXISTS (SELECT 1 FROM unnest(r.serves_areas) x WHERE x <> 'national'
               AND NOT EXISTS (SELECT 1 FROM registry.areas a WHERE a.code = x)
               AND NOT EXISTS (SELECT 1 FROM registry.area_groups g WHERE g.id = x))
           OR (r.daily_life_area_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM registry.area_groups g
               WHERE g.id = r.daily_life_area_id AND g.municipality_code = r.municipality_code))
        """).fetchone()[0]


def kochi_resource(client, org_id, name, municipality, **fields):
    return ok(client.call("registry", "resource.create", resource_body(
        org_id, name=name, municipality_code=municipality, category_code="consultation",
        kinds=["public_health_center"], access_modes=["visit"], capacity=None, vacancies=None, **fields)))


def test_an_area_import_replaces_only_its_kinds_and_reports_the_resources_it_detaches(suite):
    kochi = token_for(suite, KOCHI, ["editor"])
    with Closing(suite.client(token=kochi)) as client:
        ok(client.call("registry", "area.import", {"prefecture": KOCHI, "csv": AREAS}))
        everything = groups(client)
        org = make_org(client, "高知県健康政策部")
        in_l2 = kochi_resource(client, org["id"], "高知南地域包括支援センター", KOCHI_CITY,
                               daily_life_area_id=area("daily_life_area", "L2"))
        serves_m2 = kochi_resource(client, org["id"], "中央東保健所", NANKOKU, serves_area=area("medical_area", "M2"))
        serves_d1 = kochi_resource(client, org["id"], "中央西保健所", MUROTO, serves_area=area("disability_area", "D1"))
        after = last_sequence(client)

        # Only 二次医療圏 rows: M2 goes, the disability and daily-life areas stay as they were.
        medical_only = "kind,code,name,kana,municipality\n" + "\n".join(
            line for line in AREAS.splitlines() if line.startswith("medical_area,M1")) + "\n"
        result = ok(client.call("registry", "area.import", {"prefecture": KOCHI, "csv": medical_only}))
        assert result["kinds"] == ["medical_area"] and result["areas"] == {"medical_area": 1}
        assert result["removed_areas"] == [area("medical_area", "M2")]
        assert result["affected_resources"] == [{"id": serves_m2["id"], "field": "serves_area",
                                                 "area": area("medical_area", "M2"), "reason": "removed"}]
        assert result["affected_count"] == 1
        assert groups(client) == [g for g in everything if g[:2] != ("medical_area", "M2")]
        chain = [c["id"] for c in ok(client.call("registry", "area.chain", {"code": KOCHI_CITY}))["chain"]]
        assert chain[:3] == [area("daily_life_area", "L1"), area("daily_life_area", "L2"), KOCHI_CITY]
        assert area("disability_area", "D1") in chain and area("medical_area", "M1") in chain

        detached = ok(client.call("registry", "resource.get", {"id": serves_m2["id"]}))
        assert detached["serves_area"] is None and detached["version"] == 2
        history = ok(client.call("registry", "resource.history", {"id": serves_m2["id"]}))["versions"]
        assert [(h["version"], h["change"]) for h in history] == [(1, "created"), (2, "area_removed")]
        assert history[-1]["snapshot"]["serves_area"] is None
        events = read_events(client, after, lambda es: changes(es, serves_m2["id"]))
        assert [(e["type"], e["data"]["version"]) for e in changes(events, serves_m2["id"])] == [(CHANGED, 2)]
        assert changes(events, in_l2["id"]) == [] and changes(events, serves_d1["id"]) == []
        assert ok(client.call("registry", "resource.get", {"id": serves_d1["id"]}))["version"] == 1

        # Only daily-life rows: L2 goes and the resource in it leaves it.
        daily_only = "kind,code,name,kana,municipality\n" + "\n".join(
            line for line in AREAS.splitlines() if line.startswith("daily_life_area,L1")) + "\n"
        result = ok(client.call("registry", "area.import", {"prefecture": KOCHI, "csv": daily_only}))
        assert result["affected_resources"] == [{"id": in_l2["id"], "field": "daily_life_area_id",
                                                 "area": area("daily_life_area", "L2"), "reason": "removed"}]
        assert ok(client.call("registry", "resource.get", {"id": in_l2["id"]}))["daily_life_area_id"] is None
        assert [h["change"] for h in ok(client.call("registry", "resource.history", {"id": in_l2["id"]}))["versions"]] \
            == ["created", "area_removed"]
        assert ("disability_area", "D1", (KOCHI_CITY, MUROTO)) in groups(client)

        # A removed area cannot be referred to again, by a write or by a resource import.
        envelope, _ = client.call("registry", "resource.create", resource_body(
            org["id"], municipality_code=NANKOKU, serves_area=area("medical_area", "M2")))
        assert envelope["error"]["code"] == "invalid_input"
        assert [v["path"] for v in envelope["error"]["details"]["violations"]] == ["/serves_area"]
        csv = ("external_id,organization,name,category_code,municipality_code,serves_area\n"
               f"kochi-{uuid.uuid4().hex[:8]},高知県健康政策部,どこか,consultation,{NANKOKU},{area('medical_area', 'M2')}\n")
        envelope, _ = client.call("registry", "resource.import", {"csv": csv})
        assert envelope["error"]["code"] == "invalid_input"
        assert [(e["line"], e["message"]) for e in envelope["error"]["details"]["errors"]] == [
            (2, f"unknown area {area('medical_area', 'M2')}")]

        # A kind is cleared by naming it with no rows; a file without rows must name what it clears.
        assert error_code(client.call("registry", "area.import", {"prefecture": KOCHI, "csv": "kind,code,name,kana,municipality\n"})) \
            == "invalid_input"
        envelope, _ = client.call("registry", "area.import", {"prefecture": KOCHI, "kinds": ["medical_area"], "csv": AREAS})
        assert envelope["error"]["code"] == "invalid_input"
        assert {e["line"] for e in envelope["error"]["details"]["errors"]} == {2, 3, 4, 8, 9}
        cleared = ok(client.call("registry", "area.import", {"prefecture": KOCHI, "kinds": ["disability_area"],
                                                              "csv": "kind,code,name,kana,municipality\n"}))
        assert cleared["removed_areas"] == [area("disability_area", "D1"), area("disability_area", "D2")]
        assert [(a["id"], a["field"]) for a in cleared["affected_resources"]] == [(serves_d1["id"], "serves_area")]
        assert [g[0] for g in groups(client)] == ["daily_life_area", "medical_area"]
    with database() as db:
        assert dangling_references(db) == 0


def test_a_daily_life_area_moved_to_another_municipality_leaves_the_resources_of_the_old_one(suite):
    kochi = token_for(suite, KOCHI, ["editor"])
    with Closing(suite.client(token=kochi)) as client:
        lines = "kind,code,name,kana,municipality\ndaily_life_area,MV,移る圏域,,{}\n"
        ok(client.call("registry", "area.import", {"prefecture": KOCHI, "csv": lines.format(KOCHI_CITY)}))
        org = make_org(client, "高知市健康福祉部")
        stays = kochi_resource(client, org["id"], "移る圏域の窓口", KOCHI_CITY, daily_life_area_id=area("daily_life_area", "MV"))
        result = ok(client.call("registry", "area.import", {"prefecture": KOCHI, "csv": lines.format(MUROTO)}))
        assert result["removed_areas"] == []
        assert result["affected_resources"] == [{"id": stays["id"], "field": "daily_life_area_id",
                                                 "area": area("daily_life_area", "MV"), "reason": "moved"}]
        assert ok(client.call("registry", "resource.get", {"id": stays["id"]}))["daily_life_area_id"] is None
    with database() as db:
        assert dangling_references(db) == 0


def test_a_resource_written_while_its_area_is_removed_is_detached_not_left_dangling(suite):
    """A resource write that refers to an area holds it (key share) until it commits: the import
    removing the area waits for it, then finds and detaches the resource."""
    kochi = token_for(suite, KOCHI, ["editor"])
    with Closing(suite.client(token=kochi)) as client:
        ok(client.call("registry", "area.import", {"prefecture": KOCHI, "csv": AREAS}))
        org = make_org(client, "高知県医療政策課")
    m2 = area("medical_area", "M2")
    writer = psycopg.connect(DATABASE_URL)
    try:
        writer.execute("SELECT id FROM registry.area_groups WHERE id = %s FOR KEY SHARE", (m2,))
        resource_id = writer.execute("""
            INSERT INTO registry.resources (tenant, organization_id, name, category_code, municipality_code, serves_areas)
            VALUES (%s, %s, '途中で書かれた保健所', 'consultation', %s, ARRAY[%s]) RETURNING id::text""",
                                     (KOCHI, org["id"], NANKOKU, m2)).fetchone()[0]
        replies = []
        medical_only = "kind,code,name,kana,municipality\n" + f"medical_area,M1,中央医療圏,,{KOCHI_CITY}\n"

        def import_areas():
            with Closing(suite.client(token=kochi)) as mine:
                replies.append(mine.call("registry", "area.import", {"prefecture": KOCHI, "csv": medical_only}, timeout_ms=20000))

        importer = threading.Thread(target=import_areas)
        importer.start()
        time.sleep(1.0)
        assert importer.is_alive(), "the import must wait for the write that refers to the area"
        writer.commit()
        importer.join(20)
        assert not importer.is_alive()
    finally:
        writer.close()
    result = ok(replies[0])
    assert m2 in result["removed_areas"]
    assert {"id": resource_id, "field": "serves_area", "area": m2, "reason": "removed"} in result["affected_resources"]
    with database() as db:
        assert db.execute("SELECT serves_area, version FROM registry.resources WHERE id = %s", (resource_id,)).fetchone() == (None, 2)
        assert dangling_references(db) == 0


# MARK: resource import staging

SHIMANE = "320005"
IMPORT_HEADER = "external_id,organization,name,category_code,municipality_code"


def import_rows(prefix, count):
    return IMPORT_HEADER + "\n" + "".join(f"{prefix}-{i},松江市福祉部,窓口{i},consultation,322016\n" for i in range(count))


def staged_rows(db, import_id):
    return db.execute("SELECT count(*) FROM registry.import_rows WHERE import_id = %s", (import_id,)).fetchone()[0]


def test_import_staging_is_logged(suite):  # the suite's registry has migrated the schema
    with database() as db:
        rows = db.execute("""SELECT relname, relpersistence FROM pg_class
                             WHERE oid IN ('registry.import_rows'::regclass, 'registry.import_errors'::regclass)""").fetchall()
    assert sorted(rows) == [("import_errors", "p"), ("import_rows", "p")]


def test_a_committed_import_takes_no_more_chunks_or_commits(suite):
    editor = token_for(suite, SHIMANE, ["editor"])
    prefix = uuid.uuid4().hex[:8]
    with Closing(suite.client(token=editor)) as client:
        import_id = ok(client.call("registry", "resource.import.begin"))["import_id"]
        ok(client.call("registry", "resource.import.chunk", {"import_id": import_id, "csv": import_rows(prefix, 3)}))
        result = ok(client.call("registry", "resource.import.commit", {"import_id": import_id}))
        assert result["created"] == 3
        envelope, _ = client.call("registry", "resource.import.chunk", {"import_id": import_id, "csv": import_rows(prefix, 5)})
        assert envelope["error"]["code"] == "conflict" and "already committed" in envelope["error"]["message"]
        assert envelope["error"]["details"]["state"] == "committed"
        envelope, _ = client.call("registry", "resource.import.commit", {"import_id": import_id})
        assert envelope["error"]["code"] == "conflict" and envelope["error"]["details"]["result"] == result
        # A commit retried with its idempotency key still gets the reply it missed.
        other = ok(client.call("registry", "resource.import.begin"))["import_id"]
        ok(client.call("registry", "resource.import.chunk", {"import_id": other, "csv": import_rows(prefix + "b", 2)}))
        key = str(uuid.uuid4())
        first = ok(client.call("registry", "resource.import.commit", {"import_id": other}, idempotency_key=key))
        assert ok(client.call("registry", "resource.import.commit", {"import_id": other}, idempotency_key=key)) == first
    with database() as db:
        assert staged_rows(db, import_id) == 0


def test_an_abandoned_import_expires_and_its_staged_rows_are_deleted(suite):
    editor = token_for(suite, SHIMANE, ["editor"])
    prefix = uuid.uuid4().hex[:8]
    with Closing(suite.client(token=editor)) as client, database() as db:
        begun = ok(client.call("registry", "resource.import.begin"))
        abandoned = begun["import_id"]
        assert begun["expires_at"].endswith("Z")
        ok(client.call("registry", "resource.import.chunk", {"import_id": abandoned, "csv": import_rows(prefix, 4)}))
        assert staged_rows(db, abandoned) == 4
        # A day and an hour later (the clock moved by backdating the import):
        db.execute("UPDATE registry.imports SET created_at = now() - interval '25 hours' WHERE id = %s", (abandoned,))
        envelope, _ = client.call("registry", "resource.import.chunk", {"import_id": abandoned, "csv": import_rows(prefix, 1)})
        assert envelope["error"]["code"] == "conflict" and "expired" in envelope["error"]["message"]
        assert envelope["error"]["details"] == {"import_id": abandoned, "state": "expired"}

        fresh = ok(client.call("registry", "resource.import.begin"))["import_id"]  # purges what expired
        assert staged_rows(db, abandoned) == 0
        assert db.execute("SELECT expired_at IS NOT NULL FROM registry.imports WHERE id = %s", (abandoned,)).fetchone()[0]
        envelope, _ = client.call("registry", "resource.import.commit", {"import_id": abandoned})
        assert envelope["error"]["code"] == "conflict" and envelope["error"]["details"]["state"] == "expired"

        ok(client.call("registry", "resource.import.chunk", {"import_id": fresh, "csv": import_rows(prefix, 2)}))
        assert ok(client.call("registry", "resource.import.commit", {"import_id": fresh}))["created"] == 2


# MARK: the event stream

def receive_about(sock, subject, timeout=10):
    """The first pushed event about `subject`, skipping others; bounded by `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.poll(100):
            _, event = receive(sock)
            if event["subject"] == subject:
                return event
    raise AssertionError(f"no event about {subject} was pushed")


def test_a_long_open_outbox_write_stalls_no_writer_and_is_numbered_when_it_commits(suite):
    """A transaction that wrote an event and stays open (a long import) holds up no other writer;
    its event is numbered when the publisher sees it committed, after the events that committed
    first, so a reader that has seen sequence N never finds a smaller one later."""
    editor = token_for(suite, TOKYO, ["editor"])
    everything = subscriber(suite, "jp.tsunagu.registry.")
    long_subject = f"resources/{uuid.uuid4()}"
    try:
        with Closing(suite.client(token=editor)) as client:
            org = make_org(client, "長い取込の法人")
            before = last_sequence(client)
            long = psycopg.connect(DATABASE_URL)  # a transaction of its own, left open
            try:
                long.execute("INSERT INTO registry.events (type, subject, tenant, data) VALUES (%s, %s, %s, %s::jsonb)",
                             ("jp.tsunagu.registry.resource.changed", long_subject, TOKYO, '{"simulated":"long import"}'))
                started = time.monotonic()
                created = ok(client.call("registry", "resource.create", resource_body(org["id"], name="待たない施設"),
                                         timeout_ms=10000))
                assert time.monotonic() - started < 3, "a writer waited for the open transaction"
                pushed = receive_about(everything, f"resources/{created['id']}")
                events = read_events(client, before, lambda es: about(es, created["id"]))
                assert [e["sequence"] for e in about(events, created["id"])] == [pushed["sequence"]]
                assert not [e for e in events if e["subject"] == long_subject]
                first = pushed["sequence"]
                long.commit()
            finally:
                long.close()
            events = read_events(client, first - 1, lambda es: [e for e in es if e["subject"] == long_subject])
            late = [e for e in events if e["subject"] == long_subject]
            assert len(late) == 1 and late[0]["sequence"] > first
            sequences = [e["sequence"] for e in events]
            assert sequences == list(range(first, first + len(sequences))), "events.read shows a gap"
            assert receive_about(everything, long_subject)["sequence"] == late[0]["sequence"]
    finally:
        everything.close()


def test_events_are_numbered_even_when_nothing_takes_the_pushes(make_suite):
    """The publisher numbers events whether or not its pushes reach a gateway: here the registry
    pushes to an endpoint nobody listens on, and events.read still shows its events."""
    s = make_suite()
    s.start_gateway()
    s.start_registry(env={"TSUNAGU_EVENTS_IN_ENDPOINT": f"tcp://127.0.0.1:{free_port()}"})
    s.wait_for_instances("registry", 1)
    with Closing(s.client(token=token_for(s, TOKYO, ["editor"]))) as client:
        before = last_sequence(client)
        created = ok(client.call("registry", "resource.create", resource_body(make_org(client, "届かない法人")["id"])))
        events = read_events(client, before, lambda es: about(es, created["id"]))
        assert [e["type"] for e in about(events, created["id"])] == ["jp.tsunagu.registry.resource.created"]
