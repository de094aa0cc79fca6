"""Alerts over a real Mosquitto: an officer's own account hears its communities' alerts, and a
panic button's press travels broker -> worker -> alert -> officers' topic and console."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask import Flask

from gatekeeper.vocabulary import DeviceKind, Zone
from hardware.simulate.device import DeviceIdentity
from hardware.simulate.sensors import PanicButton
from hardware.topics import alerts_topic
from server.devices.broker_sync import sync_broker
from server.extensions import db
from server.models import Community
from tests import factories
from tests.factories import Api
from tests.support.alerts import raise_in
from tests.support.api import WorldIds, build_world, in_app
from tests.support.e2e import (
    WAIT_S,
    mqtt_app,
    running_broker,
    running_worker,
    serving,
)
from tests.support.mosquitto import Broker
from tests.support.sse import SseClient

# An officer's own broker account ------------------------------------------------------------


def test_an_officers_account_receives_its_communities_alerts(
    broker_app: Flask, authenticated_broker: Broker, listeners: Any
) -> None:
    world: WorldIds = build_world(broker_app)
    with in_app(broker_app):
        assert sync_broker(broker_app)
    officer_api = Api(broker_app.test_client(), "officer_a")
    credentials = officer_api.post(f"/users/{world.officer_a}/mqtt-credentials")
    assert credentials.status_code == 200, credentials.json
    officer = listeners(
        authenticated_broker.port, credentials.json["username"], credentials.json["password"]
    )
    # It asks for B's topic too: the broker's ACL drops what it may not read.
    officer.listen(alerts_topic(world.a), alerts_topic(world.b))

    raise_in(broker_app, world.b)
    # Sent after B's: had B's been allowed, it came first.
    alert_id = raise_in(broker_app, world.a, access_point_id=world.door_a)
    topic, payload, qos = officer.next_alert()
    assert (topic, qos) == (alerts_topic(world.a), 1)
    assert (payload["alert_id"], payload["reason"], payload["access_point"]) == (
        alert_id,
        "raised",
        "A door",
    )
    answer = officer_api.post(f"/alerts/{alert_id}/acknowledge", json={"note": "on it"})
    assert answer.status_code == 200, answer.json
    topic, payload, _qos = officer.next_alert()
    assert (payload["alert_id"], payload["reason"], payload["status"]) == (
        alert_id,
        "acknowledged",
        "acknowledged",
    )
    assert officer.messages.empty()


# A panic button, end to end -----------------------------------------------------------------


def test_a_panic_press_reaches_the_officers_topic_and_console(
    app: Flask, workdir: Path, database_url: str, listeners: Any
) -> None:
    with (
        running_broker() as broker,
        mqtt_app(workdir, database_url, broker, "gatekeeper-worker-alerts") as live,
    ):
        world = build_world(live)
        with in_app(live):
            gate = factories.access_point(
                db.session.get(Community, world.a), zone=Zone.PERIMETER, name="南门"
            )
            button, secret = factories.device(gate, kind=DeviceKind.PANIC_BUTTON)
            identity = DeviceIdentity(button.id, secret, world.a)
        token = Api(live.test_client(), "officer_a").headers
        subscriber = listeners(broker.port)
        subscriber.listen(alerts_topic(world.a))
        panic = PanicButton(identity, broker.url, heartbeat_s=30)
        with running_worker(live), serving(live) as url:
            console = SseClient(url, token)
            try:
                assert console.response.status == 200
                assert "connected" in console.read_event().comments
                panic.start()
                assert panic.wait_ready(WAIT_S)
                pressed = time.monotonic()
                panic.press()
                _topic, over_mqtt, _qos = subscriber.next_alert()
                event, arrived = console.next_alert()
            finally:
                console.close()
                panic.stop()
    for payload in (over_mqtt, event.alert):
        assert (payload["type"], payload["severity"], payload["reason"]) == (
            "panic",
            "critical",
            "raised",
        )
        assert payload["access_point"] == "南门" and payload["device_id"] == identity.device_id
    assert over_mqtt["alert_id"] == event.alert["alert_id"]
    assert arrived - pressed < WAIT_S
