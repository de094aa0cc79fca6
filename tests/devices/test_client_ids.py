"""Client ids are bound to accounts on the real broker (docs/broker.md, "Client ids").

A device that knows only its own secret connects again and again with the worker's client
id. On the device listener Mosquitto gives it its own id (its username) instead; on the
server's listener its account does not exist. The worker's session is never taken over,
and every event the other devices send meanwhile, a panic press and a forced door
included, is stored.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from flask import Flask
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import select

from gatekeeper.vocabulary import AlertType, DeviceKind, Zone
from hardware.protocol import EventType
from hardware.simulate.actuators import Door
from hardware.simulate.device import DeviceIdentity
from hardware.simulate.sensors import PanicButton
from server.devices.broker_sync import sync_broker
from server.devices.service import set_secret
from server.extensions import db
from server.models import Alert, Device, DeviceEvent
from server.worker import Worker
from tests import factories
from tests.support.e2e import WAIT_S, eventually, managing_app, query
from tests.support.mosquitto import Broker
from tests.support.mqtt_listener import stop_client

# MQTT_CLIENT_ID: the worker's client id is "<MQTT_CLIENT_ID>-<host>-<number>".
WORKER_CLIENT_ID = "gatekeeper-worker"
ATTEMPTS = 5


@pytest.fixture
def live_app(
    app: Flask, workdir: Path, database_url: str, authenticated_broker: Broker
) -> Iterator[Flask]:
    """The worker's app: the server's account, the worker's usual client id."""
    with managing_app(workdir, database_url, authenticated_broker, WORKER_CLIENT_ID) as live:
        with live.app_context():
            assert sync_broker(live)  # the server's own account, before the worker connects
        yield live


class Site:
    """A door and a panic button that behave, and a reader whose secret an attacker has."""

    def __init__(self, app: Flask, broker: Broker) -> None:
        with app.app_context():
            world = factories.world()
            door_device = db.session.get(Device, world.device_a.id)
            set_secret(door_device, "door-secret")
            gate = factories.access_point(world.a, zone=Zone.PERIMETER, name="Gate")
            button, button_secret = factories.device(gate, kind=DeviceKind.PANIC_BUTTON)
            reader, self.attacker_secret = factories.device(gate, kind=DeviceKind.RFID_READER)
            db.session.commit()
            community_id, self.attacker_id = world.a.id, reader.id
            door_id, button_id = door_device.id, button.id
            assert sync_broker(app)  # the rows were written directly, not through the API
        self.door = Door(DeviceIdentity(door_id, "door-secret", community_id), broker.url)
        self.button = PanicButton(
            DeviceIdentity(button_id, button_secret, community_id), broker.url
        )


@pytest.fixture
def site(live_app: Flask, authenticated_broker: Broker, worker: Worker) -> Iterator[Site]:
    site = Site(live_app, authenticated_broker)
    for device in (site.door, site.button):
        device.start()
        assert device.wait_ready(WAIT_S), authenticated_broker.log
    yield site
    for device in (site.door, site.button):
        device.stop()


_ids = count()


def connect(
    port: int, username: str, password: str, client_id: str
) -> tuple[mqtt.Client, ReasonCode]:
    """A paho client that connects once (no retry); the CONNACK's reason."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.username_pw_set(username, password)
    client.reconnect_delay_set(60, 60)
    answers: queue.Queue[ReasonCode] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, reason, _p: answers.put(reason)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client, answers.get(timeout=WAIT_S)


def test_a_device_cannot_take_the_workers_session(
    live_app: Flask, authenticated_broker: Broker, worker: Worker, site: Site
) -> None:
    reconnects: list[int] = []
    worker.bus.add_connect_hook(lambda: reconnects.append(next(_ids)))
    worker_client_id = worker.identity.client_id
    assert worker_client_id.startswith(f"{WORKER_CLIENT_ID}-")
    sent: list[int] = []
    intruders = []
    try:
        for _ in range(ATTEMPTS):
            # The device listener takes the account but not the client id it asked for ...
            intruder, reason = connect(
                authenticated_broker.port,
                site.attacker_id,
                site.attacker_secret,
                worker_client_id,
            )
            assert not reason.is_failure, authenticated_broker.log
            intruders.append(intruder)
            # ... and the server's listener does not know the account at all.
            refused, reason = connect(
                authenticated_broker.server_port,
                site.attacker_id,
                site.attacker_secret,
                worker_client_id,
            )
            stop_client(refused)
            assert reason.is_failure and reason.getName() == "Not authorized"
            sent += [site.door.emit(EventType.EXIT_REQUEST).seq for _ in range(4)]
        site.button.press()
        site.door.door_forced()
    finally:
        for intruder in intruders:
            stop_client(intruder)

    def stored() -> list[int]:
        rows = query(
            live_app,
            select(DeviceEvent.seq).where(
                DeviceEvent.device_id == site.door.device_id,
                DeviceEvent.type == EventType.EXIT_REQUEST.value,
            ),
        )
        return sorted(row[0] for row in rows)

    assert eventually(lambda: stored() == sorted(sent)), (stored(), sent)

    def alert_types() -> set[str]:
        return {row[0].value for row in query(live_app, select(Alert.type))}

    assert eventually(
        lambda: {AlertType.PANIC.value, AlertType.DOOR_FORCED.value} <= alert_types()
    ), alert_types()
    assert worker.bus.connected and reconnects == [], "the worker's session was taken over"
    log = authenticated_broker.log
    assert f"Client {worker_client_id} already connected" not in log
    # Each intruder was known by the reader's own id: the last one took over the one before.
    connected_as_reader = [
        line
        for line in log.splitlines()
        if "New client connected" in line and f"as {site.attacker_id} " in line
    ]
    assert len(connected_as_reader) == ATTEMPTS, log
