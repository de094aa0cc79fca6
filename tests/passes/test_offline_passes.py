"""End to end over a real Mosquitto with the generated ACL: a door admits a pass offline.

The worker publishes the key set; a simulated door of the community receives it through
the broker's ACL; cut off from the server, the door checks a guest's QR code itself,
opens, and uploads the use; the worker counts it on the pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from sqlalchemy import select

from gatekeeper import passtokens
from hardware.messages import EventMessage
from hardware.protocol import EventType
from hardware.simulate.actuators import Door
from hardware.simulate.device import DeviceIdentity
from hardware.simulate.verify import VerifyClient
from server.devices.broker_sync import sync_broker
from server.devices.service import set_secret
from server.extensions import db
from server.models import AccessEvent, Device, VisitorPass, utcnow
from server.passes import keys as passkeys
from server.passes import service as passes
from server.worker import Worker
from tests import factories
from tests.support.e2e import (
    SERVER_PASSWORD,
    SERVER_USER,
    WAIT_S,
    eventually,
    mqtt_app,
    running_worker,
)
from tests.support.mosquitto import Broker
from tests.support.net import free_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """An authenticated broker, started by ``site`` once the accounts exist."""
    broker = Broker(directory=tmp_path / "broker")
    yield broker
    broker.stop()


@pytest.fixture
def live_app(app: Flask, workdir: Path, database_url: str, broker: Broker) -> Iterator[Flask]:
    """A second app on the test database that signs in to ``broker`` as the server."""
    with mqtt_app(
        workdir,
        database_url,
        broker,
        "gatekeeper-worker-offline",
        login=(SERVER_USER, SERVER_PASSWORD),
        MQTT_BROKER_DIR=str(broker.directory),
    ) as live:
        yield live


@dataclasses.dataclass
class Site:
    door: Door
    pass_id: str
    token: str


@pytest.fixture
def site(live_app: Flask, broker: Broker) -> Iterator[Site]:
    """Community A's door (a simulated one, whose server never answers) and a guest's pass."""
    secret = "door-secret-for-offline-passes"
    now = utcnow()
    with live_app.app_context():
        world = factories.world()
        set_secret(db.session.get(Device, world.device_a.id), secret)
        guest_pass = factories.visitor_pass(
            world.unit_a,
            access_points=[world.door_a],
            guest_name="访客",
            valid_from=now - timedelta(minutes=5),
            valid_until=now + timedelta(hours=2),
            max_uses=1,
        )
        token = passes.token_for(guest_pass)  # makes the first signing key
        db.session.commit()
        assert sync_broker(live_app)  # the broker's accounts and ACL, from the database
        identity = DeviceIdentity(
            world.device_a.id, secret, world.a.id, access_point_id=world.door_a.id
        )
        pass_id = guest_pass.id
    broker.start()
    door = Door(identity, broker.url, heartbeat_s=1)
    door.api = VerifyClient(f"http://127.0.0.1:{free_port()}", door.device_id, secret)
    door.start()
    assert door.wait_ready(WAIT_S), broker.log
    yield Site(door, pass_id, token)
    door.stop()


@pytest.fixture
def worker(live_app: Flask, site: Site) -> Iterator[Worker]:
    """The worker, once ``site`` has started the broker."""
    with running_worker(live_app) as worker:
        yield worker


def _pass_used(door: Door) -> list[EventMessage]:
    return [event for event in door.events if event.type is EventType.PASS_USED]


def _offline_uses(app: Flask) -> list[AccessEvent]:
    with app.app_context():
        try:
            query = select(AccessEvent).where(AccessEvent.rule == "pass.offline")
            rows = list(db.session.scalars(query))
            db.session.expunge_all()
            return rows
        finally:
            db.session.remove()


def _uses(app: Flask, pass_id: str) -> int:
    with app.app_context():
        try:
            return db.session.get(VisitorPass, pass_id).uses
        finally:
            db.session.remove()


def test_a_door_admits_a_pass_offline_and_the_server_counts_it(
    live_app: Flask, site: Site, worker: Worker
) -> None:
    door = site.door
    with live_app.app_context():
        [key] = passkeys.public_keys()
    assert door.wait_for(lambda: door.key_set is not None, WAIT_S), "no key set arrived"
    assert [k.key_id for k in door.key_set.keys] == [key.key_id]
    assert door.key_set.community_tag == passtokens.community_tag(door.identity.community_id)

    # A forged code (the right key id, another private key) is refused, offline too.
    claims, _signed, _signature = passtokens.parse(site.token)
    forged = passtokens.sign(
        dataclasses.replace(claims, serial=b"\x00" * 8), Ed25519PrivateKey.generate()
    )
    refused = door.present_qr_token(forged)
    assert (refused["decision"], refused["reason"], refused["offline"]) == (
        "deny",
        "pass_invalid",
        True,
    )
    assert not door.unlocked and _pass_used(door) == []

    # The network is gone altogether: the use is uploaded when the door is back.
    door.kill()
    granted = door.present_qr_token(site.token)
    assert (granted["decision"], granted["reason"], granted["offline"]) == (
        "grant",
        "visitor_pass",
        True,
    )
    assert door.unlocked
    assert door.present_qr_token(site.token)["reason"] == "pass_used_up"  # single use
    assert _offline_uses(live_app) == []
    door.start()

    assert eventually(lambda: _offline_uses(live_app)), "the worker never stored the use"
    [use] = _offline_uses(live_app)
    assert (use.decision.value, use.reason, use.pass_id) == ("grant", "visitor_pass", site.pass_id)
    assert (use.device_id, use.access_point_id) == (door.device_id, door.identity.access_point_id)
    assert use.details["offline"] is True and use.details["uses"] == 1
    [uploaded] = _pass_used(door)
    assert use.occurred_at == uploaded.ts
    assert _uses(live_app, site.pass_id) == 1
