"""The door intercom over HTTP: a door places a call, the unit's accounts answer (first wins),
refuse, or let it time out to the guard booth; every call ends as an access event."""

from __future__ import annotations

import base64
import io
import threading
from datetime import timedelta

import pytest
import time_machine
from PIL import Image
from sqlalchemy import select

from hardware.messages import CommandMessage
from hardware.protocol import Command
from server.extensions import db
from server.models import (
    AccessEvent,
    AuditEntry,
    Community,
    IntercomCall,
    Notification,
    Unit,
    User,
    UserRole,
)
from tests import factories
from tests.factories import Api
from tests.support.passes import NOW, pass_site


def jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    """A small real JPEG (a visitor's snapshot)."""
    out = io.BytesIO()
    Image.new("RGB", size, (180, 120, 90)).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
def site(app):
    built = pass_site(app)
    with app.app_context():
        factories.user(
            UserRole.RESIDENT,
            unit_of=db.session.get(Unit, built.unit_a),
            username="resident_a_spouse",
        )
        db.session.commit()
        db.session.remove()
    return built


def _door(client, credential):
    return {"Authorization": f"Bearer {credential}"}


def _call(client, site, **body):
    payload = {"unit": "101", **body}
    return client.post(
        "/api/v1/intercom/calls", json=payload, headers=_door(client, site.door_credential)
    )


def _commands(published):
    return [CommandMessage.decode(message.payload) for message in published]


@time_machine.travel(NOW, tick=False)
def test_a_call_rings_and_the_first_answer_opens_the_door(app, client, site, published):
    snapshot = base64.b64encode(jpeg()).decode()
    placed = _call(client, site, snapshot=snapshot)
    assert placed.status_code == 201, placed.json
    call_id = placed.json["id"]
    assert placed.json["status"] == "ringing"
    assert placed.json["ring_until"] == (NOW + timedelta(seconds=45)).isoformat(
        timespec="milliseconds"
    )
    with app.app_context():
        call = db.session.get(IntercomCall, call_id)
        assert call.unit_id == site.unit_a and call.snapshot.startswith(b"\xff\xd8")
    assert published == []  # nothing for the door until someone answers

    first = Api(client, "resident_a").post(
        f"/intercom/calls/{call_id}/answer", json={"action": "open"}
    )
    assert first.status_code == 200, first.json
    assert first.json["opened"] is True and first.json["reason"] == "intercom_answered"
    second = Api(client, "resident_a_spouse").post(
        f"/intercom/calls/{call_id}/answer", json={"action": "refuse"}
    )
    assert second.status_code == 409, second.json
    staff = Api(client, "staff_a").post(
        f"/intercom/calls/{call_id}/answer", json={"action": "open"}
    )
    assert staff.status_code == 409

    sent = _commands(published)
    assert [c.cmd for c in sent] == [Command.OPEN, Command.DISPLAY]
    assert sent[0].event_id == first.json["event_id"]
    assert all(message.topic.endswith(f"/{site.door_device}/cmd") for message in published)
    with app.app_context():
        event = db.session.get(AccessEvent, first.json["event_id"])
        assert (event.credential_type.value, event.decision.value, event.reason, event.rule) == (
            "intercom",
            "grant",
            "intercom_answered",
            "intercom.resident",
        )
        assert event.details["intercom_call_id"] == call_id and event.details["unit"] == "A1-101"
        assert event.access_point_id == site.door and event.device_id == site.door_device
        audit = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "intercom.open"))
        assert audit.details["event_id"] == event.id
    polled = client.get(
        f"/api/v1/intercom/calls/{call_id}", headers=_door(client, site.door_credential)
    )
    assert polled.status_code == 200
    assert (polled.json["status"], polled.json["decision"], polled.json["reason"]) == (
        "answered",
        "grant",
        "intercom_answered",
    )


@time_machine.travel(NOW, tick=False)
def test_a_refusal_sends_no_open_and_is_a_denial(app, client, site, published):
    call_id = _call(client, site).json["id"]
    answer = Api(client, "resident_a").post(
        f"/intercom/calls/{call_id}/answer", json={"action": "refuse"}
    )
    assert answer.status_code == 200 and answer.json["opened"] is False
    assert [c.cmd for c in _commands(published)] == [Command.DISPLAY]
    with app.app_context():
        event = db.session.get(AccessEvent, answer.json["event_id"])
        assert (event.decision.value, event.reason) == ("deny", "intercom_refused")


