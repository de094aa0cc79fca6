"""End to end with a simulated keypad door: a resident's courier code opens it over Mosquitto.

A real Mosquitto, the worker in a thread, the app over loopback HTTP and a simulated ``Door``
signed in to the broker as its device: the keypad's code goes to ``POST /api/v1/verify/pin``,
the grant comes back to the lock as ``open`` over MQTT and is acked; the same code typed
again and a wrong code leave the lock shut.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from hardware.protocol import Command, CommandStatus
from hardware.simulate.actuators import Door
from hardware.simulate.cli import Console
from hardware.simulate.device import DeviceIdentity
from hardware.simulate.verify import VerifyClient
from server.extensions import db
from server.models import AccessPoint, DeviceCommand
from server.worker import Worker
from tests.factories import Api
from tests.support.e2e import WAIT_S, eventually, query
from tests.support.mosquitto import Broker
from tests.support.passes import DOOR_SECRET, build_pass_site

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def door(live_app: Flask, broker: Broker, http_server: str) -> Iterator[Door]:
    """Building A1's door (``build_pass_site``) with a keypad, its terminal online."""
    with live_app.app_context():
        site = build_pass_site()
        db.session.get(AccessPoint, site.door).has_keypad = True
        db.session.commit()
        identity = DeviceIdentity(site.door_device, DOOR_SECRET, site.a, access_point_id=site.door)
        db.session.remove()
    terminal = Door(
        identity,
        broker.url,
        api=VerifyClient(http_server, identity.device_id, DOOR_SECRET),
        heartbeat_s=0.5,
    )
    terminal.start()
    assert terminal.wait_ready(WAIT_S), "the door never reached the broker"
    yield terminal
    terminal.stop()


def test_a_courier_code_typed_on_the_keypad_opens_the_door_once(
    live_app: Flask, worker: Worker, door: Door
) -> None:
    made = Api(live_app.test_client(), "resident_a").post(
        "/courier-codes", json={"access_point_id": door.identity.access_point_id}
    )
    assert made.status_code == 201, made.json
    digits = made.json["pin"]

    wrong = door.enter_pin(f"{(int(digits) + 1) % 1_000_000:06d}")
    assert (wrong["decision"], wrong["reason"]) == ("deny", "pin_invalid"), wrong

    granted = door.enter_pin(digits)
    assert (granted["decision"], granted["reason"]) == ("grant", "courier_code"), granted
    assert door.wait_for(lambda: len(door.actions) >= 1, WAIT_S), "open never came"
    [action] = door.actions
    assert action.cmd is Command.OPEN
    [(event_id,)] = query(
        live_app, select(DeviceCommand.event_id).where(DeviceCommand.id == action.cmd_id)
    )
    assert event_id == granted["event_id"]
    assert eventually(
        lambda: (
            query(live_app, select(DeviceCommand.status).where(DeviceCommand.id == action.cmd_id))
            == [(CommandStatus.ACKED,)]
        )
    )

    # The console's ``pin`` command types the same code again: used up, the lock stays shut.
    said = io.StringIO()
    Console({door.device_id: door}, threading.Event(), said).handle(f"pin {digits}")
    assert '"reason": "pass_used_up"' in said.getvalue(), said.getvalue()
    assert door.wait_for(lambda: len(door.actions) > 1, 1.0) is False, door.actions
