"""The holiday calendar at the door: verify card at a closed point on a holiday and the day
after, a worker on holiday hours, a visitor pass at a closed gate; one query per verify."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy import event

from gatekeeper.vocabulary import AccessPointKind, PersonRole, Zone
from server.extensions import db
from server.models import AccessEvent, Community, WorkerPermit, WorkerTag
from tests import factories
from tests.factories import Api

SECRET = "door-secret-for-holiday-tests"
GATE_SECRET = "gate-secret-for-holiday-tests"

# 春节 2027 is Friday 5 to Thursday 11 February; Shanghai is UTC+8.
BEFORE = datetime(2027, 2, 4, 15, 59, 59, tzinfo=UTC)  # 4 Feb 23:59:59 local
FIRST = datetime(2027, 2, 4, 16, 0, tzinfo=UTC)  # 5 Feb 00:00 local
MONDAY_0930 = datetime(2027, 2, 8, 1, 30, tzinfo=UTC)  # Monday 8 Feb 09:30 local
MONDAY_1030 = datetime(2027, 2, 8, 2, 30, tzinfo=UTC)
LAST = datetime(2027, 2, 11, 15, 59, 59, tzinfo=UTC)  # 11 Feb 23:59:59 local
AFTER = datetime(2027, 2, 11, 16, 0, tzinfo=UTC)  # 12 Feb 00:00 local, a Friday
NEXT_MONDAY = datetime(2027, 2, 15, 1, 30, tzinfo=UTC)


@pytest.fixture
def site(app):
    """Community A: an owner's card at A's door; a worker (Mon-Fri 08:00-18:00) at the door;
    a gate with a device; the calendar: A's door closed for 春节, the gate on 10:00-16:00."""
    with app.app_context():
        w = factories.world(door_secret=SECRET)
        owner = factories.person(w.a, "王小明")
        factories.membership(owner, PersonRole.OWNER, unit_of=w.unit_a)
        factories.card(owner, "04A1B2C3")
        gate = factories.access_point(
            w.a, name="Side gate", kind=AccessPointKind.GATE, zone=Zone.PERIMETER
        )
        gate_device, _ = factories.device(gate, secret=GATE_SECRET)
        cleaner = factories.person(w.a, "李阿姨")
        factories.membership(cleaner, PersonRole.WORKER)
        permit = WorkerPermit(
            community_id=w.a.id,
            person_id=cleaner.id,
            tag=WorkerTag.CLEANER,
            valid_from=datetime(2027, 1, 1, tzinfo=UTC),
            valid_until=datetime(2028, 1, 1, tzinfo=UTC),
            schedule=[{"days": [1, 2, 3, 4, 5], "start": "08:00", "end": "18:00"}],
        )
        permit.access_points = [w.door_a, gate]
        db.session.add(permit)
        factories.card(cleaner, "04C0FFEE")
        db.session.commit()
        ids = {
            "a": w.a.id,
            "door": f"{w.device_a.id}.{SECRET}",
            "door_point": w.door_a.id,
            "gate": f"{gate_device.id}.{GATE_SECRET}",
            "gate_point": gate.id,
            "unit": w.unit_a.id,
            "owner": owner.id,
        }
        db.session.remove()
    return ids


def _close_the_door(staff: Api, site) -> str:
    """春节 closes A's door (and only it); the holiday's id."""
    closed = staff.post(
        f"/communities/{site['a']}/holidays",
        {
            "name": "春节",
            "first_day": "2027-02-05",
            "last_day": "2027-02-11",
            "access_point_ids": [site["door_point"]],
        },
    )
    assert closed.status_code == 201, closed.json
    return closed.json["id"]


@pytest.fixture
def calendar(client, site):
    staff = Api(client, "staff_a")
    closed = _close_the_door(staff, site)
    hours = staff.post(
        f"/communities/{site['a']}/holidays",
        {
            "name": "春节",
            "first_day": "2027-02-05",
            "last_day": "2027-02-11",
            "effect": "hours",
            "hours": [{"start": "10:00", "end": "16:00"}],
            "access_point_ids": [site["gate_point"]],
        },
    )
    assert hours.status_code == 201, hours.json
    return {"closed": closed, "hours": hours.json["id"]}


