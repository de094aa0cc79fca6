"""Dispatch over a real Mosquitto: the assignee's own account hears the alert on its own
topic, and the broker's ACL keeps every other officer from reading it."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select

from gatekeeper.vocabulary import AlertType
from hardware.topics import officer_dispatch_topic
from server.devices.broker_sync import sync_broker
from server.extensions import db
from server.models import Community, User, UserRole
from tests import factories
from tests.factories import Api
from tests.support.alerts import raise_in
from tests.support.api import build_world, in_app
from tests.support.mosquitto import Broker


def test_the_assignee_alone_hears_the_dispatch_on_its_topic(
    broker_app: Flask, authenticated_broker: Broker, listeners: Any
) -> None:
    world = build_world(broker_app)
    with in_app(broker_app):
        factories.user(
            UserRole.OFFICER, communities=[db.session.get(Community, world.a)], username="wang"
        )
        db.session.commit()
    accounts = {}
    for username in ("officer_a", "wang"):
        api = Api(broker_app.test_client(), username)
        me = api.client.put(
            "/api/v1/officers/me/duty",
            headers=api.headers,
            json={"on_duty": True, "position": {"access_point_id": world.door_a}},
        )
        assert me.status_code == 200, me.json
        with in_app(broker_app):
            user_id = db.session.scalar(select(User.id).where(User.username == username))
        credentials = api.post(f"/users/{user_id}/mqtt-credentials")
        assert credentials.status_code == 200, credentials.json
        assert officer_dispatch_topic(world.a, username) in credentials.json["topics"]
        accounts[username] = (api, user_id, credentials.json["password"])
    with in_app(broker_app):
        assert sync_broker(broker_app)

    wang_topic = officer_dispatch_topic(world.a, "wang")
    officer_a_topic = officer_dispatch_topic(world.a, "officer_a")
    wang = listeners(authenticated_broker.port, "wang", accounts["wang"][2])
    wang.listen(wang_topic)
    # Officer A asks for Wang's topic and a wildcard too: the ACL drops what is not theirs.
    snoop = listeners(authenticated_broker.port, "officer_a", accounts["officer_a"][2])
    snoop.listen(wang_topic, f"gk/v1/{world.a}/officers/+/dispatch", officer_a_topic)

    staff = Api(broker_app.test_client(), "staff_a")
    to_wang = raise_in(broker_app, world.a, access_point_id=world.door_a)
    answer = staff.post(f"/alerts/{to_wang}/dispatch", json={"officer_id": accounts["wang"][1]})
    assert answer.status_code == 200, answer.json
    topic, payload, qos = wang.next_alert()
    assert (topic, qos) == (wang_topic, 1)
    assert (payload["alert_id"], payload["reason"], payload["dispatch"]["assignee"]) == (
        to_wang,
        "dispatched",
        "wang",
    )
    # Sent after Wang's: had Wang's reached officer A, it came first.
    to_a = raise_in(broker_app, world.a, access_point_id=world.door_a, type=AlertType.TAMPER)
    answer = staff.post(f"/alerts/{to_a}/dispatch", json={"officer_id": accounts["officer_a"][1]})
    assert answer.status_code == 200, answer.json
    heard = [snoop.next_alert()]
    assert [(t, p["alert_id"]) for t, p, _q in heard] == [(officer_a_topic, to_a)]
    # (Two of officer A's subscriptions match their own topic: at most a copy of it follows.)
    while not snoop.messages.empty():
        topic, _raw, _qos = snoop.messages.get_nowait()
        assert topic == officer_a_topic, topic
    assert wang.messages.empty()
