"""Alerts: raised and de-duplicated by rules, worked by officers, escalated when ignored.

Every change is stored with its history and handed to every delivery channel in the same
transaction (``server.alerts.channels``): MQTT after the commit, webhooks by the worker's
job; the console's stream reads the table (``server.alerts.stream``). ``docs/alerts.md``
describes the whole flow.

Workflow: ``open`` -> ``acknowledged`` -> ``resolved`` (an open alert may also be resolved
at once, a false alarm say); anything else is a 409. Officers of the alert's community
and administrators act; the community's staff only read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, and_, case, literal_column, or_, select

from gatekeeper.vocabulary import AlertStatus, AlertType, Severity
from server.alerts import channels as alert_channels
from server.alerts import dispatch as alert_dispatch
from server.alerts.channels import DeliveryReason
from server.alerts.summaries import SUMMARY_KEY, Summary, note_offline
from server.alerts.targets import TargetRefused
from server.community import settings as community_settings
from server.core import audit, crypto
from server.core.errors import Conflict, Forbidden, Invalid
from server.core.scope import Scope
from server.core.wording import word
from server.extensions import db
from server.models import (
    AccessPoint,
    Alert,
    AlertDelivery,
    AlertHistory,
    Community,
    User,
    Webhook,
    utcnow,
)

# Escalation goes up one step per period without acknowledgement, and stays at the top.
SEVERITY_STEPS = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)
# Which status each action leads to, and from which statuses it may be taken.
TRANSITIONS: dict[str, tuple[AlertStatus, frozenset[AlertStatus]]] = {
    "acknowledged": (AlertStatus.ACKNOWLEDGED, frozenset({AlertStatus.OPEN})),
    "resolved": (
        AlertStatus.RESOLVED,
        frozenset({AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED}),
    ),
}


def raise_alert(
    *,
    community_id: str,
    type: AlertType,
    severity: Severity,
    summary: str | Summary,
    access_point_id: str | None = None,
    device_id: str | None = None,
    evidence: dict[str, Any] | None = None,
    dedup_key: str | None = None,
) -> Alert:
    """A new open alert, or the open one with the same ``dedup_key`` brought up to date.

    Either way every channel hears of it (``raised`` or ``updated``) once the caller commits.
    A :class:`~server.alerts.summaries.Summary` is stored as its English sentence, its text
    and values kept in the evidence for pages to show in the reader's language.
    """
    now = utcnow()
    evidence = dict(evidence or {})
    if isinstance(summary, Summary):
        evidence[SUMMARY_KEY] = summary.as_json()
        summary = summary.english()
    summary = note_offline(summary, evidence)  # judging a door's offline decision, late
    if dedup_key is not None:
        existing = db.session.scalar(
            select(Alert).where(
                Alert.community_id == community_id,
                Alert.dedup_key == dedup_key,
                Alert.status != AlertStatus.RESOLVED,
            )
        )
        if existing is not None:
            existing.summary = summary
            merged = _merge_evidence(existing.evidence, evidence)
            if SUMMARY_KEY not in evidence:  # a plain summary now: the old text is stale
                merged.pop(SUMMARY_KEY, None)
            existing.evidence = merged
            existing.updated_at = now
            alert_channels.dispatch(existing, DeliveryReason.UPDATED, now)
            return existing
    alert = Alert(
        community_id=community_id,
        type=type,
        severity=severity,
        summary=summary,
        access_point_id=access_point_id,
        device_id=device_id,
        evidence=evidence or {},
        dedup_key=dedup_key,
        status=AlertStatus.OPEN,
        created_at=now,
        updated_at=now,
    )
    db.session.add(alert)
    db.session.flush()
    db.session.add(
        AlertHistory(
            community_id=community_id,
            alert_id=alert.id,
            action="raised",
            status=AlertStatus.OPEN,
            at=now,
        )
    )
    alert_channels.dispatch(alert, DeliveryReason.RAISED, now)
    return alert


def _merge_evidence(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Lists grow (without repeats), other values are replaced."""
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = merged[key] + [v for v in value if v not in merged[key]]
        else:
            merged[key] = value
    return merged


# The officer's workflow -----------------------------------------------------------------------


def acknowledge(scope: Scope, alert_id: str, note: str | None = None) -> Alert:
    """The officer has seen it and is on it: escalation stops."""
    return _transition(scope, alert_id, "acknowledged", note)


def resolve(scope: Scope, alert_id: str, note: str | None = None) -> Alert:
    """Dealt with (or a false alarm); a rule's next finding raises a new alert."""
    return _transition(scope, alert_id, "resolved", note)


