"""Door modes: lockdowns and emergency releases, started and lifted by staff and officers.

The rules are ``gatekeeper.doormodes``; this room stores the modes (``DoorMode``), reads the
active ones of a community on every decision (``lockdown_for``: the verify path, passes,
remote opens and the console's buttons all ask it), and tells the doors:

- starting a **lockdown** sends ``lock`` to every enabled door and barrier device it covers
  (not to a door an emergency release holds open); lifting it sends nothing;
- starting an **emergency release** sends ``unlock_hold`` to the doors it covers and raises a
  critical ``emergency_release`` alert (staff and officers); lifting it sends ``lock`` to the
  doors no other release still holds;
- a device that comes back online (``server.worker.ingest``) is sent the state its point is
  held in, again.

Only staff, administrators and officers of the community start or lift a mode; every start
and lift is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import selectinload

from gatekeeper import doormodes as rules
from gatekeeper import policy
from gatekeeper.doormodes import DoorModeKind, DoorModeView, ModeScope
from gatekeeper.vocabulary import (
    DEVICE_KINDS_WITH_ACCESS_POINT,
    AlertType,
    PersonRole,
    Reason,
    Severity,
)
from hardware.protocol import Command
from server.access import decision as verify_path
from server.alerts.service import raise_alert
from server.alerts.summaries import N_, summary
from server.core import audit
from server.core.errors import Conflict, Forbidden, Invalid
from server.core.scope import Scope
from server.core.wording import word
from server.devices import commands
from server.extensions import db
from server.models import (
    AccessPoint,
    Building,
    Community,
    Device,
    DeviceCommand,
    DoorMode,
    UserRole,
    utcnow,
)

if TYPE_CHECKING:
    from server.access.decision import Door

# The commands a console may send that would let someone through a locked-down door.
OPENING_COMMANDS = frozenset({Command.OPEN, Command.UNLOCK_HOLD})
REASON_MAX = 200
_PERSON_ROLES = frozenset(role.value for role in PersonRole)


def view_of(row: DoorMode) -> DoorModeView:
    return DoorModeView(
        id=row.id,
        kind=row.kind,
        scope=row.scope,
        target_id=row.target_id,
        access_point_ids=frozenset(row.access_point_ids),
        started_at=row.started_at,
        lifted_at=row.lifted_at,
        exempt_roles=frozenset(row.exempt_roles or ()),
        reason=row.reason,
    )


def active_rows(community_id: str) -> list[DoorMode]:
    """The modes that hold now in a community, oldest first (one indexed query)."""
    return list(db.session.scalars(_active_statement(), {"community_id": community_id}))


@cache
def _active_statement() -> Select[Any]:
    """Built once: every verify asks for the lockdowns."""
    return (
        select(DoorMode)
        .where(DoorMode.community_id == bindparam("community_id"), DoorMode.lifted_at.is_(None))
        .options(selectinload(DoorMode.access_points))
        .order_by(DoorMode.started_at, DoorMode.id)
    )


def active_lockdowns(community_id: str) -> list[DoorModeView]:
    """The lockdowns that hold now in a community (``Door.lockdowns`` keeps them for a
    request)."""
    return [m for m in active_views(community_id) if m.kind is DoorModeKind.LOCKDOWN]


def active_views(community_id: str) -> list[DoorModeView]:
    # A mode whose chosen points are all gone (deleted: their rows cascade) covers nothing.
    return [
        view_of(row)
        for row in active_rows(community_id)
        if row.scope is not ModeScope.ACCESS_POINT or row.access_points
    ]


def lockdown_for(
    door: Door,
    roles: frozenset[str] | None,
    at: datetime,
    *,
    subject: Callable[[], policy.Subject] | None = None,
) -> policy.AccessDecision | None:
    """The ``lockdown`` denial for a presenter at ``door``, or ``None``.

    ``roles`` are the presenter's roles; or give ``subject``, which makes the person's
    ``policy.Subject``: it is called (and their roles read) only when a lockdown holds.
    """
    modes = door.lockdowns
    if not modes:
        return None
    if roles is None:
        roles = rules.roles_of(subject(), at) if subject is not None else frozenset()
    return rules.lockdown_decision(modes, door.view, at, roles)


def _point_lockdown(
    point: AccessPoint, roles: frozenset[str], at: datetime
) -> policy.AccessDecision | None:
    community = db.session.get(Community, point.community_id)
    modes = [m for m in active_views(community.id) if m.kind is DoorModeKind.LOCKDOWN]
    if not modes:
        return None
    return rules.lockdown_decision(modes, verify_path.point_view(point, community), at, roles)


def _locked_down(point: AccessPoint) -> Forbidden:
    return Forbidden(
        _l(
            "'%(name)s' is locked down: only the roles the lockdown names may open it.",
            name=point.name,
        ),
        reason=Reason.LOCKDOWN.value,
    )


def remote_open_lockdown(
    scope: Scope, point: AccessPoint, subject: policy.Subject | None, at: datetime
) -> policy.AccessDecision | None:
    """The ``lockdown`` denial of an opening ``scope``'s account asks for from afar (a remote
    open, an intercom answer), or ``None``: a resident is judged by their person's roles
    (``subject``; none without a person), staff and officers by their account."""
    if subject is not None:
        roles = rules.roles_of(subject, at)
    elif scope.role is UserRole.RESIDENT:
        roles = frozenset()
    else:
        roles = frozenset({rules.exempt_account(scope.role.value)})
    return _point_lockdown(point, roles, at)


def refuse_remote_open(
    scope: Scope, point: AccessPoint, subject: policy.Subject | None, at: datetime
) -> None:
    """403 ``lockdown`` for a remote open a lockdown does not exempt
    (``remote_open_lockdown``)."""
    if remote_open_lockdown(scope, point, subject, at) is not None:
        raise _locked_down(point)


def command_access_point(
    scope: Scope, access_point_id: str, command: Command
) -> list[DeviceCommand]:
    """``commands.command_access_point``, refused (403 ``lockdown``) for ``open`` and
    ``unlock_hold`` while a lockdown that does not name the caller's account holds."""
    point = scope.get(AccessPoint, access_point_id)
    if command in OPENING_COMMANDS:
        refuse_remote_open(scope, point, None, utcnow())
    return commands.command_access_point(scope, point.id, command)


