"""Activity figures (§6) per body and fiscal year, counted from the meetings as recorded:
meetings held, participants by sector, goal-setting and evaluation sessions, trainings."""
from conftest import Closing
from test_meetings_bodies import CHIYODA, CHUO, make_body, meetings, token_for  # noqa: F401
from test_meetings_meetings import hold, schedule
from tsunagu_peer import error_code, ok


def test_figures_per_body_and_fiscal_year(meetings):
    editor, _ = token_for(meetings, CHIYODA, ["editor"])
    with Closing(meetings.client(token=editor)) as client:
        body = make_body(client)
        other = make_body(client, name="千代田区 第二")
        first = schedule(client, body["id"], starts_at="2025-04-01T10:00:00+09:00", goals_set=True)
        hold(client, first)  # medical 3, welfare 4, user 1; 2 observers
        second = schedule(client, body["id"], starts_at="2026-03-31T10:00:00+09:00")
        hold(client, second, attendance=[{"sector": "medical", "count": 2}, {"sector": "family", "count": 1}], goals_evaluated=True)
        training = schedule(client, body["id"], kind="training", starts_at="2025-10-01T13:00:00+09:00", title="地域移行研修")
        hold(client, training, attendance=[{"sector": "welfare", "count": 30}, {"sector": "peer_supporter", "count": 5}])
        cancelled = schedule(client, body["id"], starts_at="2025-11-01T10:00:00+09:00")
        ok(client.call("meetings", "meeting.cancel", {"id": cancelled["id"], "version": 1, "reason": "延期"}))
        schedule(client, body["id"], starts_at="2025-12-01T10:00:00+09:00")  # scheduled, not held
        next_year = schedule(client, body["id"], starts_at="2026-04-01T10:00:00+09:00")
        hold(client, next_year)

        figures = ok(client.call("meetings", "activity.figures", {"fiscal_year": 2025, "body_id": body["id"]}))["bodies"]
        assert len(figures) == 1
        f = figures[0]
        assert f["meetings_held"] == 2 and f["participants"] == 11 and f["observers"] == 4
        assert f["participants_by_sector"]["medical"] == 5 and f["participants_by_sector"]["family"] == 1
        assert f["participants_by_sector"]["welfare"] == 4 and f["participants_by_sector"]["housing"] == 0
        assert f["goal_sessions"] == {"set": 1, "evaluated": 1, "set_or_evaluated": 2}
        assert f["trainings"]["held"] == 1 and f["trainings"]["participants"] == 35
        assert f["trainings"]["participants_by_sector"]["peer_supporter"] == 5

        by_tenant = ok(client.call("meetings", "activity.figures", {"fiscal_year": 2026, "tenant": CHIYODA}))["bodies"]
        mine = {b["body_id"]: b["meetings_held"] for b in by_tenant if b["body_id"] in (body["id"], other["id"])}
        assert mine == {body["id"]: 1, other["id"]: 0} and all(b["tenant"] == CHIYODA for b in by_tenant)
        chuo = ok(client.call("meetings", "activity.figures", {"fiscal_year": 2025, "tenant": CHUO}))["bodies"]
        assert body["id"] not in [b["body_id"] for b in chuo]

        for bad in [{"fiscal_year": 2025}, {"fiscal_year": 2025, "body_id": body["id"], "tenant": CHIYODA},
                    {"fiscal_year": 10**15, "body_id": body["id"]}, {"fiscal_year": "2025", "body_id": body["id"]}]:
            assert error_code(client.call("meetings", "activity.figures", bad)) == "invalid_input", bad
        assert error_code(client.call("meetings", "activity.figures", {
            "fiscal_year": 2025, "body_id": "00000000-0000-4000-8000-000000000000"})) == "not_found"
