"""The access policy: may this subject pass this access point at this instant?

One function, :func:`decide_access`, takes plain values the server fills from its
database and returns an :class:`AccessDecision`: grant or deny, the reason code of
docs/protocol.md section 3, and the name of the rule that decided. ``docs/policy.md``
describes the rules, their order and every reason; this module is the truth.
Visitor passes have their own: :func:`decide_pass` at a door, and :func:`pass_status`,
the one rule for whether a pass is usable at an instant (what pages and lists show).

Every window in here is half-open, ``[from, until)``: it includes its first instant
and excludes its last, so a lease ending at 00:00 denies at 00:00:00 exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from gatekeeper.holidays import NO_HOLIDAYS, Calendar, Holiday
from gatekeeper.schedule import WeeklySchedule, require_aware, zone_info
from gatekeeper.vocabulary import (
    AccessPointKind,
    CredentialType,
    Decision,
    PassStatus,
    PersonRole,
    PersonStatus,
    Reason,
    Zone,
)


class Rule(StrEnum):
    """Which rule decided; stable, stored with the access event."""

    CREDENTIAL_DISABLED = "credential.disabled"
    CREDENTIAL_NOT_YET_VALID = "credential.not_yet_valid"
    CREDENTIAL_EXPIRED = "credential.expired"
    PERSON_SUSPENDED = "person.suspended"
    PERSON_MOVED_OUT = "person.moved_out"
    PERSON_PENDING = "person.pending"
    PERSON_NOT_YET_VALID = "person.not_yet_valid"
    PERSON_EXPIRED = "person.expired"
    RESIDENT_OWN_BUILDING = "resident.own_building"
    RESIDENT_SHARED_POINT = "resident.shared_point"
    RESIDENT_OTHER_BUILDING = "resident.other_building"
    RESIDENT_MEMBERSHIP_NOT_STARTED = "resident.membership_not_started"
    RESIDENT_MEMBERSHIP_ENDED = "resident.membership_ended"
    TENANT_LEASE = "tenant.lease"
    TENANT_LEASE_NOT_STARTED = "tenant.lease_not_started"
    TENANT_LEASE_EXPIRED = "tenant.lease_expired"
    TENANT_OTHER_BUILDING = "tenant.other_building"
    WORKER_PERMIT = "worker.permit"
    WORKER_NOT_LISTED = "worker.not_listed"
    WORKER_PERMIT_NOT_STARTED = "worker.permit_not_started"
    WORKER_PERMIT_EXPIRED = "worker.permit_expired"
    WORKER_SCHEDULE = "worker.schedule"
    POINT_SCHEDULE = "point.schedule"
    NO_ROLE = "subject.no_role"
    PASS_VALID = "pass.valid"
    PASS_REVOKED = "pass.revoked"
    PASS_ISSUER_GONE = "pass.issuer_gone"
    PASS_NOT_YET_VALID = "pass.not_yet_valid"
    PASS_EXPIRED = "pass.expired"
    PASS_NOT_LISTED = "pass.not_listed"
    PASS_USED_UP = "pass.used_up"
    PASS_OFFLINE = "pass.offline"  # a door admitted the pass offline and uploaded the use
    VEHICLE_EXIT = "vehicle.exit"  # a known car leaving: always let out
    HOLIDAY_CLOSED = "holiday.closed"  # a holiday closes the point all day
    HOLIDAY_HOURS = "holiday.hours"  # outside the hours a holiday gives the point
    # entered through a gate pair and not yet out (gatekeeper.antipassback, hard mode)
    ANTI_PASSBACK = "anti_passback.reentry"
    LOCKDOWN = "door_mode.lockdown"  # a lockdown holds over the point (gatekeeper.doormodes)
    # Temporary cars (gatekeeper.tariff, server.access.parking).
    PARKING_ENTRY = "parking.entry"  # an unknown plate let in on a ticket
    PARKING_FREE = "parking.free"  # its exit with nothing to pay
    PARKING_UNPAID = "parking.unpaid"  # its exit with a fee not yet paid
    PARKING_PAID = "parking.paid"  # its exit after the fee was paid
    # The door intercom: who answered the visitor's call, or that nobody did.
    INTERCOM_RESIDENT = "intercom.resident"
    INTERCOM_GUARD = "intercom.guard"
    INTERCOM_UNANSWERED = "intercom.unanswered"


# Roles that live in a unit and pass as residents (grant reason ``resident``).
RESIDENT_ROLES = frozenset(
    {PersonRole.OWNER, PersonRole.RESIDENT, PersonRole.ELDER, PersonRole.CHILD}
)

# When every role denies, the denial a person can act on wins: "not now" before "never".
DENIAL_PRECEDENCE = (
    Reason.OUTSIDE_SCHEDULE,
    Reason.LEASE_NOT_STARTED,
    Reason.LEASE_EXPIRED,
    Reason.NOT_AUTHORIZED_HERE,
)
_RANK = {reason: index for index, reason in enumerate(DENIAL_PRECEDENCE)}

# A credential switched off or outside its own window: the code closest to "this
# credential no longer works" for each type (docs/protocol.md has no generic one).
# Plates and faces read as unknown, so barriers and terminals treat them as unregistered
# (and no ``plate_blocked`` alert is raised for a resident's old car).
_DISABLED_REASON = {
    CredentialType.CARD: Reason.CARD_DISABLED,
    CredentialType.TAG: Reason.CARD_DISABLED,
    CredentialType.REMOTE: Reason.CARD_DISABLED,
    CredentialType.PLATE: Reason.UNKNOWN_PLATE,
    CredentialType.FACE: Reason.UNKNOWN_FACE,
    CredentialType.QR: Reason.PASS_REVOKED,
}
_NOT_YET_VALID_REASON = {**_DISABLED_REASON, CredentialType.QR: Reason.PASS_INVALID}
_EXPIRED_REASON = {**_DISABLED_REASON, CredentialType.QR: Reason.PASS_EXPIRED}


def _optional_aware(value: datetime | None, name: str) -> None:
    if value is not None:
        require_aware(value, name)


def _within(at: datetime, valid_from: datetime | None, valid_until: datetime | None) -> bool:
    return (valid_from is None or valid_from <= at) and (valid_until is None or at < valid_until)


@dataclass(frozen=True, slots=True)
class AccessPointView:
    """The access point as the policy needs it.

    ``building_id`` is ``None`` for shared points (perimeter gates, car barriers);
    ``schedule`` ``None`` means the point has no schedule of its own; ``time_zone`` is
    the community's IANA zone, in which every weekly schedule is read.
    """

    id: str
    kind: AccessPointKind
    zone: Zone
    building_id: str | None = None
    schedule: WeeklySchedule | None = None
    time_zone: str = "Asia/Shanghai"
    # The community's holiday calendar (at least the holidays covering this point today);
    # on a holiday it takes precedence over ``schedule`` (gatekeeper.holidays).
    holidays: Calendar = field(default=NO_HOLIDAYS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", AccessPointKind(self.kind))
        object.__setattr__(self, "zone", Zone(self.zone))
        zone_info(self.time_zone)  # fail at construction, not at the door

    @property
    def shared(self) -> bool:
        """True for points that belong to no building (gates, barriers)."""
        return self.building_id is None


@dataclass(frozen=True, slots=True)
class Membership:
    """A role in the community, with the building of its unit (``None``: no unit)."""

    role: PersonRole
    building_id: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", PersonRole(self.role))
        _optional_aware(self.valid_from, "membership valid_from")
        _optional_aware(self.valid_until, "membership valid_until")


@dataclass(frozen=True, slots=True)
class LeaseWindow:
    """A tenant's lease on a unit in ``unit_building_id``: ``[starts_at, ends_at)``.

    ``ends_at`` is the effective end: the earlier of the agreed end and an early end.
    """

    unit_building_id: str
    starts_at: datetime
    ends_at: datetime

    def __post_init__(self) -> None:
        require_aware(self.starts_at, "lease starts_at")
        require_aware(self.ends_at, "lease ends_at")

    def covers(self, at: datetime) -> bool:
        """Whether the lease is in force at ``at``."""
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True, slots=True)
class WorkerPermit:
    """Where and when a worker may pass: listed points, a weekly schedule, a date range.

    ``schedule`` ``None`` means any time of the week; ``valid_from``/``valid_until`` ``None``
    means open-ended on that side.
    """

    access_point_ids: frozenset[str]
    schedule: WeeklySchedule | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def __post_init__(self) -> None:
        if isinstance(self.access_point_ids, str):
            raise TypeError("access_point_ids is a collection of ids, not one string")
        object.__setattr__(self, "access_point_ids", frozenset(self.access_point_ids))
        _optional_aware(self.valid_from, "worker permit valid_from")
        _optional_aware(self.valid_until, "worker permit valid_until")


@dataclass(frozen=True, slots=True)
class CredentialView:
    """The credential presented (card, plate, face...): its switch and its own window."""

    kind: CredentialType
    disabled: bool = False
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", CredentialType(self.kind))
        _optional_aware(self.valid_from, "credential valid_from")
        _optional_aware(self.valid_until, "credential valid_until")


@dataclass(frozen=True, slots=True)
class Subject:
    """The person behind a credential, with everything that gives them a right to pass.

    Pass all the person's leases, past ones included (so a denial can say
    ``lease_expired`` rather than ``not_authorized_here``). ``credential`` ``None`` means
    no credential of its own is involved (e.g. a staff-initiated check).
    """

    person_id: str
    status: PersonStatus = PersonStatus.ACTIVE
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    memberships: tuple[Membership, ...] = ()
    leases: tuple[LeaseWindow, ...] = ()
    worker_permit: WorkerPermit | None = None
    credential: CredentialView | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", PersonStatus(self.status))
        object.__setattr__(self, "memberships", tuple(self.memberships))
        object.__setattr__(self, "leases", tuple(self.leases))
        _optional_aware(self.valid_from, "person valid_from")
        _optional_aware(self.valid_until, "person valid_until")


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """Grant or deny, the docs/protocol.md reason code, the rule that decided, and why in words."""

    decision: Decision
    reason: Reason
    rule: Rule
    detail: str | None = None

    @property
    def granted(self) -> bool:
        """True for a grant."""
        return self.decision is Decision.GRANT


def _grant(reason: Reason, rule: Rule, detail: str | None = None) -> AccessDecision:
    return AccessDecision(Decision.GRANT, reason, rule, detail)


def _deny(reason: Reason, rule: Rule, detail: str | None = None) -> AccessDecision:
    return AccessDecision(Decision.DENY, reason, rule, detail)


class _Clock:
    """The decision instant and the community's zone, for rules and their details."""

    __slots__ = ("at", "zone")

    def __init__(self, at: datetime, zone: ZoneInfo) -> None:
        self.at = at
        self.zone = zone

    def local(self, value: datetime) -> str:
        return value.astimezone(self.zone).isoformat(timespec="seconds")


