"""Dispatch: officers on duty, and alerts assigned to one of them (docs/alerts.md, "Dispatch").

An officer goes on or off duty and says where they are (an access point of a community they
cover); acknowledging or resolving an alert also puts them at its place. An alert is
dispatched to an officer on duty who covers its community, by an officer or the community's
staff, either to the one chosen or with one click to the nearest (``gatekeeper.dispatch``:
by distance on the site plan, then the least busy, then by name). The assignee hears of it
on the console (the alerts stream, reason ``dispatched``) and on their own MQTT topic
``gk/v1/{community}/officers/{username}/dispatch``; they acknowledge it (the alert's
acknowledge, or ``accept``). An assignment nobody acknowledged within the community's
``dispatch_ack_minutes`` is escalated to the station once: history ``dispatch_escalated``,
and every channel (the community's topic, webhooks, every console) hears it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from gatekeeper.dispatch import Candidate, Spot, distance, ranked
from gatekeeper.vocabulary import AlertStatus
from hardware.topics import officer_dispatch_topic
from server.alerts import channels as alert_channels
from server.alerts.channels import DeliveryReason, DeliveryStatus
from server.community import settings as community_settings
from server.core import audit
from server.core.errors import Conflict, Forbidden, Invalid
from server.core.messaging import OutgoingMessage, queue_message, when_acked
from server.core.scope import Scope
from server.extensions import db
from server.models import (
    AccessPoint,
    Alert,
    AlertDelivery,
    AlertHistory,
    Community,
    Device,
    OfficerDuty,
    User,
    UserRole,
    user_communities,
    utcnow,
)
from server.models.ids import new_id

# The shortest dispatch_ack_minutes allowed: the escalation job reads nothing younger.
SHORTEST = timedelta(minutes=1)
# The roles that dispatch (officers covering the community, its staff, administrators).
DISPATCHERS = frozenset({UserRole.OFFICER, UserRole.STAFF, UserRole.ADMIN})
# The longest note of a history step.
NOTE_CHARS = 500


# Duty -------------------------------------------------------------------------------------------


def duty_of(user_id: str) -> OfficerDuty | None:
    return db.session.get(OfficerDuty, user_id)


def officer_self(scope: Scope) -> User:
    if scope.role is not UserRole.OFFICER:
        raise Forbidden(_l("Only officers go on duty."))
    return scope.user


def set_duty(
    scope: Scope, on_duty: bool, position: dict[str, Any] | None, *, move: bool = True
) -> OfficerDuty:
    """The caller (an officer) on or off duty; ``position`` (``{"access_point_id"}``) is
    where they are, None when unknown; ``move=False`` keeps the position they had."""
    officer = officer_self(scope)
    point_id = None
    if move and position is not None:
        point = scope.get(AccessPoint, position.get("access_point_id"))  # 404: not theirs
        point_id = point.id
    now = utcnow()
    duty = duty_of(officer.id)
    if duty is None:
        duty = OfficerDuty(user_id=officer.id, on_duty=on_duty, changed_at=now)
        db.session.add(duty)
    elif duty.on_duty != on_duty:
        duty.on_duty, duty.changed_at = on_duty, now
    if move:
        duty.access_point_id = point_id
        duty.position_at = now if point_id else None
    audit.record(
        officer,
        "officer.duty",
        community_id=None,
        target=officer,
        details={"on_duty": on_duty, "access_point_id": duty.access_point_id},
    )
    return duty


def duty_answer(duty: OfficerDuty | None) -> dict[str, Any]:
    point = (
        db.session.get(AccessPoint, duty.access_point_id) if duty and duty.access_point_id else None
    )
    return {
        "on_duty": bool(duty and duty.on_duty),
        "changed_at": duty.changed_at if duty else None,
        "position": (
            {
                "access_point_id": point.id,
                "access_point": point.name,
                "community_id": point.community_id,
                "plan_x": point.plan_x,
                "plan_y": point.plan_y,
                "at": duty.position_at if duty else None,
            }
            if point
            else None
        ),
    }


def _spot_point(alert: Alert) -> AccessPoint | None:
    """The access point where the alert happened (its own, else its device's)."""
    if alert.access_point_id:
        return db.session.get(AccessPoint, alert.access_point_id)
    if alert.device_id:
        device = db.session.get(Device, alert.device_id)
        if device is not None and device.access_point_id:
            return db.session.get(AccessPoint, device.access_point_id)
    return None


def _plan(x: float | None, y: float | None) -> Spot | None:
    return (x, y) if x is not None and y is not None else None


def alert_spot(alert: Alert) -> Spot | None:
    """Where on the site plan the alert happened: its access point, else its device (placed
    itself or by its access point); None when unknown."""
    if alert.access_point_id:
        point = db.session.get(AccessPoint, alert.access_point_id)
        spot = _plan(point.plan_x, point.plan_y) if point else None
        if spot:
            return spot
    if alert.device_id:
        device = db.session.get(Device, alert.device_id)
        if device is not None:
            spot = _plan(device.plan_x, device.plan_y)
            if spot:
                return spot
            point = (
                db.session.get(AccessPoint, device.access_point_id)
                if device.access_point_id
                else None
            )
            if point is not None:
                return _plan(point.plan_x, point.plan_y)
    return None


def _move_to_alert(user: User, alert: Alert) -> None:
    """An officer who acknowledged or resolved an alert is at its place now."""
    if user.role is not UserRole.OFFICER:
        return
    point = _spot_point(alert)
    duty = duty_of(user.id)
    if point is None or duty is None:
        return
    duty.access_point_id, duty.position_at = point.id, utcnow()


# Candidates -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnDuty:
    """An officer on duty who covers the alert's community, as the page and API show them."""

    user: User
    position: AccessPoint | None
    busy: int
    distance: float | None


def officers_on_duty(alert: Alert) -> list[OnDuty]:
    """The officers on duty covering the alert's community, the one to dispatch first."""
    rows = db.session.execute(
        select(User, OfficerDuty)
        .join(OfficerDuty, OfficerDuty.user_id == User.id)
        .join(user_communities, user_communities.c.user_id == User.id)
        .where(
            user_communities.c.community_id == alert.community_id,
            User.role == UserRole.OFFICER,
            User.disabled_at.is_(None),
            OfficerDuty.on_duty.is_(True),
        )
    ).all()
    if not rows:
        return []
    ids = [user.id for user, _duty in rows]
    busy = dict(
        db.session.execute(
            select(Alert.assignee_id, func.count())
            .where(Alert.assignee_id.in_(ids), Alert.status != AlertStatus.RESOLVED)
            .group_by(Alert.assignee_id)
        ).all()
    )
    points = {
        p.id: p
        for p in db.session.scalars(
            select(AccessPoint).where(
                AccessPoint.id.in_({d.access_point_id for _u, d in rows if d.access_point_id})
            )
        )
    }
    spot = alert_spot(alert)
    by_id: dict[str, OnDuty] = {}
    candidates = []
    for user, duty in rows:
        point = points.get(duty.access_point_id or "")
        # A position in another community is no position on this plan.
        if point is not None and point.community_id != alert.community_id:
            point = None
        position = _plan(point.plan_x, point.plan_y) if point else None
        far = distance(spot, position) if spot and position else None
        by_id[user.id] = OnDuty(user, point, int(busy.get(user.id, 0)), far)
        candidates.append(
            Candidate(user.id, user.display_name or user.username, position, by_id[user.id].busy)
        )
    return [by_id[c.officer_id] for c in ranked(spot, candidates)]


def candidate_answer(row: OnDuty) -> dict[str, Any]:
    return {
        "officer_id": row.user.id,
        "username": row.user.username,
        "name": row.user.display_name or row.user.username,
        "access_point_id": row.position.id if row.position else None,
        "access_point": row.position.name if row.position else None,
        "distance": row.distance,
        "busy": row.busy,
    }


# Dispatching ------------------------------------------------------------------------------------


def _dispatchable(scope: Scope, alert_id: str) -> Alert:
    alert = scope.get(Alert, alert_id)  # 404 for other communities and residents
    if scope.role not in DISPATCHERS:
        raise Forbidden(_l("Only officers and staff dispatch alerts."))
    return alert


def candidates(scope: Scope, alert_id: str) -> list[OnDuty]:
    return officers_on_duty(_dispatchable(scope, alert_id))


def dispatch(scope: Scope, alert_id: str, officer_id: str | None) -> Alert:
    """Assign the alert to ``officer_id`` (None: the nearest officer on duty).

    404: the alert is not the caller's to see; 403: a resident (who sees none anyway);
    409: the alert is resolved, the officer is off duty, or nobody is on duty;
    422: ``officer_id`` is no officer covering the alert's community.
    """
    alert = _dispatchable(scope, alert_id)
    if alert.status is AlertStatus.RESOLVED:
        raise Conflict(_l("The alert is resolved; it cannot be dispatched."))
    if officer_id is None:
        on_duty = officers_on_duty(alert)
        if not on_duty:
            raise Conflict(_l("No officer covering this community is on duty."))
        officer = on_duty[0].user
    else:
        officer = _covering_officer(alert, officer_id)
        duty = duty_of(officer.id)
        if duty is None or not duty.on_duty:
            raise Conflict(
                _l("%(officer)s is not on duty.", officer=officer.display_name or officer.username)
            )
    now = utcnow()
    alert.assignee_id, alert.assigned_at, alert.assigned_by_id = officer.id, now, scope.user.id
    alert.assignment_acknowledged_at = alert.dispatch_escalated_at = None
    alert.updated_at = now
    _step(alert, "dispatched", now, scope.user.id, f"To {officer.username}")
    audit.record(
        scope.user,
        "alert.dispatch",
        community_id=alert.community_id,
        target=alert,
        details={"officer_id": officer.id, "nearest": officer_id is None},
    )
    alert_channels.dispatch(alert, DeliveryReason.DISPATCHED, now)
    _publish_to_officer(alert, officer, now)
    return alert


def _covering_officer(alert: Alert, officer_id: str) -> User:
    officer = db.session.get(User, officer_id)
    covers = officer is not None and db.session.scalar(
        select(func.count())
        .select_from(user_communities)
        .where(
            user_communities.c.user_id == officer.id,
            user_communities.c.community_id == alert.community_id,
        )
    )
    if officer is None or officer.role is not UserRole.OFFICER or officer.disabled or not covers:
        message = _l("Choose an officer who covers this alert's community.")
        raise Invalid(message, errors={"officer_id": [str(message)]})
    return officer


def _step(alert: Alert, action: str, now: datetime, by: str | None, note: str | None) -> None:
    db.session.add(
        AlertHistory(
            community_id=alert.community_id,
            alert_id=alert.id,
            action=action,
            status=alert.status,
            by_user_id=by,
            at=now,
            note=note[:NOTE_CHARS] if note else None,
        )
    )


def _publish_to_officer(alert: Alert, officer: User, now: datetime) -> None:
    """The alert on the officer's own topic, QoS 1, after the commit; logged like the
    community's topic (``queued`` until the broker takes it)."""
    topic = officer_dispatch_topic(alert.community_id, officer.username)
    delivery = AlertDelivery(
        id=new_id(AlertDelivery.ID_PREFIX),
        community_id=alert.community_id,
        alert_id=alert.id,
        channel="mqtt",
        target=topic,
        reason=DeliveryReason.DISPATCHED.value,
        status=DeliveryStatus.QUEUED.value,
        attempts=1,
        created_at=now,
    )
    db.session.add(delivery)
    payload = alert_channels.encode(alert_channels.alert_payload(alert, DeliveryReason.DISPATCHED))
    on_acked = when_acked(alert_channels.TAKEN_BY_THE_BROKER, delivery_id=delivery.id)
    queue_message(db.session, OutgoingMessage(topic, payload, on_acked=on_acked))


def accept(scope: Scope, alert_id: str, note: str | None = None) -> Alert:
    """The assignee acknowledges the assignment (and the alert, while it is open): no
    escalation to the station. 403 for anyone else; 409 when there is nothing to accept."""
    alert = scope.get(Alert, alert_id)
    if alert.assignee_id != scope.user.id:
        raise Forbidden(_l("Only the officer this alert was dispatched to accepts it."))
    if alert.status is AlertStatus.RESOLVED or alert.assignment_acknowledged_at is not None:
        raise Conflict(_l("There is no dispatch of this alert to accept."))
    if alert.status is AlertStatus.OPEN:
        from server.alerts import service

        return service.acknowledge(scope, alert_id, note)
    now = utcnow()
    alert.assignment_acknowledged_at = alert.updated_at = now
    _step(alert, "dispatch_accepted", now, scope.user.id, (note or "").strip() or None)
    audit.record(scope.user, "alert.dispatch_accept", community_id=alert.community_id, target=alert)
    _move_to_alert(scope.user, alert)
    alert_channels.dispatch(alert, DeliveryReason.DISPATCH_ACCEPTED, now)
    return alert


def after_transition(user: User, alert: Alert, action: str, now: datetime) -> None:
    """Called by the alert's acknowledge and resolve: the assignee acknowledging it accepts
    the dispatch; an officer who acknowledged or resolved it is at its place now."""
    if alert.assignee_id == user.id and alert.assignment_acknowledged_at is None:
        alert.assignment_acknowledged_at = now
    if action in ("acknowledged", "resolved"):
        _move_to_alert(user, alert)


# Escalation -------------------------------------------------------------------------------------


def escalate_unacknowledged(now: datetime | None = None) -> int:
    """Escalate to the station each dispatch its officer did not acknowledge within the
    community's ``dispatch_ack_minutes`` (once per dispatch). A scheduled job (the worker's
    leader); returns how many; the caller commits."""
    now = now or utcnow()
    due = db.session.scalars(
        select(Alert).where(
            Alert.assignee_id.is_not(None),
            Alert.assignment_acknowledged_at.is_(None),
            Alert.dispatch_escalated_at.is_(None),
            Alert.status != AlertStatus.RESOLVED,
            Alert.assigned_at <= now - SHORTEST,
        )
    ).all()
    windows: dict[str, int] = {}
    escalated = 0
    for alert in due:
        if alert.community_id not in windows:
            community = db.session.get(Community, alert.community_id)
            settings = community_settings.effective(community.settings)
            windows[alert.community_id] = settings.dispatch_ack_minutes
        minutes = windows[alert.community_id]
        if alert.assigned_at is None or alert.assigned_at > now - timedelta(minutes=minutes):
            continue
        officer = db.session.get(User, alert.assignee_id)
        alert.dispatch_escalated_at = alert.updated_at = now
        name = officer.username if officer else "?"
        _step(
            alert,
            "dispatch_escalated",
            now,
            None,
            f"{name} did not acknowledge within {minutes} min: to the station",
        )
        alert_channels.dispatch(alert, DeliveryReason.DISPATCH_ESCALATED, now)
        escalated += 1
    return escalated
