"""Plates at the barrier: whose car, the decision, and which cars are inside.

``verify`` takes what the barrier camera at a ``Door`` read (the plate text, its confidence
and colour, the direction, an optional snapshot) and decides:

1. the text must be a plate (GA 36-2018, ``gatekeeper.plates``; a read with an ``I`` or
   ``O`` is taken as an OCR slip and only matched fuzzily); otherwise 422;
2. a **blocked** plate (exact, or a near read of one) is denied ``plate_blocked`` and
   raises an alert;
3. the plate is looked up among the community's **vehicles** and the plates on its
   **visitor passes**: exactly, or, when nothing matches exactly, by skeleton (the
   camera's confusions). A near match is used only when it is the only one, the camera's
   confidence is below the community's ``fuzzy_plate_max_confidence`` and the community
   has ``fuzzy_plates`` on; every fuzzy outcome is recorded in the event's details;
4. a vehicle goes through the owner's policy (a tenant's car within the lease, a worker's
   within the schedule; grants read ``resident_vehicle``); a visitor's car through its
   pass (window, access points; an entry spends a use, an exit never does and is always
   let out); anything else is ``unknown_plate``, stored with the snapshot so the guard
   can let the car in by remote open;
5. with a ``direction``, a granted entry opens a presence (the car is inside) and a
   granted exit closes it; an entry without an exit, or an exit without an entry, is
   recorded, not refused.

Of several passes for one plate, the one in force (``status_of``, the rule of
``gatekeeper.policy.pass_status``) is used, else the latest. The ``Verdict`` of
``server.access.decision.decide`` comes back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import CompoundSelect, Select, bindparam, literal, null, select, union_all, update

from gatekeeper import policy
from gatekeeper.cross_checks import Pass
from gatekeeper.plates import (
    MAX_DIFFERENCES,
    MatchKind,
    PlateIndex,
    differences,
    skeleton,
)
from gatekeeper.vocabulary import (
    AlertType,
    CredentialType,
    Decision,
    PassStatus,
    Reason,
    Severity,
)
from server.access import parking, snapshots
from server.access.decision import Door, Presented, Verdict, decide, held_credential
from server.access.qr import pass_decision
from server.alerts import cross_checks, summaries
from server.alerts.service import raise_alert
from server.community import settings as community_settings
from server.core.plates import checked_plate
from server.extensions import db
from server.models import (
    AccessEvent,
    BlockedPlate,
    Vehicle,
    VehiclePresence,
    VisitorPass,
    utcnow,
)
from server.passes.service import status_of

_VEHICLE_GRANTS = {Reason.RESIDENT: Reason.RESIDENT_VEHICLE, Reason.TENANT: Reason.RESIDENT_VEHICLE}
# A visitor's car can still leave this long after its pass ended (an overstay).
_RECENT_PASS = timedelta(days=30)


@dataclass(frozen=True)
class PlateRead:
    """What the camera sent."""

    plate: str
    confidence: float | None = None
    color: str | None = None
    direction: str | None = None
    snapshot: bytes | None = None


@dataclass(frozen=True)
class _Car:
    """A registered vehicle, as the decision needs it (``held_credential``'s fields)."""

    id: str
    plate: str
    person_id: str
    valid_from: datetime | None
    valid_until: datetime | None
    disabled_at: datetime | None


@dataclass(frozen=True, order=True)
class _Blocked:
    """A blocked plate: its text and why."""

    plate: str
    reason: str


@dataclass(frozen=True)
class _Candidates:
    """What shares the read's skeleton: cars and visitor passes by plate, blocked plates; and
    what a car's grant needs: the newest open presence (an id) of each plate in
    ``presences_of`` (the read and the cars' plates), and the unknown faces at the gate
    around the read."""

    found: dict[str, list[Any]]
    blocked: list[_Blocked]
    presences_of: frozenset[str]
    inside: dict[str, str]
    strangers: tuple[Pass, ...]


_VEHICLE, _PASS, _BLOCKED, _INSIDE, _STRANGER = "vehicle", "pass", "blocked", "inside", "stranger"


@cache
def _candidates_statement() -> CompoundSelect:
    """Cars, recent passes and blocked plates of a community on one skeleton (``key``), the
    open presences of the plate as read (``plate``) and of those cars, and the unknown faces
    at the gate around the read (``server.alerts.cross_checks.strangers_criteria``), as
    ``UNION ALL`` of five indexed look-ups; built once."""
    community_id, key = bindparam("community_id"), bindparam("key")
    vehicles = select(
        literal(_VEHICLE).label("source"),
        Vehicle.id,
        Vehicle.plate,
        Vehicle.person_id,
        Vehicle.valid_from,
        Vehicle.valid_until,
        Vehicle.disabled_at,
        null().label("reason"),
    ).where(Vehicle.community_id == community_id, Vehicle.skeleton == key)
    passes = select(
        literal(_PASS),
        VisitorPass.id,
        VisitorPass.plate,
        null(),
        null(),
        VisitorPass.valid_until,
        null(),
        null(),
    ).where(
        VisitorPass.community_id == community_id,
        VisitorPass.plate_skeleton == key,
        VisitorPass.valid_until > bindparam("passes_since", type_=VisitorPass.valid_until.type),
    )
    blocked = select(
        literal(_BLOCKED),
        BlockedPlate.id,
        BlockedPlate.plate,
        null(),
        null(),
        null(),
        null(),
        BlockedPlate.reason,
    ).where(BlockedPlate.community_id == community_id, BlockedPlate.skeleton == key)
    inside = select(
        literal(_INSIDE),
        VehiclePresence.id,
        VehiclePresence.plate,
        null(),
        VehiclePresence.entered_at,
        null(),
        null(),
        null(),
    ).where(
        VehiclePresence.community_id == community_id,
        VehiclePresence.plate.in_(
            select(bindparam("plate")).union_all(
                select(Vehicle.plate).where(
                    Vehicle.community_id == community_id, Vehicle.skeleton == key
                )
            )
        ),
        VehiclePresence.exited_at.is_(None),
    )
    strangers = select(
        literal(_STRANGER),
        AccessEvent.id,
        null(),
        null(),
        AccessEvent.occurred_at,
        null(),
        null(),
        AccessEvent.access_point_id,
    ).where(*cross_checks.strangers_criteria(community_id))
    return union_all(vehicles, passes, blocked, inside, strangers)


def _candidates(
    door: Door, read: str, now: datetime, settings: community_settings.CommunitySettings
) -> _Candidates:
    """Vehicles, recent visitor passes and blocked plates whose plate is the read or shares its
    skeleton, the read plate's open presences and the strangers at the gate: one statement
    (a ``UNION ALL`` of five indexed look-ups) for what were five; the passes of a plate no
    car has are then read whole (a visitor's car only)."""
    community = door.community
    rows = db.session.execute(
        _candidates_statement(),
        {
            "community_id": community.id,
            "key": skeleton(read),
            "passes_since": now - _RECENT_PASS,
            "plate": read,
            **cross_checks.gate_parameters(door.point.id, now, settings),
        },
    ).all()
    found: dict[str, list[Any]] = {}
    pass_rows = []
    inside: dict[str, tuple[datetime, str]] = {}
    strangers = []
    for row in rows:
        if row.source == _VEHICLE:
            car = _Car(row.id, row.plate, row.person_id, *row[4:7])
            found.setdefault(car.plate, []).append(car)
        elif row.source == _PASS:
            pass_rows.append(row)
        elif row.source == _INSIDE:
            newest = inside.get(row.plate)
            if newest is None or row.valid_from > newest[0]:
                inside[row.plate] = (row.valid_from, row.id)
        elif row.source == _STRANGER:
            strangers.append(Pass(row.id, row.reason, row.valid_from))
    # The latest pass first (as ``ORDER BY valid_until DESC`` did); whole only where used.
    pass_rows.sort(key=lambda row: row.valid_until, reverse=True)
    for row in pass_rows:
        found.setdefault(row.plate, []).append(row.id)
    return _Candidates(
        found=found,
        blocked=[_Blocked(row.plate, row.reason) for row in rows if row.source == _BLOCKED],
        presences_of=frozenset({read, *(plate for plate, held in found.items() if _is_car(held))}),
        inside={plate: presence_id for plate, (_at, presence_id) in inside.items()},
        strangers=tuple(sorted(strangers, key=lambda stranger: stranger.at)),
    )


def _is_car(rows: list[Any]) -> bool:
    return any(isinstance(row, _Car) for row in rows)


def _passes(ids: list[str]) -> list[VisitorPass]:
    """The visitor passes ``ids``, in that order."""
    rows = {p.id: p for p in db.session.scalars(select(VisitorPass).where(VisitorPass.id.in_(ids)))}
    return [rows[pass_id] for pass_id in ids if pass_id in rows]


def _blocked(read: str, blocked: list[_Blocked], registered: set[str]) -> _Blocked | None:
    """A blocked plate the read is, or could be: any near read of one (security errs on
    refusing), unless the read is exactly a registered plate that is not blocked."""
    near = sorted(
        (differences(read, row.plate), row.plate, row)
        for row in blocked
        if differences(read, row.plate) <= MAX_DIFFERENCES
    )
    if not near or (near[0][0] > 0 and read in registered):
        return None
    return near[0][2]


def _match(
    read: PlateRead,
    text: str,
    found: dict[str, list[Any]],
    settings: community_settings.CommunitySettings,
) -> tuple[str | None, dict[str, Any] | None]:
    """The registered plate to use (or None) and the fuzzy record (None for an exact read)."""
    if text in found:
        return text, None
    match = PlateIndex(found).match(text)
    if match.kind is MatchKind.NONE:
        return None, None
    record: dict[str, Any] = {
        "read": text,
        "candidates": list(match.candidates),
        "matched": match.plate,
        "differences": match.differences,
        "accepted": False,
    }
    if match.kind is MatchKind.AMBIGUOUS:
        record["why"] = "more than one registered plate is one camera confusion away"
        record["why_code"] = "ambiguous"
    elif not settings.fuzzy_plates:
        record["why"] = "fuzzy matching is off in this community"
        record["why_code"] = "off"
    elif read.confidence is None or read.confidence >= settings.fuzzy_plate_max_confidence:
        record["why"] = (
            f"the camera was sure of its read (confidence {read.confidence}, "
            f"fuzzy below {settings.fuzzy_plate_max_confidence})"
        )
        record["why_code"] = "confident"
        record["confidence"] = read.confidence
        record["fuzzy_below"] = settings.fuzzy_plate_max_confidence
    else:
        record["accepted"] = True
        record["why"] = "the only registered plate one camera confusion away, low confidence"
        record["why_code"] = "low_confidence"
        return match.plate, record
    return None, record


def _presented(door: Door, read: PlateRead, rows: list[Any], at: datetime) -> Presented:
    exit_ = read.direction == "out"
    vehicles = [row for row in rows if isinstance(row, _Car)]
    # Passes come as ids; they are read only when no car has the plate.
    visitor_passes = [] if vehicles else _passes([row for row in rows if isinstance(row, str)])
    if vehicles:
        vehicle = vehicles[0]
        if exit_:  # a known car is always let out
            return Presented(
                CredentialType.PLATE,
                decision=policy.AccessDecision(
                    Decision.GRANT, Reason.RESIDENT_VEHICLE, policy.Rule.VEHICLE_EXIT
                ),
                details={"vehicle_id": vehicle.id},
            )
        return held_credential(
            CredentialType.PLATE,
            vehicle,
            details={"vehicle_id": vehicle.id},
            grant_reasons=_VEHICLE_GRANTS,
        )
    if visitor_passes:
        visitor_pass = _best_pass(visitor_passes, at)
        if exit_:
            decision = policy.AccessDecision(
                Decision.GRANT, Reason.VISITOR_VEHICLE, policy.Rule.VEHICLE_EXIT
            )
        else:
            decision = pass_decision(visitor_pass, door, at, spend=True)
            if decision.granted:
                decision = policy.AccessDecision(
                    Decision.GRANT, Reason.VISITOR_VEHICLE, decision.rule, decision.detail
                )
        return Presented(CredentialType.PLATE, visitor_pass=visitor_pass, decision=decision)
    return Presented(
        CredentialType.PLATE, unknown_reason=Reason.UNKNOWN_PLATE, unknown_rule="plate.unknown"
    )


def _best_pass(visitor_passes: list[VisitorPass], at: datetime) -> VisitorPass:
    """Of several passes for one plate, one in force now, else the latest."""
    live = [p for p in visitor_passes if status_of(p, at) is PassStatus.ACTIVE]
    return (live or visitor_passes)[0]


def verify(door: Door, read: PlateRead, at: datetime | None = None) -> Verdict:
    """Decide on a plate at the door's barrier, store the event and presence; the caller
    commits."""
    at = at or utcnow()
    text = checked_plate(read.plate, ocr_slips=True)
    community = door.community
    details: dict[str, Any] = {"plate": text}
    if read.confidence is not None:
        details["confidence"] = read.confidence
    if read.color:
        details["color"] = read.color
    settings = community_settings.effective(community.settings)
    candidates = _candidates(door, text, at, settings)
    found = candidates.found
    blocked = _blocked(text, candidates.blocked, set(found))
    plate = None
    if blocked is not None:
        presented = Presented(
            CredentialType.PLATE,
            unknown_reason=Reason.PLATE_BLOCKED,
            unknown_rule="plate.blocked",
            details={"blocked_plate": blocked.plate, "detail": blocked.reason},
        )
    else:
        plate, fuzzy = _match(read, text, found, settings)
        if fuzzy is not None:
            details["fuzzy"] = fuzzy
        presented = _presented(door, read, found.get(plate, []) if plate else [], at)
    # A plate nobody knows may be a temporary car (server.access.parking).
    temporary = parking.visit(door, text, read.direction, at) if unknown(presented) else None
    if temporary is not None:
        presented = temporary.presented
    presented = replace(
        presented,
        details={**details, **(presented.details or {})},
        strangers_around=candidates.strangers,
    )
    verdict = decide(door, presented, direction=read.direction, at=at)
    event = verdict.event
    if read.snapshot and (not verdict.granted or settings.keep_snapshots):
        snapshots.store(event, read.snapshot)
    if blocked is not None:
        _alert_blocked(door, event, blocked)
    if verdict.granted and read.direction in ("in", "out") and plate is not None:
        _track(event, plate, presented, read.direction, at, candidates)
    if temporary is not None:
        if verdict.granted and temporary.rule is not policy.Rule.PARKING_PAID:
            _track(event, text, presented, read.direction or "", at, candidates)
        if verdict.granted or temporary.ticket is not None:  # a refused entry gets no ticket
            parking.record(temporary, verdict, door, text, at)
    return verdict


def unknown(presented: Presented) -> bool:
    """Nobody's car: no vehicle, no pass, not blocked (``unknown_plate`` so far)."""
    return (
        presented.decision is None
        and presented.person is None
        and presented.unknown_reason is Reason.UNKNOWN_PLATE
    )


def _alert_blocked(door: Door, event: AccessEvent, blocked: _Blocked) -> None:
    point = door.point
    evidence: dict[str, Any] = {"event_ids": [event.id]}
    raise_alert(
        community_id=event.community_id,
        type=AlertType.PLATE_BLOCKED,
        severity=Severity.HIGH,
        summary=summaries.blocked_plate(blocked.plate, point.name, blocked.reason),
        access_point_id=point.id,
        device_id=door.device.id,
        evidence=evidence,
        dedup_key=f"plate_blocked:{blocked.plate}",
    )


@cache
def _inside_statement() -> Select[Any]:
    """The newest open presence of a plate (its id), for a fuzzy read of a pass's plate;
    built once."""
    return (
        select(VehiclePresence.id)
        .where(
            VehiclePresence.community_id == bindparam("community_id"),
            VehiclePresence.plate == bindparam("plate"),
            VehiclePresence.exited_at.is_(None),
        )
        .order_by(VehiclePresence.entered_at.desc())
        .limit(1)
    )


def _track(
    event: AccessEvent,
    plate: str,
    presented: Presented,
    direction: str,
    at: datetime,
    candidates: _Candidates,
) -> None:
    """Who is inside: an entry opens a presence (closing a stale one), an exit closes it."""
    # Read and changed before the request's flush: the event's details below go into its
    # INSERT (a presence refers to the event by id only: no foreign key to access events).
    with db.session.no_autoflush:
        if plate in candidates.presences_of:
            inside = candidates.inside.get(plate)
        else:  # a visitor's car read fuzzily: its pass's plate
            inside = db.session.scalar(
                _inside_statement(), {"community_id": event.community_id, "plate": plate}
            )
        if direction == "out":
            if inside is None:
                event.details = {**event.details, "presence": "exit_without_entry"}
                return
            _close(inside, exited_at=at, exit_event_id=event.id, closed_reason="exit")
            return
        if inside is not None:  # its exit was never seen
            _close(inside, exited_at=at, closed_reason="reentered")
            event.details = {**event.details, "presence": "entry_without_exit"}
    db.session.add(
        VehiclePresence(
            community_id=event.community_id,
            plate=plate,
            vehicle_id=(presented.details or {}).get("vehicle_id"),
            pass_id=presented.visitor_pass.id if presented.visitor_pass else None,
            entered_at=at,
            entry_event_id=event.id,
        )
    )


def _close(presence_id: str, **values: Any) -> None:
    """End a presence (read as an id, never loaded: nothing in the session holds it)."""
    table = VehiclePresence.__table__
    db.session.execute(update(table).where(table.c.id == presence_id).values(**values))