def test_unanswered_calls_roll_over_to_the_guard_then_time_out(app, client, site, published):
    with time_machine.travel(NOW, tick=False):
        call_id = _call(client, site).json["id"]
    door = _door(client, site.door_credential)
    with time_machine.travel(NOW + timedelta(seconds=44), tick=False):
        assert (
            client.get(f"/api/v1/intercom/calls/{call_id}", headers=door).json["status"]
            == "ringing"
        )
    with time_machine.travel(NOW + timedelta(seconds=45), tick=False):
        polled = client.get(f"/api/v1/intercom/calls/{call_id}", headers=door).json
        assert polled["status"] == "rolled_over"
        assert polled["guard_until"] == (NOW + timedelta(seconds=105)).isoformat(
            timespec="milliseconds"
        )
        # The phones stopped ringing: a resident is too late; the guard is not.
        late = Api(client, "resident_a").post(
            f"/intercom/calls/{call_id}/answer", json={"action": "open"}
        )
        assert late.status_code == 409
    with time_machine.travel(NOW + timedelta(seconds=105), tick=False):
        polled = client.get(f"/api/v1/intercom/calls/{call_id}", headers=door).json
        assert (polled["status"], polled["reason"]) == ("timed_out", "intercom_unanswered")
        assert polled["ended_at"] == (NOW + timedelta(seconds=105)).isoformat(
            timespec="milliseconds"
        )
    assert [c.cmd for c in _commands(published)] == [Command.DISPLAY]
    with app.app_context():
        event = db.session.get(AccessEvent, polled["event_id"])
        assert (event.decision.value, event.reason, event.rule) == (
            "deny",
            "intercom_unanswered",
            "intercom.unanswered",
        )
        assert event.occurred_at == NOW + timedelta(seconds=105)


def test_the_guard_opens_a_rolled_over_call(app, client, site, published):
    with time_machine.travel(NOW, tick=False):
        call_id = _call(client, site).json["id"]
    with time_machine.travel(NOW + timedelta(seconds=50), tick=False):
        guard = Api(client, "staff_a")
        answer = guard.post(f"/intercom/calls/{call_id}/answer", json={"action": "open"})
        assert answer.status_code == 200, answer.json
        assert answer.json["opened"] is True
    assert [c.cmd for c in _commands(published)] == [Command.OPEN, Command.DISPLAY]
    with app.app_context():
        event = db.session.get(AccessEvent, answer.json["event_id"])
        assert event.rule == "intercom.guard" and event.details["answered_by"] == "staff_a"


def test_without_roll_over_an_unanswered_call_times_out_at_the_ring(app, client, site, published):
    with app.app_context():
        community = db.session.get(Community, site.a)
        community.settings = {"intercom_guard_rollover": False, "intercom_ring_seconds": 20}
        db.session.commit()
    with time_machine.travel(NOW, tick=False):
        call_id = _call(client, site).json["id"]
    with time_machine.travel(NOW + timedelta(seconds=20), tick=False):
        polled = client.get(
            f"/api/v1/intercom/calls/{call_id}", headers=_door(client, site.door_credential)
        ).json
        assert (polled["status"], polled["reason"]) == ("timed_out", "intercom_unanswered")
        staff = Api(client, "staff_a").post(
            f"/intercom/calls/{call_id}/answer", json={"action": "open"}
        )
        assert staff.status_code == 409
    assert [c.cmd for c in _commands(published)] == [Command.DISPLAY]


@time_machine.travel(NOW, tick=False)
def test_others_cannot_see_or_answer_a_call(app, client, site, published):
    call_id = _call(client, site).json["id"]
    for username in ("resident_b", "tenant_a", "staff_b", "officer_a"):
        answer = Api(client, username).post(
            f"/intercom/calls/{call_id}/answer", json={"action": "open"}
        )
        assert answer.status_code == 404, (username, answer.json)
    # Another door of the same community cannot read it either.
    other = client.get(
        f"/api/v1/intercom/calls/{call_id}", headers=_door(client, site.other_credential)
    )
    assert other.status_code == 404
    assert published == []


