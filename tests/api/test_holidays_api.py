"""The holiday calendar API: staff of the community change it, audited; bad dates, hours,
points and overlaps answer problem documents and store nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gatekeeper.vocabulary import AccessPointKind, Zone
from server.extensions import db
from server.models import AuditEntry, Holiday
from tests import factories
from tests.factories import Api


@pytest.fixture
def site(app):
    with app.app_context():
        w = factories.world()
        gate = factories.access_point(
            w.a, name="Side gate", kind=AccessPointKind.GATE, zone=Zone.PERIMETER
        )
        db.session.commit()
        ids = {
            "a": w.a.id,
            "b": w.b.id,
            "door": w.door_a.id,
            "gate": gate.id,
            "door_b": w.door_b.id,
        }
        db.session.remove()
    return ids


SPRING = {"name": "春节", "first_day": "2027-02-05", "last_day": "2027-02-11"}


def _count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Holiday))


def test_staff_create_read_change_and_delete_a_holiday_audited(app, client, site) -> None:
    staff = Api(client, "staff_a")
    base = f"/communities/{site['a']}/holidays"
    created = staff.post(base, {**SPRING, "access_point_ids": [site["gate"], site["door"]]})
    assert created.status_code == 201, created.json
    holiday = created.json
    assert holiday["effect"] == "closed" and holiday["hours"] is None
    assert sorted(holiday["access_point_ids"]) == sorted([site["gate"], site["door"]])
    assert holiday["first_day"] == "2027-02-05" and holiday["last_day"] == "2027-02-11"
    assert holiday["all_points"] is False and holiday["community_id"] == site["a"]

    one_day = staff.post(
        base, {"name": "元旦", "first_day": "2027-01-01", "access_point_ids": [site["gate"]]}
    )
    assert one_day.status_code == 201 and one_day.json["last_day"] == "2027-01-01"
    assert [h["name"] for h in staff.get(base).json] == ["元旦", "春节"]
    assert [h["name"] for h in staff.get(base, query_string={"since": "2027-01-02"}).json] == [
        "春节"
    ]

    changed = staff.patch(
        f"/holidays/{holiday['id']}",
        {"effect": "hours", "hours": [{"start": "10:00", "end": "16:00"}], "all_points": True},
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["hours"] == [
        {"days": [1, 2, 3, 4, 5, 6, 7], "start": "10:00", "end": "16:00"}
    ]
    assert changed.json["all_points"] is True and changed.json["access_point_ids"] == []
    back = staff.patch(
        f"/holidays/{holiday['id']}",
        {"effect": "closed", "all_points": False, "access_point_ids": [site["gate"]]},
    )
    assert back.status_code == 200, back.json
    assert back.json["hours"] is None and back.json["access_point_ids"] == [site["gate"]]
    assert staff.get(f"/holidays/{holiday['id']}").json["effect"] == "closed"

    assert staff.delete(f"/holidays/{holiday['id']}").status_code == 204
    assert staff.get(f"/holidays/{holiday['id']}").status_code == 404
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.community_id == site["a"], AuditEntry.action.like("holiday.%"))
            .order_by(AuditEntry.id)
        ).all()
    assert actions == [
        "holiday.create",
        "holiday.create",
        "holiday.update",
        "holiday.update",
        "holiday.delete",
    ]


def test_scope_staff_of_the_community_only(app, client, site) -> None:
    staff = Api(client, "staff_a")
    base = f"/communities/{site['a']}/holidays"
    holiday = staff.post(base, {**SPRING, "access_point_ids": [site["gate"]]}).json
    path = f"/holidays/{holiday['id']}"
    officer = Api(client, "officer_a")
    assert [h["id"] for h in officer.get(base).json] == [holiday["id"]]
    assert officer.patch(path, {"name": "x"}).status_code == 403
    assert officer.delete(path).status_code == 403
    assert (
        officer.post(
            base,
            {
                **SPRING,
                "first_day": "2027-03-01",
                "last_day": "2027-03-01",
                "access_point_ids": [site["gate"]],
            },
        ).status_code
        == 403
    )
    other = Api(client, "staff_b")
    assert other.get(path).status_code == 404
    assert other.patch(path, {"name": "x"}).status_code == 404
    assert other.delete(path).status_code == 404
    assert other.get(base).status_code == 404
    assert other.post(base, {**SPRING, "access_point_ids": [site["gate"]]}).status_code == 404
    resident = Api(client, "resident_a")
    assert resident.get(path).status_code == 404
    assert resident.delete(path).status_code == 404
    assert _count(app) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SPRING, "last_day": "2027-02-04"}, "last_day"),
        ({**SPRING, "last_day": "2028-02-11"}, "last_day"),
        ({**SPRING, "first_day": "2027-02-30"}, "first_day"),
        ({**SPRING, "first_day": "5 Feb"}, "first_day"),
        ({**SPRING, "effect": "hours"}, "hours"),
        ({**SPRING, "effect": "hours", "hours": [{"start": "16:00", "end": "16:00"}]}, "hours"),
        ({**SPRING, "effect": "hours", "hours": [{"start": "9:00", "end": "16:00"}]}, "hours"),
        ({**SPRING, "hours": [{"start": "10:00", "end": "16:00"}]}, "hours"),
        ({**SPRING, "effect": "sometimes"}, "effect"),
        ({**SPRING, "access_point_ids": ["ap_nope"]}, "access_point_ids"),
        ({**SPRING, "access_point_ids": ["DOOR_B"]}, "access_point_ids"),
        ({**SPRING, "access_point_ids": ["GATE", "GATE"]}, "access_point_ids"),
        ({**SPRING}, "access_point_ids"),
        ({**SPRING, "all_points": True}, "all_points"),
        (
            {
                **SPRING,
                "all_points": True,
                "effect": "hours",
                "hours": [{"start": "10:00", "end": "16:00"}],
                "access_point_ids": ["GATE"],
            },
            "access_point_ids",
        ),
        ({**SPRING, "name": ""}, "name"),
        ({**SPRING, "access_point_ids": ["GATE"], "community_id": "com_x"}, "community_id"),
    ],
)
def test_bad_input_answers_a_problem_and_stores_nothing(app, client, site, body, field) -> None:
    ids = {"GATE": site["gate"], "DOOR_B": site["door_b"]}
    if "access_point_ids" in body:
        body = {**body, "access_point_ids": [ids.get(i, i) for i in body["access_point_ids"]]}
    answer = Api(client, "staff_a").post(f"/communities/{site['a']}/holidays", body)
    assert answer.status_code == 422, answer.json
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert field in answer.json["errors"], answer.json
    assert _count(app) == 0


def test_overlaps_at_one_point_conflict_and_other_points_do_not(app, client, site) -> None:
    staff = Api(client, "staff_a")
    base = f"/communities/{site['a']}/holidays"
    assert staff.post(base, {**SPRING, "access_point_ids": [site["gate"]]}).status_code == 201
    # The last day of 春节 at the gate again: 409, naming the holiday it overlaps.
    clash = staff.post(
        base,
        {
            "name": "元宵",
            "first_day": "2027-02-11",
            "last_day": "2027-02-12",
            "access_point_ids": [site["door"], site["gate"]],
        },
    )
    assert clash.status_code == 409, clash.json
    assert "春节" in clash.json["detail"] and clash.json["type"].endswith("/conflict")
    everywhere = staff.post(
        base,
        {
            **SPRING,
            "effect": "hours",
            "hours": [{"start": "10:00", "end": "16:00"}],
            "all_points": True,
        },
    )
    assert everywhere.status_code == 409
    assert _count(app) == 1
    # Another point, or the day after, is fine; moving it onto 春节 is not.
    door = staff.post(base, {**SPRING, "access_point_ids": [site["door"]]})
    assert door.status_code == 201
    later = staff.post(
        base, {"name": "元宵", "first_day": "2027-02-12", "access_point_ids": [site["gate"]]}
    )
    assert later.status_code == 201
    moved = staff.patch(f"/holidays/{later.json['id']}", {"first_day": "2027-02-10"})
    assert moved.status_code == 409
    assert staff.get(f"/holidays/{later.json['id']}").json["first_day"] == "2027-02-12"
    assert (
        staff.patch(f"/holidays/{later.json['id']}", {"first_day": "2027-02-13"}).status_code == 422
    )
    assert staff.patch(f"/holidays/{later.json['id']}", {}).status_code == 422
