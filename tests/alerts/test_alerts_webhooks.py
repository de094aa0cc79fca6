"""Webhooks against a real HTTP receiver on loopback: signatures, retries with backoff, the log."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from gatekeeper.vocabulary import AlertType, Severity
from server.alerts import channels as alert_channels
from server.extensions import db
from server.models import AlertDelivery, utcnow
from tests.factories import Api
from tests.support.alerts import raise_in
from tests.support.api import WorldIds, in_app


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """A webhook receiver: records every POST and answers ``status`` (changeable)."""

    def __init__(self) -> None:
        self.status = 200
        self.location: str | None = None
        self.received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                receiver.received.append(
                    Received(self.path, dict(self.headers.items()), body, time.time())
                )
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def hook(app: Flask, world: WorldIds, receiver: Receiver) -> str:
    """The receiver registered as community A's webhook; its secret."""
    answer = Api(app.test_client(), "staff_a").post(
        f"/communities/{world.a}/webhooks", json={"url": receiver.url}
    )
    assert answer.status_code == 201, answer.json
    return answer.json["secret"]


def raise_panic(app: Flask, community_id: str) -> str:
    return raise_in(
        app,
        community_id,
        type=AlertType.PANIC,
        severity=Severity.CRITICAL,
        summary="Panic button pressed: 门岗",
    )


def deliver(app: Flask, now: Any = None) -> int:
    with in_app(app):
        return alert_channels.deliver_due(now)


def webhook_log(app: Flask, alert_id: str) -> list[AlertDelivery]:
    with in_app(app):
        rows = db.session.scalars(
            select(AlertDelivery)
            .where(AlertDelivery.alert_id == alert_id, AlertDelivery.channel == "webhook")
            .order_by(AlertDelivery.attempts)
        ).all()
        db.session.expunge_all()
        return list(rows)


def check_signed(request: Received, secret: str) -> None:
    """What a receiver does: the HMAC over "<t>.<raw body>" matches and t is recent."""
    header = request.headers["X-Signature"]
    timestamp = int(header.split(",")[0].removeprefix("t="))
    assert abs(request.at - timestamp) <= alert_channels.SIGNATURE_TOLERANCE_S
    assert alert_channels.verify_signature(secret, request.body, header, now=request.at)
    assert not alert_channels.verify_signature("whsec_wrong", request.body, header)
    assert not alert_channels.verify_signature(secret, request.body + b"x", header)


def test_a_delivery_is_signed_and_logged(app, world, hook, receiver, published) -> None:
    alert_id = raise_panic(app, world.a)
    assert deliver(app) == 1
    [request] = receiver.received
    assert request.path == "/hooks/alerts"
    assert request.headers["Content-Type"].startswith("application/json")
    check_signed(request, hook)
    body = json.loads(request.body)
    assert (body["alert_id"], body["type"], body["reason"], body["status"]) == (
        alert_id,
        "panic",
        "raised",
        "open",
    )
    assert body["summary"] == "Panic button pressed: 门岗"  # UTF-8, as signed
    [row] = webhook_log(app, alert_id)
    assert (row.status, row.response_status, row.attempts, row.target) == (
        "sent",
        200,
        1,
        receiver.url,
    )
    assert request.headers["X-Gatekeeper-Delivery"] == row.id
    assert request.headers["X-Gatekeeper-Reason"] == "raised"
    assert deliver(app) == 0  # nothing is sent twice

    # The officer's acknowledgement is delivered too.
    officer = Api(app.test_client(), "officer_a")
    assert officer.post(f"/alerts/{alert_id}/ack", json={"note": "seen"}).status_code == 200
    assert deliver(app) == 1
    acked = json.loads(receiver.received[1].body)
    assert (acked["reason"], acked["status"]) == ("acknowledged", "acknowledged")
    check_signed(receiver.received[1], hook)
    # Another community's alert does not reach this webhook.
    raise_panic(app, world.b)
    assert deliver(app) == 0 and len(receiver.received) == 2