def command_device(
    scope: Scope, device_id: str, command: Command, text: str | None = None
) -> DeviceCommand:
    """``commands.command_device``, with the lockdown's refusal of ``command_access_point``."""
    device = scope.get(Device, device_id)
    if command in OPENING_COMMANDS and device.access_point_id is not None:
        point = db.session.get(AccessPoint, device.access_point_id)
        refuse_remote_open(scope, point, None, utcnow())
    return commands.command_device(scope, device.id, command, text)


# Starting and lifting ------------------------------------------------------------------------


def _invalid(field: str, message: Any, detail: Any = None) -> Invalid:
    return Invalid(detail or message, errors={field: [str(message)]})


def _target(community: Community, scope_kind: ModeScope, data: dict[str, Any]) -> dict[str, Any]:
    """The access points or building the mode covers, checked to be the community's (422):
    scope ``access_point`` takes 1 to 100 points, each once."""
    point_ids, building_id = list(data.get("access_point_ids") or ()), data.get("building_id")
    if scope_kind is ModeScope.ACCESS_POINT:
        if building_id:
            raise _invalid("building_id", _l("Give access points only."))
        if not 1 <= len(point_ids) <= rules.POINTS_MAX:
            raise _invalid(
                "access_point_ids",
                _l("Choose 1 to 100 access points."),
                _l("Choose the access points of this community."),
            )
        if len(set(point_ids)) != len(point_ids):
            raise _invalid("access_point_ids", _l("An access point is listed twice."))
        found = {
            point.id: point
            for point in db.session.scalars(
                select(AccessPoint).where(
                    AccessPoint.id.in_(point_ids), AccessPoint.community_id == community.id
                )
            )
        }
        unknown = [i for i in point_ids if i not in found]
        if unknown:
            raise _invalid(
                "access_point_ids",
                _l("Not an access point of this community: %(points)s", points=", ".join(unknown)),
                _l("Choose the access points of this community."),
            )
        return {"access_points": [found[i] for i in point_ids]}
    if scope_kind is ModeScope.BUILDING:
        if point_ids:
            raise _invalid("access_point_ids", _l("Give a building only."))
        building = db.session.scalar(
            select(Building).where(
                Building.id == (building_id or ""), Building.community_id == community.id
            )
        )
        if building is None:
            raise _invalid(
                "building_id",
                _l("No building with this id in the community."),
                _l("Choose a building of this community."),
            )
        return {"building_id": building.id}
    if point_ids or building_id:
        field = "access_point_ids" if point_ids else "building_id"
        raise _invalid(field, _l("A mode of the whole community names no door or building."))
    return {}


