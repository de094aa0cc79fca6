"""Fixtures: a real database (SQLite or PostgreSQL, per GK_TEST_DATABASE), the app, clients.

The schema is built by running the migrations, once per session; every test then
starts from empty tables.

Every test gets exactly one of the markers ``unit``, ``integration``, ``browser`` and ``e2e``
(setup.cfg), from the fixtures and helpers it uses (:func:`test_kind`), so
``pytest -m unit`` runs the tests that need no app, no database and no network.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from server import create_app
from server.core.live import stop_broadcaster
from server.core.messaging import OutgoingMessage, Publisher
from server.extensions import db, limiter
from tests.support.api import WorldIds, build_world
from tests.support.live_server import LiveServer
from tests.support.postgres import PostgresCluster

# broker, worker and http_server for the end-to-end tests over Mosquitto; browser (Chromium,
# Playwright imported only when a browser test runs); frozen, the pass tests' clock.
pytest_plugins = [
    "tests.support.e2e_fixtures",
    "tests.support.browser",
    "tests.support.passes",
]

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
        # One test process runs the app, the worker's threads and simulated devices on two
        # cores, and a slow CI machine can stall it for seconds: a write then waits longer
        # than a deployment's 5 s before it calls the database locked.
        "SQLITE_BUSY_TIMEOUT_SECONDS": "30",
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
    app.test_client_class = EnglishClient
    with app.app_context():
        upgrade()
    yield app


class EnglishClient(FlaskClient):
    """A test client whose requests ask for English (``Accept-Language: en``), so tests read
    the pages' source texts; tests of the language itself set the header they mean
    (tests/web/test_language.py), and Chinese is what a browser asking for nothing gets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"


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


@pytest.fixture
def world(app: Flask) -> WorldIds:
    """``factories.world()`` (communities A and B, their structure and accounts), committed;
    the rows' ids. Requests then run with no application context pushed."""
    return build_world(app)


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


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The test app over real HTTP on a loopback port."""
    server = LiveServer(app)
    server.start()
    yield server
    server.stop()


# Markers ---------------------------------------------------------------------------------------

KINDS = ("unit", "integration", "browser", "e2e")
BROWSER_FIXTURES = frozenset({"browser"})
# A real Mosquitto, worker or HTTP server (tests.support.e2e_fixtures, tests/hardware/conftest.py).
E2E_FIXTURES = frozenset(
    {
        "broker",
        "authenticated_broker",
        "worker",
        "http_server",
        "live_server",
        "live_app",
        "mosquitto",
    }
)
INTEGRATION_FIXTURES = frozenset(
    {"app", "client", "ctx", "published", "world", "database_url", "new_database", "postgres"}
)
# Helpers a test may call itself instead of using a fixture: the modules that start the real
# broker, worker or server, and the app factory.
E2E_MODULES = frozenset(
    {"tests.support.e2e", "tests.support.mosquitto", "tests.support.live_server"}
)
E2E_HELPERS = frozenset(
    {"Broker", "LiveServer", "mqtt_app", "running_broker", "running_worker", "serving"}
)


def _names(function: object, names: frozenset[str], modules: frozenset[str] | None) -> bool:
    """Whether ``function``'s code names one of ``names`` (defined in ``modules`` when given)."""
    code = getattr(function, "__code__", None)
    if code is None:
        return False
    for name in set(code.co_names) & names:
        found = function.__globals__.get(name)
        if found is not None and (modules is None or getattr(found, "__module__", "") in modules):
            return True
    return False


def _calls(item: pytest.Item, names: frozenset[str], modules: frozenset[str] | None = None) -> bool:
    """Whether the test function, or a fixture it uses, names one of ``names`` itself (a
    module's own fixture may start a broker with ``running_broker`` rather than ``broker``)."""
    functions = [getattr(item, "function", None)]
    fixture_info = getattr(item, "_fixtureinfo", None)
    if fixture_info is not None:
        for definitions in fixture_info.name2fixturedefs.values():
            functions.extend(definition.func for definition in definitions)
    return any(_names(function, names, modules) for function in functions)


def test_kind(item: pytest.Item) -> str:
    """``browser``, ``e2e``, ``integration`` or ``unit``: the first whose resources it uses."""
    used = set(getattr(item, "fixturenames", ()))
    if used & BROWSER_FIXTURES:
        return "browser"
    if used & E2E_FIXTURES or _calls(item, E2E_HELPERS, E2E_MODULES):
        return "e2e"
    if used & INTEGRATION_FIXTURES or _calls(item, frozenset({"create_app"})):
        return "integration"
    return "unit"


test_kind.__test__ = False  # a helper, not a test


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its kind, unless it names one itself; exactly one each. Tests
    marked ``postgresql`` (what only PostgreSQL has: notifications, advisory locks,
    partitions) are left out of a run on SQLite: ``make test`` runs them in its PostgreSQL
    run, so they are not skipped, only not collected twice."""
    if test_backend() != "postgresql":
        elsewhere = [item for item in items if item.get_closest_marker("postgresql")]
        if elsewhere:
            config.hook.pytest_deselected(items=elsewhere)
            items[:] = [item for item in items if not item.get_closest_marker("postgresql")]
    wrong = []
    for item in items:
        if not any(item.get_closest_marker(kind) for kind in KINDS):
            item.add_marker(test_kind(item))
        kinds = [kind for kind in KINDS if item.get_closest_marker(kind)]
        if len(kinds) != 1:
            wrong.append(f"{item.nodeid}: {kinds or 'none'}")
    if wrong:
        raise pytest.UsageError(
            "every test needs exactly one of the markers "
            + ", ".join(KINDS)
            + ":\n  "
            + "\n  ".join(wrong)
        )
