"""Door modes over a real Mosquitto, over two chosen doors: a lockdown sends both ``lock``, a
grant attempt during it sends no ``open``, each door coming back online is locked again, and
lifting it opens nothing; a release holds both open until one lift locks both."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator

import pytest
from flask import Flask

from hardware.messages import CommandMessage, StatusMessage
from hardware.protocol import Command
from hardware.topics import device_topic
from server.extensions import db
from server.models import Person
from server.worker import Worker
from tests import factories
from tests.factories import Api
from tests.support.e2e import WAIT_S
from tests.support.mosquitto import Broker
from tests.support.mqtt_listener import Listener
from tests.support.passes import PassSite, build_pass_site

CARD = "04C0FFEE"


@pytest.fixture
def site(live_app: Flask) -> PassSite:
    with live_app.app_context():
        built = build_pass_site()
        factories.card(db.session.get(Person, built.resident_person), CARD)
        db.session.commit()
        db.session.remove()
    return built


def other_device(site: PassSite) -> str:
    return site.other_credential.split(".")[0]


@pytest.fixture
def door_commands(broker: Broker, site: PassSite) -> Iterator[Listener]:
    listener = Listener(broker.port)
    listener.listen(device_topic(site.a, site.door_device, "cmd"))
    yield listener
    listener.close()


@pytest.fixture
def other_commands(broker: Broker, site: PassSite) -> Iterator[Listener]:
    """Building A2's door (the second chosen door)."""
    listener = Listener(broker.port)
    listener.listen(device_topic(site.a, other_device(site), "cmd"))
    yield listener
    listener.close()


def next_command(listener: Listener) -> CommandMessage:
    _topic, payload, _qos = listener.messages.get(timeout=WAIT_S)
    return CommandMessage.decode(payload)


def commands_until(listener: Listener, marker: str) -> list[Command]:
    """Every command the door heard up to the ``display`` that carries ``marker``: what was
    published before it has arrived by then (one publisher, one topic, in order)."""
    heard = []
    while True:
        command = next_command(listener)
        if command.cmd is Command.DISPLAY and command.text == marker:
            return heard
        heard.append(command.cmd)


def test_a_lockdown_locks_the_chosen_doors_and_nothing_opens_them(
    live_app: Flask,
    worker: Worker,
    site: PassSite,
    door_commands: Listener,
    other_commands: Listener,
) -> None:
    client = live_app.test_client()
    staff = Api(client, "staff_a")
    started = staff.post(
        f"/communities/{site.a}/door-modes",
        json={
            "kind": "lockdown",
            "scope": "access_point",
            "access_point_ids": [site.door, site.other_door],
            "reason": "Intruder in the lobby",
        },
    )
    assert started.status_code == 201, started.json
    assert next_command(door_commands).cmd is Command.LOCK
    assert next_command(other_commands).cmd is Command.LOCK

    # The owner's card: a grant on any other day, denied now, and no open is sent.
    answer = client.post(
        "/api/v1/verify/card",
        json={"uid": CARD},
        headers={"Authorization": f"Bearer {site.door_credential}"},
    )
    assert (answer.json["decision"], answer.json["reason"]) == ("deny", "lockdown")

    # The door comes back online (it restarted): the worker sends lock again.
    door_commands.client.publish(
        device_topic(site.a, site.door_device, "status"),
        StatusMessage(online=True, fw="1.0").encode(),
        qos=1,
    )
    assert next_command(door_commands).cmd is Command.LOCK
    # So is the second chosen door when it comes back.
    other_commands.client.publish(
        device_topic(site.a, other_device(site), "status"),
        StatusMessage(online=True, fw="1.0").encode(),
        qos=1,
    )
    assert next_command(other_commands).cmd is Command.LOCK

    lifted = Api(client, "officer_a").post(f"/door-modes/{started.json['id']}/lift")
    assert lifted.status_code == 200, lifted.json
    marker = staff.post(
        f"/devices/{site.door_device}/commands", json={"command": "display", "text": "marker"}
    )
    assert marker.status_code == 202, marker.json
    heard = commands_until(door_commands, "marker")
    assert heard == [], heard  # no open for the denied card, nothing at the lift
    with pytest.raises(queue.Empty):
        door_commands.messages.get_nowait()
    assert json.loads(lifted.get_data())["active"] is False


def test_an_emergency_release_holds_two_chosen_doors_open_until_one_lift(
    live_app: Flask,
    worker: Worker,
    site: PassSite,
    door_commands: Listener,
    other_commands: Listener,
) -> None:
    client = live_app.test_client()
    started = Api(client, "staff_a").post(
        f"/communities/{site.a}/door-modes",
        json={
            "kind": "emergency_release",
            "scope": "access_point",
            "access_point_ids": [site.door, site.other_door],  # buildings A1 and A2
            "reason": "Fire on the stairs",
        },
    )
    assert started.status_code == 201, started.json
    assert next_command(door_commands).cmd is Command.UNLOCK_HOLD
    assert next_command(other_commands).cmd is Command.UNLOCK_HOLD
    lifted = Api(client, "officer_a").post(f"/door-modes/{started.json['id']}/lift")
    assert lifted.status_code == 200, lifted.json
    assert next_command(door_commands).cmd is Command.LOCK
    assert next_command(other_commands).cmd is Command.LOCK
