"""Where alerts go besides the console: a registry of channels, and the delivery job.

Every change of an alert (raised, updated, escalated, acknowledged, resolved) is handed to
every registered channel in the transaction that made it (``dispatch``). A channel either
sends through the MQTT outbox, which publishes after the commit (``MqttChannel``), or
records one ``pending`` ``AlertDelivery`` per target for the worker's job to send
(``QueuedChannel``: webhooks today; an SMS gateway or a police platform is one more
subclass and a ``register_channel`` call).

The delivery log is one ``AlertDelivery`` row per attempt (``sent_at``: when it was made):
a failed attempt stays as it was (``failed``, the HTTP status or the error, and in
``next_attempt_at`` when the retry is due, empty once the job gives up) and its retry is
a new ``pending`` row with ``attempts`` one higher. Retries back off exponentially
(``retry_delay``). A webhook whose target is refused (``server.alerts.targets``: checked
again on every attempt) fails at once and is not retried: the address is policy, not a
passing fault, and the alert's next change is a new delivery, checked afresh.

The body of every channel is the alert as it is when sent (``alert_payload``): the fields
of docs/protocol.md section 5, plus ``reason`` (why it was sent) and ``updated_at``. A retry
therefore carries the newest state, never an older one than a delivery sent before it.

The console is not in the registry: the SSE stream (``server.alerts.stream``) reads the
alerts table itself, in every web process.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any, ClassVar, Protocol

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, select, update

from hardware.messages import format_ts
from hardware.topics import alerts_topic
from server.alerts import targets
from server.alerts.summaries import SUMMARY_KEY
from server.core import crypto, metrics
from server.core.links import snapshot_url
from server.core.messaging import OutgoingMessage, queue_message, when_acked
from server.extensions import db
from server.models import AccessEvent, AccessPoint, Alert, AlertDelivery, User, Webhook, utcnow
from server.models.ids import new_id

_LOGGER = logging.getLogger(__name__)

# Webhook requests: connect and read timeout, and the longest error text kept in the log.
WEBHOOK_TIMEOUT_S = 5.0
ERROR_CHARS = 500
# Retries: the first after RETRY_BASE_S, then twice as long each time, at most RETRY_CAP_S
# apart; an alert delivery is given up after MAX_ATTEMPTS attempts (about 3.4 hours).
RETRY_BASE_S = 10
RETRY_CAP_S = 3600
MAX_ATTEMPTS = 12
# How long a claimed delivery is left alone before it counts as due again (a job that
# died between claiming and recording).
CLAIM_S = 120
# Deliveries the job takes per run, and how many it sends at once.
BATCH = 100
SENDERS = 8
# Replay window receivers should apply to the signature's timestamp (documented).
SIGNATURE_TOLERANCE_S = 300
SIGNATURE_HEADER = "X-Signature"
USER_AGENT = "Gatekeeper-Alerts/1"


class DeliveryReason(StrEnum):
    """Why an alert was sent (``reason`` in the payload and in the delivery log)."""

    RAISED = "raised"
    UPDATED = "updated"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    # Dispatch (server.alerts.dispatch): assigned to an officer, accepted by them, escalated
    # to the station for want of an acceptance.
    DISPATCHED = "dispatched"
    DISPATCH_ACCEPTED = "dispatch_accepted"
    DISPATCH_ESCALATED = "dispatch_escalated"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # due at next_attempt_at (queued channels)
    QUEUED = "queued"  # handed to the MQTT client; the broker has not taken it yet
    SENT = "sent"
    FAILED = "failed"


# The payload ----------------------------------------------------------------------------------


def alert_payload(alert: Alert, reason: str, kept: Collection[str] | None = None) -> dict[str, Any]:
    """The alert as docs/protocol.md section 5 spells it, with ``reason`` and ``updated_at``
    (``kept``: as ``evidence_of`` takes it)."""
    point = db.session.get(AccessPoint, alert.access_point_id) if alert.access_point_id else None
    return {
        "alert_id": alert.id,
        "type": alert.type.value,
        "severity": alert.severity.value,
        "community_id": alert.community_id,
        "access_point": point.name if point else None,
        "ts": format_ts(alert.created_at),
        "summary": alert.summary,
        "evidence": evidence_of(alert, kept),
        "status": alert.status.value,
        "reason": str(reason),
        "updated_at": format_ts(alert.updated_at),
        "access_point_id": alert.access_point_id,
        "device_id": alert.device_id,
        "dispatch": dispatch_of(alert),
    }


def dispatch_of(alert: Alert) -> dict[str, Any] | None:
    """The alert's assignment (docs/protocol.md section 5, "Dispatch"), or None."""
    if alert.assignee_id is None or alert.assigned_at is None:
        return None
    names = dict(
        db.session.execute(
            select(User.id, User.username).where(
                User.id.in_({alert.assignee_id, alert.assigned_by_id or alert.assignee_id})
            )
        ).all()
    )
    acknowledged = alert.assignment_acknowledged_at
    escalated = alert.dispatch_escalated_at
    return {
        "assignee_id": alert.assignee_id,
        "assignee": names.get(alert.assignee_id),
        "assigned_at": format_ts(alert.assigned_at),
        "assigned_by": names.get(alert.assigned_by_id) if alert.assigned_by_id else None,
        "acknowledged_at": format_ts(acknowledged) if acknowledged else None,
        "escalated_at": format_ts(escalated) if escalated else None,
    }


