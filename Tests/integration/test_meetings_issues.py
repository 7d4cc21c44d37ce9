"""Regional issues (地域課題): raised from an agenda item, a case (id only) or data; discussed,
handled locally, or escalated municipal → area → prefecture and answered back; on the receiving
body's next agenda; closed with reasons; duplicates merged; the public yearly summary."""
from conftest import Closing
from test_meetings_bodies import CHIYODA, CHUO, TOKYO, make_body, meetings, token_for, violation_paths  # noqa: F401
from test_meetings_meetings import item, schedule
from tsunagu_peer import error_code, ok

CASE_ID = "7a9c3d2e-1111-4222-8333-444455556666"  # no such case


def case_of(suite, client, body_id):
    """A real case of the body (its id is what an issue raised from it names): a member of the
    body with a case role records it."""
    token, token_id = token_for(suite, CHIYODA, ["editor"])
    ok(client.call("meetings", "member.add", {"body_id": body_id, "person_name": "事例 担当", "sector": "welfare", "role": "member",
                                              "term_start": "2024-04-01", "account": token_id, "case_role": "editor"}))
    with Closing(suite.client(token=token)) as editor:
        return ok(editor.call("meetings", "case.create", {"body_id": body_id, "case_type": "difficult", "basis": "consent", "content": {
            "pseudonym": "Cさん", "age_band": "40s", "situation_summary": "課題の元になった事例", "needs": [{"category": "housing"}],
            "support_agreed": "", "agencies": [], "review_dates": []}}))["id"]


def chain(suite):
    """A municipal body of 千代田区 escalating to Tokyo's area body, which escalates to the prefecture's."""
    tokyo, _ = token_for(suite, TOKYO, ["editor"])
    chiyoda, _ = token_for(suite, CHIYODA, ["editor"])
    with Closing(suite.client(token=tokyo)) as client:
        prefectural = make_body(client, name="東京都 協議の場", level="prefecture", municipalities=[], secretariat="health_centre",
                                basis="standalone")
        area = make_body(client, name="区中央部 圏域", level="disability_area", municipalities=[CHIYODA, CHUO],
                         secretariat="health_centre", basis="area_council", escalates_to=prefectural["id"])
    with Closing(suite.client(token=chiyoda)) as client:
        municipal = make_body(client, escalates_to=area["id"])
    return tokyo, chiyoda, municipal, area, prefectural


def raise_issue(client, body_id, **overrides):
    issue = {"body_id": body_id, "title": "退院後の住まいが足りない", "theme": "居住支援", "axis": "regional_infrastructure",
             "area_municipalities": [CHIYODA], "area_label": "千代田区", "evidence": "グループホームの空きが年間2件",
             "source_kind": "data", "source_data": "ReMHRAD 2023"}
    issue.update(overrides)
    return ok(client.call("meetings", "issue.raise", issue))