def _transition(scope: Scope, alert_id: str, action: str, note: str | None) -> Alert:
    alert = scope.get(Alert, alert_id)
    if not scope.can_write(Alert):
        raise Forbidden(_l("Only the officers covering this community act on its alerts."))
    target, allowed_from = TRANSITIONS[action]
    if alert.status not in allowed_from:
        refusal = (
            _l("The alert is %(status)s; it cannot be acknowledged.", status=word(alert.status))
            if action == "acknowledged"
            else _l("The alert is %(status)s; it cannot be resolved.", status=word(alert.status))
        )
        raise Conflict(refusal, status_now=alert.status.value)
    now = utcnow()
    alert.status = target
    alert.updated_at = now
    note = (note or "").strip() or None
    db.session.add(
        AlertHistory(
            community_id=alert.community_id,
            alert_id=alert.id,
            action=action,
            status=target,
            by_user_id=scope.user.id,
            at=now,
            note=note,
        )
    )
    alert_dispatch.after_transition(scope.user, alert, action, now)  # the assignee, the position
    audit.record(scope.user, f"alert.{action}", community_id=alert.community_id, target=alert)
    alert_channels.dispatch(alert, DeliveryReason(action), now)
    return alert


def next_severity(severity: Severity) -> Severity:
    """One step up (``low`` -> ``medium`` -> ``high`` -> ``critical``); critical stays."""
    index = SEVERITY_STEPS.index(severity)
    return SEVERITY_STEPS[min(index + 1, len(SEVERITY_STEPS) - 1)]


