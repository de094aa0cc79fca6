"""Dispatch: officers on duty, one-click dispatch to the nearest on the site plan, who may
dispatch whom, and escalation to the station when the officer does not acknowledge in time.

Messages the app would publish are recorded (``published``); the real broker's delivery and
ACL are in ``test_dispatch_mqtt.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from gatekeeper.vocabulary import AlertType, Severity, Zone
from hardware.topics import alerts_topic, officer_dispatch_topic
from server.alerts.dispatch import escalate_unacknowledged
from server.core import crypto
from server.core.messaging import OutgoingMessage
from server.extensions import db
from server.models import (
    AccessPoint,
    Alert,
    AlertDelivery,
    AuditEntry,
    Community,
    UserRole,
    Webhook,
)
from server.worker import Worker
from tests import factories
from tests.factories import Api
from tests.support.alerts import raise_in
from tests.support.api import WorldIds, assert_problem, in_app

NOW = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)


class Team:
    """Community A's points on its plan and its officers (officer_b covers B only)."""

    def __init__(self, app: Flask, world: WorldIds) -> None:
        with in_app(app):
            a = db.session.get(Community, world.a)
            b = db.session.get(Community, world.b)
            door = db.session.get(AccessPoint, world.door_a)
            door.plan_x, door.plan_y = 0.1, 0.1
            north = factories.access_point(a, zone=Zone.PERIMETER, name="北门")
            north.plan_x, north.plan_y = 0.5, 0.0
            east = factories.access_point(a, zone=Zone.PERIMETER, name="东门")
            east.plan_x, east.plan_y = 0.9, 0.5
            wang = factories.user(UserRole.OFFICER, communities=[a], username="wang")
            wang.display_name = "王警官"
            idle = factories.user(UserRole.OFFICER, communities=[a], username="idle")
            officer_b = factories.user(UserRole.OFFICER, communities=[b], username="officer_b")
            db.session.commit()
            self.north, self.east = north.id, east.id
            self.wang, self.idle, self.officer_b = wang.id, idle.id, officer_b.id
        self.world = world


@pytest.fixture
def team(app: Flask, world: WorldIds) -> Team:
    return Team(app, world)


def put_duty(api: Api, body: dict[str, Any]) -> Any:
    return api.client.put("/api/v1/officers/me/duty", headers=api.headers, json=body)


def on_duty(app: Flask, username: str, access_point_id: str | None) -> Api:
    api = Api(app.test_client(), username)
    position = {"access_point_id": access_point_id} if access_point_id else None
    answer = put_duty(api, {"on_duty": True, "position": position})
    assert answer.status_code == 200, answer.json
    return api


def messages(published: list[OutgoingMessage], topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in published if m.topic == topic]


def test_one_click_dispatches_the_nearest_officer_on_duty(
    app: Flask, team: Team, published: list[OutgoingMessage]
) -> None:
    world = team.world
    officer_a = on_duty(app, "officer_a", world.door_a)  # (0.1, 0.1)
    on_duty(app, "wang", team.north)  # (0.5, 0.0): nearer the east gate
    Api(app.test_client(), "officer_b")  # another community's: never a candidate
    alert_id = raise_in(app, world.a, access_point_id=team.east)  # (0.9, 0.5)

    candidates = officer_a.get(f"/alerts/{alert_id}/dispatch/candidates")
    assert candidates.status_code == 200, candidates.json
    assert [(c["username"], c["access_point"], c["busy"]) for c in candidates.json] == [
        ("wang", "北门", 0),
        ("officer_a", "A door", 0),
    ]
    assert candidates.json[0]["distance"] == pytest.approx((0.4**2 + 0.5**2) ** 0.5)

    answer = officer_a.post(f"/alerts/{alert_id}/dispatch", json={})
    assert answer.status_code == 200, answer.json
    dispatch = answer.json["dispatch"]
    assert (dispatch["assignee_id"], dispatch["assignee"], dispatch["assigned_by"]) == (
        team.wang,
        "wang",
        "officer_a",
    )
    assert dispatch["acknowledged_at"] is None and dispatch["escalated_at"] is None
    assert [h["action"] for h in answer.json["history"]] == ["raised", "dispatched"]
    # The assignee's own topic and the community's, both with the assignment.
    [mine] = messages(published, officer_dispatch_topic(world.a, "wang"))
    assert (mine["alert_id"], mine["reason"], mine["dispatch"]["assignee"]) == (
        alert_id,
        "dispatched",
        "wang",
    )
    assert [m["reason"] for m in messages(published, alerts_topic(world.a))] == [
        "raised",
        "dispatched",
    ]
    assert not messages(published, officer_dispatch_topic(world.a, "officer_a"))
    with in_app(app):
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "alert.dispatch"))
        assert entry is not None and entry.target_id == alert_id
        logged = db.session.scalars(
            select(AlertDelivery.target).where(AlertDelivery.reason == "dispatched")
        ).all()
    assert sorted(logged) == sorted(
        [alerts_topic(world.a), officer_dispatch_topic(world.a, "wang")]
    )

    # Wang is busy now: at the same distance, the idle officer comes first.
    second = raise_in(app, world.a, access_point_id=team.east, type=AlertType.TAMPER)
    on_duty(app, "officer_a", team.north)
    order = officer_a.get(f"/alerts/{second}/dispatch/candidates").json
    assert [(c["username"], c["busy"]) for c in order] == [("officer_a", 0), ("wang", 1)]


