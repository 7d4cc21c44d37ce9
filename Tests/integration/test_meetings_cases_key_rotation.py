"""Rotating the case master key of the meetings service (services/meetings/README.md, Cases): an
instance with the new key as TSUNAGU_MEETINGS_CASE_KEY and the old one as ..._PREVIOUS opens cases
under either, and moves every case's data key to the new key in the background, in batches,
without touching content, version or updated_at, each move audited as 'rewrap'; case.key_status
counts the progress. Bad rotation settings stop the service with a message that names the setting
and never the value."""
import base64
import hashlib
import hmac
import json
import time

import psycopg
import pytest

from conftest import ADMIN_TOKEN, DATABASE_URL, Closing
from test_meetings_cases import (CHIYODA, People, all_markers, assert_none_in, audit_of, case_input, markers, new_key,
                                 start_meetings, token_for)
from tsunagu_peer import error_code, ok

PREVIOUS = "TSUNAGU_MEETINGS_CASE_KEY_PREVIOUS"
PREVIOUS_FILE = "TSUNAGU_MEETINGS_CASE_KEY_PREVIOUS_FILE"


def key_id(key):
    """The fingerprint the service stores as key_id: HKDF-SHA256 (no salt) of the master key, 8 bytes."""
    prk = hmac.new(b"", base64.b64decode(key), hashlib.sha256).digest()
    return hmac.new(prk, b"tsunagu.meetings.case-key-id.v1\x01", hashlib.sha256).digest()[:8].hex()


def rows():
    with psycopg.connect(DATABASE_URL) as connection:
        return {str(r[0]): r[1:] for r in connection.execute(
            "SELECT id, key_id, data_key, content, version, updated_at, status, erased_at, erasure_reason "
            "FROM meetings.cases")}


def key_status(suite):
    with Closing(suite.client(ADMIN_TOKEN)) as admin:
        return ok(admin.call("meetings", "case.key_status", {}))