def _exempt_roles(kind: DoorModeKind, data: dict[str, Any]) -> list[str]:
    given = data.get("exempt_roles")
    if kind is DoorModeKind.EMERGENCY_RELEASE:
        if given:
            raise _invalid("exempt_roles", _l("An emergency release exempts no one: it opens."))
        return []
    roles = list(rules.DEFAULT_EXEMPT) if given is None else list(given)
    unknown = [r for r in roles if r not in rules.EXEMPT_CHOICES]
    if unknown:
        raise _invalid(
            "exempt_roles",
            _l("One of %(choices)s.", choices=", ".join(rules.EXEMPT_CHOICES)),
        )
    return sorted(set(roles), key=rules.EXEMPT_CHOICES.index)


def require_may_start(scope: Scope) -> None:
    """403 unless staff, an administrator or an officer (never a resident's account)."""
    if scope.role not in (UserRole.ADMIN, UserRole.STAFF, UserRole.OFFICER):
        raise Forbidden(_l("Only staff and officers start or lift a lockdown or a release."))


def start(scope: Scope, community_id: str, data: dict[str, Any]) -> DoorMode:
    """Start a lockdown or an emergency release (validated, stored, audited; doors told after
    the commit). 404 for a community out of scope, 403 for a resident, 422 for bad input."""
    community = scope.get(Community, community_id)
    require_may_start(scope)
    kind = DoorModeKind(data["kind"])
    scope_kind = ModeScope(data["scope"])
    reason = (data.get("reason") or "").strip()
    if not reason:
        raise _invalid("reason", _l("Must not be blank."), _l("Say why."))
    if len(reason) > REASON_MAX:
        raise _invalid("reason", _l("At most %(n)s characters.", n=REASON_MAX))
    target = _target(community, scope_kind, data)
    exempt = _exempt_roles(kind, data)
    now = utcnow()
    row = DoorMode(
        community_id=community.id,
        kind=kind,
        scope=scope_kind,
        reason=reason,
        exempt_roles=exempt,
        started_by_user_id=scope.user.id,
        started_at=now,
        **target,
    )
    db.session.add(row)
    db.session.flush()
    sent = _tell_doors(row, scope.user.id, now)
    audit.record(
        scope.user,
        f"door_mode.{kind.value}.start",
        community_id=community.id,
        target=row,
        details={
            "scope": scope_kind.value,
            "target_id": row.target_id,
            "access_point_ids": row.access_point_ids,
            "reason": reason,
            "exempt_roles": exempt,
            "commands": [c.id for c in sent],
        },
    )
    if kind is DoorModeKind.EMERGENCY_RELEASE:
        raise_alert(
            community_id=community.id,
            type=AlertType.EMERGENCY_RELEASE,
            severity=Severity.CRITICAL,
            summary=summary(
                N_("Emergency release of %(where)s: %(reason)s"),
                where=target_name(row),
                reason=reason,
            ),
            # One chosen door: the alert names it; several: the evidence lists them.
            access_point_id=ids[0] if len(ids := row.access_point_ids) == 1 else None,
            evidence={
                "door_mode_id": row.id,
                "access_point_ids": ids,
                "commands": [c.id for c in sent],
            },
            dedup_key=f"emergency_release:{row.id}",
        )
    return row


def lift(scope: Scope, mode_id: str) -> DoorMode:
    """Lift a mode: a lockdown sends nothing; a release sends ``lock`` where no other release
    holds the door. 409 when already lifted."""
    row = scope.get(DoorMode, mode_id)
    require_may_start(scope)
    if row.lifted_at is not None:
        raise Conflict(_l("This %(kind)s was already lifted.", kind=word(row.kind)))
    now = utcnow()
    row.lifted_at = now
    row.lifted_by_user_id = scope.user.id
    db.session.flush()
    sent: list[DeviceCommand] = []
    if row.kind is DoorModeKind.EMERGENCY_RELEASE:
        sent = _tell_doors(row, scope.user.id, now)
    audit.record(
        scope.user,
        f"door_mode.{row.kind.value}.lift",
        community_id=row.community_id,
        target=row,
        details={"commands": [c.id for c in sent]},
    )
    return row