def test_who_may_dispatch_and_to_whom(
    app: Flask, team: Team, published: list[OutgoingMessage]
) -> None:
    world = team.world
    alert_id = raise_in(app, world.a, access_point_id=team.east)
    officer_a = Api(app.test_client(), "officer_a")
    # Nobody on duty yet.
    assert_problem(officer_a.post(f"/alerts/{alert_id}/dispatch", json={}), 409)
    on_duty(app, "wang", None)  # on duty, position unknown
    put_duty(Api(app.test_client(), "idle"), {"on_duty": False})
    # Another community's officer and staff, and residents, find no such alert.
    for outsider in ("officer_b", "staff_b", "resident_a"):
        answer = Api(app.test_client(), outsider).post(
            f"/alerts/{alert_id}/dispatch", json={"officer_id": team.wang}
        )
        assert_problem(answer, 404)
    # Off duty: 409; not an officer of this community (or no officer at all): 422.
    assert_problem(
        officer_a.post(f"/alerts/{alert_id}/dispatch", json={"officer_id": team.idle}), 409
    )
    for wrong in (team.officer_b, world.staff_a, "usr_01JZZZZZZZZZZZZZZZZZZZZZZZ"):
        body = assert_problem(
            officer_a.post(f"/alerts/{alert_id}/dispatch", json={"officer_id": wrong}), 422
        )
        assert "officer_id" in body["errors"]
    assert_problem(officer_a.post(f"/alerts/{alert_id}/dispatch", json={"officer_id": 7}), 422)
    # The community's staff dispatch too.
    staff = Api(app.test_client(), "staff_a")
    answer = staff.post(f"/alerts/{alert_id}/dispatch", json={"officer_id": team.wang})
    assert answer.status_code == 200, answer.json
    assert answer.json["dispatch"]["assigned_by"] == "staff_a"
    # Only the assignee accepts; a resolved alert is dispatched no more.
    assert_problem(officer_a.post(f"/alerts/{alert_id}/dispatch/accept", json={}), 403)
    assert officer_a.post(f"/alerts/{alert_id}/resolve", json={}).status_code == 200
    assert_problem(officer_a.post(f"/alerts/{alert_id}/dispatch", json={}), 409)
    with in_app(app):
        assert db.session.get(Alert, alert_id).assignee_id == team.wang


def test_duty_is_the_officers_own_in_the_communities_they_cover(app: Flask, team: Team) -> None:
    world = team.world
    officer_a = Api(app.test_client(), "officer_a")
    assert officer_a.get("/officers/me/duty").json == {
        "on_duty": False,
        "changed_at": None,
        "position": None,
    }
    # B's gate is no place of theirs; staff go on no duty; a body must say on or off.
    assert_problem(
        put_duty(officer_a, {"on_duty": True, "position": {"access_point_id": world.door_b}}), 404
    )
    assert_problem(put_duty(Api(app.test_client(), "staff_a"), {"on_duty": True}), 403)
    assert_problem(put_duty(officer_a, {"position": None}), 422)
    answer = put_duty(officer_a, {"on_duty": True, "position": {"access_point_id": team.north}})
    assert answer.status_code == 200, answer.json
    assert answer.json["on_duty"] is True
    assert answer.json["position"]["access_point"] == "北门"
    assert answer.json["position"]["plan_x"] == 0.5
    # Off duty, the position left out: kept.
    answer = put_duty(officer_a, {"on_duty": False})
    assert (answer.json["on_duty"], answer.json["position"]["access_point_id"]) == (
        False,
        team.north,
    )
    with in_app(app):
        actions = db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.action == "officer.duty")
        ).all()
    assert len(actions) == 2


def test_an_unacknowledged_dispatch_escalates_to_the_station_after_the_window(
    app: Flask, team: Team, published: list[OutgoingMessage]
) -> None:
    world = team.world
    with in_app(app):
        db.session.add(
            Webhook(
                community_id=world.a,
                url="https://police.example/hook",
                secret_encrypted=crypto.encrypt_text("whsec_test"),
            )
        )
        db.session.commit()
    with time_machine.travel(NOW, tick=False):
        on_duty(app, "wang", team.north)
        alert_id = raise_in(app, world.a, access_point_id=team.east, severity=Severity.LOW)
        answer = Api(app.test_client(), "staff_a").post(f"/alerts/{alert_id}/dispatch", json={})
        assert answer.status_code == 200, answer.json

    def run_at(minutes: float) -> int:
        with time_machine.travel(NOW + timedelta(minutes=minutes), tick=False), in_app(app):
            count = escalate_unacknowledged()
            db.session.commit()
            return count

    assert run_at(2.9) == 0  # dispatch_ack_minutes: 3 by default
    assert run_at(3) == 1
    assert run_at(10) == 0  # once per dispatch
    with in_app(app):
        alert = db.session.get(Alert, alert_id)
        assert alert.dispatch_escalated_at == NOW + timedelta(minutes=3)
        assert alert.severity is Severity.LOW  # the station hears of it; the severity is the rules'
        steps = [(h.action, h.note) for h in alert.history]
        hooks = db.session.scalars(
            select(AlertDelivery.reason).where(AlertDelivery.channel == "webhook")
        ).all()
    assert steps[-1] == (
        "dispatch_escalated",
        "wang did not acknowledge within 3 min: to the station",
    )
    assert "dispatch_escalated" in hooks
    [escalated] = [
        m for m in messages(published, alerts_topic(world.a)) if m["reason"] == "dispatch_escalated"
    ]
    assert escalated["dispatch"]["escalated_at"].startswith("2026-11-21T13:03:00")


