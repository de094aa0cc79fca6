"""How long everything personal is kept: one function per table, each returning a count.

Each community's settings say how many days each kind of row is kept
(``*_retention_days``, ``server.community.settings``; docs/privacy.md has the table).
Access events and their face crops have their own modules (``server.access.retention``,
``server.access.snapshots``); :func:`run_all` runs those too, so the worker's retention job
and ``flask retention run`` do everything in one place.

Rows go in batches of ``BATCH``, each committed, so a city-size table is never locked for
long. Held evidence (``server.alerts.evidence.held_event_ids``) is the one exception: its
events keep their templates and crops whatever the retention says.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, select, update

from gatekeeper.vocabulary import AlertStatus
from server.access import retention as event_retention
from server.access import snapshots
from server.alerts.evidence import held_event_ids
from server.community import settings as community_settings
from server.extensions import db
from server.models import (
    AccessEvent,
    Alert,
    AlertDelivery,
    AuditEntry,
    Community,
    CourierCode,
    DeviceEvent,
    IdCheck,
    IntercomCall,
    Notification,
    NotificationDelivery,
    RegistrationRequest,
    utcnow,
)
from server.models.onboarding import RegistrationStatus
from server.models.privacy import DataRead

_LOGGER = logging.getLogger(__name__)

# Rows deleted (or stripped) per transaction.
BATCH = 2000


def _cutoffs(now: datetime, setting: str) -> Iterator[tuple[str, datetime]]:
    """Each community's id with the instant before which its rows of ``setting`` expire."""
    for community_id, stored in db.session.execute(select(Community.id, Community.settings)):
        days = getattr(community_settings.effective(stored), setting)
        yield community_id, now - timedelta(days=days)


def _default_cutoff(now: datetime, setting: str) -> datetime:
    return now - timedelta(days=getattr(community_settings.DEFAULTS, setting))


def _delete_in_batches(model: Any, expired: ColumnElement[bool], batch: int) -> int:
    """Delete the rows of ``model`` matching ``expired``, ``batch`` at a time, each batch
    committed; how many."""
    deleted = 0
    while True:
        ids = db.session.scalars(select(model.id).where(expired).limit(batch)).all()
        if not ids:
            return deleted
        db.session.execute(
            delete(model).where(model.id.in_(ids)),
            execution_options={"synchronize_session": False},
        )
        db.session.commit()
        deleted += len(ids)
        if len(ids) < batch:
            return deleted


def _per_community(
    model: Any,
    setting: str,
    expired: Callable[[datetime], ColumnElement[bool]],
    now: datetime,
    batch: int,
) -> int:
    """Delete each community's rows of ``model`` that ``expired(cutoff)`` names."""
    deleted = 0
    for community_id, cutoff in _cutoffs(now, setting):
        deleted += _delete_in_batches(
            model, (model.community_id == community_id) & expired(cutoff), batch
        )
    return deleted


def _logged(what: str, count: int) -> int:
    _LOGGER.info("retention: deleted %d rows of %s", count, what)
    return count


def held_device_event_ids(now: datetime) -> set[str]:
    """The device events (tag reads) held alerts name in ``evidence["device_event_ids"]``:
    held while the alert is open or acknowledged and ``evidence_hold_days`` after it was
    resolved, as ``server.alerts.evidence.held_event_ids`` holds access events."""
    days = {
        community_id: community_settings.effective(stored).evidence_hold_days
        for community_id, stored in db.session.execute(select(Community.id, Community.settings))
    }
    default = community_settings.DEFAULTS.evidence_hold_days
    longest = max(days.values(), default=default)
    held: set[str] = set()
    rows = db.session.execute(
        select(Alert.community_id, Alert.status, Alert.updated_at, Alert.evidence).where(
            (Alert.status != AlertStatus.RESOLVED)
            | (Alert.updated_at >= now - timedelta(days=longest))
        )
    )
    for community_id, status, updated_at, evidence in rows:
        hold = timedelta(days=days.get(community_id, default))
        if status == AlertStatus.RESOLVED and updated_at < now - hold:
            continue
        held.update(str(e) for e in (evidence or {}).get("device_event_ids", []) or [])
    return held


