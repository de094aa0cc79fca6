"""POST /api/v1/verify/plate: whose car, fuzzy reads, blocked plates, who is inside."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime

import pytest
import time_machine
from PIL import Image
from sqlalchemy import select

from gatekeeper.vocabulary import PersonRole
from hardware.messages import CommandMessage
from hardware.protocol import Command
from server.access.vehicles import flag_overstays
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    Alert,
    Community,
    Vehicle,
    VehiclePresence,
    WorkerPermit,
    WorkerTag,
)
from tests import factories
from tests.factories import Api
from tests.support.passes import NOW, add_barrier, build_pass_site
from tests.support.published import commands

BARRIER_SECRET = "barrier-secret-for-plate-tests"


@dataclasses.dataclass(frozen=True)
class CarSite:
    a: str
    barrier: str
    credential: str
    owner_car: str
    tenant_car: str


@pytest.fixture
def site(app):
    with app.app_context():
        base = build_pass_site()
        barrier = add_barrier(base, BARRIER_SECRET)
        tenant_car = factories.vehicle(base.tenant_person, "浙A12345")
        built = CarSite(base.a, barrier.point, barrier.credential, barrier.owner_car, tenant_car.id)
        db.session.remove()
    return built


def read(client, site: CarSite, plate: str, **fields):
    answer = client.post(
        "/api/v1/verify/plate",
        json={"plate": plate, **fields},
        headers={"Authorization": f"Bearer {site.credential}"},
    )
    return answer


def decided(client, site, plate, **fields) -> dict:
    answer = read(client, site, plate, **fields)
    assert answer.status_code == 200, answer.json
    return answer.json


def inside(app, community_id: str) -> list[str]:
    with app.app_context():
        return sorted(
            db.session.scalars(
                select(VehiclePresence.plate).where(
                    VehiclePresence.community_id == community_id,
                    VehiclePresence.exited_at.is_(None),
                )
            )
        )


def set_settings(app, community_id: str, **values) -> None:
    with app.app_context():
        community = db.session.get(Community, community_id)
        community.settings = {**(community.settings or {}), **values}
        db.session.commit()


def test_a_residents_car_comes_in_and_goes_out(app, client, site, frozen, published) -> None:
    entry = decided(client, site, "浙B·82345", confidence=0.97, color="blue", direction="in")
    assert (entry["decision"], entry["reason"]) == ("grant", "resident_vehicle")
    [message] = published
    assert CommandMessage.decode(message.payload).cmd is Command.OPEN
    assert inside(app, site.a) == ["浙B82345"]
    staff = Api(client, "staff_a")
    [car] = staff.get(f"/communities/{site.a}/vehicles-inside").json
    assert car["plate"] == "浙B82345" and car["vehicle_id"] == site.owner_car
    out = decided(client, site, "浙B82345", direction="out")
    assert out["decision"] == "grant" and inside(app, site.a) == []
    with app.app_context():
        event = db.session.get(AccessEvent, entry["event_id"])
        assert event.credential_type.value == "plate" and event.details["color"] == "blue"


def test_entry_without_exit_and_exit_without_entry_are_recorded(app, client, site, frozen):
    first = decided(client, site, "浙B82345", direction="in")
    second = decided(client, site, "浙B82345", direction="in")
    assert (first["decision"], second["decision"]) == ("grant", "grant")
    assert inside(app, site.a) == ["浙B82345"]  # one car, not two
    decided(client, site, "浙B82345", direction="out")
    lonely = decided(client, site, "浙B82345", direction="out")
    assert lonely["decision"] == "grant"
    with app.app_context():
        assert db.session.get(AccessEvent, second["event_id"]).details["presence"] == (
            "entry_without_exit"
        )
        assert db.session.get(AccessEvent, lonely["event_id"]).details["presence"] == (
            "exit_without_entry"
        )
    assert inside(app, site.a) == []


def test_a_near_read_at_the_exit_closes_the_registered_plates_presence(
    app, client, site, frozen
) -> None:
    """The presence is the registered plate's: an exit read one confusion off (fuzzy) finds
    it, and the presence keeps how it ended and by which event."""
    set_settings(app, site.a, fuzzy_plates=True)
    first = decided(client, site, "浙B82345", direction="in")
    again = decided(client, site, "浙B82345", direction="in")  # its exit was never seen
    out = decided(client, site, "浙B8Z345", confidence=0.62, direction="out")
    assert (first["decision"], again["decision"], out["decision"]) == ("grant",) * 3
    assert inside(app, site.a) == []
    with app.app_context():
        presences = db.session.scalars(
            select(VehiclePresence).order_by(VehiclePresence.entered_at, VehiclePresence.id)
        ).all()
        ended = {p.entry_event_id: (p.closed_reason, p.exit_event_id) for p in presences}
        assert ended == {
            first["event_id"]: ("reentered", None),
            again["event_id"]: ("exit", out["event_id"]),
        }
        assert "presence" not in db.session.get(AccessEvent, out["event_id"]).details


def test_a_visitor_car_read_near_its_pass_plate_at_the_exit_leaves(app, client, site) -> None:
    """A pass's plate has no car: its presence is read on its own when the exit read is a
    confusion away."""
    set_settings(app, site.a, fuzzy_plates=True)
    with time_machine.travel(NOW, tick=False):
        Api(client, "resident_a").post(
            "/passes",
            json={
                "guest_name": "李四",
                "plate": "苏E6G789",
                "valid_until": "2026-11-21T12:30:00+00:00",
            },
        )
        entry = decided(client, site, "苏E6G789", direction="in")
        out = decided(client, site, "苏E6G7B9", confidence=0.62, direction="out")
    assert (entry["reason"], out["reason"]) == ("visitor_vehicle", "visitor_vehicle")
    assert inside(app, site.a) == []
    with app.app_context():
        [presence] = db.session.scalars(select(VehiclePresence)).all()
        assert (presence.plate, presence.closed_reason) == ("苏E6G789", "exit")
        assert presence.exit_event_id == out["event_id"]


def test_a_tenants_car_after_the_lease(app, client, site) -> None:
    with time_machine.travel(NOW, tick=False):
        assert decided(client, site, "浙A12345", direction="in")["reason"] == "resident_vehicle"
    with time_machine.travel(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC), tick=False):
        late = decided(client, site, "浙A12345", direction="in")
        assert (late["decision"], late["reason"]) == ("deny", "lease_expired")
        # A car already inside can always leave.
        assert decided(client, site, "浙A12345", direction="out")["decision"] == "grant"


def test_a_visitor_car_with_a_pass(app, client, site) -> None:
    with time_machine.travel(NOW, tick=False):
        resident = Api(client, "resident_a")
        visitor_pass = resident.post(
            "/passes",
            json={
                "guest_name": "李四",
                "plate": "苏E6G789",
                "valid_until": "2026-11-21T12:30:00+00:00",
            },
        ).json
        assert site.barrier in {p["id"] for p in visitor_pass["access_points"]}
        entry = decided(client, site, "苏E6G789", direction="in")
        assert (entry["decision"], entry["reason"]) == ("grant", "visitor_vehicle")
        assert entry["subject"] == {"kind": "visitor", "display_name": "李*"}
        assert resident.get(f"/passes/{visitor_pass['id']}").json["uses"] == 1
        out = decided(client, site, "苏E6G789", direction="out")
        assert (out["decision"], out["reason"]) == ("grant", "visitor_vehicle")
        again = decided(client, site, "苏E6G789", direction="in")
        assert (again["decision"], again["reason"]) == ("deny", "pass_used_up")
        uses = resident.get(f"/passes/{visitor_pass['id']}/uses").json
        assert {u["id"] for u in uses} == {entry["event_id"], out["event_id"], again["event_id"]}
    # Long after the pass: still let out.
    with time_machine.travel(datetime(2026, 11, 23, tzinfo=UTC), tick=False):
        assert decided(client, site, "苏E6G789", direction="out")["decision"] == "grant"


def test_a_visitor_car_overstaying_its_pass_raises_one_alert(app, client, site) -> None:
    with time_machine.travel(NOW, tick=False):
        resident = Api(client, "resident_a")
        resident.post(
            "/passes",
            json={
                "guest_name": "李四",
                "plate": "苏E6G789",
                "valid_until": "2026-11-21T10:30:00+00:00",
            },
        )
        assert decided(client, site, "苏E6G789", direction="in")["decision"] == "grant"
    with app.app_context():
        assert flag_overstays(datetime(2026, 11, 21, 10, 29, tzinfo=UTC)) == 0
        assert flag_overstays(datetime(2026, 11, 21, 10, 31, tzinfo=UTC)) == 1
        db.session.commit()
        assert flag_overstays(datetime(2026, 11, 21, 11, 31, tzinfo=UTC)) == 0  # once
        db.session.commit()
        [alert] = db.session.scalars(select(Alert).where(Alert.type == "overstay")).all()
        assert "苏E6G789" in alert.summary and "2026-11-21 18:30" in alert.summary
        assert alert.evidence["event_ids"]


def test_a_blocked_plate_is_refused_and_alerts_once(app, client, site, frozen, published) -> None:
    staff = Api(client, "staff_a")
    blocked = staff.post(
        f"/communities/{site.a}/blocked-plates", json={"plate": "沪C88888", "reason": "Stolen"}
    )
    assert blocked.status_code == 201
    assert (
        staff.post(
            f"/communities/{site.a}/blocked-plates", json={"plate": "沪c·88888", "reason": "x"}
        ).status_code
        == 409
    )
    assert Api(client, "resident_a").get(f"/communities/{site.a}/blocked-plates").json == []
    first = decided(client, site, "沪C88888", direction="in", confidence=0.99)
    near = decided(client, site, "沪C8B888", direction="in", confidence=0.99)  # an OCR slip
    for answer in (first, near):
        assert (answer["decision"], answer["reason"]) == ("deny", "plate_blocked")
    assert commands(published) == []  # no door opened
    with app.app_context():
        [alert] = db.session.scalars(select(Alert).where(Alert.type == "plate_blocked")).all()
        assert alert.severity.value == "high" and "Stolen" in alert.summary
        assert set(alert.evidence["event_ids"]) == {first["event_id"], near["event_id"]}
    # A registered car one slip away from the blocked plate is not refused for it.
    with app.app_context():
        factories.vehicle(db.session.get(Vehicle, site.owner_car).person_id, "沪C8B888")
    assert decided(client, site, "沪C8B888")["reason"] == "resident_vehicle"
    blank = staff.post(
        f"/communities/{site.a}/blocked-plates", json={"plate": "沪C66666", "reason": "   "}
    )
    assert blank.status_code == 422 and "reason" in blank.json["errors"]
    assert staff.delete(f"/blocked-plates/{blocked.json['id']}").status_code == 204
    assert decided(client, site, "沪C88888")["reason"] == "unknown_plate"


def test_an_unknown_car_is_kept_with_its_snapshot_for_the_guard(app, client, site, frozen):
    picture = io.BytesIO()
    Image.new("RGB", (640, 360), (90, 90, 90)).save(picture, "JPEG")
    answer = client.post(
        "/api/v1/verify/plate",
        data={
            "plate": "京N·1234学",
            "confidence": "0.91",
            "direction": "in",
            "snapshot": (io.BytesIO(picture.getvalue()), "snap.jpg"),
        },
        headers={"Authorization": f"Bearer {site.credential}"},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 200, answer.json
    assert (answer.json["decision"], answer.json["reason"]) == ("deny", "unknown_plate")
    with app.app_context():
        event = db.session.get(AccessEvent, answer.json["event_id"])
        assert event.snapshot_path and event.details["plate"] == "京N1234学"
    staff = Api(client, "staff_a")
    picture_back = staff.get(f"/events/{answer.json['event_id']}/snapshot")
    assert picture_back.status_code == 200 and picture_back.data == picture.getvalue()
    assert (
        Api(client, "resident_a").get(f"/events/{answer.json['event_id']}/snapshot").status_code
        == 404
    )
    # The guard lets it in from the console; that is logged.
    opened = Api(client, "staff_a").post(f"/access-points/{site.barrier}/open")
    assert opened.status_code == 202


@pytest.mark.parametrize(
    ("fuzzy", "confidence", "decision", "accepted"),
    [
        (True, 0.62, "grant", True),
        (True, 0.95, "deny", False),  # the camera was sure: a different car
        (True, None, "deny", False),
        (False, 0.62, "deny", False),  # the community has it off
    ],
)
def test_a_near_read_matches_only_when_allowed(
    app, client, site, frozen, fuzzy, confidence, decision, accepted
) -> None:
    set_settings(app, site.a, fuzzy_plates=fuzzy)
    answer = decided(client, site, "浙B8Z345", confidence=confidence, direction="in")
    assert answer["decision"] == decision
    assert answer["reason"] == ("resident_vehicle" if accepted else "unknown_plate")
    with app.app_context():
        record = db.session.get(AccessEvent, answer["event_id"]).details["fuzzy"]
        assert record["read"] == "浙B8Z345" and record["matched"] == "浙B82345"
        assert record["accepted"] is accepted


def test_two_plates_one_confusion_apart_are_ambiguous(app, client, site, frozen) -> None:
    set_settings(app, site.a, fuzzy_plates=True)
    with app.app_context():
        factories.vehicle(db.session.get(Vehicle, site.owner_car).person_id, "浙B8Z345")
    answer = decided(client, site, "浙B8Z34S", confidence=0.5)
    assert (answer["decision"], answer["reason"]) == ("deny", "unknown_plate")
    with app.app_context():
        record = db.session.get(AccessEvent, answer["event_id"]).details["fuzzy"]
        assert sorted(record["candidates"]) == ["浙B82345", "浙B8Z345"]
        assert record["accepted"] is False and "more than one" in record["why"]


@pytest.mark.parametrize(
    ("plate", "reason"),
    [
        ("", "empty"),
        ("浙A1234", "bad_length"),
        ("浙" * 1000, "too_long"),
        ("hello", "unknown_province"),
    ],
)
def test_strings_that_are_not_plates_are_422(client, site, frozen, plate, reason) -> None:
    answer = read(client, site, plate)
    assert answer.status_code == 422 and answer.mimetype == "application/problem+json"
    assert answer.json["reason"] == reason


def test_bad_requests(client, site, frozen) -> None:
    headers = {"Authorization": f"Bearer {site.credential}"}
    for body in (
        {},
        {"plate": "浙B82345", "confidence": 2},
        {"plate": "浙B82345", "direction": "up"},
    ):
        answer = client.post("/api/v1/verify/plate", json=body, headers=headers)
        assert answer.status_code == 422, body
    bad_snapshot = client.post(
        "/api/v1/verify/plate",
        data={"plate": "浙B82345", "snapshot": (io.BytesIO(b"nope"), "s.jpg")},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert bad_snapshot.status_code == 422


def test_registering_a_car_checks_the_plate(app, client, site) -> None:
    with app.app_context():
        owner = db.session.get(Vehicle, site.owner_car).person_id
    staff = Api(client, "staff_a")
    bad = staff.post(f"/people/{owner}/vehicles", json={"plate": "浙O12345"})
    assert bad.status_code == 422 and bad.json["reason"] == "forbidden_letter"
    good = staff.post(f"/people/{owner}/vehicles", json={"plate": "粤b·d12345"})
    assert good.status_code == 201 and good.json["plate"] == "粤BD12345"


def test_a_workers_car_within_the_permits_hours(app, client, site) -> None:
    with app.app_context():
        worker = factories.person(site.a, "赵师傅")
        factories.membership(worker, PersonRole.WORKER)
        factories.vehicle(worker, "浙A8B123")
        db.session.add(
            WorkerPermit(
                community_id=site.a,
                person_id=worker.id,
                tag=WorkerTag.CLEANER,
                schedule=[{"days": [1, 2, 3, 4, 5], "start": "08:00", "end": "17:00"}],
                valid_from=datetime(2026, 11, 1, tzinfo=UTC),
                valid_until=datetime(2026, 12, 1, tzinfo=UTC),
                access_points=[db.session.get(AccessPoint, site.barrier)],
            )
        )
        db.session.commit()
    friday_morning = datetime(2026, 11, 20, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
    with time_machine.travel(friday_morning, tick=False):
        answer = decided(client, site, "浙A8B123", direction="in")
        assert (answer["decision"], answer["reason"]) == ("grant", "worker")
    saturday = datetime(2026, 11, 21, 1, 30, tzinfo=UTC)
    with time_machine.travel(saturday, tick=False):
        answer = decided(client, site, "浙A8B123", direction="in")
        assert (answer["decision"], answer["reason"]) == ("deny", "outside_schedule")
