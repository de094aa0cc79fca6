"""Patrol by a guard, against the real database: only guards' tags visit checkpoints, an
ordered route takes reads in turn, the guard flag on tags, and a route's recent rounds (API
and page)."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from gatekeeper.vocabulary import AlertType
from server.extensions import db
from server.models import AuditEntry, PatrolRoute, RfidTag
from tests.alerts import test_alert_rules as rules_tests
from tests.alerts.test_alert_rules import DAY, ELDER_TAG, GUARD_TAG, patrol, read_tag
from tests.factories import Api
from tests.support.alerts import alerts
from tests.support.pages import csrf, login

# The community, its readers and people, and the guard with two checkpoints: the rules' own.
site = rules_tests.site
checkpoints = rules_tests.checkpoints


def _route(app, site, checkpoints, **values) -> str:
    """A route made at 10:00 local (DAY): its first round is 10:00-11:00."""
    with time_machine.travel(DAY, tick=False):
        made = Api(app.test_client(), "staff_a").post(
            f"/communities/{site.community}/patrol-routes",
            {"name": "Night walk", "checkpoint_device_ids": checkpoints, "round_minutes": 60}
            | values,
        )
        assert made.status_code == 201, made.json
        return made.json["id"]


def _walk(app, site, reads: list[tuple[int, str, str]]) -> None:
    """``(minutes after DAY, reader, tag)`` each read at its frozen instant."""
    for minutes, reader, tag in reads:
        with time_machine.travel(DAY + timedelta(minutes=minutes), tick=False):
            read_tag(app, site, reader, tag)


def test_an_elders_tag_at_the_checkpoints_misses_the_round_a_guards_completes_it(
    app, site, checkpoints
) -> None:
    _route(app, site, checkpoints)
    # 10:00-11:00: the elder's tag at both checkpoints. 11:00-12:00: the guard's.
    _walk(app, site, [(10, checkpoints[0], ELDER_TAG), (20, checkpoints[1], ELDER_TAG)])
    _walk(app, site, [(70, checkpoints[0], GUARD_TAG), (80, checkpoints[1], GUARD_TAG)])
    with time_machine.travel(DAY + timedelta(hours=2, minutes=1), tick=False):
        assert patrol(app) == 1  # 10:00-11:00 only: 11:00-12:00 is complete
    [alert] = alerts(app, AlertType.PATROL_MISSED)
    [missed] = alert.evidence["rounds"]
    assert missed["start"] == DAY.isoformat()
    assert missed["missed_device_ids"] == checkpoints
    assert "missed 2 of 2 checkpoints" in alert.summary


def test_an_ordered_route_counts_a_read_only_in_its_turn(app, client, site, checkpoints) -> None:
    route_id = _route(app, site, checkpoints, ordered=True)
    assert Api(client, "staff_a").get(f"/patrol-routes/{route_id}").json["ordered"] is True
    # 10:00-11:00: B first (out of turn, counts for nothing), then A: B is missed.
    # 11:00-12:00: A then B: complete.
    _walk(app, site, [(10, checkpoints[1], GUARD_TAG), (20, checkpoints[0], GUARD_TAG)])
    _walk(app, site, [(70, checkpoints[0], GUARD_TAG), (80, checkpoints[1], GUARD_TAG)])
    with time_machine.travel(DAY + timedelta(hours=2, minutes=1), tick=False):
        assert patrol(app) == 1
    [alert] = alerts(app, AlertType.PATROL_MISSED)
    assert alert.evidence["missed_device_ids"] == [checkpoints[1]]
    # The same reads on a route in any order: both rounds complete.
    with app.app_context():
        route = db.session.get(PatrolRoute, route_id)
        route.ordered, route.checked_until = False, None
        db.session.commit()
    with time_machine.travel(DAY + timedelta(hours=2, minutes=1), tick=False):
        rounds = Api(client, "staff_a").get(f"/patrol-routes/{route_id}/rounds?hours=3").json
    assert [r["status"] for r in rounds] == ["in_progress", "complete", "complete"]


def test_staff_mark_a_guards_tag_and_then_it_counts(app, client, site, checkpoints) -> None:
    staff = Api(client, "staff_a")
    added = staff.post(f"/people/{site.other}/tags", {"epc": "6a4d0002"})
    assert added.status_code == 201 and added.json["guard"] is False
    route_id = _route(app, site, checkpoints)
    _walk(app, site, [(10, checkpoints[0], "6A4D0002"), (20, checkpoints[1], "6A4D0002")])
    at = DAY + timedelta(hours=1, minutes=5)
    with time_machine.travel(at, tick=False):
        [first] = staff.get(f"/patrol-routes/{route_id}/rounds").json[1:]
        assert first["status"] == "missed" and first["visits"] == []
        marked = staff.patch(f"/tags/{added.json['id']}", {"guard": True})
        assert marked.status_code == 200 and marked.json["guard"] is True
        assert staff.patch(f"/tags/{added.json['id']}", {"guard": "yes"}).status_code == 422
        rounds = staff.get(f"/patrol-routes/{route_id}/rounds").json
    # Newest first: 11:00-12:00 under way (nothing read yet), 10:00-11:00 complete.
    assert [r["status"] for r in rounds] == ["in_progress", "complete"]
    assert rounds[0]["missed_device_ids"] == checkpoints
    visits = rounds[1]["visits"]
    assert [v["device_id"] for v in visits] == checkpoints
    assert visits[0]["at"] == (DAY + timedelta(minutes=10)).isoformat()
    assert visits[0]["tag"] == "6A4D0002" and visits[0]["person_id"] == site.other
    assert visits[0]["person_name"] == "李四"
    with app.app_context():
        entry = db.session.query(AuditEntry).filter_by(action="rfid_tags.update").one()
        assert entry.details["guard"] == "True"
        assert db.session.get(RfidTag, added.json["id"]).guard is True
    # Officers read the rounds with names masked; other communities and residents see none.
    with time_machine.travel(at, tick=False):
        officer = Api(client, "officer_a").get(f"/patrol-routes/{route_id}/rounds").json
        assert officer[1]["visits"][0]["person_name"] == "李*"
        assert Api(client, "staff_b").get(f"/patrol-routes/{route_id}/rounds").status_code == 404
        resident = Api(client, "resident_a").get(f"/patrol-routes/{route_id}/rounds")
        assert resident.status_code == 404
        assert staff.get(f"/patrol-routes/{route_id}/rounds?hours=0").status_code == 422


def test_the_rounds_page_lists_who_read_what_in_community_time(
    app, client, site, checkpoints
) -> None:
    route_id = _route(app, site, checkpoints, ordered=True)
    _walk(app, site, [(10, checkpoints[0], GUARD_TAG), (75, checkpoints[0], ELDER_TAG)])
    with time_machine.travel(DAY + timedelta(hours=1, minutes=30), tick=False):
        login(client, "officer_a")
        page = client.get(f"/patrol-routes/{route_id}/rounds")
    assert page.status_code == 200
    text = page.text
    # 10:00-11:00 local (Asia/Shanghai, 24-hour clock): A read at 10:10 by the guard, B missed.
    assert "2026-11-24 10:00" in text and "– 11:00" in text
    assert "Checkpoint A at 10:10 by 保**张" in text
    assert 'class="round-missed"' in text and 'class="round-in_progress"' in text
    assert "Checkpoint B" in text
    assert "10:00 UTC" not in text and "02:10" not in text
    # The elder's read at 11:15 is nobody's visit.
    assert "11:15" not in text


def test_staff_mark_a_guards_tag_on_the_person_page(app, client, site) -> None:
    with app.app_context():
        tag = db.session.query(RfidTag).filter_by(person_id=site.other).one()
        tag_id = tag.id
    login(client, "staff_a")
    page = client.get(f"/people/{site.other}")
    assert f"Tag {rules_tests.OTHER_TAG} is a guard's" in page.text
    marked = client.post(
        f"/tags/{tag_id}/guard", data={"guard": "1", "csrf_token": csrf(page.text)}
    )
    assert marked.status_code == 303
    page = client.get(f"/people/{site.other}")
    assert "guard's tag" in page.text and f"Tag {rules_tests.OTHER_TAG} is no longer" in page.text
    with app.app_context():
        assert db.session.get(RfidTag, tag_id).guard is True
    client.post(f"/tags/{tag_id}/guard", data={"guard": "0", "csrf_token": csrf(page.text)})
    with app.app_context():
        assert db.session.get(RfidTag, tag_id).guard is False
    # An officer changes no tag (the API's rule: staff write credentials).
    client.post("/logout", data={"csrf_token": csrf(page.text)})
    login(client, "officer_a")
    token = csrf(client.get("/").text)
    assert client.post(
        f"/tags/{tag_id}/guard", data={"guard": "1", "csrf_token": token}
    ).status_code in (403, 404)
    with app.app_context():
        assert db.session.get(RfidTag, tag_id).guard is False