def _covered_points(row: DoorMode) -> list[AccessPoint]:
    query = select(AccessPoint).where(AccessPoint.community_id == row.community_id)
    if row.scope is ModeScope.ACCESS_POINT:
        query = query.where(AccessPoint.id.in_(row.access_point_ids))
    elif row.scope is ModeScope.BUILDING:
        query = query.where(AccessPoint.building_id == row.building_id)
    return list(db.session.scalars(query.order_by(AccessPoint.id)))


_STATE_COMMAND = {
    DoorModeKind.EMERGENCY_RELEASE: Command.UNLOCK_HOLD,
    DoorModeKind.LOCKDOWN: Command.LOCK,
    None: Command.LOCK,  # a release lifted over a door nothing else holds: locked again
}


def _tell_doors(row: DoorMode, user_id: str | None, at: datetime) -> list[DeviceCommand]:
    """Send each door ``row`` covers the state it is now held in (after ``row`` changed)."""
    community = db.session.get(Community, row.community_id)
    modes = active_views(community.id)
    sent: list[DeviceCommand] = []
    for point in _covered_points(row):
        state = rules.door_state(modes, verify_path.point_view(point, community), at)
        if row.kind is DoorModeKind.LOCKDOWN and state is not DoorModeKind.LOCKDOWN:
            continue  # a release holds this door open: it stays open
        command = _STATE_COMMAND[state]
        sent.extend(
            commands.issue(device, command, issued_by_user_id=user_id)
            for device in commands.actuators(point)
        )
    return sent


def on_device_online(device: Device) -> DeviceCommand | None:
    """A door or barrier back online while a mode holds over its point gets ``lock`` or
    ``unlock_hold`` again (it may have restarted unlocked, or missed the command)."""
    if device.access_point_id is None or device.kind not in DEVICE_KINDS_WITH_ACCESS_POINT:
        return None
    modes = active_views(device.community_id)
    if not modes:
        return None
    point = db.session.get(AccessPoint, device.access_point_id)
    community = db.session.get(Community, device.community_id)
    state = rules.door_state(modes, verify_path.point_view(point, community), utcnow())
    if state is None:
        return None
    return commands.issue(device, _STATE_COMMAND[state])


# Reading -------------------------------------------------------------------------------------


def listing(scope: Scope, community_id: str, active: bool | None = None) -> list[DoorMode]:
    """A community's modes, newest first: the active ones, the past ones, or all."""
    community = scope.get(Community, community_id)
    scope.require_read(DoorMode)
    query = scope.query(DoorMode).where(DoorMode.community_id == community.id)
    if active is True:
        query = query.where(DoorMode.lifted_at.is_(None))
    elif active is False:
        query = query.where(DoorMode.lifted_at.is_not(None))
    query = query.options(selectinload(DoorMode.access_points))
    return list(db.session.scalars(query.order_by(DoorMode.started_at.desc(), DoorMode.id)))


def active_in_scope(scope: Scope) -> list[DoorMode]:
    """The modes holding now in every community the caller sees (the consoles' banner)."""
    if not scope.sees(DoorMode):
        return []
    return list(
        db.session.scalars(
            scope.query(DoorMode)
            .where(DoorMode.lifted_at.is_(None))
            .order_by(DoorMode.started_at.desc(), DoorMode.id)
            .limit(20)
        )
    )


def target_name(row: DoorMode) -> str:
    """What the mode covers, in words: the chosen access points' names (by name), the
    building's, or the community's."""
    if row.scope is ModeScope.ACCESS_POINT:
        return "、".join(point.name for point in row.access_points) or "—"
    if row.scope is ModeScope.BUILDING and row.building_id:
        building = db.session.get(Building, row.building_id)
        return building.name if building else row.building_id
    community = db.session.get(Community, row.community_id)
    return community.name if community else row.community_id


def exempt_words(row: DoorMode) -> list[str]:
    """The exempt roles in words (person roles and accounts)."""
    shown = []
    for role in row.exempt_roles or ():
        if role in _PERSON_ROLES:
            shown.append(word(PersonRole(role)))
        elif role == rules.STAFF:
            shown.append(word(UserRole.STAFF))
        elif role == rules.OFFICER:
            shown.append(word(UserRole.OFFICER))
        else:
            shown.append(role)
    return shown
