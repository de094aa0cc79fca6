"""Allowlists over a real Mosquitto with the worker running: a door holds its retained full
list from the worker's start, and a staff member disabling a card reaches it as a signed
delta within seconds (the leader's one-second job)."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from gatekeeper import allowlist as signed
from hardware.topics import allowlist_delta_topic, allowlist_topic
from server.extensions import db
from server.models import Card, Person
from server.passes import keys as passkeys
from server.worker import Worker
from tests import factories
from tests.factories import Api
from tests.support.e2e import WAIT_S
from tests.support.mosquitto import Broker
from tests.support.mqtt_listener import Listener
from tests.support.passes import PassSite, build_pass_site

CARD = "04C0FFEE"


@pytest.fixture
def site(live_app: Flask) -> PassSite:
    with live_app.app_context():
        built = build_pass_site()
        factories.card(db.session.get(Person, built.resident_person), CARD)
        db.session.commit()
        db.session.remove()
    return built


@pytest.fixture
def door(broker: Broker, site: PassSite) -> Iterator[Listener]:
    listener = Listener(broker.port)
    listener.listen(
        allowlist_topic(site.a, site.door_device), allowlist_delta_topic(site.a, site.door_device)
    )
    yield listener
    listener.close()


def key_set(app: Flask) -> dict[int, bytes]:
    """The public keys the door holds (the key set the worker publishes)."""
    with app.app_context():
        try:
            return {key.key_id: key.public_key for key in passkeys.public_keys()}
        finally:
            db.session.remove()


def next_on(listener: Listener, topic: str, app: Flask) -> dict[str, Any]:
    """The next message on ``topic`` (others skipped), verified against the key set."""
    while True:
        try:
            got, payload, _qos = listener.messages.get(timeout=WAIT_S)
        except queue.Empty:
            raise AssertionError(f"nothing on {topic} within {WAIT_S} s") from None
        if got == topic:
            body = json.loads(payload)
            signed.verify(body, key_set(app))
            return body


def test_a_disabled_card_reaches_the_door_as_a_signed_delta(
    live_app: Flask, site: PassSite, worker: Worker, door: Listener
) -> None:
    full_topic = allowlist_topic(site.a, site.door_device)
    with live_app.app_context():
        card_id = db.session.query(Card.id).filter_by(uid=CARD).scalar()
        db.session.remove()
    held = next_on(door, full_topic, live_app)  # the worker published every list on start
    owner = next(e for e in held["entries"] if e["pid"] == site.resident_person)
    assert owner["cards"] == [CARD]

    answer = Api(live_app.test_client(), "staff_a").patch(
        f"/cards/{card_id}", json={"disabled": True}
    )
    assert answer.status_code == 200, answer.json
    change = next_on(door, allowlist_delta_topic(site.a, site.door_device), live_app)
    assert (change["from_version"], change["version"]) == (held["version"], held["version"] + 1)
    assert [e["pid"] for e in change["upsert"]] == [site.resident_person]
    assert change["upsert"][0]["cards"] == []
    assert next_on(door, full_topic, live_app)["version"] == change["version"]
