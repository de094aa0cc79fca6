"""The parts of an end-to-end test over a real Mosquitto: broker, server app, worker, HTTP.

Each is a context manager; ``tests.support.e2e_fixtures`` wraps the common ones as fixtures
(``broker``, ``worker``, ``http_server``) and a test module adds its own ``live_app`` with
``mqtt_app``. All of it listens on loopback only. Waits are bounded: ``eventually`` polls for
at most ``WAIT_S`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask

from server import create_app
from server.alerts.stream import stop_broadcaster
from server.extensions import db
from server.worker import Worker
from tests.conftest import app_environment
from tests.support.live_server import LiveServer
from tests.support.mosquitto import Broker

WAIT_S = 15


def eventually(check: Callable[[], object], timeout: float = WAIT_S) -> object:
    """Poll ``check`` until it returns something truthy (bounded); its last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def query(app: Flask, statement: Any) -> list[Any]:
    """The rows of ``statement``, read in a fresh session (what the worker committed)."""
    with app.app_context():
        try:
            return list(db.session.execute(statement).all())
        finally:
            db.session.remove()


@contextmanager
def running_broker(directory: Path | None = None) -> Iterator[Broker]:
    """A Mosquitto on a free loopback port: anonymous, or with the password file and ACL in
    ``directory`` when given."""
    broker = Broker(directory=directory)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@contextmanager
def mqtt_app(
    workdir: Path,
    database_url: str,
    broker: Broker,
    client_id: str,
    *,
    login: tuple[str, str] | None = None,
    **settings: str,
) -> Iterator[Flask]:
    """A second app on the test database whose MQTT settings point at ``broker``, signed in
    as ``login`` (user, password) when given, else anonymous."""
    url = broker.url if login is None else broker.server_url(*login)
    app = create_app(
        app_environment(workdir, database_url, MQTT_URL=url, MQTT_CLIENT_ID=client_id, **settings)
    )
    try:
        yield app
    finally:
        stop_broadcaster(app)
        publisher = app.extensions.pop("mqtt_publisher", None)
        if publisher is not None:
            publisher.stop()


# The server's own account on an authenticated broker (``managing_app``).
SERVER_USER = "gatekeeper-server"
SERVER_PASSWORD = "server-password-for-tests"


@contextmanager
def managing_app(
    workdir: Path, database_url: str, broker: Broker, client_id: str, **settings: str
) -> Iterator[Flask]:
    """``mqtt_app`` signed in to an authenticated ``broker`` as the server, and keeping the
    broker's password files and ACL in step (``MQTT_BROKER_DIR``, ``MQTT_BROKER_PIDFILE``)."""
    with mqtt_app(
        workdir,
        database_url,
        broker,
        client_id,
        login=(SERVER_USER, SERVER_PASSWORD),
        MQTT_BROKER_DIR=str(broker.directory),
        MQTT_BROKER_PIDFILE=str(broker.pidfile),
        **settings,
    ) as app:
        yield app


@contextmanager
def running_worker(app: Flask) -> Iterator[Worker]:
    """The worker (MQTT ingest, command outcomes, scheduled jobs) in a daemon thread."""
    worker = Worker(app)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert worker.bus.wait_connected(WAIT_S), "the worker never reached the broker"
        # Devices' messages published before the broker acknowledged the worker's
        # subscriptions would be dropped (a first session keeps nothing).
        assert worker.bus.wait_subscribed(WAIT_S), "the worker never subscribed"
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=30)


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """``app`` over real HTTP on a loopback port; its base URL."""
    server = LiveServer(app)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
