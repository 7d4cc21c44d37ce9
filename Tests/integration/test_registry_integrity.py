"""Registry integrity under change and concurrency: area imports that touch only their kinds and
report the resources they detach, import staging that survives a crash and expires, backup links
that cannot form a cycle however they race, and an event outbox no writer waits on."""
import threading
import time
import uuid

import psycopg

from conftest import DATABASE_URL, Closing
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