def test_a_failing_receiver_is_retried_with_backoff_until_it_recovers(
    app, world, hook, receiver, published
) -> None:
    receiver.status = 500
    alert_id = raise_panic(app, world.a)
    start = utcnow()
    assert deliver(app, start) == 1
    assert deliver(app, start + timedelta(seconds=9)) == 0  # the retry is not due yet
    assert deliver(app, start + timedelta(seconds=10)) == 1
    assert deliver(app, start + timedelta(seconds=29)) == 0
    assert deliver(app, start + timedelta(seconds=30)) == 1
    receiver.status = 200  # it recovers
    assert deliver(app, start + timedelta(seconds=69)) == 0
    assert deliver(app, start + timedelta(seconds=70)) == 1
    assert deliver(app, start + timedelta(hours=9)) == 0

    rows = webhook_log(app, alert_id)
    assert [(r.attempts, r.status, r.response_status) for r in rows] == [
        (1, "failed", 500),
        (2, "failed", 500),
        (3, "failed", 500),
        (4, "sent", 200),
    ]
    assert [r.last_error for r in rows[:3]] == ["HTTP 500"] * 3
    made = [r.sent_at for r in rows]  # when each attempt was made
    assert [round((b - a).total_seconds()) for a, b in itertools.pairwise(made)] == [
        10,
        20,
        40,
    ]
    assert [r.next_attempt_at for r in rows[:3]] == made[1:]  # when each failure is retried
    assert rows[3].next_attempt_at is None
    assert len(receiver.received) == 4
    for request in receiver.received:
        check_signed(request, hook)
    assert len({r.headers["X-Gatekeeper-Delivery"] for r in receiver.received}) == 4
    # The delivery log, as officers read it.
    log = Api(app.test_client(), "officer_a").get(f"/alerts/{alert_id}/deliveries").json
    assert [(d["channel"], d["attempts"], d["status"]) for d in log] == [
        ("mqtt", 1, "sent"),
        ("webhook", 1, "failed"),
        ("webhook", 2, "failed"),
        ("webhook", 3, "failed"),
        ("webhook", 4, "sent"),
    ]


def test_backoff_doubles_up_to_an_hour() -> None:
    delays = [alert_channels.retry_delay(n).total_seconds() for n in range(1, 13)]
    assert delays[:4] == [10, 20, 40, 80]
    assert max(delays) == 3600 and delays == sorted(delays)


def test_it_gives_up_after_the_last_attempt(
    app, world, hook, receiver, published, monkeypatch
) -> None:
    monkeypatch.setattr(alert_channels, "MAX_ATTEMPTS", 2)
    receiver.status = 503
    alert_id = raise_panic(app, world.a)
    start = utcnow()
    assert deliver(app, start) == 1
    assert deliver(app, start + timedelta(seconds=10)) == 1
    assert deliver(app, start + timedelta(days=1)) == 0
    rows = webhook_log(app, alert_id)
    assert [(r.attempts, r.status) for r in rows] == [(1, "failed"), (2, "failed")]
    assert rows[1].next_attempt_at is None  # given up


def test_unreachable_and_redirecting_receivers_fail(app, world, hook, receiver, published) -> None:
    receiver.status, receiver.location = 302, "http://127.0.0.1:9/elsewhere"
    first = raise_panic(app, world.a)
    assert deliver(app) == 1
    assert [(r.status, r.response_status) for r in webhook_log(app, first)] == [
        ("failed", 302),
        ("pending", None),
    ]
    receiver.stop()  # nothing listens any more
    start = utcnow()
    second = raise_panic(app, world.b)  # not this hook's community: no delivery
    assert webhook_log(app, second) == []
    third_id = raise_panic(app, world.a)
    deliver(app, start + timedelta(seconds=1))
    [failed, retry] = webhook_log(app, third_id)
    assert failed.status == "failed" and failed.response_status is None
    assert "Connection" in failed.last_error or "refused" in failed.last_error.lower()
    assert retry.status == "pending" and retry.attempts == 2
