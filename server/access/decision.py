"""The verify path shared by every credential: subject -> policy -> event -> open command.

A request at a door is served for a ``Door``: the requesting device with its access point
and community, read once per request (``server.api.verify`` builds it before the view).
Each credential side (``server.access.card``, ``face``, ``qr``, ``plate``) finds who is
presenting (or no one) and calls ``decide`` here, which asks ``gatekeeper.policy`` at this
instant, stores the access event, queues ``open`` for the requesting device on a grant
(published after the commit), and returns a ``Verdict``: the stored event, the decision,
and the body of docs/protocol.md section 3 that the door gets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache, cached_property
from typing import Any, Protocol

from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.orm import aliased

from gatekeeper import policy
from gatekeeper.cross_checks import Pass
from gatekeeper.doormodes import DoorModeKind
from gatekeeper.holidays import NO_HOLIDAYS
from gatekeeper.identity import mask_name
from gatekeeper.schedule import schedule_from_json
from gatekeeper.vocabulary import CredentialType, Decision, PersonRole, Reason
from hardware.protocol import Command
from server.access import antipassback
from server.access import doormodes as door_modes
from server.alerts import cross_checks
from server.alerts import rules as alert_rules
from server.community import holidays
from server.core import metrics
from server.devices import commands
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    AntiPassbackPair,
    Card,
    Community,
    Device,
    DoorMode,
    FaceGallery,
    Lease,
    Membership,
    Person,
    Unit,
    Vehicle,
    VisitorPass,
    WatchlistEntry,
    WorkerPermit,
    utcnow,
    worker_permit_access_points,
)
from server.models.ids import new_id

# What terminals show for each role (docs/protocol.md: subject.kind).
_SUBJECT_KIND = {
    PersonRole.OWNER: "resident",
    PersonRole.RESIDENT: "resident",
    PersonRole.ELDER: "resident",
    PersonRole.CHILD: "resident",
    PersonRole.TENANT: "tenant",
    PersonRole.WORKER: "worker",
}


@dataclass(frozen=True)
class Door:
    """The device a request comes from, with its access point and community."""

    device: Device
    point: AccessPoint
    community: Community
    # False when the door's statement found no holiday near today: the calendar is not read.
    holidays_near: bool = True
    # False when it found no lockdown in the community: the lockdowns are not read.
    lockdown_held: bool = True
    # False when the point is no gate of an anti-passback pair: the pairs are not read.
    in_gate_pair: bool = True
    # A face verify's: the versions of the community's gallery and watchlist, read with it.
    face_versions: FaceVersions | None = None

    @classmethod
    def of(cls, device: Device) -> Door:
        """The door of ``device``, which serves an access point (the caller checked)."""
        return cls(
            device=device,
            point=db.session.get(AccessPoint, device.access_point_id),
            community=db.session.get(Community, device.community_id),
        )

    @cached_property
    def lockdowns(self) -> list[Any]:
        """The lockdowns over the door's community now, read once per request (a pass asks
        before its use is spent, ``decide`` again before the event)."""
        if not self.lockdown_held:
            return []
        return door_modes.active_lockdowns(self.community.id)

    @cached_property
    def view(self) -> policy.AccessPointView:
        """The access point as the policy needs it, read once per request (its holidays are
        a query; a decision asks for it several times: the roles, a lockdown, a pass)."""
        return point_view(self.point, self.community, holidays_near=self.holidays_near)


@dataclass(frozen=True)
class FaceVersions:
    """What a face verify checks its caches against, read in the door's statement."""

    gallery: int  # ``face_galleries.version`` (0: none yet)
    watchlist: tuple[int, datetime | None]  # entries and their latest change


@cache
def _door_statement(face: bool) -> Select[Any]:
    """Built once: constructing a statement costs more Python than running it on the hot path
    (its cache key is kept on it too). Beside the rows, EXISTS flags that spare the request
    the queries of what is rare (a holiday near today, a lockdown, a gate pair); for a face
    verify also the versions of the gallery and the watchlist."""
    community_id, point_id = Device.community_id, Device.access_point_id
    lockdown = (
        select(DoorMode.id)
        .where(
            DoorMode.community_id == community_id,
            DoorMode.kind == DoorModeKind.LOCKDOWN,
            DoorMode.lifted_at.is_(None),
        )
        .exists()
    )
    gate_pair = (
        select(AntiPassbackPair.id)
        .where(
            AntiPassbackPair.community_id == community_id,
            or_(
                AntiPassbackPair.entry_point_id == point_id,
                AntiPassbackPair.exit_point_id == point_id,
            ),
        )
        .exists()
    )
    columns: list[Any] = [
        Device,
        AccessPoint,
        Community,
        holidays.near_clause(community_id, point_id),
        lockdown,
        gate_pair,
    ]
    if face:
        watchlist = WatchlistEntry.community_id == community_id
        columns += [
            select(FaceGallery.version)
            .where(FaceGallery.community_id == community_id)
            .scalar_subquery(),
            select(func.count()).select_from(WatchlistEntry).where(watchlist).scalar_subquery(),
            select(func.max(WatchlistEntry.updated_at)).where(watchlist).scalar_subquery(),
        ]
    return (
        select(*columns)
        .join(Community, Community.id == Device.community_id)
        .outerjoin(AccessPoint, AccessPoint.id == Device.access_point_id)
        .where(Device.id == bindparam("device_id"))
    )