def _card(client, credential: str, uid: str):
    return client.post(
        "/api/v1/verify/card", json={"uid": uid}, headers={"Authorization": f"Bearer {credential}"}
    )


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (BEFORE, "resident"),
        (FIRST, "holiday_closed"),
        (MONDAY_0930, "holiday_closed"),
        (LAST, "holiday_closed"),
        (AFTER, "resident"),
    ],
)
def test_a_resident_card_at_a_closed_point_on_the_holiday_and_the_day_after(
    app, client, site, calendar, at, expected
) -> None:
    with time_machine.travel(at, tick=False):
        answer = _card(client, site["door"], "04A1B2C3")
    assert answer.status_code == 200, answer.json
    assert answer.json["reason"] == expected
    with app.app_context():
        event_row = db.session.get(AccessEvent, answer.json["event_id"])
        if expected == "holiday_closed":
            assert answer.json["decision"] == "deny" and "open_ms" not in answer.json
            assert event_row.rule == "holiday.closed"
            assert "春节" in event_row.details["detail"]
        else:
            assert answer.json["decision"] == "grant"


def test_a_worker_follows_the_holiday(app, client, site, calendar) -> None:
    # Monday of 春节: the door is closed to the cleaner's weekday permit ...
    with time_machine.travel(MONDAY_0930, tick=False):
        assert _card(client, site["door"], "04C0FFEE").json["reason"] == "holiday_closed"
        # ... and the gate keeps 10:00-16:00, not the permit's 08:00.
        assert _card(client, site["gate"], "04C0FFEE").json["reason"] == "holiday_closed"
    with time_machine.travel(MONDAY_1030, tick=False):
        assert _card(client, site["gate"], "04C0FFEE").json["reason"] == "worker"
    # The Monday after the holiday the weekly permit is back at 09:30.
    with time_machine.travel(NEXT_MONDAY, tick=False):
        assert _card(client, site["door"], "04C0FFEE").json["reason"] == "worker"
        assert _card(client, site["gate"], "04C0FFEE").json["reason"] == "worker"


def test_a_deleted_holiday_opens_the_door_again(client, site, calendar) -> None:
    assert Api(client, "staff_a").delete(f"/holidays/{calendar['closed']}").status_code == 204
    with time_machine.travel(MONDAY_0930, tick=False):
        assert _card(client, site["door"], "04A1B2C3").json["reason"] == "resident"


def test_a_visitor_pass_at_a_closed_point(client, site, calendar) -> None:
    with time_machine.travel(MONDAY_0930, tick=False):
        issued = Api(client, "staff_a").post(
            "/passes",
            {
                "unit_id": site["unit"],
                "guest_name": "王小二",
                "valid_until": "2027-02-14T00:00:00+00:00",
                "max_uses": 5,
                "access_point_ids": [site["door_point"]],
            },
        )
        assert issued.status_code == 201, issued.json
        headers = {"Authorization": f"Bearer {site['door']}"}
        token = {"token": issued.json["token"]}
        refused = client.post("/api/v1/verify/qr", json=token, headers=headers)
    assert refused.json["reason"] == "holiday_closed", refused.json
    with time_machine.travel(AFTER, tick=False):
        admitted = client.post("/api/v1/verify/qr", json=token, headers=headers)
    assert admitted.json["reason"] == "visitor_pass", admitted.json


def test_the_verify_path_reads_the_calendar_in_one_query(app, site, calendar) -> None:
    from server.access.decision import point_view
    from server.models import AccessPoint

    with app.app_context(), time_machine.travel(MONDAY_0930, tick=False):
        point = db.session.get(AccessPoint, site["door_point"])
        community = db.session.get(Community, site["a"])
        statements: list[str] = []

        def count(_conn, _cursor, statement, *_args) -> None:
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            view = point_view(point, community)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        assert len(statements) == 1, statements
        holiday = view.holidays.effect(point.id, MONDAY_0930, "Asia/Shanghai")
        assert holiday is not None and holiday.name == "春节"


def test_only_a_door_a_holiday_names_reads_the_calendar(app, client, site) -> None:
    """The door's statement flags a holiday near today only for the points it covers: a
    holiday of the door leaves the gate's verifies without the calendar's query."""
    from server.access.decision import DoorReader

    _close_the_door(Api(client, "staff_a"), site)
    with app.app_context(), time_machine.travel(MONDAY_0930, tick=False):
        near = {}
        for name in ("door", "gate"):
            reader = DoorReader()
            assert reader.device(site[name].split(".")[0]) is not None
            near[name] = reader.door().holidays_near
        db.session.remove()
    assert near == {"door": True, "gate": False}