def _event_ids(alert: Alert) -> list[str]:
    return [str(e) for e in (alert.evidence or {}).get("event_ids", []) or []]


def snapshots_kept(alerts: Iterable[Alert]) -> set[str]:
    """Which of the events these alerts name still keep a picture: one statement for a page
    of alerts, rather than one per alert (``evidence_of``'s ``kept``)."""
    event_ids = {event_id for alert in alerts for event_id in _event_ids(alert)}
    if not event_ids:
        return set()
    return set(
        db.session.scalars(
            select(AccessEvent.id).where(
                AccessEvent.id.in_(event_ids), AccessEvent.snapshot_path.is_not(None)
            )
        )
    )


def evidence_of(alert: Alert, kept: Collection[str] | None = None) -> dict[str, Any]:
    """``event_ids``, ``snapshots`` (API paths of the pictures still kept with those events),
    then anything else the rule stored. Alerts store event ids only: the links are made here,
    so a picture erased by retention is no longer linked. ``kept``: the events that keep a
    picture, when the caller read them for many alerts at once (``snapshots_kept``)."""
    stored = dict(alert.evidence or {})
    event_ids = _event_ids(alert)
    stored.pop("event_ids", None)
    stored.pop("snapshots", None)  # alerts raised before links were made here
    stored.pop(SUMMARY_KEY, None)  # the summary's text for pages (``alert.summary`` is sent)
    if kept is None:
        kept = snapshots_kept([alert])
    links = [snapshot_url(event_id) for event_id in event_ids if event_id in kept]
    return {"event_ids": event_ids, "snapshots": links, **stored}


def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON: what MQTT carries and webhooks sign."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# Webhook signatures ---------------------------------------------------------------------------


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """``X-Signature``: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    body: bytes,
    header: str,
    now: float | None = None,
    tolerance_s: int = SIGNATURE_TOLERANCE_S,
) -> bool:
    """What a receiver checks: a ``v1`` that matches, and a timestamp within the tolerance."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = signature(secret, body, timestamp).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, given) for given in parts.get("v1", []))


# Channels -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """The outcome of sending once."""

    ok: bool
    response_status: int | None = None
    error: str | None = None
    # Retrying cannot help (a target the policy refuses): the attempt is not retried.
    final: bool = False


# Sends one prepared message (runs outside any database transaction).
Send = Callable[[], Attempt]


class AlertChannel(Protocol):
    """A way alerts reach people. ``dispatch`` runs in the transaction that changed the alert."""

    name: str

    def dispatch(self, alert: Alert, reason: DeliveryReason, now: datetime) -> None: ...