class DoorReader:
    """A verify request's device read with its access point and community in one statement
    (``authenticate_device(header, find=reader.device)``), then its ``door()`` without
    another. ``face``: the statement also reads what a face verify checks its caches by."""

    def __init__(self, *, face: bool = False) -> None:
        self._face = face
        self._door: Door | None = None

    def device(self, device_id: str) -> Device | None:
        row = db.session.execute(
            _door_statement(self._face),
            {"device_id": device_id, **holidays.near_parameters(utcnow())},
        ).first()
        if row is None:
            return None
        # The door holds the rows: the session's identity map keeps them only while something
        # refers to them.
        if row[1] is not None:
            versions = None
            if self._face:
                versions = FaceVersions(int(row[6] or 0), (int(row[7]), row[8]))
            self._door = Door(
                device=row[0],
                point=row[1],
                community=row[2],
                holidays_near=bool(row[3]),
                lockdown_held=bool(row[4]),
                in_gate_pair=bool(row[5]),
                face_versions=versions,
            )
        return row[0]

    def door(self) -> Door:
        """The door of the device read, which serves an access point (the caller checked)."""
        if self._door is None:
            raise LookupError("no device with an access point was read")
        return self._door


@dataclass(frozen=True)
class Verdict:
    """What ``decide`` made of a presentation at a door."""

    event: AccessEvent  # added to the session (flushed by its next query), not yet committed
    decision: policy.AccessDecision
    body: dict[str, Any]  # the answer the door gets (docs/protocol.md section 3)

    @property
    def granted(self) -> bool:
        return self.decision.granted


def point_view(
    point: AccessPoint, community: Community, *, holidays_near: bool = True
) -> policy.AccessPointView:
    """The point as the policy reads it; its holidays are read unless ``holidays_near`` says
    that none is near today (``holidays.near_clause``)."""
    return policy.AccessPointView(
        id=point.id,
        kind=point.kind,
        zone=point.zone,
        building_id=point.building_id,
        schedule=schedule_from_json(point.schedule),
        time_zone=community.timezone,
        holidays=(
            holidays.calendar_for(point, community, utcnow()) if holidays_near else NO_HOLIDAYS
        ),
    )


def subject_of(
    person: Person,
    credential: policy.CredentialView | None,
    *,
    with_permit: bool = True,
    rows: SubjectRows | None = None,
) -> tuple[policy.Subject, str]:
    """What the policy needs about ``person`` (one query: memberships, leases and, unless
    ``with_permit`` is false, the worker permit with its access points), and the kind a
    terminal shows (``resident``, ``tenant``, ``worker``). ``rows``: those read already
    with the person (``person_with_subject``), with the permit."""
    found = rows if rows is not None else _subject_rows(person.id, with_permit)
    permit = None
    if found.permit is not None:
        schedule, valid_from, valid_until = found.permit
        permit = policy.WorkerPermit(
            access_point_ids=frozenset(found.permit_points),
            schedule=schedule_from_json(schedule),
            valid_from=valid_from,
            valid_until=valid_until,
        )
    memberships = list(found.memberships.values())
    subject = policy.Subject(
        person_id=person.id,
        status=person.status,
        valid_from=person.valid_from,
        valid_until=person.valid_until,
        memberships=tuple(
            policy.Membership(
                role=role,
                building_id=building_id,
                valid_from=valid_from,
                valid_until=valid_until,
            )
            for role, building_id, valid_from, valid_until in memberships
            if role is not PersonRole.TENANT
        ),
        leases=tuple(policy.LeaseWindow(*lease) for lease in found.leases.values()),
        worker_permit=permit,
        credential=credential,
    )
    kinds = [_SUBJECT_KIND[membership[0]] for membership in memberships]
    return subject, kinds[0] if kinds else "unknown"


def issuer_subject(person_id: str) -> policy.Subject | None:
    """Whether the issuer of a pass or a courier code still lives here: the person's
    ``policy.Subject`` from memberships and leases, no permit (one query, the person's row
    included); None when the person is gone."""
    found = _subject_rows(person_id, with_permit=False)
    if found.person is None:
        return None
    status, valid_from, valid_until = found.person
    return policy.Subject(
        person_id=person_id,
        status=status,
        valid_from=valid_from,
        valid_until=valid_until,
        memberships=tuple(
            policy.Membership(role=role, building_id=building_id, valid_from=start, valid_until=end)
            for role, building_id, start, end in found.memberships.values()
            if role is not PersonRole.TENANT
        ),
        leases=tuple(policy.LeaseWindow(*lease) for lease in found.leases.values()),
        worker_permit=None,
        credential=None,
    )


