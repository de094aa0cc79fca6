"""Over a real Mosquitto: a perimeter RFID reader reads an elder's tag; the worker alerts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from gatekeeper.vocabulary import AlertType
from hardware.simulate.device import DeviceIdentity
from hardware.simulate.sensors import RfidReader
from server.models import Alert, DeviceEvent
from server.worker import WANDERING_CHECK_S, Worker
from tests.support.e2e import WAIT_S, eventually, mqtt_app, query
from tests.support.elders import ELDER_TAG, build_wandering_elder
from tests.support.mosquitto import Broker


@pytest.fixture
def live_app(app: Flask, workdir: Path, database_url: str, broker: Broker) -> Iterator[Flask]:
    with mqtt_app(workdir, database_url, broker, "gatekeeper-worker-rules") as live:
        yield live


def test_an_elder_read_at_the_perimeter_becomes_elder_wandering(
    live_app: Flask, worker: Worker, broker: Broker
) -> None:
    site = build_wandering_elder(live_app)
    community_id, reader_id, secret = site.community_id, site.reader_id, site.reader_secret
    gate_id, elder_id = site.gate_id, site.elder_id
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
            lambda: query(live_app, select(DeviceEvent.id).where(DeviceEvent.seq == sent.seq))
        )
        assert stored, "the worker never stored the tag read"
        # Run the job now, as the scheduler would; its next turn comes anyway within
        # WANDERING_CHECK_S, so the wait below is bounded even if this run is skipped.
        worker.scheduler.get_job("judge_wandering").modify(next_run_time=datetime.now(UTC))

        def wandering() -> list:
            return query(
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