class QueuedChannel:
    """A channel the worker's job sends on, with retries: subclass with ``targets``/``prepare``."""

    name: ClassVar[str]

    def targets(self, alert: Alert) -> list[str]:
        """Where this alert goes on this channel (URLs, phone numbers ...)."""
        raise NotImplementedError

    def prepare(self, delivery: AlertDelivery, payload: dict[str, Any]) -> Send | None:
        """In a transaction: everything the send needs, or None when the target is gone.

        The returned callable runs later in another thread, after the commit: give it plain
        values (URL, secret, body), never rows.
        """
        raise NotImplementedError

    def dispatch(self, alert: Alert, reason: DeliveryReason, now: datetime) -> None:
        for target in self.targets(alert):
            db.session.add(
                AlertDelivery(
                    community_id=alert.community_id,
                    alert_id=alert.id,
                    channel=self.name,
                    target=target,
                    reason=reason.value,
                    status=DeliveryStatus.PENDING.value,
                    attempts=1,
                    next_attempt_at=now,
                    created_at=now,
                )
            )


class MqttChannel:
    """``gk/v1/{community_id}/alerts``, QoS 1, published by the outbox after the commit.

    The delivery is ``queued`` until the broker acknowledges the publish (PUBACK), then
    ``sent``: paho keeps QoS 1 messages while the broker is away and sends them on
    reconnect, so the log says whether subscribers could have it yet."""

    name = "mqtt"

    def dispatch(self, alert: Alert, reason: DeliveryReason, now: datetime) -> None:
        topic = alerts_topic(alert.community_id)
        delivery = AlertDelivery(
            id=new_id(AlertDelivery.ID_PREFIX),
            community_id=alert.community_id,
            alert_id=alert.id,
            channel=self.name,
            target=topic,
            reason=reason.value,
            status=DeliveryStatus.QUEUED.value,
            attempts=1,
            created_at=now,
        )
        db.session.add(delivery)
        message = encode(alert_payload(alert, reason))
        on_acked = when_acked(TAKEN_BY_THE_BROKER, delivery_id=delivery.id)
        if reason == DeliveryReason.RAISED:
            on_acked = metrics.after(on_acked, partial(_delivered, self.name, alert.created_at))
        queue_message(db.session, OutgoingMessage(topic, message, on_acked=on_acked))


def _delivered(channel: str, raised_at: datetime) -> None:
    """Count the lag from raising an alert to its delivery on ``channel`` (``/metrics``)."""
    metrics.alert_delivered(channel, (utcnow() - raised_at).total_seconds())


_deliveries = AlertDelivery.__table__
# The broker took a delivery (``when_acked``, with ``delivery_id``): ``queued`` becomes ``sent``.
TAKEN_BY_THE_BROKER = (
    update(_deliveries)
    .where(
        _deliveries.c.id == bindparam("delivery_id"),
        _deliveries.c.status == DeliveryStatus.QUEUED.value,
    )
    .values(status=DeliveryStatus.SENT.value, sent_at=bindparam("acked_at"))
)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to the checked address; ``host`` still names the Host header."""

    def __init__(self, target: targets.Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the checked address; SNI and the certificate are checked against ``host``."""

    def __init__(self, target: targets.Target, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self.tls)
        self.address = target.address

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


_CONNECTIONS = {"http": _PinnedHTTPConnection, "https": _PinnedHTTPSConnection}


