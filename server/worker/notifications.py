"""The worker's side of telling residents: sending the notifications' outbox.

``server.notifications`` queues one ``pending`` ``NotificationDelivery`` per push
subscription and for the SMS gateway, in the transaction that caused it; ``deliver_due``
(a job every second, while the worker leads) sends them as the alert deliveries are sent
(``server.alerts.channels``): claim the due rows, send in parallel outside any transaction,
record each outcome, retry failures with the same backoff, give up after ``MAX_ATTEMPTS``.

- ``push``: Web Push (RFC 8030) with pywebpush, the body encrypted for the subscription
  (RFC 8291, ``aes128gcm``) and signed by our VAPID key (RFC 8292). The body is what a lock
  screen may show (``push_payload``): no name, unit, door or plate. A push service that
  answers 404 or 410 has forgotten the subscription: it is deleted, not retried.
- ``sms``: the community's gateway, a POST signed as alert webhooks are (``X-Signature``,
  ``server.alerts.channels.WebhookSend``), with the person's phone and the text.

Both targets pass the webhooks' address check (``server.alerts.targets``: public addresses
only, unless the host is in ``WEBHOOK_ALLOWED_HOSTS``), on every attempt.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from flask import current_app
from flask_babel import force_locale
from sqlalchemy import delete, select

from server.alerts import targets
from server.alerts.channels import (
    CLAIM_S,
    ERROR_CHARS,
    Attempt,
    Send,
    WebhookSend,
    encode,
    retry_delay,
    webhook_allowed_hosts,
)
from server.core import crypto
from server.extensions import db
from server.models import (
    Community,
    Notification,
    NotificationDelivery,
    NotificationGateway,
    PushSubscription,
    User,
    utcnow,
)
from server.notifications import kinds
from server.notifications.kinds import Channel
from server.notifications.service import phone_of

_LOGGER = logging.getLogger(__name__)

BATCH = 100
SENDERS = 8
MAX_ATTEMPTS = 8
PUSH_TIMEOUT_S = 5.0
# How long a push service keeps a push for a phone that is off (RFC 8030 TTL): a day.
PUSH_TTL_S = 24 * 3600
DEFAULT_LOCALE = "zh_CN"
# A push service's answer that the subscription is gone for good.
GONE = frozenset({404, 410})


def _locale(user: User | None) -> str:
    return (user.locale if user is not None and user.locale else None) or DEFAULT_LOCALE


def push_payload(notification: Notification, user: User | None) -> dict[str, Any]:
    """What a push carries: the lock screen's line and where tapping it leads, no more."""
    with force_locale(_locale(user)):
        return {
            "title": str(kinds.APP_NAME),
            "body": kinds.lock_screen(notification.kind),
            "url": kinds.LINK,
            "tag": notification.kind,
        }


def sms_payload(notification: Notification, user: User | None, phone: str) -> dict[str, Any]:
    """What the SMS gateway is POSTed: the phone, the text in the account's language, and the
    notification's kind and values for a gateway that words its own template."""
    community = db.session.get(Community, notification.community_id)
    with force_locale(_locale(user)):
        text = kinds.line(notification.kind, notification.params or {}, community.timezone)
    return {
        "notification_id": notification.id,
        "community_id": notification.community_id,
        "kind": notification.kind,
        "phone": phone,
        "text": text,
        "params": notification.params or {},
        "created_at": notification.created_at.isoformat(),
    }


@dataclass(frozen=True)
class PushSend:
    """One Web Push to one subscription (runs outside any transaction)."""

    endpoint: str
    p256dh: str
    auth: str
    data: bytes
    vapid_pem: str
    contact: str
    allowed_hosts: frozenset[str]

    def __call__(self) -> Attempt:
        from py_vapid import Vapid
        from pywebpush import WebPushException, webpush

        try:
            targets.check_target(self.endpoint, self.allowed_hosts)
        except targets.UnresolvedHost as error:
            return Attempt(ok=False, error=str(error)[:ERROR_CHARS])
        except targets.TargetRefused as error:
            return Attempt(ok=False, error=f"Refused: {error}"[:ERROR_CHARS], final=True)
        session = requests.Session()
        session.max_redirects = 0  # a push service that redirects has not taken it
        try:
            response = webpush(
                {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}},
                data=self.data,
                vapid_private_key=Vapid.from_pem(self.vapid_pem.encode("ascii")),
                vapid_claims={"sub": self.contact},
                content_encoding="aes128gcm",
                ttl=PUSH_TTL_S,
                timeout=PUSH_TIMEOUT_S,
                requests_session=session,
            )
        except WebPushException as error:
            status = error.response.status_code if error.response is not None else None
            return Attempt(
                ok=False,
                response_status=status,
                error=f"HTTP {status}" if status else str(error)[:ERROR_CHARS],
                final=status in GONE,
            )
        except (requests.RequestException, OSError) as error:
            return Attempt(ok=False, error=f"{type(error).__name__}: {error}"[:ERROR_CHARS])
        finally:
            session.close()
        return Attempt(ok=True, response_status=response.status_code)


