"""Fixtures of the alert tests over a real Mosquitto (officers' own broker accounts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from tests.support.e2e import managing_app
from tests.support.mosquitto import Broker
from tests.support.mqtt_listener import Listener


@pytest.fixture
def broker_app(
    app: Flask, workdir: Path, database_url: str, authenticated_broker: Broker
) -> Iterator[Flask]:
    """A second app on the test database that publishes to and manages the broker."""
    with managing_app(
        workdir, database_url, authenticated_broker, "gatekeeper-alert-tests"
    ) as managed:
        yield managed


@pytest.fixture
def listeners() -> Iterator[Callable[..., Listener]]:
    """``make(port, username, password)``: an MQTT listener, closed after the test."""
    made: list[Listener] = []

    def make(port: int, *credentials: str) -> Listener:
        listener = Listener(port, *credentials)
        made.append(listener)
        return listener

    yield make
    for listener in made:
        listener.close()