def delete_device_events(now: datetime, batch: int = BATCH) -> int:
    """Events devices published (tag reads, door states, panic presses) past
    ``device_event_retention_days``; those a held alert names stay."""
    held = held_device_event_ids(now)
    count = _per_community(
        DeviceEvent,
        "device_event_retention_days",
        lambda cutoff: (DeviceEvent.occurred_at < cutoff) & DeviceEvent.id.not_in(held),
        now,
        batch,
    )
    return _logged("device_events", count)


def strip_unknown_templates(now: datetime, batch: int = BATCH) -> int:
    """Unknown faces' templates on access events past ``unknown_template_retention_days``:
    the template goes, the event stays; held evidence keeps its templates."""
    held = held_event_ids(now)
    stripped = 0
    for community_id, cutoff in _cutoffs(now, "unknown_template_retention_days"):
        old = (
            (AccessEvent.community_id == community_id)
            & (AccessEvent.occurred_at < cutoff)
            & AccessEvent.template_encrypted.is_not(None)
            & AccessEvent.id.not_in(held)
        )
        while True:
            ids = db.session.scalars(select(AccessEvent.id).where(old).limit(batch)).all()
            if not ids:
                break
            db.session.execute(
                update(AccessEvent)
                .where(AccessEvent.id.in_(ids), old)
                .values(template_encrypted=None),
                execution_options={"synchronize_session": False},
            )
            db.session.commit()
            stripped += len(ids)
            if len(ids) < batch:
                break
    return _logged("access_events.template_encrypted (stripped)", stripped)


def delete_alert_deliveries(now: datetime, batch: int = BATCH) -> int:
    """The delivery log of alerts (webhooks, MQTT, ...) past ``delivery_retention_days``;
    deliveries still being retried stay."""
    count = _per_community(
        AlertDelivery,
        "delivery_retention_days",
        lambda cutoff: (AlertDelivery.created_at < cutoff) & (AlertDelivery.status != "pending"),
        now,
        batch,
    )
    return _logged("alert_deliveries", count)


def delete_notification_deliveries(now: datetime, batch: int = BATCH) -> int:
    """Push and SMS deliveries of notifications past ``delivery_retention_days``."""
    count = _per_community(
        NotificationDelivery,
        "delivery_retention_days",
        lambda cutoff: (
            (NotificationDelivery.created_at < cutoff) & (NotificationDelivery.status != "pending")
        ),
        now,
        batch,
    )
    return _logged("notification_deliveries", count)


def delete_notifications(now: datetime, batch: int = BATCH) -> int:
    """Notifications past ``notification_retention_days``, their deliveries first."""
    deleted = 0
    for community_id, cutoff in _cutoffs(now, "notification_retention_days"):
        expired = (Notification.community_id == community_id) & (Notification.created_at < cutoff)
        while True:
            ids = db.session.scalars(select(Notification.id).where(expired).limit(batch)).all()
            if not ids:
                break
            quick = {"synchronize_session": False}
            db.session.execute(
                delete(NotificationDelivery).where(NotificationDelivery.notification_id.in_(ids)),
                execution_options=quick,
            )
            db.session.execute(
                delete(Notification).where(Notification.id.in_(ids)), execution_options=quick
            )
            db.session.commit()
            deleted += len(ids)
            if len(ids) < batch:
                break
    return _logged("notifications", deleted)


def delete_intercom_calls(now: datetime, batch: int = BATCH) -> int:
    """Intercom calls (with any snapshot left) past ``intercom_call_retention_days``."""
    count = _per_community(
        IntercomCall,
        "intercom_call_retention_days",
        lambda cutoff: IntercomCall.created_at < cutoff,
        now,
        batch,
    )
    return _logged("intercom_calls", count)