def _credential_rule(credential: CredentialView | None, clock: _Clock) -> AccessDecision | None:
    if credential is None:
        return None
    kind = credential.kind
    if credential.disabled:
        return _deny(_DISABLED_REASON[kind], Rule.CREDENTIAL_DISABLED, f"the {kind} is disabled")
    if credential.valid_from is not None and clock.at < credential.valid_from:
        return _deny(
            _NOT_YET_VALID_REASON[kind],
            Rule.CREDENTIAL_NOT_YET_VALID,
            f"the {kind} is valid from {clock.local(credential.valid_from)}",
        )
    if credential.valid_until is not None and clock.at >= credential.valid_until:
        return _deny(
            _EXPIRED_REASON[kind],
            Rule.CREDENTIAL_EXPIRED,
            f"the {kind} expired at {clock.local(credential.valid_until)}",
        )
    return None


def _person_rule(subject: Subject, clock: _Clock) -> AccessDecision | None:
    status = subject.status
    if status is PersonStatus.SUSPENDED:
        return _deny(Reason.PERSON_SUSPENDED, Rule.PERSON_SUSPENDED, "the person is suspended")
    if status is PersonStatus.MOVED_OUT:
        return _deny(Reason.PERSON_SUSPENDED, Rule.PERSON_MOVED_OUT, "the person has moved out")
    if status is PersonStatus.PENDING:
        return _deny(
            Reason.PERSON_SUSPENDED,
            Rule.PERSON_PENDING,
            "the person is enrolled but not activated yet",
        )
    if subject.valid_from is not None and clock.at < subject.valid_from:
        return _deny(
            Reason.PERSON_SUSPENDED,
            Rule.PERSON_NOT_YET_VALID,
            f"the person may enter from {clock.local(subject.valid_from)}",
        )
    if subject.valid_until is not None and clock.at >= subject.valid_until:
        return _deny(
            Reason.PERSON_SUSPENDED,
            Rule.PERSON_EXPIRED,
            f"the person's access ended at {clock.local(subject.valid_until)}",
        )
    return None