@dataclass
class SubjectRows:
    """A person's memberships, leases and worker permit, each once (by id, in the order read)."""

    memberships: dict[str, tuple[Any, ...]]
    leases: dict[str, tuple[Any, ...]]
    permit: tuple[Any, ...] | None = None
    permit_points: list[str] | None = None
    person: tuple[Any, ...] | None = None  # status, valid_from, valid_until; None: no person


@cache
def _subject_statement(with_permit: bool) -> Select[Any]:
    """The person's memberships, leases and (``with_permit``) permit joined side by side (a
    person has a few of each, so the product stays a handful of rows); built once."""
    membership_unit, lease_unit = aliased(Unit), aliased(Unit)
    query = (
        select(
            Membership.id,
            Membership.role,
            membership_unit.building_id,
            Membership.valid_from,
            Membership.valid_until,
            Lease.id,
            lease_unit.building_id,
            Lease.starts_at,
            Lease.ends_at,
            Person.status,
            Person.valid_from,
            Person.valid_until,
        )
        .select_from(Person)
        .outerjoin(Membership, Membership.person_id == Person.id)
        .outerjoin(membership_unit, membership_unit.id == Membership.unit_id)
        .outerjoin(Lease, Lease.person_id == Person.id)
        .outerjoin(lease_unit, lease_unit.id == Lease.unit_id)
        .where(Person.id == bindparam("person_id"))
    )
    if with_permit:
        query = (
            query.add_columns(
                WorkerPermit.id,
                WorkerPermit.schedule,
                WorkerPermit.valid_from,
                WorkerPermit.valid_until,
                worker_permit_access_points.c.access_point_id,
            )
            .outerjoin(WorkerPermit, WorkerPermit.person_id == Person.id)
            .outerjoin(
                worker_permit_access_points,
                worker_permit_access_points.c.permit_id == WorkerPermit.id,
            )
        )
    return query


def _subject_rows(person_id: str, with_permit: bool) -> SubjectRows:
    """One statement for what three did (memberships, leases, permit), the person's own
    status and window with them."""
    rows = db.session.execute(_subject_statement(with_permit), {"person_id": person_id})
    return _collected(rows, with_permit)


def person_with_subject(person_id: str) -> tuple[Person | None, SubjectRows]:
    """The person (a row of the session) and what ``subject_of`` needs about them, with the
    permit, in one statement: a card's, a car's or a face's holder is read with it."""
    rows = db.session.execute(_person_statement(), {"person_id": person_id}).all()
    person = rows[0][-1] if rows else None
    return person, _collected(rows, with_permit=True)


@cache
def _person_statement() -> Select[Any]:
    return _subject_statement(True).add_columns(Person)


def _collected(rows: Iterable[Any], with_permit: bool) -> SubjectRows:
    found = SubjectRows(memberships={}, leases={})
    points: dict[str, None] = {}
    for row in rows:
        found.person = found.person or (row[9], row[10], row[11])
        if row[0] is not None:
            found.memberships.setdefault(row[0], (row[1], row[2], row[3], row[4]))
        if row[5] is not None:
            found.leases.setdefault(row[5], (row[6], row[7], row[8]))
        if with_permit and row[12] is not None:
            found.permit = found.permit or (row[13], row[14], row[15])
            if row[16] is not None:
                points.setdefault(row[16], None)
    found.permit_points = list(points)
    return found


@dataclass(frozen=True)
class Presented:
    """What was presented at the door: the credential type, the person (if known), details."""

    credential_type: CredentialType
    person: Person | None = None
    credential: policy.CredentialView | None = None
    unknown_reason: Reason | None = None  # why nobody was found (unknown_card ...)
    unknown_rule: str = "credential.unknown"  # the rule name stored with that denial
    details: dict[str, Any] | None = None
    # An unknown face's template (encrypted), kept on the event to cluster strangers.
    template_encrypted: bytes | None = None
    # A visitor pass, with the decision its own rules already made (server.access.qr).
    visitor_pass: VisitorPass | None = None
    decision: policy.AccessDecision | None = None
    # Cars: a person's grant reads ``resident_vehicle`` rather than ``resident``/``tenant``.
    grant_reasons: dict[Reason, Reason] | None = None
    # The person's memberships, leases and permit, when read with them (person_with_subject).
    subject_rows: SubjectRows | None = None
    # Plates: the unknown faces at the barrier's gate around the read, read with its
    # candidates (the plate-against-face check then reads nothing).
    strangers_around: tuple[Pass, ...] | None = None