def test_escalation_to_the_prefecture_and_the_answer_back(meetings):
    tokyo, chiyoda, municipal, area, prefectural = chain(meetings)
    with Closing(meetings.client(token=tokyo)) as client:
        area_meeting = schedule(client, area["id"], starts_at="2099-06-01T10:00:00+09:00")
        prefectural_meeting = schedule(client, prefectural["id"], starts_at="2099-07-01T10:00:00+09:00")
    with Closing(meetings.client(token=chiyoda)) as client:
        own_meeting = schedule(client, municipal["id"], starts_at="2025-05-20T14:00:00+09:00")
        agenda = ok(client.call("meetings", "agenda.add", item(own_meeting["id"])))
        issue = raise_issue(client, municipal["id"], source_kind="agenda_item", source_agenda_item_id=agenda["id"], source_data="")
        assert issue["status"] == "raised" and issue["current_body_id"] == municipal["id"] and issue["version"] == 1
        issue = ok(client.call("meetings", "issue.discuss", {"id": issue["id"], "version": 1, "reason": "第1回で協議"}))
        # Answering is for the body an issue was escalated to.
        envelope, _ = client.call("meetings", "issue.answer", {"id": issue["id"], "version": 2, "answer": "x"})
        assert envelope["error"]["code"] == "conflict" and "discussed" in envelope["error"]["message"]
        issue = ok(client.call("meetings", "issue.escalate", {"id": issue["id"], "version": 2, "reason": "区だけでは住まいを確保できない"}))
        assert issue["status"] == "escalated" and issue["current_body_id"] == area["id"]
        # Now held by the area body: the raising tenant does not move it on.
        assert error_code(client.call("meetings", "issue.escalate", {"id": issue["id"], "version": 3, "reason": "x"})) == "forbidden"
        assert error_code(client.call("meetings", "issue.close", {"id": issue["id"], "version": 3, "reason": "x"})) == "conflict"
    with Closing(meetings.client(token=tokyo)) as client:
        on_agenda = ok(client.call("meetings", "meeting.get", {"id": area_meeting["id"]}))["agenda"]["escalated_issues"]
        assert [i["id"] for i in on_agenda] == [issue["id"]] and on_agenda[0]["title"] == "退院後の住まいが足りない"
        held = ok(client.call("meetings", "issue.list", {"body_id": area["id"], "held": True}))["issues"]
        assert [i["id"] for i in held] == [issue["id"]]
        issue = ok(client.call("meetings", "issue.escalate", {"id": issue["id"], "version": 3, "reason": "圏域を越える課題"}))
        assert issue["current_body_id"] == prefectural["id"]
        assert ok(client.call("meetings", "meeting.get", {"id": area_meeting["id"]}))["agenda"]["escalated_issues"] == []
        assert [i["id"] for i in ok(client.call("meetings", "meeting.get", {"id": prefectural_meeting["id"]}))["agenda"]["escalated_issues"]] == [issue["id"]]
        # The prefecture is the top: no higher body to go to.
        assert violation_paths(client.call("meetings", "issue.escalate", {"id": issue["id"], "version": 4, "reason": "x"})) == ["/to_body_id"]
        issue = ok(client.call("meetings", "issue.answer", {"id": issue["id"], "version": 4, "answer": "居住支援協議会で家主向け研修を始める"}))
        assert issue["status"] == "answered" and issue["answered_by_body_id"] == prefectural["id"]
        assert issue["current_body_id"] == municipal["id"]
    with Closing(meetings.client(token=chiyoda)) as client:
        next_meeting = schedule(client, municipal["id"], starts_at="2099-09-01T14:00:00+09:00")
        answered = ok(client.call("meetings", "meeting.get", {"id": next_meeting["id"]}))["agenda"]["answered_issues"]
        assert [(i["id"], i["answer"]) for i in answered] == [(issue["id"], "居住支援協議会で家主向け研修を始める")]
        closed = ok(client.call("meetings", "issue.close", {"id": issue["id"], "version": 5, "reason": "回答を受け、区で研修に参加"}))
        assert closed["status"] == "closed"
        steps = [(s["from_status"], s["to_status"], s["reason"]) for s in closed["steps"]]
        assert steps == [(None, "raised", ""), ("raised", "discussed", "第1回で協議"),
                         ("discussed", "escalated", "区だけでは住まいを確保できない"), ("escalated", "escalated", "圏域を越える課題"),
                         ("escalated", "answered", ""), ("answered", "closed", "回答を受け、区で研修に参加")]
        assert [s["to_body_id"] for s in closed["steps"]][2:5] == [area["id"], prefectural["id"], municipal["id"]]
        assert error_code(client.call("meetings", "issue.close", {"id": issue["id"], "version": 6, "reason": "again"})) == "conflict"