def _resident_rule(
    subject: Subject, point: AccessPointView, clock: _Clock
) -> AccessDecision | None:
    memberships = [m for m in subject.memberships if m.role in RESIDENT_ROLES]
    if not memberships:
        return None
    if point.shared:
        relevant = memberships
    else:
        relevant = [m for m in memberships if m.building_id == point.building_id]
    if not relevant:
        return _deny(
            Reason.NOT_AUTHORIZED_HERE,
            Rule.RESIDENT_OTHER_BUILDING,
            "the person lives in another building",
        )
    at = clock.at
    for membership in relevant:
        if _within(at, membership.valid_from, membership.valid_until):
            rule = Rule.RESIDENT_SHARED_POINT if point.shared else Rule.RESIDENT_OWN_BUILDING
            return _grant(Reason.RESIDENT, rule, f"as {membership.role}")
    ended = [m for m in relevant if m.valid_until is not None and at >= m.valid_until]
    if ended:
        last = max(m.valid_until for m in ended if m.valid_until is not None)
        return _deny(
            Reason.NOT_AUTHORIZED_HERE,
            Rule.RESIDENT_MEMBERSHIP_ENDED,
            f"the membership ended at {clock.local(last)}",
        )
    first = min(m.valid_from for m in relevant if m.valid_from is not None)
    return _deny(
        Reason.NOT_AUTHORIZED_HERE,
        Rule.RESIDENT_MEMBERSHIP_NOT_STARTED,
        f"the membership starts at {clock.local(first)}",
    )