def test_a_community_sets_its_window(
    app: Flask, team: Team, published: list[OutgoingMessage]
) -> None:
    world = team.world
    staff = Api(app.test_client(), "staff_a")
    answer = staff.patch(f"/communities/{world.a}", json={"settings": {"dispatch_ack_minutes": 10}})
    assert answer.status_code == 200, answer.json
    assert_problem(
        staff.patch(f"/communities/{world.a}", json={"settings": {"dispatch_ack_minutes": 0}}), 422
    )
    with time_machine.travel(NOW, tick=False):
        on_duty(app, "wang", team.north)
        alert_id = raise_in(app, world.a, access_point_id=team.east)
        assert staff.post(f"/alerts/{alert_id}/dispatch", json={}).status_code == 200
    for minutes, expected in ((9.9, 0), (10, 1)):
        with time_machine.travel(NOW + timedelta(minutes=minutes), tick=False), in_app(app):
            assert escalate_unacknowledged() == expected
            db.session.commit()


def test_acknowledging_stops_the_escalation_and_moves_the_officer(
    app: Flask, team: Team, published: list[OutgoingMessage]
) -> None:
    world = team.world
    with time_machine.travel(NOW, tick=False):
        wang = on_duty(app, "wang", team.north)
        by_ack = raise_in(app, world.a, access_point_id=team.east)
        by_accept = raise_in(app, world.a, access_point_id=world.door_a, type=AlertType.TAMPER)
        staff = Api(app.test_client(), "staff_a")
        for alert_id in (by_ack, by_accept):
            assert staff.post(f"/alerts/{alert_id}/dispatch", json={}).status_code == 200
    with time_machine.travel(NOW + timedelta(minutes=1), tick=False):
        assert wang.post(f"/alerts/{by_ack}/acknowledge", json={}).status_code == 200
        # Another officer acknowledged this one: Wang still accepts the dispatch.
        assert (
            Api(app.test_client(), "officer_a").post(f"/alerts/{by_accept}/ack").status_code == 200
        )
    with time_machine.travel(NOW + timedelta(minutes=2), tick=False):
        accepted = wang.post(f"/alerts/{by_accept}/dispatch/accept", json={"note": "路上"})
        assert accepted.status_code == 200, accepted.json
        assert accepted.json["dispatch"]["acknowledged_at"].startswith("2026-11-21T13:02:00")
        assert accepted.json["history"][-1]["action"] == "dispatch_accepted"
        assert_problem(wang.post(f"/alerts/{by_accept}/dispatch/accept", json={}), 409)
        acked = wang.get(f"/alerts/{by_ack}").json
        assert acked["dispatch"]["acknowledged_at"].startswith("2026-11-21T13:01:00")
        # Where the last alert Wang acknowledged was: A's door.
        assert wang.get("/officers/me/duty").json["position"]["access_point_id"] == world.door_a
    with time_machine.travel(NOW + timedelta(minutes=30), tick=False), in_app(app):
        assert escalate_unacknowledged() == 0
    reasons = [m["reason"] for m in messages(published, alerts_topic(world.a))]
    assert "dispatch_accepted" in reasons and "dispatch_escalated" not in reasons


def test_the_workers_escalation_job_escalates_dispatches(
    app: Flask, team: Team, published: list[OutgoingMessage]
) -> None:
    with time_machine.travel(NOW, tick=False):
        on_duty(app, "wang", team.north)
        alert_id = raise_in(app, team.world.a, access_point_id=team.east)
        assert (
            Api(app.test_client(), "staff_a")
            .post(f"/alerts/{alert_id}/dispatch", json={})
            .status_code
            == 200
        )
    worker = Worker(app)
    with time_machine.travel(NOW + timedelta(minutes=2), tick=False):
        worker.escalate_alerts()
    with in_app(app):
        assert db.session.get(Alert, alert_id).dispatch_escalated_at is None
    with time_machine.travel(NOW + timedelta(minutes=3), tick=False):
        worker.escalate_alerts()
    with in_app(app):
        assert db.session.get(Alert, alert_id).dispatch_escalated_at == NOW + timedelta(minutes=3)
