"""Temporary cars (临时车): an unknown plate enters on a ticket where the community allows it,
pays at the exit by the community's tariff, and staff's payment opens the barrier.

The clock is frozen at ``NOW`` (16:30 in Shanghai) and moved by the test; what the app would
publish to the broker is recorded (``published``); the real broker: test_parking_e2e.py.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import select

from hardware.messages import CommandMessage
from hardware.protocol import Command
from server.access import retention
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    AuditEntry,
    Community,
    ParkingTicket,
    VehiclePresence,
)
from tests.factories import Api
from tests.support.passes import NOW, add_barrier, build_pass_site
from tests.support.published import commands

BARRIER_SECRET = "barrier-secret-for-parking-tests"
GUEST = "京N1234学"
# ¥5 an hour, ¥2 at night (22:00-07:00), ¥30 a day at most, 15 free minutes.
TARIFF = {
    "temporary_cars": True,
    "parking_free_minutes": 15,
    "parking_hour_fen": 500,
    "parking_night_hour_fen": 200,
    "parking_night_start": "22:00",
    "parking_night_end": "07:00",
    "parking_daily_cap_fen": 3000,
}


@dataclasses.dataclass(frozen=True)
class CarSite:
    a: str
    barrier: str
    device: str
    credential: str


def set_settings(app, community_id: str, **values) -> None:
    with app.app_context():
        community = db.session.get(Community, community_id)
        community.settings = {**(community.settings or {}), **values}
        db.session.commit()


@pytest.fixture
def site(app):
    with app.app_context():
        base = build_pass_site()
        barrier = add_barrier(base, BARRIER_SECRET)
        built = CarSite(base.a, barrier.point, barrier.device, barrier.credential)
        db.session.remove()
    set_settings(app, built.a, **TARIFF)
    return built


def decided(client, site: CarSite, plate: str, **fields) -> dict:
    answer = client.post(
        "/api/v1/verify/plate",
        json={"plate": plate, **fields},
        headers={"Authorization": f"Bearer {site.credential}"},
    )
    assert answer.status_code == 200, answer.json
    return answer.json


def opens(published) -> list[CommandMessage]:
    found = [CommandMessage.decode(message.payload) for message in commands(published)]
    assert all(command.cmd is Command.OPEN for command in found)
    return found


def ticket_of(app, ticket_id: str) -> ParkingTicket:
    with app.app_context():
        ticket = db.session.get(ParkingTicket, ticket_id)
        db.session.expunge(ticket)
        return ticket


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


def test_an_unknown_plate_enters_on_a_ticket_where_allowed(app, client, site, frozen, published):
    entry = decided(client, site, "京N·1234学", confidence=0.95, direction="in")
    assert (entry["decision"], entry["reason"]) == ("grant", "temporary_vehicle")
    assert entry["open_ms"] == 5000 and "subject" not in entry
    parking = entry["parking"]
    assert parking["entered_at"] == NOW.isoformat()
    assert (parking["duration_s"], parking["fee_fen"], parking["currency"]) == (0, 0, "CNY")
    assert parking["status"] == "inside"
    [command] = opens(published)
    assert command.event_id == entry["event_id"]
    assert inside(app, site.a) == [GUEST]
    ticket = ticket_of(app, parking["ticket_id"])
    assert (ticket.plate, ticket.entry_event_id, ticket.entry_access_point_id) == (
        GUEST,
        entry["event_id"],
        site.barrier,
    )
    with app.app_context():
        event = db.session.get(AccessEvent, entry["event_id"])
        assert (event.rule, event.details["ticket_id"]) == ("parking.entry", ticket.id)
        presence = db.session.get(VehiclePresence, ticket.presence_id)
        assert presence.entry_event_id == entry["event_id"]


def test_where_temporary_cars_are_not_allowed_an_unknown_plate_stays_out(
    app, client, site, frozen, published
):
    set_settings(app, site.a, temporary_cars=False)
    entry = decided(client, site, GUEST, direction="in")
    assert (entry["decision"], entry["reason"]) == ("deny", "unknown_plate")
    assert "parking" not in entry and opens(published) == []
    assert inside(app, site.a) == []
    # Without a direction the barrier cannot say it is an entry: no ticket either.
    set_settings(app, site.a, temporary_cars=True)
    assert decided(client, site, GUEST)["reason"] == "unknown_plate"
    # An exit of a plate without a ticket is unknown (the guard opens by remote open).
    assert decided(client, site, GUEST, direction="out")["reason"] == "unknown_plate"
    with app.app_context():
        assert db.session.scalars(select(ParkingTicket)).all() == []


def test_leaving_within_the_free_minutes_opens_and_closes_the_ticket(
    app, client, site, frozen, published
):
    entry = decided(client, site, GUEST, direction="in")
    frozen.shift(timedelta(minutes=15))
    out = decided(client, site, GUEST, direction="out")
    assert (out["decision"], out["reason"]) == ("grant", "temporary_vehicle")
    assert out["parking"]["ticket_id"] == entry["parking"]["ticket_id"]
    assert (out["parking"]["duration_s"], out["parking"]["fee_fen"]) == (900, 0)
    assert out["parking"]["status"] == "free"
    assert [c.event_id for c in opens(published)] == [entry["event_id"], out["event_id"]]
    assert inside(app, site.a) == []
    ticket = ticket_of(app, out["parking"]["ticket_id"])
    assert (ticket.status.value, ticket.fee_fen, ticket.exited_at) == (
        "free",
        0,
        NOW + timedelta(minutes=15),
    )


def test_a_fee_denies_until_staff_confirm_the_payment_then_the_barrier_opens(
    app, client, site, frozen, published
):
    entry = decided(client, site, GUEST, direction="in")
    published.clear()
    frozen.shift(timedelta(hours=2, minutes=10))  # 16:30 -> 18:40: three started hours
    out = decided(client, site, GUEST, direction="out")
    assert (out["decision"], out["reason"]) == ("deny", "payment_required")
    parking = out["parking"]
    assert parking == {
        "ticket_id": entry["parking"]["ticket_id"],
        "entered_at": NOW.isoformat(),
        "duration_s": 2 * 3600 + 600,
        "fee_fen": 1500,
        "currency": "CNY",
        "status": "due",
    }
    assert "open_ms" not in out and opens(published) == []
    assert inside(app, site.a) == [GUEST]  # still at the barrier
    # Read again a minute later: the same fee (the fourth hour has not started).
    frozen.shift(timedelta(minutes=1))
    again = decided(client, site, GUEST, direction="out")
    assert (again["reason"], again["parking"]["fee_fen"]) == ("payment_required", 1500)

    staff = Api(client, "staff_a")
    [waiting] = staff.get(f"/communities/{site.a}/parking-tickets?status=due").json
    assert (waiting["plate"], waiting["fee_fen"], waiting["currency"]) == (GUEST, 1500, "CNY")
    assert waiting["fee_breakdown"]["days"][0]["day_hours"] == 3
    paid = staff.post(
        f"/parking-tickets/{parking['ticket_id']}/payments",
        json={"method": "wechat", "amount_fen": 1500},
    )
    assert paid.status_code == 201, paid.json
    assert (paid.json["status"], paid.json["paid_fen"], paid.json["payment_method"]) == (
        "paid",
        1500,
        "wechat",
    )
    [command] = opens(published)
    [message] = commands(published)
    assert message.topic.endswith(f"/{site.device}/cmd")
    assert inside(app, site.a) == []
    with app.app_context():
        event = db.session.get(AccessEvent, command.event_id)
        assert (event.reason, event.rule, event.decision.value) == (
            "temporary_vehicle",
            "parking.paid",
            "grant",
        )
        assert (event.plate, event.details["paid_fen"]) == (GUEST, 1500)
        [entry_audit] = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "parking.payment")
        ).all()
        assert entry_audit.actor == "staff_a" and entry_audit.target_id == parking["ticket_id"]
        assert entry_audit.details["amount_fen"] == 1500
        assert entry_audit.details["method"] == "wechat"
    # The camera reads the car once more as it drives through: let out, no new fee.
    frozen.shift(timedelta(minutes=2))
    through = decided(client, site, GUEST, direction="out")
    assert (through["decision"], through["reason"]) == ("grant", "temporary_vehicle")
    assert through["parking"]["paid_fen"] == 1500
    # Paid twice? No.
    twice = staff.post(f"/parking-tickets/{parking['ticket_id']}/payments", json={"method": "cash"})
    assert twice.status_code == 409 and twice.json["ticket_status"] == "paid", twice.json
    # Long after the payment the plate is unknown again.
    frozen.shift(timedelta(hours=1))
    assert decided(client, site, GUEST, direction="out")["reason"] == "unknown_plate"


def test_a_stay_overnight_pays_the_night_rate_and_the_daily_cap(app, client, site, frozen):
    decided(client, site, GUEST, direction="in")  # 16:30 local
    frozen.shift(timedelta(hours=17))  # 09:30 next day
    out = decided(client, site, GUEST, direction="out")
    # Day 1: 16:30-21:30 six day hours (¥30, the cap) + 22:30, 23:30 night (¥4) -> ¥30.
    # Day 2: 00:30-06:30 seven night hours (¥14) + 07:30, 08:30 two day hours (¥10) -> ¥24.
    assert out["parking"]["fee_fen"] == 3000 + 2400
    ticket = ticket_of(app, out["parking"]["ticket_id"])
    assert [d["fee_fen"] for d in ticket.fee_breakdown["days"]] == [3000, 2400]


def test_visitor_cars_with_a_pass_and_residents_cars_never_pay(app, client, site, frozen):
    resident = Api(client, "resident_a")
    made = resident.post("/passes", json={"guest_name": "李四", "plate": "苏E6G789"})
    assert made.status_code == 201, made.json
    guest = decided(client, site, "苏E6G789", direction="in")
    owner = decided(client, site, "浙B82345", direction="in")
    frozen.shift(timedelta(hours=5))
    guest_out = decided(client, site, "苏E6G789", direction="out")
    owner_out = decided(client, site, "浙B82345", direction="out")
    assert [a["reason"] for a in (guest, guest_out)] == ["visitor_vehicle"] * 2
    assert [a["reason"] for a in (owner, owner_out)] == ["resident_vehicle"] * 2
    assert all(a["decision"] == "grant" and "parking" not in a for a in (guest_out, owner_out))
    with app.app_context():
        assert db.session.scalars(select(ParkingTicket)).all() == []


def test_paying_checks_the_caller_and_the_input(app, client, site, frozen, published):
    decided(client, site, GUEST, direction="in")
    frozen.shift(timedelta(hours=1))
    ticket_id = decided(client, site, GUEST, direction="out")["parking"]["ticket_id"]
    published.clear()  # the entry's open
    path = f"/parking-tickets/{ticket_id}/payments"
    staff = Api(client, "staff_a")
    for body in (
        {},
        {"method": "bitcoin"},
        {"method": "cash", "amount_fen": 5.5},
        {"method": "cash", "amount_fen": "500"},
        {"method": "cash", "amount_fen": -1},
        {"method": "cash", "tip": 1},
    ):
        answer = staff.post(path, json=body)
        assert answer.status_code == 422, (body, answer.json)
        assert answer.headers["Content-Type"].startswith("application/problem+json")
    wrong = staff.post(path, json={"method": "cash", "amount_fen": 400})
    assert wrong.status_code == 409 and wrong.json["fee_fen"] == 500, wrong.json
    assert (
        staff.post("/parking-tickets/pkt_nope/payments", json={"method": "cash"}).status_code == 404
    )
    # Another community's staff and residents find no ticket; officers read, never pay.
    assert Api(client, "staff_b").post(path, json={"method": "cash"}).status_code == 404
    assert Api(client, "resident_a").post(path, json={"method": "cash"}).status_code == 404
    resident_list = Api(client, "resident_a").get(f"/communities/{site.a}/parking-tickets")
    assert resident_list.status_code == 404
    officer = Api(client, "officer_a")
    assert officer.post(path, json={"method": "cash"}).status_code == 403
    assert [t["id"] for t in officer.get(f"/communities/{site.a}/parking-tickets").json] == [
        ticket_id
    ]
    bad_filter = staff.get(f"/communities/{site.a}/parking-tickets?status=lost")
    assert bad_filter.status_code == 422
    # Nothing was stored by any of these.
    assert opens(published) == []
    assert ticket_of(app, ticket_id).status.value == "due"
    with app.app_context():
        assert (
            db.session.scalars(
                select(AuditEntry).where(AuditEntry.action == "parking.payment")
            ).all()
            == []
        )
    # The right amount, or none (the fee due), is taken.
    assert staff.post(path, json={"method": "cash"}).status_code == 201


def test_the_tariff_is_validated_when_staff_change_it(app, client, site, frozen):
    staff = Api(client, "staff_a")
    for bad in (
        {"parking_hour_fen": -1},
        {"parking_hour_fen": 2.5},
        {"parking_daily_cap_fen": "3000"},
        {"parking_free_minutes": 24 * 60 + 1},
        {"parking_night_start": "25:00"},
        {"temporary_cars": "maybe"},
    ):
        answer = staff.patch(f"/communities/{site.a}", json={"settings": bad})
        assert answer.status_code == 422, (bad, answer.json)
        assert answer.headers["Content-Type"].startswith("application/problem+json")
    good = staff.patch(
        f"/communities/{site.a}",
        json={"settings": {"parking_hour_fen": 800, "parking_daily_cap_fen": None}},
    )
    assert good.status_code == 200, good.json
    assert good.json["settings"]["parking_hour_fen"] == 800
    decided(client, site, GUEST, direction="in")
    frozen.shift(timedelta(minutes=16))
    assert decided(client, site, GUEST, direction="out")["parking"]["fee_fen"] == 800


def test_a_ticket_outlives_its_events_past_their_retention(app, client, site, frozen):
    set_settings(app, site.a, event_retention_days=7)
    entry = decided(client, site, GUEST, direction="in")
    frozen.shift(timedelta(hours=1))
    out = decided(client, site, GUEST, direction="out")
    with app.app_context():
        assert retention.delete_expired_events(NOW + timedelta(days=8)) == 2
        ticket = db.session.get(ParkingTicket, entry["parking"]["ticket_id"])
        assert (ticket.entry_event_id, ticket.exit_event_id) == (None, None)
        assert (ticket.fee_fen, ticket.status.value) == (500, "due")
        assert db.session.get(AccessEvent, out["event_id"]) is None


def test_a_lockdown_or_a_closed_barrier_keeps_a_temporary_car_out_without_a_ticket(
    app, client, site, frozen, published
):
    started = Api(client, "staff_a").post(
        f"/communities/{site.a}/door-modes",
        json={"kind": "lockdown", "scope": "community", "reason": "Manhunt"},
    )
    assert started.status_code == 201, started.json
    published.clear()
    entry = decided(client, site, GUEST, confidence=0.95, direction="in")
    assert (entry["decision"], entry["reason"]) == ("deny", "lockdown")
    assert "parking" not in entry and opens(published) == []
    Api(client, "staff_a").post(f"/door-modes/{started.json['id']}/lift")

    # The barrier closed by its own weekly schedule at this hour (16:30 in Shanghai).
    with app.app_context():
        db.session.get(AccessPoint, site.barrier).schedule = [
            {"days": [1, 2, 3, 4, 5, 6, 7], "start": "06:00", "end": "08:00"}
        ]
        db.session.commit()
    closed = decided(client, site, GUEST, confidence=0.95, direction="in")
    assert (closed["decision"], closed["reason"]) == ("deny", "outside_schedule")
    assert opens(published) == [] and inside(app, site.a) == []
    with app.app_context():
        assert db.session.scalar(select(ParkingTicket.id)) is None


def test_a_lockdown_naming_no_one_refuses_the_payments_open(app, client, site, frozen, published):
    decided(client, site, GUEST, direction="in")
    frozen.shift(timedelta(hours=1))
    ticket_id = decided(client, site, GUEST, direction="out")["parking"]["ticket_id"]
    staff = Api(client, "staff_a")
    started = staff.post(
        f"/communities/{site.a}/door-modes",
        json={"kind": "lockdown", "scope": "community", "reason": "Manhunt", "exempt_roles": []},
    )
    assert started.status_code == 201, started.json
    published.clear()
    paid = staff.post(f"/parking-tickets/{ticket_id}/payments", json={"method": "cash"})
    assert paid.status_code == 403 and paid.json["reason"] == "lockdown"
    assert opens(published) == []
    assert ticket_of(app, ticket_id).status.value == "due"  # nothing stored half-way