def _tenant_rule(subject: Subject, point: AccessPointView, clock: _Clock) -> AccessDecision | None:
    if not subject.leases:
        return None
    if point.shared:
        relevant = list(subject.leases)
    else:
        relevant = [
            lease for lease in subject.leases if lease.unit_building_id == point.building_id
        ]
    if not relevant:
        return _deny(
            Reason.NOT_AUTHORIZED_HERE,
            Rule.TENANT_OTHER_BUILDING,
            "the person rents in another building",
        )
    at = clock.at
    covering = [lease for lease in relevant if lease.covers(at)]
    if covering:
        until = max(lease.ends_at for lease in covering)
        return _grant(Reason.TENANT, Rule.TENANT_LEASE, f"lease until {clock.local(until)}")
    past = [lease for lease in relevant if at >= lease.ends_at]
    future = [lease for lease in relevant if at < lease.ends_at]  # not covering: not started
    next_start = min((lease.starts_at for lease in future), default=None)
    if not past and next_start is not None:
        return _deny(
            Reason.LEASE_NOT_STARTED,
            Rule.TENANT_LEASE_NOT_STARTED,
            f"the lease starts at {clock.local(next_start)}",
        )
    detail = f"the lease ended at {clock.local(max(lease.ends_at for lease in past))}"
    if next_start is not None:
        detail += f"; the next one starts at {clock.local(next_start)}"
    return _deny(Reason.LEASE_EXPIRED, Rule.TENANT_LEASE_EXPIRED, detail)


def _worker_rule(subject: Subject, point: AccessPointView, clock: _Clock) -> AccessDecision | None:
    permit = subject.worker_permit
    if permit is None:
        return None
    if point.id not in permit.access_point_ids:
        return _deny(
            Reason.NOT_AUTHORIZED_HERE,
            Rule.WORKER_NOT_LISTED,
            "this access point is not on the worker's permit",
        )
    at = clock.at
    if permit.valid_from is not None and at < permit.valid_from:
        return _deny(
            Reason.OUTSIDE_SCHEDULE,
            Rule.WORKER_PERMIT_NOT_STARTED,
            f"the permit starts at {clock.local(permit.valid_from)}",
        )
    if permit.valid_until is not None and at >= permit.valid_until:
        return _deny(
            Reason.OUTSIDE_SCHEDULE,
            Rule.WORKER_PERMIT_EXPIRED,
            f"the permit ended at {clock.local(permit.valid_until)}",
        )
    if permit.schedule is not None and not permit.schedule.contains(at, clock.zone):
        return _deny(
            Reason.OUTSIDE_SCHEDULE,
            Rule.WORKER_SCHEDULE,
            f"outside the worker's hours at {clock.local(at)}",
        )
    return _grant(Reason.WORKER, Rule.WORKER_PERMIT)


_ROLE_RULES: tuple[Callable[[Subject, AccessPointView, _Clock], AccessDecision | None], ...] = (
    _resident_rule,
    _tenant_rule,
    _worker_rule,
)