def test_local_handling_merge_summary_and_sources(meetings):
    tokyo, chiyoda, municipal, area, _ = chain(meetings)
    with Closing(meetings.client(token=chiyoda)) as client:
        local = raise_issue(client, municipal["id"], axis="support_system")
        assert error_code(client.call("meetings", "issue.handle_locally", {"id": local["id"], "version": 1})) == "invalid_input"  # a reason is needed
        local = ok(client.call("meetings", "issue.handle_locally", {"id": local["id"], "version": 1, "reason": "区の事業で対応"}))
        local = ok(client.call("meetings", "issue.close", {"id": local["id"], "version": 2, "reason": "対応済み"}))
        # A case id must name a case of the raising body.
        assert violation_paths(client.call("meetings", "issue.raise", {
            "body_id": municipal["id"], "title": "t", "theme": "t", "axis": "support_system", "area_municipalities": [],
            "area_label": "", "evidence": "", "source_kind": "case", "source_case_id": CASE_ID})) == ["/source_case_id"]
        case_id = case_of(meetings, client, municipal["id"])
        from_case = raise_issue(client, municipal["id"], source_kind="case", source_case_id=case_id, source_data="")
        assert from_case["source_case_id"] == case_id
        duplicate = raise_issue(client, municipal["id"])
        merged = ok(client.call("meetings", "issue.merge", {"id": duplicate["id"], "version": 1, "into": from_case["id"], "reason": "同じ課題"}))
        assert merged["status"] == "closed" and merged["merged_into"] == from_case["id"]
        assert error_code(client.call("meetings", "issue.merge", {"id": from_case["id"], "version": 1, "into": duplicate["id"]})) == "conflict"
        assert violation_paths(client.call("meetings", "issue.merge", {"id": from_case["id"], "version": 1, "into": from_case["id"]})) == ["/into"]

        summary = ok(client.call("meetings", "issue.summary", {"body_id": municipal["id"], "fiscal_year": local["fiscal_year"]}))
        assert summary["raised"] == 3 and summary["by_status"]["closed"] == 2 and summary["by_status"]["raised"] == 1
        assert summary["by_axis"] == {"individual_support": 0, "support_system": 1, "regional_infrastructure": 2}
        assert "evidence" not in str(summary) and case_id not in str(summary)
        assert ok(client.call("meetings", "issue.summary", {"body_id": municipal["id"], "fiscal_year": 2001}))["raised"] == 0
        ok(client.call("meetings", "issue.escalate", {"id": from_case["id"], "version": 1, "reason": "圏域で検討", "to_body_id": area["id"]}))
    with Closing(meetings.client(token=tokyo)) as client:
        received = ok(client.call("meetings", "issue.summary", {"body_id": area["id"], "fiscal_year": local["fiscal_year"]}))["received"]
        assert [r["id"] for r in received] == [from_case["id"]]
        # Another tenant sees the issue, but not which case it came from.
        assert ok(client.call("meetings", "issue.get", {"id": from_case["id"]}))["source_case_id"] is None


def test_bad_issue_input_and_tenancy(meetings):
    tokyo, chiyoda, municipal, area, prefectural = chain(meetings)
    chuo, _ = token_for(meetings, CHUO, ["editor"])
    with Closing(meetings.client(token=chiyoda)) as client:
        base = {"body_id": municipal["id"], "title": "x", "theme": "y", "axis": "support_system", "source_kind": "data", "source_data": "z"}
        assert violation_paths(client.call("meetings", "issue.raise", dict(base, source_kind="case"))) == ["/source_case_id"]
        assert violation_paths(client.call("meetings", "issue.raise", dict(base, source_kind="agenda_item"))) == ["/source_agenda_item_id"]
        assert violation_paths(client.call("meetings", "issue.raise", dict(
            base, source_kind="agenda_item", source_agenda_item_id="00000000-0000-4000-8000-000000000000"))) == ["/source_agenda_item_id"]
        assert violation_paths(client.call("meetings", "issue.raise", dict(base, source_data=""))) == ["/source_data"]
        assert violation_paths(client.call("meetings", "issue.raise", dict(base, source_case_id=CASE_ID))) == ["/source_data"]
        for bad in [dict(base, axis="none"), dict(base, title=""), dict(base, evidence="x" * 4001), dict(base, source_case_id="case-1"),
                    dict(base, area_municipalities=["1"]), dict(base, body_id=5), {k: v for k, v in base.items() if k != "axis"}]:
            assert error_code(client.call("meetings", "issue.raise", bad)) == "invalid_input", bad
        issue = ok(client.call("meetings", "issue.raise", base))
        assert error_code(client.call("meetings", "issue.discuss", {"id": issue["id"], "version": 2**31})) == "invalid_input"
        assert error_code(client.call("meetings", "issue.discuss", {"id": issue["id"], "version": 9})) == "conflict"
        assert error_code(client.call("meetings", "issue.get", {"id": "00000000-0000-4000-8000-000000000000"})) == "not_found"
        # Escalation goes upwards only.
        assert violation_paths(client.call("meetings", "issue.escalate", {
            "id": issue["id"], "version": 1, "reason": "x", "to_body_id": municipal["id"]})) == ["/to_body_id"]
        assert error_code(client.call("meetings", "issue.escalate", {
            "id": issue["id"], "version": 1, "reason": "x", "to_body_id": "00000000-0000-4000-8000-000000000000"})) == "not_found"
    with Closing(meetings.client(token=chuo)) as client:
        assert error_code(client.call("meetings", "issue.raise", dict(base, body_id=municipal["id"]))) == "forbidden"
        for op in ["issue.discuss", "issue.escalate", "issue.handle_locally"]:
            assert error_code(client.call("meetings", op, {"id": issue["id"], "version": 1, "reason": "x"})) == "forbidden", op