def wait_for_rotation(suite, timeout=30):
    """Polls case.key_status until no case is left under the previous key (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        status = key_status(suite)
        if status["cases"]["previous"] == 0:
            return status
        assert time.monotonic() < deadline, f"rotation did not finish: {status}\n" + suite.logs()
        time.sleep(0.1)


def restart(suite, process, key, **extra_env):
    process.terminate()
    suite.wait_for_instances("meetings", 0)
    return start_meetings(suite, key=key, **extra_env)


def test_rotating_the_master_key_rewraps_every_case_without_changing_it(suite):
    key_a, key_b = new_key(), new_key()
    meetings = start_meetings(suite, key=key_a)
    people = People(suite)
    marks = [markers() for _ in range(3)]
    with people.client(people.editor) as editor:
        ids = [ok(editor.call("meetings", "case.create", case_input(people.body["id"], mark)))["id"] for mark in marks]
        ok(editor.call("meetings", "case.update", {"id": ids[0], "content": {"support_agreed": marks[0]["support"]}}))
        erased = ok(editor.call("meetings", "case.create", case_input(people.body["id"], markers())))["id"]
        tombstone = ok(editor.call("meetings", "case.erase", {"id": erased, "reason": "consent_withdrawn"}))
        contents = {case_id: ok(editor.call("meetings", "case.get", {"id": case_id}))["content"] for case_id in ids}
    status = key_status(suite)
    assert status["current_key_id"] == key_id(key_a) and status.get("previous_key_id") is None
    # The database is shared with other tests (cases under their own keys): exact counts for these keys.
    assert status["cases"]["current"] == 3 and status["cases"]["previous"] == 0 and status["cases"]["erased"] >= 1
    assert set(status["cases"]) == {"current", "previous", "other", "erased"}
    before = rows()
    assert {before[i][0] for i in ids} == {key_id(key_a)}

    # The new key as current, the old one as previous: every case moves to the new key.
    meetings = restart(suite, meetings, key_b, **{PREVIOUS: key_a})
    status = wait_for_rotation(suite)
    assert status["current_key_id"] == key_id(key_b) and status["previous_key_id"] == key_id(key_a)
    assert status["cases"]["current"] == 3 and status["cases"]["previous"] == 0
    after = rows()
    for case_id in ids:
        key, data_key, content, version, updated_at = after[case_id][:5]
        assert key == key_id(key_b)
        assert data_key != before[case_id][1]  # wrapped again...
        assert content == before[case_id][2]  # ...but the content ciphertext is untouched
        assert (version, updated_at) == (before[case_id][3], before[case_id][4])  # not an edit of the case
    assert after[erased] == before[erased] and after[erased][:3] == (None, None, None)
    assert after[erased][5] == "erased" and after[erased][7] == "consent_withdrawn"

    with people.client(people.editor) as editor:
        for case_id in ids:
            assert ok(editor.call("meetings", "case.get", {"id": case_id}))["content"] == contents[case_id]
        assert ok(editor.call("meetings", "case.get", {"id": erased}))["erasure"] == tombstone["erasure"]
        # Each rewrap is in the case's audit, once, by no caller (no token_id), naming the columns written.
        rewraps = audit_of(editor, ids[0], action="rewrap")
        assert [(e.get("token_id"), e["tenant"], e["fields"], e["outcome"]) for e in rewraps] \
            == [(None, "national", ["data_key", "key_id"], "allowed")]
        assert audit_of(editor, erased, action="rewrap") == []
        # New cases are wrapped under the current key.
        fresh = ok(editor.call("meetings", "case.create", case_input(people.body["id"], markers())))["id"]
    assert rows()[fresh][0] == key_id(key_b)
    log = meetings.output()
    assert "case key rewrap done" in log
    for secret in (key_a, key_b):
        assert secret not in log
    assert_none_in(log, all_markers(*marks), "the rewrap's log")

    # The previous key removed: everything still opens.
    meetings = restart(suite, meetings, key_b)
    status = key_status(suite)
    assert status.get("previous_key_id") is None and status["cases"]["current"] == 4 and status["cases"]["previous"] == 0
    with people.client(people.editor) as editor:
        for case_id in ids:
            assert ok(editor.call("meetings", "case.get", {"id": case_id}))["content"] == contents[case_id]

    # Back to the old key alone: the cases are no longer under it, a typed error.
    restart(suite, meetings, key_a)
    status = key_status(suite)
    assert status["current_key_id"] == key_id(key_a) and status["cases"]["current"] == 0 and status["cases"]["other"] >= 4
    with people.client(people.editor) as editor:
        result = editor.call("meetings", "case.get", {"id": ids[1]})
        assert error_code(result) == "unavailable" and result[0]["error"]["details"]["reason"] == "case_key_mismatch"
        assert_none_in(json.dumps(result[0], ensure_ascii=False), all_markers(*marks), "the error")


def test_instances_rewrapping_at_once_move_each_case_once_in_small_batches(suite):
    key_a, key_b = new_key(), new_key()
    meetings = start_meetings(suite, key=key_a)
    people = People(suite)
    with people.client(people.editor) as editor:
        ids = [ok(editor.call("meetings", "case.create", case_input(people.body["id"], markers())))["id"] for _ in range(40)]
    meetings.terminate()
    suite.wait_for_instances("meetings", 0)
    env = {"TSUNAGU_SERVICE_TOKEN": suite.service_token("meetings"), "TSUNAGU_MEETINGS_CASE_KEY": key_b, PREVIOUS: key_a,
           "TSUNAGU_MEETINGS_CASE_REWRAP_BATCH": "3"}
    instances = [suite.start("tsunagu-meetings", env=env) for _ in range(2)]
    suite.wait_for_instances("meetings", 2)
    assert wait_for_rotation(suite)["cases"]["current"] == 40
    with psycopg.connect(DATABASE_URL) as connection:
        counts = dict(connection.execute(
            "SELECT case_id::text, count(*) FROM meetings.case_audit WHERE action = 'rewrap' AND case_id = ANY(%s::uuid[]) "
            "GROUP BY case_id", (ids,)).fetchall())
    assert counts == {case_id: 1 for case_id in ids}
    deadline = time.monotonic() + 10
    while not all("case key rewrap done" in p.output() for p in instances):
        assert time.monotonic() < deadline, suite.logs()
        time.sleep(0.1)
    with people.client(people.reader) as reader:
        assert ok(reader.call("meetings", "case.get", {"id": ids[-1]}))["content"]["age_band"] == "50s"


def test_a_wrapped_key_that_does_not_open_is_left_as_it_is_and_the_rest_is_rewrapped(suite):
    key_a, key_b = new_key(), new_key()
    meetings = start_meetings(suite, key=key_a)
    people = People(suite)
    mark = markers()
    with people.client(people.editor) as editor:
        good, moved = [ok(editor.call("meetings", "case.create", case_input(people.body["id"], mark)))["id"] for _ in range(2)]
    # A wrapped key copied from another row does not authenticate there (it is bound to its case).
    with psycopg.connect(DATABASE_URL) as connection:
        connection.execute("UPDATE meetings.cases SET data_key = (SELECT data_key FROM meetings.cases WHERE id = %s) "
                           "WHERE id = %s", (good, moved))
    meetings = restart(suite, meetings, key_b, **{PREVIOUS: key_a})
    deadline = time.monotonic() + 30
    while "case key rewrap done" not in meetings.output():
        assert time.monotonic() < deadline, suite.logs()
        time.sleep(0.1)
    status = key_status(suite)
    assert status["cases"]["current"] == 1 and status["cases"]["previous"] == 1
    assert rows()[moved][0] == key_id(key_a) and rows()[good][0] == key_id(key_b)
    assert "do not open; left as they are" in meetings.output() and moved not in meetings.output()
    with people.client(people.editor) as editor:
        assert ok(editor.call("meetings", "case.get", {"id": good}))["content"]["pseudonym"] == mark["pseudonym"]
        result = editor.call("meetings", "case.get", {"id": moved})
        assert error_code(result) == "unavailable" and result[0]["error"]["details"]["reason"] == "case_content_unreadable"
        assert audit_of(editor, moved, action="rewrap") == []


def test_case_key_status_is_for_national_admins_and_gives_counts_only(suite):
    start_meetings(suite)
    people = People(suite)
    with people.client(people.editor) as editor:
        case_id = ok(editor.call("meetings", "case.create", case_input(people.body["id"], markers())))["id"]
    local_admin, _ = token_for(suite, CHIYODA, ["admin"])
    for token in (people.editor, people.reader, local_admin):
        with people.client(token) as caller:
            assert error_code(caller.call("meetings", "case.key_status", {})) == "forbidden"
    status = key_status(suite)
    assert case_id not in json.dumps(status) and status["cases"]["current"] == 1
    with Closing(suite.client(ADMIN_TOKEN)) as admin:
        assert error_code(admin.call("meetings", "case.key_status", {"body_id": people.body["id"]})) == "invalid_input"


def refused_start(suite, env, setting, secrets):
    process = suite.start("tsunagu-meetings", env={"TSUNAGU_SERVICE_TOKEN": suite.service_token("meetings"), **env})
    deadline = time.monotonic() + 20
    while process.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process.alive() and process.proc.returncode != 0
    output = process.output()
    assert setting in output, output
    for secret in secrets:
        assert secret.strip() not in output
    assert suite.instances("meetings") == []


def test_the_service_refuses_a_previous_key_equal_to_the_current_one(suite):
    key = new_key()
    refused_start(suite, {"TSUNAGU_MEETINGS_CASE_KEY": key, PREVIOUS: key}, PREVIOUS, [key])


def test_the_service_refuses_both_a_previous_key_and_a_previous_key_file(suite, tmp_path):
    current, previous = new_key(), new_key()
    path = tmp_path / "previous-key"
    path.write_text(previous + "\n")
    refused_start(suite, {"TSUNAGU_MEETINGS_CASE_KEY": current, PREVIOUS: previous, PREVIOUS_FILE: str(path)},
                  PREVIOUS_FILE, [current, previous])


@pytest.mark.parametrize("previous", ["MKSECRET-not-base64", base64.b64encode(b"k" * 16).decode(), new_key()[:-4]])
def test_the_service_refuses_a_malformed_previous_key(suite, tmp_path, previous):
    current = new_key()
    refused_start(suite, {"TSUNAGU_MEETINGS_CASE_KEY": current, PREVIOUS: previous}, PREVIOUS, [current, previous])
    # The same in a file: the error names the file's setting, not its contents.
    path = tmp_path / "previous-key"
    path.write_text(previous)
    refused_start(suite, {"TSUNAGU_MEETINGS_CASE_KEY": current, PREVIOUS_FILE: str(path)}, PREVIOUS_FILE, [current, previous])
