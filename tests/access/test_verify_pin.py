"""Courier codes: issued by residents and staff, typed at POST /api/v1/verify/pin, locked out.

The pass test community (``tests.support.passes``) with keypads on building A1's door, the
perimeter gate, building A2's door and community B's door; the clock stopped at ``NOW``.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import select

from gatekeeper.vocabulary import AlertType, Severity
from server.access import pin as keypad
from server.access.decision import Door
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    Alert,
    AuditEntry,
    Community,
    CourierCode,
    Device,
    KeypadLockout,
    Notification,
)
from tests.factories import Api
from tests.support.passes import NOW, PassSite, pass_site
from tests.support.published import assert_one_open, commands


@pytest.fixture
def site(app, frozen) -> PassSite:
    built = pass_site(app)
    with app.app_context():
        for point_id in (built.door, built.gate, built.other_door, built.door_b):
            db.session.get(AccessPoint, point_id).has_keypad = True
        db.session.commit()
    return built


def _type(client, credential: str, digits: str):
    headers = {"Authorization": f"Bearer {credential}"}
    return client.post("/api/v1/verify/pin", json={"pin": digits}, headers=headers)


def _wrong(digits: str, step: int = 1) -> str:
    return f"{(int(digits) + step) % 1_000_000:06d}"


def _issue(client, username: str, **body) -> dict:
    answer = Api(client, username).post("/courier-codes", json=body)
    assert answer.status_code == 201, answer.json
    return answer.json


def test_a_residents_code_opens_their_door_once(app, client, site, published) -> None:
    made = _issue(client, "resident_a", access_point_id=site.door, label="顺丰快递")
    digits = made["pin"]
    assert len(digits) == 6 and digits.isdigit()
    assert made["status"] == "unused" and made["masked"] == "••••" + digits[-2:]
    assert (made["max_uses"], made["uses"], made["label"]) == (1, 0, "顺丰快递")
    assert made["valid_until"] == (NOW + timedelta(minutes=30)).isoformat()

    answer = _type(client, site.door_credential, digits)
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert (body["decision"], body["reason"], body["open_ms"]) == ("grant", "courier_code", 5000)
    assert_one_open(published, site.door_device, body["event_id"])
    with app.app_context():
        event = db.session.get(AccessEvent, body["event_id"])
        assert event.credential_type.value == "pin" and event.rule == "pass.valid"
        assert event.details["courier_code_id"] == made["id"]
        assert event.details["issued_by_person_id"] == site.resident_person
        assert event.details["unit_id"] == site.unit_a
        assert digits not in repr(event.details)  # never the code itself
        stored = db.session.get(CourierCode, made["id"])
        assert digits not in (stored.code_hash, stored.label) and len(stored.code_hash) == 64
        assert db.session.scalar(
            select(AuditEntry.id).where(AuditEntry.action == "courier_code.create")
        )

    again = _type(client, site.door_credential, digits).json
    assert (again["decision"], again["reason"]) == ("deny", "pass_used_up")
    assert len(commands(published)) == 1
    resident = Api(client, "resident_a")
    shown = resident.get(f"/courier-codes/{made['id']}").json
    assert (shown["status"], shown["uses"], shown["used_at"]) == ("used", 1, NOW.isoformat())
    assert "pin" not in shown
    [listed] = resident.get("/courier-codes").json
    assert "pin" not in listed and listed["masked"] == made["masked"]
    uses = resident.get(f"/courier-codes/{made['id']}/uses").json
    assert [u["reason"] for u in uses] == ["pass_used_up", "courier_code"]


def test_an_expired_code_is_refused(app, client, site, published, frozen) -> None:
    made = _issue(client, "resident_a", access_point_id=site.gate, minutes=10)
    frozen.shift(timedelta(minutes=10))
    answer = _type(client, site.gate_credential, made["pin"]).json
    assert (answer["decision"], answer["reason"]) == ("deny", "pass_expired")
    assert commands(published) == []
    assert Api(client, "resident_a").get(f"/courier-codes/{made['id']}").json["status"] == "expired"


def test_a_revoked_code_is_refused(app, client, site, published) -> None:
    made = _issue(client, "resident_a", access_point_id=site.door)
    revoked = Api(client, "resident_a").delete(f"/courier-codes/{made['id']}")
    assert revoked.status_code == 200 and revoked.json["status"] == "revoked"
    answer = _type(client, site.door_credential, made["pin"]).json
    assert (answer["decision"], answer["reason"]) == ("deny", "pass_revoked")
    assert commands(published) == []
    live = _issue(client, "resident_a", access_point_id=site.door)
    resident = Api(client, "resident_a")
    for status, ids in (("revoked", [made["id"]]), ("unused", [live["id"]]), ("used", [])):
        listed = resident.get(f"/courier-codes?status={status}").json
        assert [code["id"] for code in listed] == ids, status


def test_wrong_digits_and_another_doors_device_are_refused(app, client, site, published) -> None:
    made = _issue(client, "resident_a", access_point_id=site.door)
    wrong = _type(client, site.door_credential, _wrong(made["pin"])).json
    assert (wrong["decision"], wrong["reason"]) == ("deny", "pin_invalid")
    # The right digits at the gate: the code is the door's only.
    elsewhere = _type(client, site.gate_credential, made["pin"]).json
    assert (elsewhere["decision"], elsewhere["reason"]) == ("deny", "pin_invalid")
    assert commands(published) == []
    # Still good at its own door.
    assert _type(client, site.door_credential, made["pin"]).json["reason"] == "courier_code"


def test_bad_requests_are_problems_not_decisions(app, client, site) -> None:
    for body in ({"pin": "12345"}, {"pin": "12345a"}, {"pin": "１２３４５６"}, {}):
        answer = client.post(
            "/api/v1/verify/pin",
            json=body,
            headers={"Authorization": f"Bearer {site.door_credential}"},
        )
        assert answer.status_code == 422, (body, answer.json)
    assert _type(client, "dev_x.nope", "123456").status_code == 401
    with app.app_context():
        db.session.get(AccessPoint, site.door).has_keypad = False
        db.session.commit()
    no_keypad = _type(client, site.door_credential, "123456")
    assert no_keypad.status_code == 403
    assert no_keypad.headers["Content-Type"] == "application/problem+json"
    with app.app_context():
        assert db.session.scalar(select(AccessEvent.id)) is None


def test_wrong_codes_lock_the_keypad_and_alert_staff(app, client, site, published, frozen) -> None:
    made = _issue(client, "resident_a", access_point_id=site.door, minutes=60)
    digits = made["pin"]
    for step in range(1, 6):  # the community's default: 5 wrong codes within 10 minutes
        frozen.shift(timedelta(seconds=20))
        answer = _type(client, site.door_credential, _wrong(digits, step)).json
        assert answer["reason"] == "pin_invalid", (step, answer)
    locked_at = NOW + timedelta(seconds=100)
    # Locked: even the right code is refused, and it is not spent.
    refused = _type(client, site.door_credential, digits).json
    assert (refused["decision"], refused["reason"]) == ("deny", "keypad_locked")
    assert commands(published) == []
    # Another keypad is not locked.
    other = _issue(client, "resident_a", access_point_id=site.gate)
    assert _type(client, site.gate_credential, other["pin"]).json["reason"] == "courier_code"
    with app.app_context():
        [alert] = db.session.scalars(select(Alert)).all()
        assert (alert.type, alert.severity) == (AlertType.KEYPAD_LOCKED, Severity.MEDIUM)
        assert alert.access_point_id == site.door
        [lock] = db.session.scalars(select(KeypadLockout)).all()
        assert (lock.locked_at, lock.locked_until) == (locked_at, locked_at + timedelta(minutes=15))
        assert (lock.failures, lock.alert_id) == (5, alert.id)
        assert db.session.get(CourierCode, made["id"]).uses == 0
    staff_alerts = Api(client, "staff_a").get("/alerts").json
    assert [a["type"] for a in staff_alerts] == ["keypad_locked"]

    # A second before the lock ends: still refused; at its end the right code opens.
    frozen.move_to(locked_at + timedelta(minutes=15) - timedelta(seconds=1))
    assert _type(client, site.door_credential, digits).json["reason"] == "keypad_locked"
    frozen.move_to(locked_at + timedelta(minutes=15))
    opened = _type(client, site.door_credential, digits).json
    assert (opened["decision"], opened["reason"]) == ("grant", "courier_code")
    # The lock's own refusals and the failures before it do not lock it again at once.
    assert _type(client, site.door_credential, _wrong(digits)).json["reason"] == "pin_invalid"
    with app.app_context():
        assert len(db.session.scalars(select(KeypadLockout)).all()) == 1


def test_failures_outside_the_window_do_not_lock(app, client, site, frozen) -> None:
    with app.app_context():
        community = db.session.get(Community, site.a)
        community.settings = {**community.settings, "keypad_max_failures": 3}
        db.session.commit()
    for _ in range(2):
        assert _type(client, site.door_credential, "000000").json["reason"] == "pin_invalid"
    frozen.shift(timedelta(minutes=10))  # the first two fall out of the window
    for _ in range(2):
        assert _type(client, site.door_credential, "000000").json["reason"] == "pin_invalid"
    assert _type(client, site.door_credential, "000000").json["reason"] == "pin_invalid"
    assert _type(client, site.door_credential, "000000").json["reason"] == "keypad_locked"


def test_who_may_issue_for_which_door(app, client, site) -> None:
    resident = Api(client, "resident_a")
    # Another building's keypad door, another community's, and a door of theirs without one.
    for point in (site.other_door, site.door_b):
        assert resident.post("/courier-codes", json={"access_point_id": point}).status_code == 404
    # Staff take the gate's keypad away (the access point's has_keypad).
    patched = Api(client, "staff_a").patch(
        f"/access-points/{site.gate}", json={"has_keypad": False}
    )
    assert patched.status_code == 200 and patched.json["has_keypad"] is False, patched.json
    assert resident.post("/courier-codes", json={"access_point_id": site.gate}).status_code == 404
    # With one keypad door left, a resident need not name it; several uses are staff's.
    assert resident.post("/courier-codes", json={}).json["access_point_id"] == site.door
    many = resident.post("/courier-codes", json={"access_point_id": site.door, "max_uses": 3})
    assert many.status_code == 422 and "max_uses" in many.json["errors"]
    too_long = resident.post("/courier-codes", json={"access_point_id": site.door, "minutes": 1441})
    assert too_long.status_code == 422 and "minutes" in too_long.json["errors"]
    assert Api(client, "resident_b").get(f"/courier-codes?access_point_id={site.door}").json == []

    staff = Api(client, "staff_a")
    day = staff.post(
        "/courier-codes",
        json={"access_point_id": site.other_door, "label": "美团", "minutes": 1440, "max_uses": 5},
    )
    assert day.status_code == 201, day.json
    assert (day.json["max_uses"], day.json["unit_id"]) == (5, None)
    assert day.json["building_id"] is not None
    assert staff.post("/courier-codes", json={}).status_code == 422
    assert staff.post("/courier-codes", json={"access_point_id": site.gate}).status_code == 409
    assert (
        Api(client, "staff_b").post("/courier-codes", json={"access_point_id": site.door})
    ).status_code == 404
    # Staff's code is not the resident's to see or revoke.
    assert resident.get(f"/courier-codes/{day.json['id']}").status_code == 404
    assert resident.delete(f"/courier-codes/{day.json['id']}").status_code == 404
    assert Api(client, "officer_a").post("/courier-codes", json={}).status_code == 403
    assert Api(client, "officer_a").get("/courier-codes").status_code == 403
    # A staff code opens several times.
    for _ in range(2):
        answer = _type(client, site.other_credential, day.json["pin"]).json
        assert answer["reason"] == "courier_code"
    assert staff.get(f"/courier-codes/{day.json['id']}").json["status"] == "unused"


def test_the_last_use_spent_elsewhere_a_moment_ago_is_refused(app, site) -> None:
    """Two requests at once: the second's conditional UPDATE finds no use left."""
    with app.app_context(), app.test_request_context():
        client = app.test_client()
        made = _issue(client, "resident_a", access_point_id=site.door)
        code = db.session.get(CourierCode, made["id"])
        door = Door.of(db.session.get(Device, site.door_device))
        assert code.uses == 0
        db.session.execute(  # the other request's spend, not yet seen by this one's row
            CourierCode.__table__.update().where(CourierCode.id == code.id).values(uses=1)
        )
        decision = keypad._code_decision(code, door, NOW)
        assert (decision.decision.value, decision.reason.value) == ("deny", "pass_used_up")
        db.session.rollback()