def delete_courier_codes(now: datetime, batch: int = BATCH) -> int:
    """Courier codes whose validity ended more than ``courier_code_retention_days`` ago."""
    count = _per_community(
        CourierCode,
        "courier_code_retention_days",
        lambda cutoff: CourierCode.valid_until < cutoff,
        now,
        batch,
    )
    return _logged("courier_codes", count)


def delete_registration_requests(now: datetime, batch: int = BATCH) -> int:
    """Registration requests (name, phone, template, ID number) reviewed, or left pending,
    more than ``registration_retention_days`` ago: an approved one lives on as its person."""
    count = _per_community(
        RegistrationRequest,
        "registration_retention_days",
        lambda cutoff: (
            (
                (RegistrationRequest.status != RegistrationStatus.PENDING)
                & (RegistrationRequest.reviewed_at < cutoff)
            )
            | (
                (RegistrationRequest.status == RegistrationStatus.PENDING)
                & (RegistrationRequest.created_at < cutoff)
            )
        ),
        now,
        batch,
    )
    return _logged("registration_requests", count)


def delete_id_checks(now: datetime, batch: int = BATCH) -> int:
    """Person-ID match results past ``id_check_retention_days`` (no photo is ever stored)."""
    count = _per_community(
        IdCheck,
        "id_check_retention_days",
        lambda cutoff: IdCheck.checked_at < cutoff,
        now,
        batch,
    )
    return _logged("id_checks", count)


def _with_server_wide(model: Any, setting: str, at: Any, now: datetime, batch: int) -> int:
    """Per community, and the server-wide rows (no community) by the default's days."""
    deleted = _per_community(model, setting, lambda cutoff: at < cutoff, now, batch)
    return deleted + _delete_in_batches(
        model, model.community_id.is_(None) & (at < _default_cutoff(now, setting)), batch
    )


def delete_audit_entries(now: datetime, batch: int = BATCH) -> int:
    """Audit entries past ``audit_retention_days`` (three years by default)."""
    count = _with_server_wide(AuditEntry, "audit_retention_days", AuditEntry.at, now, batch)
    return _logged("audit_log", count)


def delete_data_reads(now: datetime, batch: int = BATCH) -> int:
    """Records of who read whose data past ``data_read_retention_days``."""
    count = _with_server_wide(DataRead, "data_read_retention_days", DataRead.at, now, batch)
    return _logged("data_reads", count)


# What ``run_all`` runs, in order, by the name its count is reported under.
JOBS: dict[str, Callable[[datetime], int]] = {
    "device_events": delete_device_events,
    "unknown_face_templates": strip_unknown_templates,
    "alert_deliveries": delete_alert_deliveries,
    "notification_deliveries": delete_notification_deliveries,
    "notifications": delete_notifications,
    "intercom_calls": delete_intercom_calls,
    "courier_codes": delete_courier_codes,
    "registration_requests": delete_registration_requests,
    "id_checks": delete_id_checks,
    "audit_log": delete_audit_entries,
    "data_reads": delete_data_reads,
}


def run_personal(now: datetime | None = None) -> dict[str, int]:
    """Each table of ``JOBS`` (the worker's retention job runs crops and events itself)."""
    now = now or utcnow()
    counts = {}
    for name, job in JOBS.items():
        counts[name] = job(now)
        db.session.commit()
    return counts


def run_all(now: datetime | None = None) -> dict[str, int]:
    """Every retention now: face crops, access events, then each table of ``JOBS``; the
    count of each (crops erased, events deleted, rows deleted or templates stripped)."""
    now = now or utcnow()
    counts = {"face_crops": snapshots.erase_expired(now)}
    db.session.commit()
    counts["access_events"] = event_retention.enforce(now).events_deleted
    db.session.commit()
    return counts | run_personal(now)