def _prepare(row: NotificationDelivery) -> Send | None:
    """In the claiming transaction: what the send needs, or None when its target is gone."""
    notification = db.session.get(Notification, row.notification_id)
    if notification is None:
        return None
    user = db.session.get(User, notification.user_id)
    settings = current_app.config["SETTINGS"]
    if row.channel == Channel.PUSH.value:
        subscription = db.session.get(PushSubscription, row.target)
        if subscription is None or settings.vapid_private_key is None:
            return None
        return PushSend(
            subscription.endpoint,
            subscription.p256dh,
            subscription.auth,
            json.dumps(push_payload(notification, user), ensure_ascii=False).encode("utf-8"),
            settings.vapid_private_key,
            settings.vapid_contact,
            webhook_allowed_hosts(),
        )
    if row.channel == Channel.SMS.value:
        gateway = db.session.scalar(
            select(NotificationGateway).where(
                NotificationGateway.community_id == row.community_id,
                NotificationGateway.url == row.target,
                NotificationGateway.active.is_(True),
            )
        )
        phone = phone_of(user) if user is not None else None
        if gateway is None or phone is None:
            return None
        return WebhookSend(
            gateway.url,
            crypto.decrypt_text(gateway.secret_encrypted),
            encode(sms_payload(notification, user, phone)),
            row.id,
            notification.kind,
            webhook_allowed_hosts(),
        )
    return None


@dataclass
class _Claimed:
    delivery_id: str
    send: Send | None


def deliver_due(now: datetime | None = None) -> int:
    """Send the notification deliveries that are due; how many were attempted."""
    now = now or utcnow()
    rows = db.session.scalars(
        select(NotificationDelivery)
        .where(
            NotificationDelivery.status == "pending",
            NotificationDelivery.next_attempt_at <= now,
        )
        .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    claimed = []
    for row in rows:
        claimed.append(_Claimed(row.id, _prepare(row)))
        row.next_attempt_at = now + timedelta(seconds=CLAIM_S)
    db.session.commit()
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
    except Exception as error:  # one bad send must not stop the others
        _LOGGER.exception("notification delivery %s failed", item.delivery_id)
        return Attempt(ok=False, error=f"{type(error).__name__}: {error}"[:ERROR_CHARS])


def _record(claimed: list[_Claimed], outcomes: dict[str, Attempt], now: datetime) -> None:
    for item in claimed:
        row = db.session.get(NotificationDelivery, item.delivery_id)
        if row is None:
            continue
        attempt = outcomes.get(item.delivery_id) or Attempt(
            ok=False, error="no such subscription or gateway any more", final=True
        )
        row.response_status = attempt.response_status
        row.sent_at = now
        if attempt.ok:
            row.status, row.next_attempt_at = "sent", None
            continue
        row.status, row.last_error = "failed", attempt.error
        retry = not attempt.final and row.attempts < MAX_ATTEMPTS
        row.next_attempt_at = now + retry_delay(row.attempts) if retry else None
        _LOGGER.warning(
            "notification %s by %s: attempt %s failed (%s)%s",
            row.notification_id,
            row.channel,
            row.attempts,
            attempt.error,
            "" if retry else "; giving up",
        )
        if row.channel == Channel.PUSH.value and attempt.response_status in GONE:
            db.session.execute(delete(PushSubscription).where(PushSubscription.id == row.target))
            _LOGGER.info(
                "push subscription %s is gone (HTTP %s): removed",
                row.target,
                attempt.response_status,
            )
        if retry:
            db.session.add(
                NotificationDelivery(
                    community_id=row.community_id,
                    notification_id=row.notification_id,
                    channel=row.channel,
                    target=row.target,
                    status="pending",
                    attempts=row.attempts + 1,
                    next_attempt_at=row.next_attempt_at,
                    created_at=now,
                )
            )
    db.session.commit()
