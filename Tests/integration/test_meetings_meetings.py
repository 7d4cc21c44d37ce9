"""Meetings: scheduled → held / cancelled, attendance by sector, the two-part agenda classified on
3 axes × 2 viewpoints (required), the per-year coverage view, minutes, decisions, action items
carried to later meetings until done, and closed (非公開) meetings' text hidden from other tenants."""
from conftest import Closing
from test_meetings_bodies import CHIYODA, CHUO, make_body, meetings, token_for, violation_paths  # noqa: F401
from tsunagu_peer import error_code, ok


def schedule(client, body_id, starts_at="2025-05-20T14:00:00+09:00", **overrides):
    meeting = {"body_id": body_id, "title": "第1回 協議の場", "starts_at": starts_at, "format": "in_person",
               "visibility": "closed", "venue": "区役所 会議室"}
    meeting.update(overrides)
    return ok(client.call("meetings", "meeting.schedule", meeting))


def item(meeting_id, part="deliberation", axis="individual_support", viewpoint="health_medical", **overrides):
    body = {"meeting_id": meeting_id, "part": part, "title": "長期入院者の地域移行", "axis": axis, "viewpoint": viewpoint}
    body.update(overrides)
    return body


def hold(client, meeting, attendance=None, **extra):
    attendance = attendance or [{"sector": "medical", "count": 3}, {"sector": "welfare", "count": 4}, {"sector": "user", "count": 1}]
    return ok(client.call("meetings", "meeting.hold", dict({"id": meeting["id"], "version": meeting["version"],
                                                           "attendance": attendance, "observers": 2}, **extra)))


def test_lifecycle_agenda_decisions_and_carried_action_items(meetings):
    editor, _ = token_for(meetings, CHIYODA, ["editor"])
    with Closing(meetings.client(token=editor)) as client:
        body = make_body(client)
        first = schedule(client, body["id"])
        assert first["status"] == "scheduled" and first["fiscal_year"] == 2025 and first["version"] == 1
        report = ok(client.call("meetings", "agenda.add", item(first["id"], part="report", axis="support_system",
                                                              viewpoint="disability_welfare", title="前回の報告")))
        deliberation = ok(client.call("meetings", "agenda.add", item(first["id"])))
        assert report["position"] == 1 and deliberation["position"] == 1

        # Decisions and action items wait until the meeting is held.
        assert error_code(client.call("meetings", "decision.record", {"meeting_id": first["id"], "text": "x"})) == "conflict"
        held = hold(client, first, goals_set=True)
        assert held["status"] == "held" and held["participants"] == 8 and held["observers"] == 2
        assert held["attendance"] == {"medical": 3, "user": 1, "welfare": 4} and held["goals_set"] is True
        # Held once only; a held meeting is not cancelled.
        envelope, _ = client.call("meetings", "meeting.hold", {"id": first["id"], "version": held["version"], "attendance": []})
        assert envelope["error"]["code"] == "conflict" and "held" in envelope["error"]["message"]
        assert error_code(client.call("meetings", "meeting.cancel", {"id": first["id"], "version": held["version"], "reason": "x"})) == "conflict"

        decision = ok(client.call("meetings", "decision.record", {"meeting_id": first["id"], "agenda_item_id": deliberation["id"],
                                                                 "text": "退院支援の手順を作る"}))
        action = ok(client.call("meetings", "action_item.create", {
            "meeting_id": first["id"], "decision_id": decision["id"], "title": "退院支援の手順案",
            "owner_organization_id": "5d0c8a3e-0000-4000-8000-000000000002", "due_date": "2000-01-31"}))
        assert action["status"] == "open" and action["overdue"] is True
        minutes = ok(client.call("meetings", "meeting.minutes.set", {"id": first["id"], "version": held["version"], "minutes": "議事録本文"}))
        assert minutes["minutes"] == "議事録本文"

        second = schedule(client, body["id"], starts_at="2099-09-20T14:00:00+09:00", title="第2回")
        got = ok(client.call("meetings", "meeting.get", {"id": second["id"]}))
        assert [a["id"] for a in got["agenda"]["carried_action_items"]] == [action["id"]]
        ok(client.call("meetings", "action_item.set_status", {"id": action["id"], "status": "in_progress"}))
        third = schedule(client, body["id"], starts_at="2100-01-20T14:00:00+09:00", title="第3回")
        assert len(ok(client.call("meetings", "meeting.get", {"id": third["id"]}))["agenda"]["carried_action_items"]) == 1
        done = ok(client.call("meetings", "action_item.set_status", {"id": action["id"], "status": "done"}))
        assert done["done_at"] is not None and done["overdue"] is False
        assert ok(client.call("meetings", "meeting.get", {"id": third["id"]}))["agenda"]["carried_action_items"] == []
        assert ok(client.call("meetings", "action_item.list", {"body_id": body["id"], "open_only": True}))["action_items"] == []

        full = ok(client.call("meetings", "meeting.get", {"id": first["id"]}))
        assert [i["id"] for i in full["agenda"]["report"]] == [report["id"]]
        assert [i["id"] for i in full["agenda"]["deliberation"]] == [deliberation["id"]]
        assert [d["text"] for d in full["decisions"]] == ["退院支援の手順を作る"]
        assert [a["id"] for a in full["action_items"]] == [action["id"]]

        cancelled = ok(client.call("meetings", "meeting.cancel", {"id": third["id"], "version": third["version"], "reason": "台風のため"}))
        assert cancelled["status"] == "cancelled" and cancelled["cancel_reason"] == "台風のため"
        assert error_code(client.call("meetings", "meeting.hold", {"id": third["id"], "version": cancelled["version"], "attendance": []})) == "conflict"
        assert error_code(client.call("meetings", "agenda.add", item(third["id"]))) == "conflict"
        assert error_code(client.call("meetings", "meeting.minutes.set", {"id": second["id"], "version": 1, "minutes": "x"})) == "conflict"

        listed = ok(client.call("meetings", "meeting.list", {"body_id": body["id"], "fiscal_year": 2099}))["meetings"]
        assert [m["id"] for m in listed] == [second["id"], third["id"]]  # January 2100 is still fiscal year 2099
        assert [m["id"] for m in ok(client.call("meetings", "meeting.list", {"body_id": body["id"], "status": "held"}))["meetings"]] == [first["id"]]

        # The agenda item a decision refers to stays.
        assert error_code(client.call("meetings", "agenda.remove", {"id": deliberation["id"]})) == "conflict"
        assert ok(client.call("meetings", "agenda.remove", {"id": report["id"]}))["removed"] is True


