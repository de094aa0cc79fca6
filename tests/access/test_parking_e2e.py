"""End to end: a temporary car over a real Mosquitto. It comes in on a ticket, is held at
the exit with its fee on the simulated barrier's screen, and leaves when staff record the
payment: the ``open`` reaches the barrier over MQTT and is acked.

Real time (the worker and the broker run in threads): the ticket's entry is moved back half
an hour in the database instead of freezing the clock, so the fee is one started hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from hardware.protocol import Command, CommandStatus
from hardware.simulate.actuators import Barrier
from hardware.simulate.device import DeviceIdentity
from hardware.simulate.verify import VerifyClient
from server.extensions import db
from server.models import Community, DeviceCommand, ParkingTicket
from server.worker import Worker
from tests.factories import Api
from tests.support.e2e import WAIT_S, eventually, query
from tests.support.mosquitto import Broker
from tests.support.passes import add_barrier, build_pass_site

pytestmark = pytest.mark.timeout(120)

BARRIER_SECRET = "barrier-secret-for-parking-e2e"
GUEST = "京N1234学"


@pytest.fixture
def barrier(live_app: Flask, broker: Broker, http_server: str) -> Iterator[tuple[str, Barrier]]:
    with live_app.app_context():
        base = build_pass_site()
        added = add_barrier(base, BARRIER_SECRET)
        community = db.session.get(Community, base.a)
        community.settings = {
            "temporary_cars": True,
            "parking_free_minutes": 15,
            "parking_hour_fen": 800,
        }
        db.session.commit()
        identity = DeviceIdentity(added.device, BARRIER_SECRET, base.a, access_point_id=added.point)
        community_id = base.a
        db.session.remove()
    device = Barrier(
        identity,
        broker.url,
        api=VerifyClient(http_server, identity.device_id, BARRIER_SECRET),
        heartbeat_s=0.5,
    )
    device.start()
    assert device.wait_ready(WAIT_S), "the barrier never reached the broker"
    yield community_id, device
    device.stop()


def test_a_temporary_car_pays_and_the_barrier_opens_over_mqtt(
    live_app: Flask, worker: Worker, barrier: tuple[str, Barrier]
) -> None:
    community_id, device = barrier
    entry = device.present_plate(GUEST, 0.93, "blue", "in")
    assert (entry["decision"], entry["reason"]) == ("grant", "temporary_vehicle"), entry
    assert device.wait_for(lambda: len(device.actions) >= 1, WAIT_S), "the entry never opened"
    ticket_id = entry["parking"]["ticket_id"]
    assert device.screen is not None and ticket_id in device.screen

    with live_app.app_context():  # the car has been in for half an hour
        ticket = db.session.get(ParkingTicket, ticket_id)
        ticket.entered_at -= timedelta(minutes=30)
        db.session.commit()

    held = device.present_plate(GUEST, 0.93, "blue", "out")
    assert (held["decision"], held["reason"]) == ("deny", "payment_required"), held
    assert (held["parking"]["fee_fen"], held["parking"]["currency"]) == (800, "CNY")
    assert device.screen == "停车 30分  应缴 ¥8.00  请到岗亭缴费"
    assert device.wait_for(lambda: len(device.actions) > 1, 1.0) is False, device.actions

    staff = Api(live_app.test_client(), "staff_a")
    [waiting] = staff.get(f"/communities/{community_id}/parking-tickets?status=due").json
    assert waiting["id"] == ticket_id
    paid = staff.post(f"/parking-tickets/{ticket_id}/payments", json={"method": "cash"})
    assert paid.status_code == 201, paid.json
    assert device.wait_for(lambda: len(device.actions) >= 2, WAIT_S), "the payment never opened"
    action = device.actions[1]
    assert action.cmd is Command.OPEN
    assert device.wait_for(lambda: device.raised, WAIT_S)

    def status() -> CommandStatus:
        [(value,)] = query(
            live_app, select(DeviceCommand.status).where(DeviceCommand.id == action.cmd_id)
        )
        return value

    assert eventually(lambda: status() is CommandStatus.ACKED), status()
    assert staff.get(f"/communities/{community_id}/vehicles-inside").json == []
