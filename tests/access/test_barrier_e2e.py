"""End to end with a simulated barrier: plate in, barrier opens, occupancy changes.

A real Mosquitto, the worker in a thread, the app over loopback HTTP and a simulated
``Barrier`` (plate camera + arm) signed in to the broker as its device: the camera's reads
go to ``POST /api/v1/verify/plate``, grants come back to the arm as ``open`` over MQTT and
are acked, and staff see the cars inside change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from sqlalchemy import select

from hardware.protocol import Command, CommandStatus
from hardware.simulate.actuators import Barrier
from hardware.simulate.device import DeviceIdentity
from hardware.simulate.verify import VerifyClient
from server.extensions import db
from server.models import DeviceCommand
from server.worker import Worker
from tests.factories import Api
from tests.support.e2e import WAIT_S, eventually, query
from tests.support.mosquitto import Broker
from tests.support.passes import add_barrier, build_pass_site

pytestmark = pytest.mark.timeout(120)

BARRIER_SECRET = "barrier-secret-for-e2e-tests"
RESIDENT_PLATE = "浙B82345"
VISITOR_PLATE = "苏E6G789"
UNKNOWN_PLATE = "京N1234学"


@dataclass(frozen=True)
class BarrierSite:
    community_id: str
    barrier: Barrier
    resident_vehicle_id: str


@pytest.fixture
def site(live_app: Flask, broker: Broker, http_server: str) -> Iterator[BarrierSite]:
    """Community A (``build_pass_site``) with a perimeter barrier, its device online, and the
    owner 王小明's registered car."""
    with live_app.app_context():
        base = build_pass_site()
        added = add_barrier(base, BARRIER_SECRET, owner_plate=RESIDENT_PLATE)
        identity = DeviceIdentity(added.device, BARRIER_SECRET, base.a, access_point_id=added.point)
        built = (base.a, added.owner_car)
        db.session.remove()
    barrier = Barrier(
        identity,
        broker.url,
        api=VerifyClient(http_server, identity.device_id, BARRIER_SECRET),
        heartbeat_s=0.5,
    )
    barrier.start()
    assert barrier.wait_ready(WAIT_S), "the barrier never reached the broker"
    yield BarrierSite(built[0], barrier, built[1])
    barrier.stop()


def test_plates_open_the_barrier_and_change_who_is_inside(
    live_app: Flask, worker: Worker, site: BarrierSite
) -> None:
    barrier = site.barrier
    staff = Api(live_app.test_client(), "staff_a")

    def inside() -> list[dict]:
        answer = staff.get(f"/communities/{site.community_id}/vehicles-inside")
        assert answer.status_code == 200, answer.json
        return answer.json

    def opens() -> int:
        return len(barrier.actions)

    def opened_for(answer: dict, count: int) -> str:
        """The barrier lifted its arm for the ``count``-th time; the command is the grant's."""
        assert barrier.wait_for(lambda: opens() >= count, WAIT_S), f"open {count} never came"
        action = barrier.actions[count - 1]
        assert action.cmd is Command.OPEN
        [(event_id,)] = query(
            live_app, select(DeviceCommand.event_id).where(DeviceCommand.id == action.cmd_id)
        )
        assert event_id == answer["event_id"]
        return action.cmd_id

    # The owner's car comes in: granted, the arm goes up, the command is acked and recorded.
    entry = barrier.present_plate("浙B·82345", 0.97, "blue", "in")
    assert (entry["decision"], entry["reason"]) == ("grant", "resident_vehicle"), entry
    assert entry["subject"] == {"kind": "resident", "display_name": "王*明"}
    command_id = opened_for(entry, 1)
    assert barrier.wait_for(lambda: barrier.raised, WAIT_S)
    assert eventually(lambda: staff.get(f"/commands/{command_id}").json["status"] == "acked"), (
        staff.get(f"/commands/{command_id}").json
    )
    [car] = inside()
    assert (car["plate"], car["vehicle_id"]) == (RESIDENT_PLATE, site.resident_vehicle_id)
    assert car["entry_event_id"] == entry["event_id"]

    # And goes out: the arm lifts again and the car is no longer inside.
    out = barrier.present_plate(RESIDENT_PLATE, 0.95, "blue", "out")
    assert (out["decision"], out["reason"]) == ("grant", "resident_vehicle"), out
    opened_for(out, 2)
    assert inside() == []

    # A visitor's car with the pass the resident made for it: in once, out, not in again.
    resident = Api(live_app.test_client(), "resident_a")
    made = resident.post("/passes", json={"guest_name": "李四", "plate": VISITOR_PLATE})
    assert made.status_code == 201, made.json
    visitor_pass = made.json
    guest = barrier.present_plate(VISITOR_PLATE, 0.93, "blue", "in")
    assert (guest["decision"], guest["reason"]) == ("grant", "visitor_vehicle"), guest
    assert guest["subject"] == {"kind": "visitor", "display_name": "李*"}
    opened_for(guest, 3)
    [car] = inside()
    assert (car["plate"], car["pass_id"], car["vehicle_id"]) == (
        VISITOR_PLATE,
        visitor_pass["id"],
        None,
    )
    leaving = barrier.present_plate(VISITOR_PLATE, 0.93, "blue", "out")
    assert (leaving["decision"], leaving["reason"]) == ("grant", "visitor_vehicle"), leaving
    opened_for(leaving, 4)
    assert inside() == []
    again = barrier.present_plate(VISITOR_PLATE, 0.93, "blue", "in")
    assert (again["decision"], again["reason"]) == ("deny", "pass_used_up"), again
    assert resident.get(f"/passes/{visitor_pass['id']}").json["uses"] == 1

    # A car nobody registered: denied, and the arm stays down.
    stranger = barrier.present_plate(UNKNOWN_PLATE, 0.91, "yellow", "in")
    assert (stranger["decision"], stranger["reason"]) == ("deny", "unknown_plate"), stranger
    assert barrier.wait_for(lambda: opens() > 4, 1.0) is False, barrier.actions
    assert inside() == []

    # Four grants, four open commands, each acked by the barrier; none for the denials.
    def statuses() -> list[tuple[str, CommandStatus]]:
        rows = query(
            live_app,
            select(DeviceCommand.event_id, DeviceCommand.status).where(
                DeviceCommand.device_id == barrier.device_id
            ),
        )
        return sorted((event_id, status) for event_id, status in rows)

    granted = sorted(a["event_id"] for a in (entry, out, guest, leaving))
    assert eventually(lambda: statuses() == [(e, CommandStatus.ACKED) for e in granted]), statuses()
    assert [ack.ok for ack in barrier.acks] == [True] * 4
