"""Door modes: a lockdown or an emergency release over chosen access points, a building or a
whole community, and what they mean at a door (``docs/policy.md``, "Door modes").

Pure: the server reads the modes from its database and passes them here as
:class:`DoorModeView`. A **lockdown** denies every known presenter (a person by any
credential, a visitor's pass, a remote open) ``lockdown``, unless one of their roles is among
the roles it names; doors it covers are sent ``lock``. An **emergency release** holds doors
open (``unlock_hold``) until it is lifted; credentials are still decided and recorded. Where
both cover a door, the release wins at the door (life safety: the door stays open) and the
lockdown still decides every credential presented there (denied ``lockdown``).

Every window is half-open, ``[started_at, lifted_at)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gatekeeper.policy import (
    AccessDecision,
    AccessPointView,
    Rule,
    Subject,
)
from gatekeeper.schedule import require_aware
from gatekeeper.vocabulary import Decision, PersonRole, Reason


class DoorModeKind(StrEnum):
    LOCKDOWN = "lockdown"
    EMERGENCY_RELEASE = "emergency_release"


class ModeScope(StrEnum):
    """What a door mode covers."""

    ACCESS_POINT = "access_point"  # chosen access points (one or several)
    BUILDING = "building"
    COMMUNITY = "community"


# The accounts that may be named in a lockdown's exempt roles, besides the person roles:
# staff (and administrators, who count as staff) and officers opening from the console.
STAFF = "staff"
OFFICER = "officer"
ACCOUNT_ROLES = (STAFF, OFFICER)
EXEMPT_CHOICES: tuple[str, ...] = (*(role.value for role in PersonRole), *ACCOUNT_ROLES)
# What a lockdown exempts when its starter names nothing.
DEFAULT_EXEMPT: tuple[str, ...] = ACCOUNT_ROLES
# The most access points one mode of scope ``access_point`` may choose.
POINTS_MAX = 100


@dataclass(frozen=True, slots=True)
class DoorModeView:
    """A door mode as the policy needs it.

    ``target_id`` is the building's id (scope ``building``), else ``None``;
    ``access_point_ids`` are the chosen access points (scope ``access_point``, at least one),
    else empty. A building's modes cover the points of that building only, not the shared
    gates and barriers.
    """

    id: str
    kind: DoorModeKind
    scope: ModeScope
    target_id: str | None
    started_at: datetime
    lifted_at: datetime | None = None
    exempt_roles: frozenset[str] = frozenset()
    reason: str = ""
    access_point_ids: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", DoorModeKind(self.kind))
        object.__setattr__(self, "scope", ModeScope(self.scope))
        if isinstance(self.exempt_roles, str):
            raise TypeError("exempt_roles is a collection of roles, not one string")
        object.__setattr__(self, "exempt_roles", frozenset(self.exempt_roles))
        if isinstance(self.access_point_ids, str):
            raise TypeError("access_point_ids is a collection of ids, not one string")
        object.__setattr__(self, "access_point_ids", frozenset(self.access_point_ids))
        require_aware(self.started_at, "door mode started_at")
        if self.lifted_at is not None:
            require_aware(self.lifted_at, "door mode lifted_at")
        if (self.scope is ModeScope.BUILDING) != (self.target_id is not None):
            raise ValueError("a building's mode names it; the others have no target building")
        if (self.scope is ModeScope.ACCESS_POINT) != bool(self.access_point_ids):
            raise ValueError("a mode of access points names them; the others name no point")

    def active(self, at: datetime) -> bool:
        """Whether the mode holds at ``at``: ``[started_at, lifted_at)``."""
        return self.started_at <= at and (self.lifted_at is None or at < self.lifted_at)

    def covers(self, point: AccessPointView) -> bool:
        """Whether the mode covers ``point`` (whatever the time)."""
        if self.scope is ModeScope.COMMUNITY:
            return True
        if self.scope is ModeScope.BUILDING:
            return point.building_id == self.target_id
        return point.id in self.access_point_ids


def holding(
    modes: Iterable[DoorModeView], point: AccessPointView, at: datetime, kind: DoorModeKind
) -> list[DoorModeView]:
    """The modes of ``kind`` that cover ``point`` and hold at ``at``, oldest first."""
    require_aware(at, "at")
    found = [m for m in modes if m.kind is kind and m.active(at) and m.covers(point)]
    return sorted(found, key=lambda m: (m.started_at, m.id))


def roles_of(subject: Subject, at: datetime) -> frozenset[str]:
    """The person roles ``subject`` holds at ``at``: memberships in their window, ``tenant``
    within a lease, ``worker`` within the permit's dates (wherever it lets them in)."""
    require_aware(at, "at")
    roles: set[str] = set()
    for membership in subject.memberships:
        if _within(at, membership.valid_from, membership.valid_until):
            roles.add(membership.role.value)
    if any(lease.covers(at) for lease in subject.leases):
        roles.add(PersonRole.TENANT.value)
    permit = subject.worker_permit
    if permit is not None and _within(at, permit.valid_from, permit.valid_until):
        roles.add(PersonRole.WORKER.value)
    return frozenset(roles)


def _within(at: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or start <= at) and (end is None or at < end)


def lockdown_decision(
    modes: Iterable[DoorModeView],
    point: AccessPointView,
    at: datetime,
    roles: Iterable[str] = (),
) -> AccessDecision | None:
    """``lockdown`` when a lockdown holds over ``point`` at ``at`` and does not exempt one of
    ``roles``; ``None`` when no lockdown stands in the way (the ordinary rules decide).

    Several lockdowns over one door each deny on their own: the presenter passes only if
    every one of them names one of their roles. A visitor's pass has no role (``roles``
    empty): a lockdown always denies it.
    """
    roles = frozenset(roles)
    for mode in holding(modes, point, at, DoorModeKind.LOCKDOWN):
        if not (roles & mode.exempt_roles):
            detail = f"the access point is locked down since {mode.started_at.isoformat()}"
            if mode.reason:
                detail += f": {mode.reason}"
            return AccessDecision(Decision.DENY, Reason.LOCKDOWN, Rule.LOCKDOWN, detail)
    return None


def exempt_account(account_role: str) -> str:
    """The exempt role an account's remote open is checked against: administrators count as
    staff; a resident's account is checked by the person's own roles instead."""
    return STAFF if account_role in ("admin", STAFF) else account_role


def door_state(
    modes: Iterable[DoorModeView], point: AccessPointView, at: datetime
) -> DoorModeKind | None:
    """What the doors of ``point`` should be held in at ``at``: ``EMERGENCY_RELEASE``
    (``unlock_hold``) when a release covers it, whatever else does; else ``LOCKDOWN``
    (``lock``) when a lockdown does; else ``None`` (ordinary operation)."""
    modes = list(modes)
    if holding(modes, point, at, DoorModeKind.EMERGENCY_RELEASE):
        return DoorModeKind.EMERGENCY_RELEASE
    if holding(modes, point, at, DoorModeKind.LOCKDOWN):
        return DoorModeKind.LOCKDOWN
    return None


__all__ = [
    "ACCOUNT_ROLES",
    "DEFAULT_EXEMPT",
    "EXEMPT_CHOICES",
    "OFFICER",
    "POINTS_MAX",
    "STAFF",
    "DoorModeKind",
    "DoorModeView",
    "ModeScope",
    "door_state",
    "exempt_account",
    "holding",
    "lockdown_decision",
    "roles_of",
]