def _holiday_rule(holiday: Holiday, clock: _Clock) -> AccessDecision | None:
    """The denial of a point a holiday governs at this instant, or ``None`` while it is open."""
    if holiday.open_at(clock.at, clock.zone):
        return None
    if holiday.hours is None:
        return _deny(
            Reason.HOLIDAY_CLOSED,
            Rule.HOLIDAY_CLOSED,
            f"the access point is closed for {holiday.name} on {clock.local(clock.at)[:10]}",
        )
    return _deny(
        Reason.HOLIDAY_CLOSED,
        Rule.HOLIDAY_HOURS,
        f"the access point keeps {holiday.name} hours ({holiday.hours_text()}); "
        f"closed at {clock.local(clock.at)}",
    )


def _on_holiday(subject: Subject, holiday: Holiday | None) -> Subject:
    """On a holiday its effect replaces the weekly hours of a worker's permit."""
    permit = subject.worker_permit
    if holiday is None or permit is None or permit.schedule is None:
        return subject
    return replace(subject, worker_permit=replace(permit, schedule=None))


def _closed(
    point: AccessPointView, holiday: Holiday | None, clock: _Clock
) -> AccessDecision | None:
    """The denial of a point closed at this instant: on a holiday its effect, otherwise the
    point's weekly schedule; ``None`` while it is open."""
    if holiday is not None:
        return _holiday_rule(holiday, clock)
    if point.schedule is not None and not point.schedule.contains(clock.at, clock.zone):
        return _deny(
            Reason.OUTSIDE_SCHEDULE,
            Rule.POINT_SCHEDULE,
            f"the access point is closed at {clock.local(clock.at)}",
        )
    return None


def point_closed(point: AccessPointView, at: datetime) -> AccessDecision | None:
    """Whether ``point`` itself is closed at ``at`` (its holiday, then its weekly schedule),
    for presenters no role rule decides: a temporary car's entry (``server.access.parking``)."""
    require_aware(at, "at")
    clock = _Clock(at, zone_info(point.time_zone))
    return _closed(point, point.holidays.effect(point.id, at, clock.zone), clock)


def most_informative(denials: Iterable[AccessDecision]) -> AccessDecision | None:
    """The denial to report when every role denies: earliest in DENIAL_PRECEDENCE, then first."""
    return min(denials, key=lambda d: _RANK.get(d.reason, len(_RANK)), default=None)


def decide_access(subject: Subject, point: AccessPointView, at: datetime) -> AccessDecision:
    """Decide whether ``subject`` may pass ``point`` at the instant ``at`` (timezone-aware).

    In order: the credential's switch and window; the person's status and window; the
    roles (resident, tenant, worker; any grant wins); the point's own schedule, which
    can only turn a grant into ``outside_schedule``. Raises ValueError for a naive ``at``.
    On a holiday (``point.holidays``) the holiday's effect stands in for the point's
    schedule and for the weekly hours of a worker's permit (``holiday_closed``).
    """
    require_aware(at, "at")
    clock = _Clock(at, zone_info(point.time_zone))
    holiday = point.holidays.effect(point.id, at, clock.zone)
    subject = _on_holiday(subject, holiday)

    early = _credential_rule(subject.credential, clock) or _person_rule(subject, clock)
    if early is not None:
        return early

    denials: list[AccessDecision] = []
    for rule in _ROLE_RULES:
        outcome = rule(subject, point, clock)
        if outcome is None:
            continue
        if outcome.granted:
            # A closed point is closed to everyone; checked after the roles so that
            # someone with no right here hears "not_authorized_here", not "come back later".
            return _closed(point, holiday, clock) or outcome
        denials.append(outcome)

    return most_informative(denials) or _deny(
        Reason.NOT_AUTHORIZED_HERE,
        Rule.NO_ROLE,
        "no resident membership, lease or worker permit",
    )


def pass_window(valid_from: datetime, valid_until: datetime, at: datetime) -> PassStatus:
    """Where ``at`` falls in a pass's window ``[valid_from, valid_until)``: ``UPCOMING``
    before it, ``EXPIRED`` from its end on, ``ACTIVE`` within."""
    if at < valid_from:
        return PassStatus.UPCOMING
    if at >= valid_until:
        return PassStatus.EXPIRED
    return PassStatus.ACTIVE


def pass_status(
    *,
    revoked: bool,
    uses: int,
    max_uses: int,
    valid_from: datetime,
    valid_until: datetime,
    at: datetime,
) -> PassStatus:
    """Whether a visitor pass is usable at ``at``: the one rule behind every pass status.

    In order: revoked; no uses left (``USED``); then the window (``pass_window``). Only
    ``ACTIVE`` opens a door now (``decide_pass`` adds the issuer, the door list and the
    point's schedule). ``server.passes.service.status_condition`` is its SQL mirror.
    """
    require_aware(at, "at")
    if revoked:
        return PassStatus.REVOKED
    if uses >= max_uses:
        return PassStatus.USED
    return pass_window(valid_from, valid_until, at)