@dataclass(frozen=True)
class WebhookSend:
    """One signed POST of a JSON body to a webhook, to an address checked just before.

    http.client follows no redirects: a webhook that answers 3xx has not taken the alert,
    and no POST is re-sent to a target nobody checked.
    """

    url: str
    secret: str
    body: bytes
    delivery_id: str
    reason: str
    allowed_hosts: frozenset[str] = frozenset()

    def __call__(self) -> Attempt:
        try:
            target = targets.check_target(self.url, self.allowed_hosts)
        except targets.UnresolvedHost as error:  # DNS may be back by the retry
            return Attempt(ok=False, error=str(error)[:ERROR_CHARS])
        except targets.TargetRefused as error:
            return Attempt(ok=False, error=f"Refused: {error}"[:ERROR_CHARS], final=True)
        try:
            status = self._post(target)
        except (OSError, http.client.HTTPException) as error:  # refused, timed out, TLS ...
            return Attempt(ok=False, error=f"{type(error).__name__}: {error}"[:ERROR_CHARS])
        if 200 <= status < 300:
            return Attempt(ok=True, response_status=status)
        return Attempt(ok=False, response_status=status, error=f"HTTP {status}")

    def _post(self, target: targets.Target) -> int:
        timestamp = int(time.time())
        connection = _CONNECTIONS[target.scheme](target, WEBHOOK_TIMEOUT_S)
        try:
            connection.request(
                "POST",
                target.path,
                body=self.body,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "User-Agent": USER_AGENT,
                    SIGNATURE_HEADER: signature(self.secret, self.body, timestamp),
                    "X-Gatekeeper-Delivery": self.delivery_id,
                    "X-Gatekeeper-Reason": self.reason,
                },
            )
            response = connection.getresponse()
            response.read(1024)
            return response.status
        finally:
            connection.close()


class WebhookChannel(QueuedChannel):
    """The community's active webhooks, each POSTed the payload signed with its own secret."""

    name = "webhook"

    def targets(self, alert: Alert) -> list[str]:
        urls = db.session.scalars(
            select(Webhook.url)
            .where(Webhook.community_id == alert.community_id, Webhook.active.is_(True))
            .order_by(Webhook.created_at)
        )
        return list(dict.fromkeys(urls))

    def prepare(self, delivery: AlertDelivery, payload: dict[str, Any]) -> Send | None:
        hook = db.session.scalar(
            select(Webhook)
            .where(
                Webhook.community_id == delivery.community_id,
                Webhook.url == delivery.target,
                Webhook.active.is_(True),
            )
            .order_by(Webhook.created_at)
            .limit(1)
        )
        if hook is None:
            return None
        return WebhookSend(
            delivery.target,
            crypto.decrypt_text(hook.secret_encrypted),
            encode(payload),
            delivery.id,
            delivery.reason,
            webhook_allowed_hosts(),
        )


_CHANNELS: dict[str, AlertChannel] = {}


def register_channel(channel: AlertChannel) -> None:
    """Add (or replace, by name) a channel every alert change is dispatched to."""
    _CHANNELS[channel.name] = channel


def unregister_channel(name: str) -> None:
    _CHANNELS.pop(name, None)


def channels() -> list[AlertChannel]:
    return list(_CHANNELS.values())


register_channel(MqttChannel())
register_channel(WebhookChannel())


def dispatch(alert: Alert, reason: DeliveryReason, now: datetime | None = None) -> None:
    """Hand one change of ``alert`` to every channel (in the caller's transaction)."""
    now = now or utcnow()
    db.session.flush()  # ids, and the evidence the payload reads
    for channel in channels():
        channel.dispatch(alert, reason, now)


# The delivery job -----------------------------------------------------------------------------


def retry_delay(attempt: int) -> timedelta:
    """How long after failed attempt number ``attempt`` (from 1) the next one is due."""
    return timedelta(seconds=min(RETRY_CAP_S, RETRY_BASE_S * 2 ** (attempt - 1)))


@dataclass
class _Claimed:
    delivery_id: str
    channel: str
    send: Send | None


def deliver_due(now: datetime | None = None) -> int:
    """Send the deliveries that are due (the worker's job); how many were attempted.

    Three short transactions, so no connection is held while receivers answer: claim the
    due rows (pushing ``next_attempt_at`` ahead), send them in parallel, record each
    outcome and queue the retries.
    """
    now = now or utcnow()
    claimed = _claim(now)
    if not claimed:
        return 0
    outcomes: dict[str, Attempt] = {}
    sendable = [c for c in claimed if c.send is not None]
    if sendable:
        with ThreadPoolExecutor(max_workers=min(SENDERS, len(sendable))) as pool:
            for item, attempt in zip(sendable, pool.map(_safe_send, sendable), strict=True):
                outcomes[item.delivery_id] = attempt
    _record(claimed, outcomes, now)
    return len(claimed)


