"""The worker sends the outbox: Web Push to a loopback push service that speaks RFC 8030
(tests/support/pushservice.py: the VAPID signature checked, the body decrypted as a phone
would), and the SMS gateway's signed POST to a loopback receiver.

Loopback targets are refused unless allowed (``WEBHOOK_ALLOWED_HOSTS``): the tests allow
127.0.0.1, as an administrator allows an internal gateway.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from server.alerts import channels as alert_channels
from server.extensions import db
from server.models import NotificationDelivery, Person, PushSubscription, User
from server.notifications import service as notifications
from server.notifications.kinds import Kind
from server.notifications.push import public_key
from server.worker import notifications as delivery
from tests.factories import Api
from tests.notifications.keys import VAPID_PEM
from tests.support.alerts import allow_webhook_hosts
from tests.support.passes import NOW, pass_site
from tests.support.pushservice import PushService, unb64url

PHONE = "13800138000"


@pytest.fixture
def site(app, monkeypatch):
    settings = dataclasses.replace(
        app.config["SETTINGS"], vapid_private_key=VAPID_PEM, vapid_contact="mailto:ops@example.cn"
    )
    monkeypatch.setitem(app.config, "SETTINGS", settings)
    allow_webhook_hosts(app, monkeypatch, ["127.0.0.1"])
    return pass_site(app)


@pytest.fixture
def push_service() -> Iterator[PushService]:
    service = PushService().start()
    yield service
    service.stop()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


class Gateway:
    """An SMS gateway on loopback: records each POST, answers ``status``."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[Received] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                gateway.received.append(Received(dict(self.headers.items()), body, time.time()))
                self.send_response(gateway.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/sms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    receiver = Gateway()
    yield receiver
    receiver.stop()


def put(client, username: str, path: str, body: Any) -> Any:
    api = Api(client, username)
    return client.put("/api/v1" + path, headers=api.headers, json=body)


def in_english(app, username: str = "resident_a") -> None:
    """The account reads English (the source texts; Chinese is the default)."""
    with app.app_context():
        db.session.scalar(select(User).where(User.username == username)).locale = "en"
        db.session.commit()


def subscribe(client, service: PushService, username: str = "resident_a") -> dict[str, Any]:
    subscription = service.subscribe()
    answer = Api(client, username).post("/notifications/push-subscriptions", json=subscription)
    assert answer.status_code == 201, answer.json
    return subscription


def tell_resident(app, site, kind: Kind = Kind.PASS_USED) -> None:
    params = {
        Kind.PASS_USED: {"guest": "王小二", "door": "A door", "at": NOW, "pass_id": "pas_1"},
        Kind.INTERCOM_CALL: {"door": "A door", "at": NOW},
    }[kind]
    with app.app_context():
        assert notifications.notify([site.resident_person], kind, community_id=site.a, **params)
        db.session.commit()


def deliver(app) -> int:
    with app.app_context():
        return delivery.deliver_due()


def log(app) -> list[NotificationDelivery]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(NotificationDelivery).order_by(
                    NotificationDelivery.created_at, NotificationDelivery.attempts
                )
            )
        )
        db.session.expunge_all()
        return rows


def test_a_push_reaches_the_phone_encrypted_and_says_nothing_personal(
    app, client, site, push_service
) -> None:
    subscription = subscribe(client, push_service)
    in_english(app)
    tell_resident(app, site)
    assert deliver(app) == 1
    [push] = push_service.pushes
    assert push.refused is None
    # Signed by our VAPID key, for this push service, encrypted for this subscription only.
    with app.app_context():
        assert unb64url(push.vapid_key) == unb64url(public_key())
    assert push.claims["sub"] == "mailto:ops@example.cn"
    assert int(push.headers["ttl"]) > 0
    assert push.json() == {
        "title": "Gatekeeper",
        "body": "Your guest's pass was used",
        "url": "/my/notifications",
        "tag": "pass_used",
    }
    for personal in ("王小二", "A door", "101", "A1"):
        assert personal not in push.plaintext.decode()
    [sent] = log(app)
    assert (sent.channel, sent.status, sent.response_status) == ("push", "sent", 201)
    assert sent.target != subscription["endpoint"]  # the subscription's id, not its URL


def test_a_gone_subscription_is_removed_and_not_retried(app, client, site, push_service) -> None:
    subscription = subscribe(client, push_service)
    push_service.answer(subscription["endpoint"], 410)
    tell_resident(app, site)
    assert deliver(app) == 1
    [failed] = log(app)
    assert (failed.status, failed.response_status, failed.next_attempt_at) == ("failed", 410, None)
    with app.app_context():
        assert db.session.scalars(select(PushSubscription)).all() == []
    tell_resident(app, site)  # the next one has no push to send
    assert deliver(app) == 0


def test_a_failing_push_service_is_retried(app, client, site, push_service) -> None:
    subscription = subscribe(client, push_service)
    push_service.answer(subscription["endpoint"], 503)
    tell_resident(app, site)
    deliver(app)
    failed, retry = log(app)
    assert (failed.status, failed.response_status) == ("failed", 503)
    assert (retry.status, retry.attempts, retry.next_attempt_at) == (
        "pending",
        2,
        failed.next_attempt_at,
    )
    with app.app_context():
        assert db.session.scalars(select(PushSubscription)).all() != []


def test_the_sms_gateway_gets_a_signed_body_with_the_phone(app, client, site, gateway) -> None:
    answer = put(
        client, "staff_a", f"/communities/{site.a}/notification-gateway", {"url": gateway.url}
    )
    assert answer.status_code == 200, answer.json
    secret = answer.json["secret"]
    with app.app_context():
        db.session.get(Person, site.resident_person).phone = PHONE
        resident = db.session.scalar(select(User.id).where(User.username == "resident_a"))
        notifications.set_preferences(
            resident, {Kind.INTERCOM_CALL: {notifications.Channel.SMS: True}}
        )
        db.session.commit()
    in_english(app)
    tell_resident(app, site, Kind.INTERCOM_CALL)
    assert deliver(app) == 1
    [request] = gateway.received
    header = request.headers["X-Signature"]
    assert alert_channels.verify_signature(secret, request.body, header, now=request.at)
    assert not alert_channels.verify_signature(secret, request.body + b" ", header, now=request.at)
    body = json.loads(request.body)
    assert body["phone"] == PHONE and body["kind"] == "intercom_call"
    assert body["text"] == "Someone called your home from A door (11-21 16:30)."
    assert body["params"] == {"door": "A door", "at": NOW.isoformat()}
    [sent] = log(app)
    assert (sent.channel, sent.status, sent.target) == ("sms", "sent", gateway.url)


def test_a_gateway_on_loopback_is_refused_unless_allowed(
    app, client, site, gateway, monkeypatch
) -> None:
    allow_webhook_hosts(app, monkeypatch, [])
    answer = put(
        client, "staff_a", f"/communities/{site.a}/notification-gateway", {"url": gateway.url}
    )
    assert answer.status_code == 422, answer.json
