"""Over a real Mosquitto: a perimeter RFID reader reads an elder's tag; the worker alerts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from gatekeeper.vocabulary import AccessPointKind, AlertType, DeviceKind, PersonRole, Zone
from hardware.simulate.device import DeviceIdentity
from hardware.simulate.sensors import RfidReader
from server import create_app
from server.extensions import db
from server.models import Alert, DeviceEvent, Membership, Person, RfidTag
from server.worker import WANDERING_CHECK_S, Worker
from tests import factories
from tests.conftest import app_environment
from tests.support.mosquitto import Broker
from tests.test_device_e2e import WAIT_S, eventually

ELDER_TAG = "E1DE5001"


@pytest.fixture
def broker() -> Iterator[Broker]:
    broker = Broker()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def live_app(app: Flask, workdir: Path, database_url: str, broker: Broker) -> Iterator[Flask]:
    live = create_app(
        app_environment(
            workdir, database_url, MQTT_URL=broker.url, MQTT_CLIENT_ID="gatekeeper-worker-rules"
        )
    )
    yield live
    publisher = live.extensions.pop("mqtt_publisher", None)
    if publisher is not None:
        publisher.stop()


@pytest.fixture
def worker(live_app: Flask) -> Iterator[Worker]:
    worker = Worker(live_app)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert worker.bus.wait_connected(WAIT_S)
    yield worker
    worker.stop()
    thread.join(timeout=30)


def _rows(app: Flask, statement) -> list:
    with app.app_context():
        try:
            return list(db.session.execute(statement).all())
        finally:
            db.session.remove()


def test_an_elder_read_at_the_perimeter_becomes_elder_wandering(
    live_app: Flask, worker: Worker, broker: Broker
) -> None:
    with live_app.app_context():
        world = factories.world()
        gate = factories.access_point(
            world.a, name="North gate", kind=AccessPointKind.GATE, zone=Zone.PERIMETER
        )
        reader, secret = factories.device(gate, kind=DeviceKind.RFID_READER)
        elder = Person(community_id=world.a.id, name="王老明", wander_risk=True)
        db.session.add(elder)
        db.session.flush()
        db.session.add_all(
            [
                Membership(
                    community_id=world.a.id,
                    person_id=elder.id,
                    unit_id=world.unit_a.id,
                    role=PersonRole.ELDER,
                ),
                RfidTag(community_id=world.a.id, person_id=elder.id, epc=ELDER_TAG),
            ]
        )
        db.session.commit()
        community_id, gate_id, reader_id, elder_id = world.a.id, gate.id, reader.id, elder.id
    # The reader kept this read while its link was down: by the time it arrives, the
    # guardian window (5 minutes) after it has passed, so the worker's job can judge it.
    simulated = RfidReader(
        DeviceIdentity(reader_id, secret, community_id),
        broker.url,
        heartbeat_s=0.5,
        clock=lambda: datetime.now(UTC) - timedelta(minutes=6),
    )
    simulated.start()
    try:
        assert simulated.wait_ready(WAIT_S)
        sent = simulated.read_tag(ELDER_TAG.lower(), rssi=-52)
        stored = eventually(
            lambda: _rows(live_app, select(DeviceEvent.id).where(DeviceEvent.seq == sent.seq))
        )
        assert stored, "the worker never stored the tag read"
        # Run the job now, as the scheduler would; its next turn comes anyway within
        # WANDERING_CHECK_S, so the wait below is bounded even if this run is skipped.
        worker.scheduler.get_job("judge_wandering").modify(next_run_time=datetime.now(UTC))

        def wandering() -> list:
            return _rows(
                live_app,
                select(Alert).where(Alert.type == AlertType.ELDER_WANDERING),
            )

        raised = eventually(wandering, timeout=WAIT_S + WANDERING_CHECK_S)
        assert raised, "no elder_wandering alert"
        [(alert,)] = raised
        assert alert.device_id == reader_id and alert.access_point_id == gate_id
        assert alert.evidence["device_event_ids"] == [stored[0][0]]
        assert alert.evidence["person_id"] == elder_id
    finally:
        simulated.stop()
