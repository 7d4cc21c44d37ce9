"""Individual cases (要配慮個人情報) in the meetings service: access only for current members of the
owning body with a case role, every access audited (refusals too), content encrypted before it
reaches PostgreSQL, erasure to a tombstone, small-cell suppressed statistics, and no case content
in a dump, a log line, an event or a reply to anyone else. Each test writes distinctive marker
strings into the content and looks for them where they must not be."""
import base64
import json
import os
import secrets
import shutil
import subprocess
import time
import uuid

import psycopg
import pytest

from conftest import ADMIN_TOKEN, BIN, DATABASE_URL, Closing
from tsunagu_peer import error_code, ok

TOKYO = "130001"
CHIYODA, CHUO = "131016", "131024"


def token_for(suite, tenant, roles):
    with Closing(suite.client()) as admin:
        issued = ok(admin.call("tsunagu.gateway", "tokens.create", {"tenant": tenant, "roles": roles}))
    return issued["token"], issued["id"]


def start_meetings(suite, key=None, **extra_env):
    env = {"TSUNAGU_SERVICE_TOKEN": suite.service_token("meetings"), **extra_env}
    if key is not None:
        env["TSUNAGU_MEETINGS_CASE_KEY"] = key
    process = suite.start("tsunagu-meetings", env=env)
    suite.wait_for_instances("meetings", 1)
    return process


def new_key():
    return base64.b64encode(secrets.token_bytes(32)).decode()


class People:
    """A body of Chiyoda and the callers around it: its case editor and case reader, a member
    without a case role, a secretariat member without one, a member whose term ended, a writer of
    another tenant and the national admin."""

    def __init__(self, suite):
        self.suite = suite
        self.owner, _ = token_for(suite, CHIYODA, ["editor"])
        self.editor, self.editor_id = token_for(suite, CHIYODA, ["editor"])
        self.reader, self.reader_id = token_for(suite, CHIYODA, ["reader"])
        self.plain, self.plain_id = token_for(suite, CHIYODA, ["editor"])
        self.secretariat, self.secretariat_id = token_for(suite, CHIYODA, ["reader"])
        self.former, self.former_id = token_for(suite, CHIYODA, ["editor"])
        self.stranger, self.stranger_id = token_for(suite, CHUO, ["editor"])
        self.admin = ADMIN_TOKEN
        with Closing(suite.client(token=self.owner)) as client:
            self.body = ok(client.call("meetings", "body.create", {
                "name": "千代田区 協議の場（個別支援部会）", "level": "municipality", "prefecture_code": TOKYO,
                "municipalities": [CHIYODA], "secretariat": "welfare_section", "basis": "council_working_group"}))
            for name, account, role, case_role, term_end in [
                ("編集 太郎", self.editor_id, "member", "editor", None),
                ("閲覧 次郎", self.reader_id, "member", "reader", "2099-03-31"),
                ("委員 三郎", self.plain_id, "member", None, None),
                ("事務局 四郎", self.secretariat_id, "secretariat", None, None),
                ("元委員 五郎", self.former_id, "member", "editor", "2021-03-31"),
            ]:
                ok(client.call("meetings", "member.add", {
                    "body_id": self.body["id"], "person_name": name, "sector": "welfare", "role": role,
                    "term_start": "2020-04-01", "term_end": term_end, "account": account, "case_role": case_role}))

    def client(self, token):
        return Closing(self.suite.client(token=token))

    def outsiders(self):
        """Every caller that must be refused a case: (token, token id or None)."""
        return [(self.plain, self.plain_id), (self.secretariat, self.secretariat_id), (self.former, self.former_id),
                (self.stranger, self.stranger_id), (self.admin, None)]


def markers():
    tag = uuid.uuid4().hex[:12]
    return {"pseudonym": f"仮名MKPSEUDO{tag}", "summary": f"MKSUMMARY{tag} 長期入院20年",
            "support": f"MKSUPPORT{tag}", "note": f"MKNEED{tag}", "basis": f"MKBASIS{tag}"}


