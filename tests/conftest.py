"""Fixtures: a real database (SQLite or PostgreSQL, per GK_TEST_DATABASE), the app, clients.

The schema is built by running the migrations, once per session; every test then
starts from empty tables.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import text

from server import create_app
from server.alerts.stream import stop_broadcaster
from server.core.messaging import OutgoingMessage, Publisher
from server.extensions import db, limiter
from tests.support.live_server import LiveServer
from tests.support.postgres import PostgresCluster

# broker, worker and http_server for the end-to-end tests over Mosquitto.
pytest_plugins = ["tests.support.e2e_fixtures"]

BACKENDS = ("sqlite", "postgresql")


def pytest_report_header() -> str:
    return f"database backend: {test_backend()}"


def test_backend() -> str:
    backend = os.environ.get("GK_TEST_DATABASE", "sqlite")
    if backend not in BACKENDS:
        raise pytest.UsageError(f"GK_TEST_DATABASE must be one of {BACKENDS}, not {backend!r}")
    return backend


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="gk-test-") as path:
        yield Path(path)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def new_database(request: pytest.FixtureRequest, workdir: Path):
    """A factory of empty databases on the backend under test: ``new_database(name) -> URL``."""
    if test_backend() == "postgresql":
        cluster = request.getfixturevalue("postgres")
        return cluster.create_database
    return lambda name: f"sqlite:///{workdir / name}.db"


def app_environment(workdir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """Environment for a test app (also used to start second processes)."""
    return {
        "GK_ENV": "test",
        "INSTANCE_DIR": str(workdir / "instance"),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "DATA_KEY": TEST_DATA_KEY,
        "MQTT_URL": "mqtt://127.0.0.1:1",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


TEST_DATA_KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def database_url(new_database) -> str:
    return new_database("gatekeeper_test")


@pytest.fixture(scope="session")
def app(workdir: Path, database_url: str) -> Iterator[Flask]:
    from flask_migrate import upgrade

    app = create_app(app_environment(workdir, database_url))
    with app.app_context():
        upgrade()
    yield app


@pytest.fixture(autouse=True)
def _clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Empty every table and forget rate-limit counters after each test that used the app.

    Background threads that read the database (the alert stream's poller) stop first: a
    wipe racing a reader deadlocks on PostgreSQL."""
    yield
    if "app" not in request.fixturenames:
        return
    app: Flask = request.getfixturevalue("app")
    stop_broadcaster(app)
    with app.app_context():
        db.session.remove()
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        with db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
            else:
                for table in tables:
                    # Table names come from our own metadata, not from input.
                    connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608
        limiter.reset()


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    """An application context for tests that use the models directly."""
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# MQTT ------------------------------------------------------------------------------------------


class Recorder(Publisher):
    """Stands in for the MQTT client: keeps what would have been published."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    def publish(self, message: OutgoingMessage) -> None:
        self.sent.append(message)


@pytest.fixture
def published(app: Flask) -> Iterator[list[OutgoingMessage]]:
    """What the app would publish to the broker in this test (nothing is sent)."""
    recorder = Recorder()
    app.extensions["mqtt_publisher"] = recorder
    yield recorder.sent
    app.extensions.pop("mqtt_publisher", None)


# Browser ---------------------------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError(
            "Debian's chromium is missing: apt-get install chromium "
            "chromium-driver (make test installs it)"
        )
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (its own download is not used)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The test app over real HTTP on a loopback port."""
    server = LiveServer(app)
    server.start()
    yield server
    server.stop()
