"""What the end-to-end tests of doors, barriers and keypads share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from tests.support.e2e import mqtt_app
from tests.support.mosquitto import Broker


@pytest.fixture
def live_app(
    request: pytest.FixtureRequest, app: Flask, workdir: Path, database_url: str, broker: Broker
) -> Iterator[Flask]:
    """A second app on the test database whose MQTT settings point at the test broker, signed in
    under a client id of its own test module (the worker's, in the thread a test starts)."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with mqtt_app(workdir, database_url, broker, f"gatekeeper-{module.replace('_', '-')}") as live:
        yield live
