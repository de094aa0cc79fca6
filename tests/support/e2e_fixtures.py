"""Fixtures for end-to-end tests over a real Mosquitto, registered in ``tests/conftest.py``.

``broker`` is an anonymous Mosquitto, ``authenticated_broker`` one that admits only the
accounts in its files; ``worker`` and ``http_server`` run the module's own
``live_app`` fixture (a second app made with ``tests.support.e2e.mqtt_app``, whose MQTT
client id and settings each module chooses). A module overrides any of them by defining a
fixture of the same name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from server.worker import Worker
from tests.support.e2e import running_broker, running_worker, serving
from tests.support.mosquitto import Broker


@pytest.fixture
def broker() -> Iterator[Broker]:
    with running_broker() as broker:
        yield broker


@pytest.fixture
def authenticated_broker(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto configured like the launcher's: accounts from files in ``tmp_path``."""
    with running_broker(directory=tmp_path / "broker-files") as broker:
        yield broker


@pytest.fixture
def worker(live_app: Flask) -> Iterator[Worker]:
    with running_worker(live_app) as worker:
        yield worker


@pytest.fixture
def http_server(live_app: Flask) -> Iterator[str]:
    """``live_app`` over real HTTP on loopback; its base URL."""
    with serving(live_app) as url:
        yield url