@dataclass(frozen=True, slots=True)
class PassView:
    """A visitor pass as the policy needs it.

    ``issuer`` is the resident who issued it (``None`` when staff did): a pass lives only
    while its issuer still lives here, so a tenant's passes die with the lease.
    """

    access_point_ids: frozenset[str]
    valid_from: datetime
    valid_until: datetime
    max_uses: int
    uses: int = 0
    revoked: bool = False
    issuer: Subject | None = None

    def __post_init__(self) -> None:
        if isinstance(self.access_point_ids, str):
            raise TypeError("access_point_ids is a collection of ids, not one string")
        object.__setattr__(self, "access_point_ids", frozenset(self.access_point_ids))
        require_aware(self.valid_from, "pass valid_from")
        require_aware(self.valid_until, "pass valid_until")

    def status(self, at: datetime) -> PassStatus:
        """``pass_status`` of this pass at ``at`` (the issuer is ``decide_pass``'s)."""
        return pass_status(
            revoked=self.revoked,
            uses=self.uses,
            max_uses=self.max_uses,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            at=at,
        )


def _issuer_gone(issuer: Subject, at: datetime) -> str | None:
    """Why the issuer no longer gives guests access, or ``None`` while they do."""
    if issuer.status is not PersonStatus.ACTIVE:
        return f"the issuing resident is {issuer.status}"
    if not _within(at, issuer.valid_from, issuer.valid_until):
        return "the issuing resident's access has ended"
    lives_here = any(
        m.role in RESIDENT_ROLES and _within(at, m.valid_from, m.valid_until)
        for m in issuer.memberships
    )
    if lives_here or any(lease.covers(at) for lease in issuer.leases):
        return None
    return "the issuing resident's lease or membership has ended"


def decide_pass(visitor_pass: PassView, point: AccessPointView, at: datetime) -> AccessDecision:
    """Decide whether a visitor pass opens ``point`` at ``at``.

    In order: revoked; the issuer gone (moved out, lease over); the window (not yet valid
    reads ``pass_invalid``, after it ``pass_expired``); the point not on the pass; no uses
    left; the point's own schedule (on a holiday, the holiday's effect instead). Counting
    the use is the caller's (atomic) job.

    The pass's own state comes from ``PassView.status`` and ``pass_window`` (the rule
    ``status_of`` shows), read in this order: the window before the uses, so a spent pass
    that has also ended reads ``pass_expired``.
    """
    require_aware(at, "at")
    clock = _Clock(at, zone_info(point.time_zone))
    status = visitor_pass.status(at)
    if status is PassStatus.REVOKED:
        return _deny(Reason.PASS_REVOKED, Rule.PASS_REVOKED, "the pass was revoked")
    if visitor_pass.issuer is not None:
        gone = _issuer_gone(visitor_pass.issuer, at)
        if gone is not None:
            return _deny(Reason.PASS_REVOKED, Rule.PASS_ISSUER_GONE, gone)
    window = pass_window(visitor_pass.valid_from, visitor_pass.valid_until, at)
    if window is PassStatus.UPCOMING:
        return _deny(
            Reason.PASS_INVALID,
            Rule.PASS_NOT_YET_VALID,
            f"the pass is valid from {clock.local(visitor_pass.valid_from)}",
        )
    if window is PassStatus.EXPIRED:
        return _deny(
            Reason.PASS_EXPIRED,
            Rule.PASS_EXPIRED,
            f"the pass expired at {clock.local(visitor_pass.valid_until)}",
        )
    if point.id not in visitor_pass.access_point_ids:
        return _deny(
            Reason.NOT_AUTHORIZED_HERE, Rule.PASS_NOT_LISTED, "this door is not on the pass"
        )
    if status is PassStatus.USED:  # not revoked, within the window: only the uses left
        return _deny(
            Reason.PASS_USED_UP,
            Rule.PASS_USED_UP,
            f"all {visitor_pass.max_uses} use(s) of the pass are spent",
        )
    holiday = point.holidays.effect(point.id, at, clock.zone)
    return _closed(point, holiday, clock) or _grant(Reason.VISITOR_PASS, Rule.PASS_VALID)