class HeldRow(Protocol):
    """A card or a car as ``held_credential`` reads it (a row, or a plain record of one)."""

    person_id: str
    disabled_at: datetime | None
    valid_from: datetime | None
    valid_until: datetime | None


def held_credential(kind: CredentialType, row: Card | Vehicle | HeldRow, **more: Any) -> Presented:
    """A card or a car as its holder's credential, with the row's own window and ``disabled``.

    ``more`` is the rest of the ``Presented`` (``details``, ``grant_reasons``).
    """
    person, rows = person_with_subject(row.person_id)
    return Presented(
        kind,
        person=person,
        subject_rows=rows,
        credential=policy.CredentialView(
            kind=kind,
            disabled=row.disabled_at is not None,
            valid_from=row.valid_from,
            valid_until=row.valid_until,
        ),
        **more,
    )


def _door_modes_hold(
    door: Door, presented: Presented, at: datetime
) -> policy.AccessDecision | None:
    """The ``lockdown`` denial of a known presenter (a person, a visitor's pass) while a
    lockdown that does not exempt them holds over the door (``gatekeeper.doormodes``);
    unidentified presentations keep their own reason (``unknown_face`` ...)."""
    if presented.person is None and presented.visitor_pass is None:
        return None
    if presented.person is None:  # a visitor's pass has no role
        return door_modes.lockdown_for(door, frozenset(), at)
    person, rows = presented.person, presented.subject_rows
    return door_modes.lockdown_for(
        door, None, at, subject=lambda: subject_of(person, None, rows=rows)[0]
    )


def decide(
    door: Door,
    presented: Presented,
    *,
    direction: str | None = None,
    at: datetime | None = None,
) -> Verdict:
    """Decide, store the event (the spoofing rule sees it), queue ``open`` on a grant; the
    caller commits."""
    at = at or utcnow()
    device, point = door.device, door.point
    person = presented.person
    kind = None
    if presented.decision is not None:
        decision = presented.decision
        rule = decision.rule.value
    elif person is None:
        decision = policy.AccessDecision(
            Decision.DENY,
            presented.unknown_reason or Reason.NOT_AUTHORIZED_HERE,
            policy.Rule.NO_ROLE,
        )
        rule = presented.unknown_rule
    else:
        subject, kind = subject_of(person, presented.credential, rows=presented.subject_rows)
        decision = policy.decide_access(subject, door.view, at)
        rule = decision.rule.value
        if decision.granted and presented.grant_reasons:
            reason = presented.grant_reasons.get(decision.reason, decision.reason)
            decision = replace(decision, reason=reason)
    held = _door_modes_hold(door, presented, at)
    if held is not None:
        decision, rule = held, held.rule.value
    details = dict(presented.details or {})
    holder = person or antipassback.car_holder(presented)  # a known car let out has no person
    if holder is not None and door.in_gate_pair:  # entered and not yet out (docs/policy.md)
        decision = antipassback.check(
            point, holder, presented.credential_type, direction, at, decision, details
        )
        rule = decision.rule.value if decision.reason is Reason.ANTI_PASSBACK else rule
    if decision.detail:
        details["detail"] = decision.detail
    event = AccessEvent(
        # Its id now, so that nothing waits for a flush of its own: the first query that
        # needs it (the rules below, when they read) or the open command's flushes it.
        id=new_id(AccessEvent.ID_PREFIX),
        community_id=device.community_id,
        occurred_at=at,
        access_point_id=point.id,
        device_id=device.id,
        credential_type=presented.credential_type,
        direction=direction,
        decision=decision.decision,
        reason=decision.reason.value,
        rule=rule,
        person_id=person.id if person else None,
        pass_id=presented.visitor_pass.id if presented.visitor_pass else None,
        details=details,
        template_encrypted=presented.template_encrypted,
    )
    db.session.add(event)
    metrics.access_decided(
        presented.credential_type.value, decision.decision.value, decision.reason.value
    )
    alert_rules.after_access_event(event)  # repeated spoofing at this door
    # Plate against face, card against the walk.
    cross_checks.after_access_event(event, strangers_around=presented.strangers_around)
    if decision.granted:
        commands.issue(device, Command.OPEN, event_id=event.id, open_ms=point.open_ms)
    body: dict[str, Any] = {
        "decision": decision.decision.value,
        "reason": decision.reason.value,
        "event_id": event.id,
    }
    if person is not None:
        body["subject"] = {"kind": kind, "display_name": mask_name(person.name)}
    elif presented.visitor_pass is not None:
        body["subject"] = {
            "kind": "visitor",
            "display_name": mask_name(presented.visitor_pass.guest_name),
        }
    if decision.granted:
        body["open_ms"] = point.open_ms
    return Verdict(event=event, decision=decision, body=body)