@time_machine.travel(NOW, tick=False)
def test_a_gate_names_the_building_and_bad_calls_are_refused(app, client, site):
    gate = _door(client, site.gate_credential)
    missing = client.post("/api/v1/intercom/calls", json={"unit": "101"}, headers=gate)
    assert missing.status_code == 422 and "building" in missing.json["errors"]
    placed = client.post(
        "/api/v1/intercom/calls", json={"unit": "201", "building": "A2"}, headers=gate
    )
    assert placed.status_code == 201, placed.json
    with app.app_context():
        assert db.session.get(IntercomCall, placed.json["id"]).unit_id == site.unit_a2
    # A unit that does not exist, another community's building, a bad snapshot.
    assert _call(client, site, unit="999").json["errors"].keys() == {"unit"}
    nowhere = client.post(
        "/api/v1/intercom/calls", json={"unit": "101", "building": "B1"}, headers=gate
    )
    assert nowhere.status_code == 422 and "building" in nowhere.json["errors"]
    assert _call(client, site, snapshot="not base64!").status_code == 422
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    assert (
        _call(client, site, snapshot=base64.b64encode(png.getvalue()).decode()).status_code == 422
    )
    assert _call(client, site, unit="").status_code == 422
    # Devices only, and each for its own community's units.
    assert client.post("/api/v1/intercom/calls", json={"unit": "101"}).status_code == 401
    b_door = client.post(
        "/api/v1/intercom/calls",
        json={"unit": "101", "building": "A1"},
        headers=_door(client, site.b_credential),
    )
    assert b_door.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(IntercomCall)) == 1


@time_machine.travel(NOW, tick=False)
def test_an_oversized_snapshot_is_refused_413(app, client, site):
    big = jpeg((1200, 1200))
    big = big[:-2] + b"\0" * (300 * 1024 - len(big)) + big[-2:]  # padding before the end marker
    answer = _call(client, site, snapshot=base64.b64encode(big).decode())
    assert answer.status_code == 413, answer.json
    assert answer.json["reason"] == "too_many_bytes"
    # Text far longer than any picture is refused before it is decoded.
    assert _call(client, site, snapshot="A" * (600 * 1024)).status_code == 422
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(IntercomCall)) == 0


def test_two_phones_answering_at_once_make_one_answer(app, client, site, published):
    """Both phones of the unit press at the same moment: the conditional update lets one win."""
    with time_machine.travel(NOW, tick=False):
        call_id = _call(client, site).json["id"]
        phones = [Api(app.test_client(), name) for name in ("resident_a", "resident_a_spouse")]
    start = threading.Barrier(len(phones))
    answers: list[int] = []

    def press(phone: Api, action: str) -> None:
        start.wait(timeout=10)
        answers.append(
            phone.post(f"/intercom/calls/{call_id}/answer", json={"action": action}).status_code
        )

    threads = [
        threading.Thread(target=press, args=(phone, action))
        for phone, action in zip(phones, ("open", "refuse"), strict=True)
    ]
    with time_machine.travel(NOW + timedelta(seconds=5), tick=False):  # the clock: every thread's
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert sorted(answers) == [200, 409], answers
    with app.app_context():
        events = db.session.scalars(
            select(AccessEvent).where(AccessEvent.credential_type == "intercom")
        ).all()
        assert len(events) == 1
        call = db.session.get(IntercomCall, call_id)
        assert call.event_id == events[0].id


@time_machine.travel(NOW, tick=False)
def test_a_call_tells_the_units_accounts_and_a_lockdown_refuses_a_residents_open(
    app, client, site, published
):
    placed = _call(client, site)
    assert placed.status_code == 201, placed.json
    with app.app_context():
        told = db.session.scalars(select(Notification).order_by(Notification.id)).all()
        assert {row.kind for row in told} == {"intercom_call"}
        users = {row.user_id for row in told}
        unit_users = set(db.session.scalars(select(User.id).where(User.unit_id == site.unit_a)))
        assert users == unit_users and len(users) == 2  # both accounts of the unit
    started = Api(client, "staff_a").post(
        f"/communities/{site.a}/door-modes",
        json={
            "kind": "lockdown",
            "scope": "access_point",
            "access_point_ids": [site.door],
            "reason": "Police operation",
        },
    )
    assert started.status_code == 201, started.json
    published.clear()
    answered = Api(client, "resident_a").post(
        f"/intercom/calls/{placed.json['id']}/answer", json={"action": "open"}
    )
    assert answered.status_code == 200, answered.json
    assert answered.json["opened"] is False and answered.json["reason"] == "lockdown"
    assert [c.cmd for c in _commands(published)] == [Command.DISPLAY]  # no open

    # Staff, whom the lockdown names by default, may still let a visitor in.
    second = _call(client, site)
    published.clear()
    guard = Api(client, "staff_a").post(
        f"/intercom/calls/{second.json['id']}/answer", json={"action": "open"}
    )
    assert guard.json["opened"] is True
    assert [c.cmd for c in _commands(published)] == [Command.OPEN, Command.DISPLAY]