def test_classification_is_required_and_the_coverage_view(meetings):
    editor, _ = token_for(meetings, CHIYODA, ["editor"])
    with Closing(meetings.client(token=editor)) as client:
        body = make_body(client)
        meeting = schedule(client, body["id"])
        for missing in ["axis", "viewpoint"]:
            bad = item(meeting["id"])
            del bad[missing]
            envelope, _ = client.call("meetings", "agenda.add", bad)
            assert envelope["error"]["code"] == "invalid_input" and missing in str(envelope["error"]), envelope
        assert error_code(client.call("meetings", "agenda.add", item(meeting["id"], axis="vibes"))) == "invalid_input"
        assert error_code(client.call("meetings", "agenda.add", item(meeting["id"], part="other"))) == "invalid_input"
        ok(client.call("meetings", "agenda.add", item(meeting["id"])))
        ok(client.call("meetings", "agenda.add", item(meeting["id"], part="report")))
        ok(client.call("meetings", "agenda.add", item(meeting["id"], axis="regional_infrastructure", viewpoint="disability_welfare")))
        # Items of a meeting not (yet) held, and of another year, do not count.
        later = schedule(client, body["id"], starts_at="2026-04-01T10:00:00+09:00")
        ok(client.call("meetings", "agenda.add", item(later["id"], axis="support_system")))
        hold(client, later)
        empty = ok(client.call("meetings", "body.coverage", {"body_id": body["id"], "fiscal_year": 2025}))
        assert empty["covered"] == 0 and len(empty["cells"]) == 6
        hold(client, meeting)
        coverage = ok(client.call("meetings", "body.coverage", {"body_id": body["id"], "fiscal_year": 2025}))
        assert coverage["covered"] == 2
        assert coverage["matrix"] == {
            "individual_support": {"health_medical": 2, "disability_welfare": 0},
            "support_system": {"health_medical": 0, "disability_welfare": 0},
            "regional_infrastructure": {"health_medical": 0, "disability_welfare": 1}}
        assert ok(client.call("meetings", "body.coverage", {"body_id": body["id"], "fiscal_year": 2026}))["matrix"]["support_system"]["health_medical"] == 1
        assert error_code(client.call("meetings", "body.coverage", {"body_id": body["id"], "fiscal_year": 99999})) == "invalid_input"
        assert error_code(client.call("meetings", "body.coverage", {"body_id": "00000000-0000-4000-8000-000000000000", "fiscal_year": 2025})) == "not_found"