def escalate_overdue(now: datetime | None = None) -> int:
    """Escalate open alerts nobody acknowledged within the community's ``alert_ack_minutes``.

    A scheduled job (the worker). Each period without acknowledgement raises the severity
    one step (a critical alert stays critical) and sends the alert again on every channel,
    once per period counted from the raise or the last escalation. Returns how many; the
    caller commits.
    """
    now = now or utcnow()
    shortest = timedelta(minutes=1)  # the smallest alert_ack_minutes allowed
    since = case((Alert.escalated_at.is_(None), Alert.created_at), else_=Alert.escalated_at)
    candidates = db.session.scalars(
        select(Alert).where(Alert.status == AlertStatus.OPEN, since <= now - shortest)
    ).all()
    periods: dict[str, timedelta] = {}
    escalated = 0
    for alert in candidates:
        if alert.community_id not in periods:
            community = db.session.get(Community, alert.community_id)
            minutes = community_settings.effective(community.settings).alert_ack_minutes
            periods[alert.community_id] = timedelta(minutes=minutes)
        if (alert.escalated_at or alert.created_at) > now - periods[alert.community_id]:
            continue
        before = alert.severity
        alert.severity = next_severity(before)
        alert.escalated_at = alert.updated_at = now
        minutes = int(periods[alert.community_id].total_seconds() // 60)
        db.session.add(
            AlertHistory(
                community_id=alert.community_id,
                alert_id=alert.id,
                action="escalated",
                status=alert.status,
                at=now,
                note=f"Not acknowledged within {minutes} min: {before.value} -> "
                f"{alert.severity.value}",
            )
        )
        alert_channels.dispatch(alert, DeliveryReason.ESCALATED, now)
        escalated += 1
    return escalated


# Reading --------------------------------------------------------------------------------------


def readable(scope: Scope) -> None:
    """404 for residents: alerts are the officers' and the property office's, and a family
    a role never sees answers like an unknown id (not 403, which would say it exists, nor a
    list that is always empty)."""
    scope.require_sees(Alert)


# The list: unresolved alerts (open, acknowledged) first, then resolved ones, each newest
# first. Each half is read in that order from its own index (migration 0016: the partial
# index of unresolved alerts by time, and alerts by time), so a page costs the same with a
# year of resolved alerts behind it, and however many communities the caller covers.
# A row's place is its key: (0 unresolved / 1 resolved, created_at, id), newest first.
AlertKey = tuple[int, datetime, str]
_UNRESOLVED, _RESOLVED = 0, 1
# Spelled with a literal, as the partial indexes' predicate is (``server.models.indexes``):
# with a bound parameter a prepared statement's generic plan could not use them.
_RESOLVED_LITERAL = literal_column(f"'{AlertStatus.RESOLVED.value}'")
_IS_RESOLVED = Alert.status == _RESOLVED_LITERAL
_NOT_RESOLVED = Alert.status != _RESOLVED_LITERAL


def alert_key(alert: Alert) -> AlertKey:
    """Where ``alert`` sits in the list (``alerts_after`` starts after it)."""
    return (
        _RESOLVED if alert.status is AlertStatus.RESOLVED else _UNRESOLVED,
        alert.created_at,
        alert.id,
    )


def _filtered(scope: Scope, filters: dict[str, Any]) -> Select[tuple[Alert]]:
    readable(scope)
    statement = scope.query(Alert)
    kinds = {"status": AlertStatus, "type": AlertType, "severity": Severity, "community_id": str}
    for name, kind in kinds.items():
        if filters.get(name):
            statement = statement.where(getattr(Alert, name) == kind(filters[name]))
    return statement


def _halves(filters: dict[str, Any]) -> tuple[int, ...]:
    """The halves of the list a status filter leaves."""
    status = filters.get("status")
    if not status:
        return (_UNRESOLVED, _RESOLVED)
    return (_RESOLVED,) if AlertStatus(status) is AlertStatus.RESOLVED else (_UNRESOLVED,)


def alerts_query(scope: Scope, filters: dict[str, Any]) -> Select[tuple[Alert]]:
    """The alerts the caller may see, filtered, unresolved first, each half newest first (as
    one statement, for ``OFFSET`` pages; ``alerts_after`` reads a page from the indexes)."""
    resolved = case((_IS_RESOLVED, _RESOLVED), else_=_UNRESOLVED)
    return _filtered(scope, filters).order_by(resolved, Alert.created_at.desc(), Alert.id.desc())


def alerts_after(
    scope: Scope, filters: dict[str, Any], after: AlertKey | None, limit: int
) -> list[Alert]:
    """At most ``limit`` alerts of the list (``alerts_query``'s order) after the key ``after``
    (from the start when ``None``): one indexed range read per half of the list."""
    statement = _filtered(scope, filters)
    rows: list[Alert] = []
    for half in _halves(filters):
        if after is not None and half < after[0]:
            continue
        query = statement.where(_IS_RESOLVED if half == _RESOLVED else _NOT_RESOLVED)
        if after is not None and half == after[0]:
            _, created_at, ident = after
            query = query.where(
                or_(
                    Alert.created_at < created_at,
                    and_(Alert.created_at == created_at, Alert.id < ident),
                )
            )
        query = query.order_by(Alert.created_at.desc(), Alert.id.desc())
        rows.extend(db.session.scalars(query.limit(limit - len(rows))))
        if len(rows) >= limit:
            break
    return rows


def load_access_points(rows: list[Alert]) -> None:
    """The access points of ``rows`` in one statement: each alert's answer then finds its own
    in the session (``session.get`` reads no row twice), not one statement per alert."""
    wanted = {row.access_point_id for row in rows if row.access_point_id}
    if wanted:
        db.session.scalars(select(AccessPoint).where(AccessPoint.id.in_(wanted))).all()


def history_of(alert: Alert) -> list[dict[str, Any]]:
    """Each step with who, when and the note."""
    names = {
        user.id: user.username
        for user in db.session.scalars(
            select(User).where(User.id.in_({h.by_user_id for h in alert.history if h.by_user_id}))
        )
    }
    return [
        {
            "action": step.action,
            "status": step.status.value,
            "at": step.at,
            "by_user_id": step.by_user_id,
            "by": names.get(step.by_user_id) if step.by_user_id else None,
            "note": step.note,
        }
        for step in alert.history
    ]


def deliveries_of(scope: Scope, alert_id: str) -> list[AlertDelivery]:
    """The delivery log of one alert, oldest first (one row per attempt)."""
    alert = scope.get(Alert, alert_id)
    return list(
        db.session.scalars(
            select(AlertDelivery)
            .where(AlertDelivery.alert_id == alert.id)
            .order_by(AlertDelivery.created_at, AlertDelivery.attempts, AlertDelivery.id)
        )
    )


# Webhooks -------------------------------------------------------------------------------------


def webhooks_of(scope: Scope, community_id: str) -> list[Webhook]:
    community = scope.get(Community, community_id)
    scope.require_write(Webhook)
    return list(
        db.session.scalars(
            scope.query(Webhook)
            .where(Webhook.community_id == community.id)
            .order_by(Webhook.created_at)
        )
    )


def create_webhook(scope: Scope, community_id: str, url: str) -> tuple[Webhook, str]:
    """A webhook with a fresh secret; the secret is returned here and never again."""
    community = scope.get(Community, community_id)
    scope.require_write(Webhook)
    url = url.strip()
    try:
        alert_channels.check_webhook_url(url)
    except TargetRefused as refused:
        raise Invalid(
            _l("The webhook URL is refused: %(why)s", why=str(refused)),
            errors={"url": [str(refused)]},
        ) from refused
    secret = alert_channels.new_webhook_secret()
    row = Webhook(community_id=community.id, url=url, secret_encrypted=crypto.encrypt_text(secret))
    db.session.add(row)
    db.session.flush()
    audit.record(
        scope.user, "webhook.create", community_id=community.id, target=row, details={"url": url}
    )
    return row, secret


def delete_webhook(scope: Scope, webhook_id: str) -> None:
    """No more deliveries to it; its pending retries fail as ``target gone``."""
    row = scope.writable(Webhook, webhook_id)
    audit.record(
        scope.user,
        "webhook.delete",
        community_id=row.community_id,
        target=row,
        details={"url": row.url},
    )
    db.session.delete(row)
