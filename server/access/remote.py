"""Remote open: staff open any door they run; a resident opens the doors their policy allows.

A resident letting in a courier may open what they could walk through themselves at this
moment (their building's doors, the shared gates, within the point's schedule). Every
remote open goes through the command service (stored, published after the commit, acked),
is audited, and leaves an access event (``remote`` / ``remote_open``) in the history.

What became of one's own latest opens (``recent_opens``, ``outcome``) is what the resident's
doors page shows, and follows live (the ``commands`` feed, their own commands only).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from gatekeeper import policy
from gatekeeper.vocabulary import CredentialType, Decision, Reason
from hardware.protocol import Command, CommandStatus
from server.access import doormodes as door_modes
from server.access.decision import point_view, subject_of
from server.core import audit, ratelimits
from server.core.errors import Conflict, Forbidden
from server.core.scope import Scope
from server.core.wording import reason_words, word
from server.devices import commands
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    Community,
    DeviceCommand,
    Person,
    UserRole,
    utcnow,
)


def _resident_may_open(scope: Scope, point: AccessPoint) -> Person:
    """The resident's person if the policy lets them through ``point`` now; else 403."""
    person = db.session.get(Person, scope.user.person_id) if scope.user.person_id else None
    if person is None:
        raise Conflict(_l("This account is not linked to a resident."))
    subject, _kind = subject_of(person, None)
    community = db.session.get(Community, point.community_id)
    decision = policy.decide_access(subject, point_view(point, community), utcnow())
    if not decision.granted:
        raise Forbidden(
            _l(
                "You cannot open '%(name)s' now: %(why)s.",
                name=point.name,
                why=reason_words(decision.reason),
            ),
            reason=decision.reason.value,
        )
    return person


def open_access_point(scope: Scope, access_point_id: str) -> list[DeviceCommand]:
    """Send ``open`` to every device of the point for this caller (staff or resident).

    The door is looked up in scope before the rate limit is spent: a door the caller cannot
    see answers 404 and neither spends nor reveals their budget.
    """
    point = scope.get(AccessPoint, access_point_id)
    ratelimits.spend_remote_open()
    person = None
    if scope.user.role is UserRole.RESIDENT:
        person = _resident_may_open(scope, point)
    elif not scope.can_write(AccessPoint):
        raise Forbidden(
            _l("This %(role)s account cannot open doors remotely.", role=word(scope.role))
        )
    subject = subject_of(person, None)[0] if person is not None else None
    door_modes.refuse_remote_open(scope, point, subject, utcnow())  # 403 lockdown
    devices = commands.actuators(point)
    if not devices:
        raise Conflict(_l("No enabled door or barrier device serves '%(name)s'.", name=point.name))
    now = utcnow()
    event = AccessEvent(
        community_id=point.community_id,
        occurred_at=now,
        access_point_id=point.id,
        device_id=devices[0].id,
        credential_type=CredentialType.REMOTE,
        decision=Decision.GRANT,
        reason=Reason.REMOTE_OPEN.value,
        rule=f"remote.{scope.role.value}",
        person_id=person.id if person else None,
        details={"user_id": scope.user.id, "username": scope.user.username},
    )
    db.session.add(event)
    db.session.flush()
    rows = commands.open_for(devices, event.id, point.open_ms, scope.user.id)
    audit.record(
        scope.user,
        "access_point.open",
        community_id=point.community_id,
        target=point,
        details={"commands": [r.id for r in rows], "event_id": event.id},
    )
    return rows


# How long the doors page shows what became of one's last open of a door.
RECENT_OPEN = timedelta(minutes=2)
_WAITING = frozenset({CommandStatus.QUEUED, CommandStatus.SENT})


def recent_opens(scope: Scope, now: datetime | None = None) -> dict[str, list[DeviceCommand]]:
    """The caller's own latest remote open of each door within ``RECENT_OPEN``: access point
    id -> the commands of that open (one per device of the door)."""
    since = (now or utcnow()) - RECENT_OPEN
    rows = db.session.scalars(
        select(DeviceCommand)
        .where(
            DeviceCommand.issued_by_user_id == scope.user.id,
            DeviceCommand.command == Command.OPEN,
            DeviceCommand.access_point_id.is_not(None),
            DeviceCommand.status_at >= since,  # indexed; never before the issue
            DeviceCommand.issued_at >= since,
        )
        .order_by(DeviceCommand.issued_at.desc(), DeviceCommand.id)
    )
    latest: dict[str, list[DeviceCommand]] = {}
    for row in rows:
        point = row.access_point_id or ""
        first = latest.setdefault(point, [row])[0]
        if row is not first and row.event_id is not None and row.event_id == first.event_id:
            latest[point].append(row)
    return latest


def outcome(statuses: list[CommandStatus]) -> str:
    """What became of one open (its commands' statuses): ``opened`` when a device acted,
    else ``waiting`` while one may still answer, else ``failed`` or ``expired``. The doors
    page's script (static/doors.js) reads it the same way."""
    if CommandStatus.ACKED in statuses:
        return "opened"
    if any(status in _WAITING for status in statuses):
        return "waiting"
    return "failed" if CommandStatus.FAILED in statuses else "expired"
