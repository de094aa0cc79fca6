"""Webhooks against a real HTTP receiver on loopback: signatures, retries with backoff, the log,
and deliveries refused or pinned to the address checked (the receiver's host is allowed)."""

from __future__ import annotations

import itertools
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask
from sqlalchemy import select

from gatekeeper.vocabulary import AlertType, Severity
from server.alerts import channels as alert_channels
from server.extensions import db
from server.models import AlertDelivery, utcnow
from tests.factories import Api
from tests.support.alerts import allow_webhook_hosts, fake_dns, raise_in
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
def hook(app: Flask, world: WorldIds, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> str:
    """The receiver registered as community A's webhook; its secret.

    The receiver listens on loopback, which webhooks may reach only when allowed.
    """
    allow_webhook_hosts(app, monkeypatch, ["127.0.0.1"])
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
        ("mqtt", 1, "queued"),  # the Recorder never acknowledges
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


# Where deliveries may go (server.alerts.targets) ----------------------------------------------

PUBLIC = "93.184.216.34"


def make_hook(app: Flask, community_id: str, url: str) -> None:
    answer = Api(app.test_client(), "staff_a").post(
        f"/communities/{community_id}/webhooks", json={"url": url}
    )
    assert answer.status_code == 201, answer.json


def test_a_name_rebound_to_loopback_is_refused_at_delivery(
    app, world, receiver, published, monkeypatch
) -> None:
    """Public when the webhook was made, loopback when the alert is sent: nothing is sent."""
    answers = {"hooks.rebind.example": [PUBLIC]}
    fake_dns(monkeypatch, answers)
    port = receiver.server.server_port
    make_hook(app, world.a, f"http://hooks.rebind.example:{port}/hooks/alerts")
    answers["hooks.rebind.example"] = ["127.0.0.1"]  # the name's owner changes its answer
    alert_id = raise_panic(app, world.a)
    start = utcnow()
    assert deliver(app, start) == 1
    assert receiver.received == []
    [row] = webhook_log(app, alert_id)
    assert (row.status, row.response_status, row.next_attempt_at) == ("failed", None, None)
    assert row.last_error == (
        "Refused: hooks.rebind.example resolves to 127.0.0.1, which is not a public address "
        "(loopback, private, link-local or reserved); webhooks may only point to the internet."
    )
    assert deliver(app, start + timedelta(hours=9)) == 0  # a refusal is not retried
    log = Api(app.test_client(), "officer_a").get(f"/alerts/{alert_id}/deliveries").json
    assert [(d["status"], d["last_error"][:8]) for d in log if d["channel"] == "webhook"] == [
        ("failed", "Refused:")
    ]
    assert receiver.received == []


def test_a_delivery_connects_to_the_address_it_checked(
    app, world, receiver, published, monkeypatch
) -> None:
    """A second lookup between the check and the connection (rebinding) is never made."""
    port = receiver.server.server_port
    fake_dns(monkeypatch, {"hooks.rebind.example": [PUBLIC]})
    make_hook(app, world.a, f"http://hooks.rebind.example:{port}/hooks/alerts")
    lookups: list[str] = []

    def public_once_then_loopback(host: str, _port: int) -> list[str]:
        lookups.append(host)
        return [PUBLIC] if len(lookups) == 1 else ["127.0.0.1"]

    connected: list[tuple[str, int]] = []

    def no_connection(address: tuple[str, int], *_args: Any, **_kwargs: Any) -> Any:
        connected.append(address)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(alert_channels.targets, "resolve", public_once_then_loopback)
    monkeypatch.setattr(alert_channels.socket, "create_connection", no_connection)
    alert_id = raise_panic(app, world.a)
    assert deliver(app) == 1
    assert lookups == ["hooks.rebind.example"]
    assert connected == [(PUBLIC, port)]
    assert receiver.received == []
    [failed, retry] = webhook_log(app, alert_id)
    assert failed.last_error == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert (retry.status, retry.attempts) == ("pending", 2)  # an ordinary failure is retried


def test_an_allowed_name_is_posted_to_its_address_with_its_own_host_header(
    app, world, receiver, published, monkeypatch
) -> None:
    fake_dns(monkeypatch, {"receiver.internal": ["127.0.0.1"]})
    allow_webhook_hosts(app, monkeypatch, ["receiver.internal"])
    port = receiver.server.server_port
    make_hook(app, world.a, f"http://receiver.internal:{port}/hooks/alerts?community=a")
    alert_id = raise_panic(app, world.a)
    assert deliver(app) == 1
    [request] = receiver.received
    assert request.path == "/hooks/alerts?community=a"
    assert request.headers["Host"] == f"receiver.internal:{port}"
    assert [row.status for row in webhook_log(app, alert_id)] == ["sent"]


def test_https_checks_the_certificate_against_the_name_not_the_address(
    app, world, published, monkeypatch, tmp_path
) -> None:
    """Connected to the checked address, TLS still sends and verifies the webhook's name."""
    cert, key = self_signed(tmp_path, "hooks.example")
    names: list[str | None] = []
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    server_tls.sni_callback = lambda _socket, name, _context: names.append(name)
    receiver = Receiver()
    receiver.server.socket = server_tls.wrap_socket(receiver.server.socket, server_side=True)
    receiver.start()
    try:
        trusting = ssl.create_default_context

        monkeypatch.setattr(
            alert_channels.ssl, "create_default_context", lambda: trusting(cafile=str(cert))
        )
        fake_dns(monkeypatch, {"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
        allow_webhook_hosts(app, monkeypatch, ["hooks.example", "other.example"])
        port = receiver.server.server_port
        make_hook(app, world.a, f"https://hooks.example:{port}/in")
        make_hook(app, world.a, f"https://other.example:{port}/in")
        alert_id = raise_panic(app, world.a)
        assert deliver(app) == 2
    finally:
        receiver.stop()
    assert [r.headers["Host"] for r in receiver.received] == [f"hooks.example:{port}"]
    assert sorted(n or "" for n in names) == ["hooks.example", "other.example"]
    rows = {r.target: r for r in webhook_log(app, alert_id) if r.attempts == 1}
    assert rows[f"https://hooks.example:{port}/in"].status == "sent"
    mismatch = rows[f"https://other.example:{port}/in"]
    assert mismatch.status == "failed" and "certificate" in mismatch.last_error.lower()


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` that signs itself, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