def case_input(body_id, mark, case_type="long_stay_transition"):
    return {"body_id": body_id, "case_type": case_type, "basis": "consent", "content": {
        "pseudonym": mark["pseudonym"], "age_band": "50s", "situation_summary": mark["summary"],
        "needs": [{"category": "housing", "note": mark["note"]}, {"category": "peer_support"}],
        "support_agreed": mark["support"], "agencies": ["5d0c8a3e-0000-4000-8000-000000000001"],
        "review_dates": ["2027-04-01", "2027-10-01"], "basis_note": mark["basis"]}}


def all_markers(*marks):
    return [value for mark in marks for value in mark.values()]


def assert_none_in(text, marks, where):
    for value in marks:
        assert value not in text, f"case content {value!r} found in {where}"


def dump_meetings_schema():
    """Every column of every table in schema meetings, as text (what a database dump holds)."""
    with psycopg.connect(DATABASE_URL) as connection:
        tables = [row[0] for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'meetings' AND table_type = 'BASE TABLE'")]
        parts = []
        for table in tables:
            for (row,) in connection.execute(f'SELECT t::text FROM meetings."{table}" t'):
                parts.append(row)
        return "\n".join(parts), tables


def pg_dump_meetings_schema():
    """pg_dump of schema meetings (data and definitions), as an operator's backup holds it."""
    pg_dump = os.path.join(os.environ.get("TSUNAGU_PG_BIN", ""), "pg_dump")
    if not os.path.exists(pg_dump):
        pg_dump = shutil.which("pg_dump")
    assert pg_dump, "pg_dump not found (deploy/test.sh sets TSUNAGU_PG_BIN)"
    return subprocess.run([pg_dump, "--schema=meetings", "--dbname", DATABASE_URL], check=True,
                          capture_output=True).stdout.decode(errors="replace")


def audit_of(client, case_id, **filters):
    return ok(client.call("meetings", "case.audit", {"id": case_id, **filters}))["entries"]


@pytest.fixture
def people(suite):
    start_meetings(suite)
    return People(suite)


def test_only_case_members_of_the_owning_body_read_and_write_and_every_access_is_audited(people):
    mark = markers()
    with people.client(people.editor) as editor:
        created = ok(editor.call("meetings", "case.create", case_input(people.body["id"], mark)))
        case_id = created["id"]
        assert "content" not in created and created["status"] == "open" and created["basis"] == "consent"
        assert created["version"] == 1 and created["case_type"] == "long_stay_transition"
        got = ok(editor.call("meetings", "case.get", {"id": case_id}))
        assert got["content"]["situation_summary"] == mark["summary"]
        assert got["content"]["needs"] == [{"category": "housing", "note": mark["note"]}, {"category": "peer_support", "note": ""}]
        changed = ok(editor.call("meetings", "case.update", {
            "id": case_id, "version": 1, "case_type": "difficult", "content": {"support_agreed": mark["support"] + " 追記"}}))
        assert changed["version"] == 2 and changed["case_type"] == "difficult" and "content" not in changed
        reread = ok(editor.call("meetings", "case.get", {"id": case_id}))["content"]
        assert reread["pseudonym"] == mark["pseudonym"]  # untouched fields kept
        assert reread["support_agreed"] == mark["support"] + " 追記"
        assert error_code(editor.call("meetings", "case.update", {"id": case_id, "version": 1, "status": "closed"})) == "conflict"
        listed = ok(editor.call("meetings", "case.list", {"body_id": people.body["id"]}))
        assert [c["id"] for c in listed["cases"]] == [case_id] and "content" not in listed["cases"][0]

    with people.client(people.reader) as reader:
        assert ok(reader.call("meetings", "case.get", {"id": case_id}))["content"]["pseudonym"] == mark["pseudonym"]
        # A reader does not write, and its refused write is audited like any refusal.
        assert error_code(reader.call("meetings", "case.update", {"id": case_id, "content": {"pseudonym": "x"}})) == "forbidden"
        assert error_code(reader.call("meetings", "case.erase", {"id": case_id, "reason": "data_subject_request"})) == "forbidden"
        assert error_code(reader.call("meetings", "case.audit", {"id": case_id})) == "forbidden"
        # A keyed refusal stores no reply: the same request again is judged, and audited, again.
        for _ in range(2):
            assert error_code(reader.call("meetings", "case.update", {"id": case_id, "status": "closed"},
                                          idempotency_key="refused-close")) == "forbidden"

    refused_replies = []
    for token, _ in people.outsiders():
        with people.client(token) as outsider:
            for op, payload in [("case.get", {"id": case_id}), ("case.list", {"body_id": people.body["id"]}),
                                ("case.update", {"id": case_id, "content": {"situation_summary": "overwrite"}}),
                                ("case.create", case_input(people.body["id"], markers()))]:
                result = outsider.call("meetings", op, payload)
                assert error_code(result) == "forbidden", (op, result)
                refused_replies.append(json.dumps(result[0], ensure_ascii=False) + repr(result[1]))
    assert_none_in("\n".join(refused_replies), all_markers(mark), "a refused reply")

    # Who read the case: one operation, for the body's case editors and its secretariat.
    with people.client(people.secretariat) as secretariat:
        reads = audit_of(secretariat, case_id, action="read")
    allowed = {(e["token_id"], e["tenant"]) for e in reads if e["outcome"] == "allowed"}
    refused = {(e["token_id"], e["tenant"]) for e in reads if e["outcome"] == "forbidden"}
    assert allowed == {(people.editor_id, CHIYODA), (people.reader_id, CHIYODA)}
    assert {(people.plain_id, CHIYODA), (people.secretariat_id, CHIYODA), (people.former_id, CHIYODA),
            (people.stranger_id, CHUO)} <= refused
    assert any(e["tenant"] == "national" for e in reads if e["outcome"] == "forbidden")
    assert all(e["at"] for e in reads)

    with people.client(people.editor) as editor:
        entries = audit_of(editor, case_id)
    by_action = {}
    for e in entries:
        by_action.setdefault((e["action"], e["outcome"]), []).append(e)
    assert by_action[("create", "allowed")][0]["fields"][:2] == ["pseudonym", "age_band"]
    updates = [e["fields"] for e in by_action[("update", "allowed")]]
    assert updates == [["case_type", "support_agreed"]]
    assert {e["token_id"] for e in by_action[("update", "forbidden")]} >= {people.reader_id, people.plain_id, people.stranger_id}
    assert {e["token_id"] for e in by_action[("erase", "forbidden")]} == {people.reader_id}
    assert [e["fields"] for e in by_action[("update", "forbidden")] if e["token_id"] == people.reader_id] \
        == [["pseudonym"], ["status"], ["status"]]
    # The secretariat's reading of the audit is in the audit too; no entry holds content.
    assert any(e["token_id"] == people.secretariat_id for e in by_action[("audit_read", "allowed")])
    assert_none_in(json.dumps(entries, ensure_ascii=False), all_markers(mark), "the audit")

    # Refused creates left no case behind.
    with people.client(people.editor) as editor:
        assert len(ok(editor.call("meetings", "case.list", {"body_id": people.body["id"]}))["cases"]) == 1


def test_a_dump_of_the_schema_holds_no_case_plaintext_and_ciphertexts_are_bound_to_their_case(people):
    first, second, third = markers(), markers(), markers()
    with people.client(people.editor) as editor:
        one = ok(editor.call("meetings", "case.create", case_input(people.body["id"], first)))["id"]
        # Keyed writes: the runtime keeps their replies (meetings.idempotency), which carry no content.
        two = ok(editor.call("meetings", "case.create", case_input(people.body["id"], second, "outreach"),
                             idempotency_key="create-two"))["id"]
        ok(editor.call("meetings", "case.update", {"id": one, "content": {"situation_summary": third["summary"],
                                                                          "pseudonym": third["pseudonym"]}},
                       idempotency_key="update-one"))
        ok(editor.call("meetings", "case.update", {"id": one, "content": {"situation_summary": first["summary"],
                                                                          "pseudonym": first["pseudonym"]}}))
        assert ok(editor.call("meetings", "case.get", {"id": two}))["content"]["pseudonym"] == second["pseudonym"]
    dump, tables = dump_meetings_schema()
    assert "cases" in tables and "case_audit" in tables and "idempotency" in tables and one in dump
    with psycopg.connect(DATABASE_URL) as connection:
        assert connection.execute("SELECT count(*) FROM meetings.idempotency WHERE key IN ('create-two', 'update-one')").fetchone() == (2,)
    assert_none_in(dump, all_markers(first, second, third), "the meetings schema")
    backup = pg_dump_meetings_schema()
    assert "meetings.case_audit" in backup and one in backup
    assert_none_in(backup, all_markers(first, second, third), "pg_dump of the meetings schema")
    # Also not in base64 or hex of the content, as a careless bytea copy would hold it.
    for value in all_markers(first, second, third):
        assert base64.b64encode(value.encode()).decode()[:16] not in dump
        assert value.encode().hex()[:24] not in dump

    # A ciphertext moved to another row does not open there: a typed error, audited.
    with psycopg.connect(DATABASE_URL) as connection:
        connection.execute("UPDATE meetings.cases SET content = (SELECT content FROM meetings.cases WHERE id = %s) WHERE id = %s",
                           (one, two))
    with people.client(people.editor) as editor:
        result = editor.call("meetings", "case.get", {"id": two})
        assert error_code(result) == "unavailable"
        assert result[0]["error"]["details"]["reason"] == "case_content_unreadable"
        assert ok(editor.call("meetings", "case.get", {"id": one}))["content"]["pseudonym"] == first["pseudonym"]
        assert [e["outcome"] for e in audit_of(editor, two, action="read")] == ["allowed", "unreadable"]


def test_erasure_destroys_content_and_key_and_leaves_an_audited_tombstone(people):
    mark = markers()
    with people.client(people.editor) as editor:
        case_id = ok(editor.call("meetings", "case.create", case_input(people.body["id"], mark)))["id"]
        erased = ok(editor.call("meetings", "case.erase", {"id": case_id, "reason": "data_subject_request"}))
        assert erased["status"] == "erased" and "content" not in erased and "case_type" not in erased
        assert erased["erasure"]["reason"] == "data_subject_request"
        assert erased["erasure"]["by_token_id"] == people.editor_id and erased["erasure"]["by_tenant"] == CHIYODA
        assert erased["erasure"]["at"]
        # Erasing again changes nothing; the tombstone reads as a tombstone.
        assert ok(editor.call("meetings", "case.erase", {"id": case_id, "reason": "recorded_in_error"}))["erasure"] == erased["erasure"]
        tombstone = ok(editor.call("meetings", "case.get", {"id": case_id}))
        assert tombstone["status"] == "erased" and "content" not in tombstone
        assert error_code(editor.call("meetings", "case.update", {"id": case_id, "content": {"pseudonym": "again"}})) == "conflict"
        actions = [(e["action"], e["outcome"]) for e in audit_of(editor, case_id)]
        assert ("erase", "allowed") in actions and actions.index(("create", "allowed")) < actions.index(("erase", "allowed"))
    with psycopg.connect(DATABASE_URL) as connection:
        row = connection.execute(
            "SELECT content, data_key, key_id, case_type, basis, status, erased_at IS NOT NULL, erasure_reason "
            "FROM meetings.cases WHERE id = %s", (case_id,)).fetchone()
    assert row == (None, None, None, None, None, "erased", True, "data_subject_request")
    dump, _ = dump_meetings_schema()
    assert case_id in dump
    assert_none_in(dump, all_markers(mark), "the schema after erasure")
    # Outsiders still get nothing, not even the tombstone.
    with people.client(people.stranger) as stranger:
        assert error_code(stranger.call("meetings", "case.get", {"id": case_id})) == "forbidden"


def test_another_master_key_makes_content_unreadable_with_a_typed_error_and_the_service_lives(suite):
    first = start_meetings(suite)
    people = People(suite)
    mark = markers()
    with people.client(people.editor) as editor:
        case_id = ok(editor.call("meetings", "case.create", case_input(people.body["id"], mark)))["id"]
    first.terminate()
    suite.wait_for_instances("meetings", 0)
    start_meetings(suite, key=new_key())
    with people.client(people.editor) as editor:
        result = editor.call("meetings", "case.get", {"id": case_id})
        assert error_code(result) == "unavailable"
        assert result[0]["error"]["details"]["reason"] == "case_key_mismatch"
        assert_none_in(json.dumps(result[0], ensure_ascii=False), all_markers(mark), "the error")
        assert error_code(editor.call("meetings", "case.update", {"id": case_id, "content": {"support_agreed": "x"}})) == "unavailable"
        # The instance still serves, and the failed reads are in the audit.
        assert [e["outcome"] for e in audit_of(editor, case_id, action="read")] == ["unreadable"]
        assert [e["outcome"] for e in audit_of(editor, case_id, action="update")] == ["unreadable"]
        # A new case under the new key reads fine.
        other = ok(editor.call("meetings", "case.create", case_input(people.body["id"], markers())))["id"]
        assert ok(editor.call("meetings", "case.get", {"id": other}))["content"]["age_band"] == "50s"


@pytest.mark.parametrize("key", ["", "too-short", base64.b64encode(b"x" * 16).decode()])
def test_the_service_refuses_to_start_without_a_valid_case_master_key(suite, key):
    process = suite.start("tsunagu-meetings", env={"TSUNAGU_SERVICE_TOKEN": suite.service_token("meetings"),
                                                   "TSUNAGU_MEETINGS_CASE_KEY": key})
    deadline = time.monotonic() + 20
    while process.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process.alive() and process.proc.returncode != 0
    assert "TSUNAGU_MEETINGS_CASE_KEY" in process.output()
    if key:
        assert key not in process.output()
    assert suite.instances("meetings") == []


def test_migrate_only_needs_no_case_master_key(suite):
    process = suite.start("tsunagu-meetings", [os.path.join(BIN, "tsunagu-meetings"), "--migrate-only"],
                          env={"TSUNAGU_MEETINGS_CASE_KEY": ""})
    assert process.proc.wait(60) == 0, process.output()


def test_case_statistics_count_by_type_and_suppress_small_cells(people):
    with people.client(people.editor) as editor:
        for _ in range(5):
            ok(editor.call("meetings", "case.create", case_input(people.body["id"], markers())))
        for _ in range(2):
            ok(editor.call("meetings", "case.create", case_input(people.body["id"], markers(), "outreach")))
        erased = ok(editor.call("meetings", "case.create", case_input(people.body["id"], markers())))["id"]
        ok(editor.call("meetings", "case.erase", {"id": erased, "reason": "recorded_in_error"}))
    # Any authenticated caller, another tenant's too: counts only, small cells suppressed.
    with people.client(people.stranger) as stranger:
        stats = ok(stranger.call("meetings", "case.statistics", {"body_id": people.body["id"]}))
        assert error_code(stranger.call("meetings", "case.statistics", {"body_id": str(uuid.uuid4())})) == "not_found"
    cells = {c["case_type"]: c for c in stats["by_case_type"]}
    assert stats["threshold"] == 5
    assert cells["long_stay_transition"] == {"case_type": "long_stay_transition", "count": 5, "suppressed": False}
    assert "count" not in cells["outreach"] and cells["outreach"]["suppressed"] is True
    assert set(cells) == {"long_stay_transition", "post_involuntary_admission", "outreach", "difficult", "other"}
    assert all(c["suppressed"] for t, c in cells.items() if t != "long_stay_transition")


def test_bad_case_input_gets_typed_errors(people):
    mark = markers()
    base = case_input(people.body["id"], mark)

    def with_content(**fields):
        return dict(base, content=dict(base["content"], **fields))

    with people.client(people.editor) as editor:
        cases = [
            with_content(situation_summary="長" * 4001),
            dict(base, case_type="unknown_type"),
            dict(base, basis="because"),
            with_content(pseudonym="a\u0000b"),
            with_content(pseudonym=""),
            with_content(age_band="forty-ish"),
            with_content(review_dates=["2027-02-30"]),
            with_content(review_dates=["2027-04-01", "2027-04-01"]),
            with_content(needs=[{"category": "astrology"}]),
            with_content(agencies=["not an id!"]),
            with_content(secret_field="x"),
            dict(base, body_id="not-a-uuid"),
        ]
        for payload in cases:
            assert error_code(editor.call("meetings", "case.create", payload)) == "invalid_input", payload
        assert error_code(editor.call("meetings", "case.create", with_content(pseudonym="   "))) == "invalid_input"
        assert error_code(editor.call("meetings", "case.get", {"id": "x" * 36})) == "invalid_input"
        assert error_code(editor.call("meetings", "case.erase", {"id": str(uuid.uuid4()), "reason": "because"})) == "invalid_input"
        assert error_code(editor.call("meetings", "case.get", {"id": str(uuid.uuid4())})) == "not_found"
        assert error_code(editor.call("meetings", "case.create", dict(base, body_id=str(uuid.uuid4())))) == "not_found"
        # Nothing was stored by any of them.
        assert ok(editor.call("meetings", "case.list", {"body_id": people.body["id"]}))["cases"] == []


def test_no_case_content_in_logs_events_or_another_tenants_view(suite):
    """Runs every case operation, the meetings service logging at debug, then scans every
    process's log and every event of the meetings service for the markers."""
    meetings = start_meetings(suite, TSUNAGU_LOG_LEVEL="debug")
    people = People(suite)
    mark = markers()
    with people.client(people.editor) as editor:
        case_id = ok(editor.call("meetings", "case.create", case_input(people.body["id"], mark)))["id"]
        ok(editor.call("meetings", "case.get", {"id": case_id}))
        ok(editor.call("meetings", "case.update", {"id": case_id, "content": {"situation_summary": mark["summary"] + "更新"}}))
        ok(editor.call("meetings", "case.list", {"body_id": people.body["id"]}))
        ok(editor.call("meetings", "case.audit", {"id": case_id}))
        ok(editor.call("meetings", "case.statistics", {"body_id": people.body["id"]}))
        # Bad input carrying content: refused, and not echoed into the logs.
        editor.call("meetings", "case.create", dict(case_input(people.body["id"], mark), case_type="bogus"))
        editor.call("meetings", "case.update", {"id": case_id, "content": {"pseudonym": mark["pseudonym"] + "\u0000"}})
    views = []
    with people.client(people.stranger) as stranger:
        for op, payload in [("case.get", {"id": case_id}), ("case.list", {"body_id": people.body["id"]}),
                            ("case.audit", {"id": case_id}), ("case.statistics", {"body_id": people.body["id"]}),
                            ("body.get", {"id": people.body["id"]})]:
            views.append(json.dumps(stranger.call("meetings", op, payload), ensure_ascii=False, default=repr))
    assert_none_in("\n".join(views), all_markers(mark), "another tenant's view")

    with Closing(suite.client()) as admin:
        catalogue = ok(admin.call("tsunagu.gateway", "services.list"))
        operations = {op["name"] for s in catalogue["services"] if s["name"] == "meetings" for op in s["operations"]}
        assert "case.get" in operations
        # The case operations emit no event; any the service has (when it has an outbox) is scanned.
        if "events.read" in operations:
            events = admin.call("meetings", "events.read", {"after": 0, "limit": 1000})
            assert_none_in(json.dumps(events, ensure_ascii=False, default=repr), all_markers(mark), "events")
    assert case_id  # ids may appear in logs; content never
    with people.client(people.editor) as editor:
        ok(editor.call("meetings", "case.erase", {"id": case_id, "reason": "consent_withdrawn"}))
    time.sleep(0.2)  # let the processes write out what they logged
    assert "request failed" in meetings.output()  # debug lines were written, and scanned below
    assert_none_in(suite.logs() + "\n".join(p.output() for p in suite.processes), all_markers(mark), "the process logs")