def test_new_codes_never_equal_a_live_code_of_the_door(app, client, site, monkeypatch) -> None:
    drawn = iter(["111111", "111111", "222222", "111111"])
    monkeypatch.setattr("gatekeeper.pincodes.new_pin", lambda: next(drawn))
    first = _issue(client, "resident_a", access_point_id=site.door)
    second = _issue(client, "resident_a", access_point_id=site.door)
    assert (first["pin"], second["pin"]) == ("111111", "222222")
    # Another door may have the same digits.
    assert _issue(client, "resident_a", access_point_id=site.gate)["pin"] == "111111"


def test_codes_are_rate_limited_per_device(app, client, site, monkeypatch) -> None:
    settings = dataclasses.replace(app.config["SETTINGS"], pin_rate_limit="2 per minute")
    monkeypatch.setitem(app.config, "SETTINGS", settings)
    answers = [_type(client, site.door_credential, "000000") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["Content-Type"] == "application/problem+json"
    assert "Retry-After" in answers[2].headers
    # Another device has its own budget; a bad credential spends nobody's.
    assert _type(client, "dev_x.nope", "000000").status_code == 401
    assert _type(client, site.gate_credential, "000000").status_code == 200
    with app.app_context():  # the refused request stored nothing
        assert len(db.session.scalars(select(AccessEvent.id)).all()) == 3


def test_a_lockdown_refuses_a_right_code_without_spending_it_or_counting_a_guess(
    app, client, site, published
) -> None:
    made = _issue(client, "resident_a", access_point_id=site.door)
    started = Api(client, "staff_a").post(
        f"/communities/{site.a}/door-modes",
        json={
            "kind": "lockdown",
            "scope": "access_point",
            "access_point_ids": [site.door],
            "reason": "Fire drill",
        },
    )
    assert started.status_code == 201, started.json
    published.clear()
    for _ in range(6):  # more than the keypad's wrong-code limit
        answer = _type(client, site.door_credential, made["pin"]).json
        assert (answer["decision"], answer["reason"]) == ("deny", "lockdown")
    assert commands(published) == []
    with app.app_context():
        assert db.session.get(CourierCode, made["id"]).uses == 0
        assert db.session.scalar(select(KeypadLockout.id)) is None
    Api(client, "staff_a").post(f"/door-modes/{started.json['id']}/lift")
    answer = _type(client, site.door_credential, made["pin"]).json
    assert (answer["decision"], answer["reason"]) == ("grant", "courier_code")


def test_the_resident_who_issued_a_code_is_told_when_it_opens_the_door(
    app, client, site, published
) -> None:
    made = _issue(client, "resident_a", access_point_id=site.door, label="京东")
    staff_code = _issue(client, "staff_a", access_point_id=site.door, max_uses=2)
    wrong = _type(client, site.door_credential, _wrong(made["pin"])).json
    assert wrong["reason"] == "pin_invalid"
    assert Api(client, "resident_a").get("/notifications").json["notifications"] == []

    assert _type(client, site.door_credential, made["pin"]).json["reason"] == "courier_code"
    assert _type(client, site.door_credential, staff_code["pin"]).json["reason"] == "courier_code"
    [told] = Api(client, "resident_a").get("/notifications").json["notifications"]
    assert told["kind"] == "courier_code_used"
    with app.app_context():
        door_name = db.session.get(AccessPoint, site.door).name
        rows = db.session.scalars(select(Notification)).all()
        # One notification: the resident's; staff's delivery code tells no one.
        assert [(row.kind, row.params["door"]) for row in rows] == [
            ("courier_code_used", door_name)
        ]
