"""The database goes away for a while and comes back (a real PostgreSQL, stopped and started).

Doors keep asking meanwhile: each answer is a 503 problem document telling them to retry,
never a 500 and never a decision made without the database; ``/healthz`` says what is
wrong; and once PostgreSQL is back the next request works without restarting anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask_migrate import upgrade

from gatekeeper.vocabulary import PersonRole
from server import create_app
from server.extensions import db
from tests import factories
from tests.conftest import app_environment
from tests.support.api import assert_problem
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.e2e
SECRET = "door-secret-for-the-fault-test"


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL of this test's own: stopping it disturbs no other test."""
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def door_app(cluster: PostgresCluster, tmp_path: Path) -> Iterator[tuple[Flask, str]]:
    app = create_app(app_environment(tmp_path, cluster.create_database("faults")))
    with app.app_context():
        upgrade()
        world = factories.world(door_secret=SECRET)
        resident = factories.person(world.a, "王小明")
        factories.membership(resident, PersonRole.OWNER, unit_of=world.unit_a)
        factories.card(resident, "04A1B2C3")
        db.session.commit()
        credential = f"{world.device_a.id}.{SECRET}"
        db.session.remove()
    yield app, credential
    with app.app_context():
        db.engine.dispose()


def verify(app: Flask, credential: str):
    return app.test_client().post(
        "/api/v1/verify/card",
        json={"uid": "04A1B2C3"},
        headers={"Authorization": f"Bearer {credential}"},
    )


def test_doors_get_503_while_the_database_is_down_and_work_again_after(
    cluster: PostgresCluster, door_app: tuple[Flask, str]
) -> None:
    app, credential = door_app
    assert verify(app, credential).json["decision"] == "grant"
    cluster.pause()
    try:
        for _ in range(3):  # the pool's connections are dead, and new ones are refused
            answer = verify(app, credential)
            body = assert_problem(answer, 503)
            assert body["type"] == "/problems/service-unavailable"
            assert answer.headers["Retry-After"] == "5"
        health = app.test_client().get("/healthz")
        assert health.status_code == 503
        assert health.json["problems"][0].startswith("the database does not answer")
    finally:
        cluster.resume()
    answer = verify(app, credential)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.json["decision"] == "grant"