def _safe_send(item: _Claimed) -> Attempt:
    try:
        return item.send()  # type: ignore[misc]
    except Exception as error:  # a channel bug must not stop the other deliveries
        _LOGGER.exception("channel %s failed to send %s", item.channel, item.delivery_id)
        return Attempt(ok=False, error=f"{type(error).__name__}: {error}"[:ERROR_CHARS])


def _queued_channel(name: str) -> QueuedChannel | None:
    channel = _CHANNELS.get(name)
    return channel if isinstance(channel, QueuedChannel) else None


def _claim(now: datetime) -> list[_Claimed]:
    rows = db.session.scalars(
        select(AlertDelivery)
        .where(
            AlertDelivery.status == DeliveryStatus.PENDING.value,
            AlertDelivery.next_attempt_at <= now,
        )
        .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True)  # PostgreSQL: two workers never take the same row
    ).all()
    claimed = []
    for row in rows:
        channel = _queued_channel(row.channel)
        send = None
        if channel is not None:
            alert = db.session.get(Alert, row.alert_id)
            send = channel.prepare(row, alert_payload(alert, row.reason))
        row.next_attempt_at = now + timedelta(seconds=CLAIM_S)
        claimed.append(_Claimed(row.id, row.channel, send))
    db.session.commit()
    return claimed


def _record(claimed: Iterable[_Claimed], outcomes: dict[str, Attempt], now: datetime) -> None:
    for item in claimed:
        row = db.session.get(AlertDelivery, item.delivery_id)
        if row is None:  # the alert was deleted meanwhile
            continue
        attempt = outcomes.get(item.delivery_id) or Attempt(
            ok=False, error="no such channel or target any more"
        )
        row.response_status = attempt.response_status
        row.sent_at = now  # when this attempt was made, whatever came of it
        if attempt.ok:
            row.status, row.next_attempt_at = DeliveryStatus.SENT.value, None
            _LOGGER.info("alert %s sent to %s %s", row.alert_id, row.channel, row.target)
            if row.reason == DeliveryReason.RAISED.value:
                raised_at = db.session.scalar(
                    select(Alert.created_at).where(Alert.id == row.alert_id)
                )
                if raised_at is not None:
                    _delivered(row.channel, raised_at)
            continue
        row.status, row.last_error = DeliveryStatus.FAILED.value, attempt.error
        retry = item.send is not None and not attempt.final and row.attempts < MAX_ATTEMPTS
        row.next_attempt_at = now + retry_delay(row.attempts) if retry else None
        _LOGGER.warning(
            "alert %s to %s %s: attempt %s failed (%s)%s",
            row.alert_id,
            row.channel,
            row.target,
            row.attempts,
            attempt.error,
            "" if retry else "; giving up",
        )
        if retry:
            db.session.add(
                AlertDelivery(
                    community_id=row.community_id,
                    alert_id=row.alert_id,
                    channel=row.channel,
                    target=row.target,
                    reason=row.reason,
                    status=DeliveryStatus.PENDING.value,
                    attempts=row.attempts + 1,
                    next_attempt_at=row.next_attempt_at,
                    created_at=now,
                )
            )
    db.session.commit()


def webhook_allowed_hosts() -> frozenset[str]:
    """Hosts an administrator allows despite their address (``WEBHOOK_ALLOWED_HOSTS``)."""
    return current_app.config["SETTINGS"].webhook_allowed_hosts


def check_webhook_url(url: str) -> targets.Target:
    """Where ``url`` would be POSTed, or ``TargetRefused`` saying why it may not be.

    http(s) URLs only, https in production (the body names people and places), and a
    public address unless the host is allowed (``server.alerts.targets``).
    """
    if current_app.config["SETTINGS"].is_production and not url.startswith("https://"):
        raise targets.TargetRefused(_l("The URL must be https:// in production."))
    return targets.check_target(url, webhook_allowed_hosts())
