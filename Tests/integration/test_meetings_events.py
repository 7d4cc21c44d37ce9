"""The meetings service's outcome events: each change appends its event in the same transaction,
with ids and non-personal fields only (no names of people, no titles or minutes, no case ids)."""
import json
import time

from conftest import Closing
from test_event_stream import check_event, documented
from test_meetings_bodies import CHIYODA, make_body, meetings, token_for  # noqa: F401
from test_meetings_issues import case_of, chain, raise_issue
from test_meetings_meetings import hold, item, schedule
from tsunagu_peer import ok

PREFIX = "jp.tsunagu.meetings."


def read_all(client, after=0):
    events = []
    while True:
        page = ok(client.call("meetings", "events.read", {"after": after, "limit": 1000}))
        events += page["events"]
        if page["last_sequence"] <= after:
            return events, after
        after = page["last_sequence"]


def wait_for(client, after, predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        events, _ = read_all(client, after)
        if predicate(events) or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def test_every_outcome_appends_its_event_without_personal_data(meetings):
    tokyo, chiyoda, municipal, area, prefectural = chain(meetings)
    with Closing(meetings.client()) as admin:
        _, start = read_all(admin)
    with Closing(meetings.client(token=chiyoda)) as client:
        ok(client.call("meetings", "member.add", {"body_id": municipal["id"], "person_name": "山田 花子", "sector": "medical",
                                                  "role": "chair", "term_start": "2024-04-01"}))
        meeting = schedule(client, municipal["id"], visibility="closed")
        agenda = ok(client.call("meetings", "agenda.add", item(meeting["id"], title="Bさんの退院支援")))
        held = hold(client, meeting)
        ok(client.call("meetings", "meeting.minutes.set", {"id": meeting["id"], "version": held["version"], "minutes": "Bさんの秘密の議事録"}))
        decision = ok(client.call("meetings", "decision.record", {"meeting_id": meeting["id"], "agenda_item_id": agenda["id"],
                                                                 "text": "Bさんの支援会議"}))
        action = ok(client.call("meetings", "action_item.create", {"meeting_id": meeting["id"], "decision_id": decision["id"],
                                                                  "title": "Bさんの家族へ連絡", "due_date": "2000-01-01"}))
        assert ok(client.call("meetings", "action_item.sweep_due", {}))["due"] == [action["id"]]
        assert ok(client.call("meetings", "action_item.sweep_due", {}))["due"] == []  # once per item
        ok(client.call("meetings", "action_item.set_status", {"id": action["id"], "status": "done"}))
        case_id = case_of(meetings, client, municipal["id"])
        issue = raise_issue(client, municipal["id"], source_kind="case", source_case_id=case_id, source_data="")
        ok(client.call("meetings", "issue.escalate", {"id": issue["id"], "version": 1, "reason": "x"}))
    with Closing(meetings.client(token=tokyo)) as client:
        ok(client.call("meetings", "issue.answer", {"id": issue["id"], "version": 2, "answer": "回答"}))
    with Closing(meetings.client(token=chiyoda)) as client:
        ok(client.call("meetings", "issue.close", {"id": issue["id"], "version": 3, "reason": "済"}))
    with Closing(meetings.client()) as admin:
        expected = ["meeting.scheduled", "meeting.held", "decision.recorded", "action_item.created", "action_item.due",
                    "action_item.done", "regional_issue.raised", "regional_issue.escalated", "regional_issue.answered",
                    "regional_issue.closed"]
        events = wait_for(admin, start, lambda es: len(es) >= len(expected))
    assert [e["type"] for e in events] == [PREFIX + t for t in expected]
    assert [e["sequence"] for e in events] == sorted(e["sequence"] for e in events)
    assert events[0]["data"]["meeting_id"] == meeting["id"] and events[1]["data"]["attendance"]["medical"] == 3
    assert events[2]["data"]["decision_id"] == decision["id"] and events[3]["data"]["action_item_id"] == action["id"]
    assert events[7]["data"]["to_body_id"] == area["id"] and events[7]["tenant"] == area["tenant"]
    assert events[8]["data"]["answered_by_body_id"] == area["id"] and events[8]["tenant"] == CHIYODA
    schemas, _ = documented()  # each matches its type's schema in docs/events.md
    for event in events:
        check_event(event, schemas)
        assert event["stream"] == "meetings" and event["source"] == "/tsunagu/meetings"
    text = json.dumps(events, ensure_ascii=False)
    for secret in ["山田", "Bさん", "秘密", case_id, "Cさん", "課題の元になった事例", "退院後の住まい", "グループホーム"]:
        assert secret not in text, secret