def test_closed_meetings_text_is_not_shown_to_other_tenants(meetings):
    chiyoda, _ = token_for(meetings, CHIYODA, ["editor"])
    chuo, _ = token_for(meetings, CHUO, ["editor"])
    with Closing(meetings.client(token=chiyoda)) as client:
        body = make_body(client)
        closed = schedule(client, body["id"], visibility="closed")
        open_ = schedule(client, body["id"], visibility="open", starts_at="2025-06-20T14:00:00+09:00")
        for m in (closed, open_):
            ok(client.call("meetings", "agenda.add", item(m["id"], title="Aさんの退院支援", notes="個人が特定される内容")))
            held = hold(client, m)
            ok(client.call("meetings", "meeting.minutes.set", {"id": m["id"], "version": held["version"], "minutes": "Aさんについて協議した"}))
            ok(client.call("meetings", "decision.record", {"meeting_id": m["id"], "text": "Aさんの支援会議を開く"}))
            ok(client.call("meetings", "action_item.create", {"meeting_id": m["id"], "title": "Aさんの家族に連絡"}))
        assert ok(client.call("meetings", "meeting.get", {"id": closed["id"]}))["minutes"] == "Aさんについて協議した"
    with Closing(meetings.client(token=chuo)) as client:
        seen = ok(client.call("meetings", "meeting.get", {"id": closed["id"]}))
        assert seen["minutes"] is None and seen["participants"] == 8 and seen["visibility"] == "closed"
        assert seen["agenda"]["deliberation"][0]["title"] is None and seen["agenda"]["deliberation"][0]["axis"] == "individual_support"
        assert seen["decisions"][0]["text"] is None and seen["action_items"][0]["title"] is None
        assert "Aさん" not in str(seen)
        listed = {m["id"]: m for m in ok(client.call("meetings", "meeting.list", {"body_id": body["id"], "status": "held"}))["meetings"]}
        assert listed[closed["id"]]["minutes"] is None and listed[open_["id"]]["minutes"] == "Aさんについて協議した"
        carried = ok(client.call("meetings", "meeting.get", {"id": open_["id"]}))
        assert carried["minutes"] == "Aさんについて協議した"
        assert [a["title"] for a in carried["agenda"]["carried_action_items"]] == [None]  # agreed at the closed meeting
        assert "Aさん" not in str(ok(client.call("meetings", "action_item.list", {"body_id": body["id"]}))["action_items"][0])
        # Other tenants write nothing.
        assert error_code(client.call("meetings", "meeting.schedule", {
            "body_id": body["id"], "title": "x", "starts_at": "2025-05-20T14:00:00+09:00", "format": "online", "visibility": "open"})) == "forbidden"
        assert error_code(client.call("meetings", "agenda.add", item(closed["id"]))) == "forbidden"
        assert error_code(client.call("meetings", "decision.record", {"meeting_id": closed["id"], "text": "x"})) == "forbidden"
        assert error_code(client.call("meetings", "meeting.minutes.set", {"id": closed["id"], "version": 3, "minutes": "x"})) == "forbidden"
        action = seen["action_items"][0]
        assert error_code(client.call("meetings", "action_item.set_status", {"id": action["id"], "status": "done"})) == "forbidden"


def test_bad_meeting_input(meetings):
    editor, _ = token_for(meetings, CHIYODA, ["editor"])
    with Closing(meetings.client(token=editor)) as client:
        body = make_body(client)
        base = {"body_id": body["id"], "title": "x", "starts_at": "2025-05-20T14:00:00+09:00", "format": "online", "visibility": "open"}
        for bad in [dict(base, starts_at="tomorrow"), dict(base, starts_at="2025-02-30T14:00:00+09:00"),
                    dict(base, starts_at="2025-05-20T14:00:00"), dict(base, format="telepathy"), dict(base, visibility="secret"),
                    dict(base, title=""), dict(base, title="x" * 301), dict(base, kind="party"), dict(base, extra=True)]:
            assert error_code(client.call("meetings", "meeting.schedule", bad)) == "invalid_input", bad
        assert error_code(client.call("meetings", "meeting.schedule", dict(base, body_id="00000000-0000-4000-8000-000000000000"))) == "not_found"
        meeting = ok(client.call("meetings", "meeting.schedule", base))
        for attendance in [[{"sector": "medical", "count": -1}], [{"sector": "medical", "count": 10**12}],
                           [{"sector": "medical", "count": "3"}], [{"sector": "wizards", "count": 1}]]:
            assert error_code(client.call("meetings", "meeting.hold", {"id": meeting["id"], "version": 1, "attendance": attendance})) == "invalid_input"
        assert violation_paths(client.call("meetings", "meeting.hold", {"id": meeting["id"], "version": 1, "attendance": [
            {"sector": "medical", "count": 1}, {"sector": "medical", "count": 2}]})) == ["/attendance"]
        assert error_code(client.call("meetings", "meeting.hold", {"id": meeting["id"], "version": 7, "attendance": []})) == "conflict"
        held = hold(client, meeting)
        assert violation_paths(client.call("meetings", "decision.record", {
            "meeting_id": meeting["id"], "agenda_item_id": "00000000-0000-4000-8000-000000000000", "text": "x"})) == ["/agenda_item_id"]
        assert error_code(client.call("meetings", "action_item.create", {"meeting_id": meeting["id"], "title": "x", "due_date": "2025-02-30"})) == "invalid_input"
        assert error_code(client.call("meetings", "action_item.set_status", {"id": "00000000-0000-4000-8000-000000000000", "status": "done"})) == "not_found"
        assert error_code(client.call("meetings", "action_item.set_status", {"id": "00000000-0000-4000-8000-000000000000", "status": "lost"})) == "invalid_input"
        assert error_code(client.call("meetings", "meeting.minutes.set", {"id": meeting["id"], "version": held["version"], "minutes": "x" * 20_001})) == "invalid_input"
        assert error_code(client.call("meetings", "meeting.get", {"id": "00000000-0000-4000-8000-000000000000"})) == "not_found"
