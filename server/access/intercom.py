"""The door intercom (楼宇对讲): a visitor at a door calls a unit; the unit's phones ring.

A door terminal places a call (``POST /api/v1/intercom/calls`` or an ``intercom_call``
event over MQTT) for a unit: of its own building at a building door, named by building and
number at a perimeter gate. The call rings live on the portal of every account of the unit
(the ``intercom`` feed, read by the unit's accounts only) for ``intercom_ring_seconds``. The
first to answer wins (one conditional UPDATE): *open* sends the door ``open``, *refuse* does
not. Unanswered, the call rolls over to the guard booth's console (``intercom_guard_rollover``)
for ``intercom_guard_seconds``, or times out. Time is judged lazily (``settle``: on every read
and answer, and by the worker's job ``settle_due``), so a frozen clock decides it in tests.

Every call ends as an access event (credential ``intercom``: ``intercom_answered`` grant,
``intercom_refused`` or ``intercom_unanswered`` deny) made by ``decision.decide``, so a rule
that denies every credential at the door (a lockdown) denies an answer too: the door then
gets no ``open``. The door learns the outcome by polling its call, and from a ``display``
command with the outcome in words.

The visitor's snapshot is personal data: it is served only to the unit's accounts and the
community's staff, only while the call is live and ``intercom_snapshot_minutes`` after it
ended, and erased by ``erase_snapshots`` after that (docs/intercom.md).
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, and_, false, or_, select, true, update

from gatekeeper import faces, policy
from gatekeeper.vocabulary import CredentialType, Decision, IntercomStatus, Reason
from hardware.messages import MAX_MQTT_SNAPSHOT_BYTES
from hardware.protocol import Command
from server.access import doormodes as door_modes
from server.access.decision import Door, Presented, Verdict, decide, subject_of
from server.community import settings as community_settings
from server.core import audit, live
from server.core.errors import Conflict, DomainError, Invalid, NotFound
from server.core.scope import Scope
from server.core.wording import word
from server.devices import commands
from server.extensions import db
from server.models import (
    AccessPoint,
    Building,
    Community,
    Device,
    DeviceEvent,
    IntercomCall,
    Person,
    Unit,
    UserRole,
    utcnow,
)
from server.notifications import service as notifications

_LOGGER = logging.getLogger(__name__)

# A snapshot over HTTP: a JPEG of at most this many bytes (MQTT: hardware.messages' bound).
MAX_SNAPSHOT_BYTES = 256 * 1024
JPEG_MAGIC = b"\xff\xd8\xff"
LIVE = (IntercomStatus.RINGING, IntercomStatus.ROLLED_OVER)
_DESK = frozenset({UserRole.ADMIN, UserRole.STAFF})

# What the door shows when a call ends (a ``display`` command), in the community's language.
OUTCOME_TEXT = {
    IntercomStatus.ANSWERED: _l("Door opened: please come in."),
    IntercomStatus.REFUSED: _l("The call was declined."),
    IntercomStatus.TIMED_OUT: _l("Nobody answered the call."),
}
# Shown instead when an answer to open was refused by the door's rules (a lockdown).
NOT_OPENED_TEXT = _l("The door cannot be opened now.")


def check_snapshot(data: bytes, limit: int = MAX_SNAPSHOT_BYTES) -> bytes:
    """A visitor's snapshot: a JPEG within ``limit`` bytes and the image limits; else
    ``faces.ImageError`` (the views answer 413 or 422)."""
    faces.check_image(data, max_bytes=limit)
    if not data.startswith(JPEG_MAGIC):
        raise faces.ImageError(faces.ImageProblem.UNSUPPORTED_FORMAT, "the snapshot must be a JPEG")
    return data


def find_unit(door: Door, number: str, building_name: str | None) -> Unit:
    """The unit a visitor called: in the door's own building, or (a perimeter gate) in the
    building named; ``Invalid`` (422) naming the field when there is none."""
    number = number.strip()
    if door.point.building_id is not None:
        building = db.session.get(Building, door.point.building_id)
        if building_name and building_name.strip() != building.name:
            raise Invalid(
                _l("This door serves building %(name)s only.", name=building.name),
                errors={"building": [_l("Not this door's building.")]},
            )
    else:
        if not building_name or not building_name.strip():
            raise Invalid(
                _l("Name the building: this door is not a building's door."),
                errors={"building": [_l("Missing building.")]},
            )
        building = db.session.scalar(
            select(Building).where(
                Building.community_id == door.community.id, Building.name == building_name.strip()
            )
        )
        if building is None:
            raise Invalid(
                _l("No building called '%(name)s' here.", name=building_name.strip()),
                errors={"building": [_l("No such building.")]},
            )
    unit = db.session.scalar(
        select(Unit).where(Unit.building_id == building.id, Unit.number == number)
    )
    if unit is None:
        raise Invalid(
            _l(
                "No unit %(number)s in building %(building)s.",
                number=number,
                building=building.name,
            ),
            errors={"unit": [_l("No such unit.")]},
        )
    return unit


def place_call(
    door: Door,
    number: str,
    building_name: str | None = None,
    snapshot: bytes | None = None,
    *,
    source: str = "http",
    device_event_id: str | None = None,
    at: datetime | None = None,
) -> IntercomCall:
    """A visitor's call from ``door`` to a unit: stored ringing; the caller commits."""
    at = at or utcnow()
    unit = find_unit(door, number, building_name)
    settings = community_settings.effective(door.community.settings)
    call = IntercomCall(
        community_id=door.community.id,
        access_point_id=door.point.id,
        device_id=door.device.id,
        unit_id=unit.id,
        status=IntercomStatus.RINGING,
        snapshot=snapshot,
        source=source,
        device_event_id=device_event_id,
        created_at=at,
        status_at=at,
        ring_until=at + timedelta(seconds=settings.intercom_ring_seconds),
    )
    db.session.add(call)
    db.session.flush()
    call_started(call)
    return call


def call_from_event(device: Device, event: DeviceEvent, snapshot_text: str | None) -> str:
    """An ``intercom_call`` event a door published (the worker, in the event's transaction):
    the call placed as over HTTP; what happened, as the ingest counts it. A unit that does
    not exist, or a door without an access point, places nothing (logged); an unusable
    snapshot is left out and the call rings without it."""
    if device.access_point_id is None:
        _LOGGER.warning("intercom call from %s, which serves no access point", device.id)
        return "intercom_call_refused"
    snapshot = None
    if snapshot_text:
        try:
            snapshot = check_snapshot(base64.b64decode(snapshot_text), MAX_MQTT_SNAPSHOT_BYTES)
        except (faces.ImageError, binascii.Error, ValueError) as error:
            _LOGGER.warning("intercom call from %s: snapshot left out (%s)", device.id, error)
    payload = event.payload or {}
    try:
        place_call(
            Door.of(device),
            payload.get("unit", ""),
            payload.get("building"),
            snapshot,
            source="mqtt",
            device_event_id=event.id,
        )
    except DomainError as error:
        _LOGGER.warning("intercom call from %s refused: %s", device.id, error)
        return "intercom_call_refused"
    return "intercom_call"


def call_started(call: IntercomCall) -> None:
    """A call began ringing (flushed, not yet committed): the unit's accounts are told beyond
    their open pages (``intercom_call``: Web Push, the SMS or WeChat gateway, as each chose).
    The portal's live ring needs nothing: it follows the ``intercom`` feed.
    """
    _LOGGER.info("intercom call %s rings unit %s", call.id, call.unit_id)
    point = db.session.get(AccessPoint, call.access_point_id)
    notifications.intercom_call(
        call.unit_id, community_id=call.community_id, door_name=point.name, at=call.created_at
    )


# --- who sees a call ----------------------------------------------------------------------


def visible(scope: Scope) -> ColumnElement[bool]:
    """The calls this caller may see: a resident their own unit's, staff their communities',
    admins all; officers none."""
    if scope.is_admin:
        return true()
    if scope.role is UserRole.RESIDENT:
        unit_id = scope.user.unit_id
        return IntercomCall.unit_id == unit_id if unit_id else false()
    if scope.role is UserRole.STAFF:
        return IntercomCall.community_id.in_(scope.community_ids)
    return false()


def get_call(scope: Scope, call_id: str) -> IntercomCall:
    """The call, if the caller sees it; else 404."""
    call = db.session.scalar(select(IntercomCall).where(IntercomCall.id == call_id, visible(scope)))
    if call is None:
        raise NotFound(_l("No intercom call with id %(id)s.", id=repr(call_id)))
    return call


def device_call(device: Device, call_id: str) -> IntercomCall:
    """The call, if ``device`` placed it; else 404 (a door sees only its own calls)."""
    call = db.session.scalar(
        select(IntercomCall).where(IntercomCall.id == call_id, IntercomCall.device_id == device.id)
    )
    if call is None:
        raise NotFound(_l("No intercom call with id %(id)s.", id=repr(call_id)))
    return call


def live_calls(scope: Scope, community_id: str, now: datetime | None = None) -> list[IntercomCall]:
    """The community's live calls, settled first (the guard booth's console), oldest first."""
    now = now or utcnow()
    rows = list(
        db.session.scalars(
            select(IntercomCall)
            .where(
                IntercomCall.community_id == community_id,
                IntercomCall.status.in_(LIVE),
                visible(scope),
            )
            .order_by(IntercomCall.created_at, IntercomCall.id)
        )
    )
    for call in rows:
        settle(call, now)
    return [call for call in rows if call.live]


def snapshot_available(call: IntercomCall, now: datetime | None = None) -> bool:
    """Whether the visitor's picture may still be shown: while live, and the community's
    ``intercom_snapshot_minutes`` after the call ended."""
    if call.snapshot is None:
        return False
    if call.live or call.ended_at is None:
        return True
    minutes = _settings(call).intercom_snapshot_minutes
    return (now or utcnow()) < call.ended_at + timedelta(minutes=minutes)


# --- time ---------------------------------------------------------------------------------


def settle(call: IntercomCall, now: datetime | None = None) -> IntercomCall:
    """What time did to a live call: rolled over to the guard booth when its ring ended
    (where the community says so), timed out when nobody may answer any more."""
    now = now or utcnow()
    if call.status is IntercomStatus.RINGING and now >= call.ring_until:
        settings = _settings(call)
        if settings.intercom_guard_rollover:
            guard_until = call.ring_until + timedelta(seconds=settings.intercom_guard_seconds)
            _transition(
                call,
                (IntercomStatus.RINGING,),
                status=IntercomStatus.ROLLED_OVER,
                status_at=now,
                guard_until=guard_until,
            )
        elif _transition(
            call,
            (IntercomStatus.RINGING,),
            status=IntercomStatus.TIMED_OUT,
            status_at=now,
            ended_at=call.ring_until,
        ):
            _finish(call, None, at=call.ring_until)
    if (
        call.status is IntercomStatus.ROLLED_OVER
        and call.guard_until is not None
        and now >= call.guard_until
    ):
        ended = call.guard_until
        if _transition(
            call,
            (IntercomStatus.ROLLED_OVER,),
            status=IntercomStatus.TIMED_OUT,
            status_at=now,
            ended_at=ended,
        ):
            _finish(call, None, at=ended)
    return call


def settle_due(now: datetime | None = None) -> int:
    """The worker's job: settle every live call whose time is up; how many changed."""
    now = now or utcnow()
    due = list(
        db.session.scalars(
            select(IntercomCall).where(
                or_(
                    and_(
                        IntercomCall.status == IntercomStatus.RINGING,
                        IntercomCall.ring_until <= now,
                    ),
                    and_(
                        IntercomCall.status == IntercomStatus.ROLLED_OVER,
                        IntercomCall.guard_until <= now,
                    ),
                )
            )
        )
    )
    for call in due:
        try:
            with db.session.begin_nested():  # one call that cannot end does not stop the rest
                settle(call, now)
        except DomainError as error:
            _LOGGER.warning("intercom call %s cannot be settled: %s", call.id, error)
    return len(due)


def erase_snapshots(now: datetime | None = None) -> int:
    """Erase the snapshots of calls that ended longer ago than their community keeps them."""
    now = now or utcnow()
    rows = db.session.execute(
        select(IntercomCall.id, IntercomCall.community_id, IntercomCall.ended_at).where(
            IntercomCall.snapshot.is_not(None), IntercomCall.ended_at.is_not(None)
        )
    ).all()
    minutes: dict[str, int] = {}
    erased = []
    for call_id, community_id, ended_at in rows:
        if community_id not in minutes:
            community = db.session.get(Community, community_id)
            minutes[community_id] = community_settings.effective(
                community.settings
            ).intercom_snapshot_minutes
        if now >= ended_at + timedelta(minutes=minutes[community_id]):
            erased.append(call_id)
    if erased:
        db.session.execute(
            update(IntercomCall)
            .where(IntercomCall.id.in_(erased))
            .values(snapshot=None, snapshot_erased_at=now),
            execution_options={"synchronize_session": False},
        )
        db.session.expire_all()
    return len(erased)


# --- answers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What became of an answer: the call, and the access event's verdict."""

    call: IntercomCall
    verdict: Verdict

    @property
    def opened(self) -> bool:
        return self.verdict.granted


def answer(scope: Scope, call_id: str, *, open_door: bool, now: datetime | None = None) -> Answer:
    """Open or refuse a call: the first answer wins (``Conflict`` for the later ones, and
    for a call that has ended). Residents answer their unit's calls while they ring, staff
    their community's while ringing or at the guard booth. The caller commits."""
    now = now or utcnow()
    call = get_call(scope, call_id)
    settle(call, now)
    desk = scope.role in _DESK
    if desk:
        answerable = and_(
            IntercomCall.status.in_(LIVE),
            or_(IntercomCall.guard_until.is_(None), IntercomCall.guard_until > now),
        )
    else:
        answerable = and_(
            IntercomCall.status == IntercomStatus.RINGING, IntercomCall.ring_until > now
        )
    status = IntercomStatus.ANSWERED if open_door else IntercomStatus.REFUSED
    result = db.session.execute(
        update(IntercomCall)
        .where(IntercomCall.id == call.id, answerable)
        .values(status=status, status_at=now, ended_at=now, answered_by_user_id=scope.user.id),
        execution_options={"synchronize_session": False},
    )
    if result.rowcount != 1:
        db.session.refresh(call)
        raise Conflict(
            _l(
                "This call has already been answered or has ended (%(status)s).",
                status=word(call.status),
            ),
            status_now=call.status.value,
        )
    db.session.refresh(call)
    verdict = _finish(call, scope, at=now)
    audit.record(
        scope.user,
        "intercom.open" if open_door else "intercom.refuse",
        community_id=call.community_id,
        target=call,
        details={"event_id": verdict.event.id, "opened": verdict.granted},
    )
    return Answer(call, verdict)


def _transition(call: IntercomCall, expected: tuple[IntercomStatus, ...], **values: Any) -> bool:
    """Move ``call`` on from one of ``expected`` in one conditional UPDATE; False when another
    request or process moved it first (then ``call`` holds what it became)."""
    result = db.session.execute(
        update(IntercomCall)
        .where(IntercomCall.id == call.id, IntercomCall.status.in_(expected))
        .values(**values),
        execution_options={"synchronize_session": False},
    )
    db.session.refresh(call)
    return result.rowcount == 1


_OUTCOMES: dict[IntercomStatus, tuple[Decision, Reason]] = {
    IntercomStatus.ANSWERED: (Decision.GRANT, Reason.INTERCOM_ANSWERED),
    IntercomStatus.REFUSED: (Decision.DENY, Reason.INTERCOM_REFUSED),
    IntercomStatus.TIMED_OUT: (Decision.DENY, Reason.INTERCOM_UNANSWERED),
}


def _finish(call: IntercomCall, scope: Scope | None, *, at: datetime) -> Verdict:
    """The ended call's access event, through ``decide`` (its rules may still deny an
    answer to open), the ``open`` on a grant, and the outcome on the door's display."""
    decision, reason = _OUTCOMES[call.status]
    if scope is None:
        rule = policy.Rule.INTERCOM_UNANSWERED
    elif scope.role is UserRole.RESIDENT:
        rule = policy.Rule.INTERCOM_RESIDENT
    else:
        rule = policy.Rule.INTERCOM_GUARD
    unit = db.session.get(Unit, call.unit_id)
    building = db.session.get(Building, unit.building_id)
    details: dict[str, Any] = {
        "intercom_call_id": call.id,
        "unit_id": unit.id,
        "unit": f"{building.name}-{unit.number}",
    }
    if scope is not None:
        details["answered_by"] = scope.user.username
    door = _door_of(call)
    outcome = policy.AccessDecision(decision, reason, rule)
    if outcome.granted and scope is not None:
        # An answer that opens is a remote open by whoever answered: a lockdown that does not
        # name them refuses it (the visitor has no role of their own).
        outcome = _answer_lockdown(scope, door, at) or outcome
    verdict = decide(
        door,
        Presented(CredentialType.INTERCOM, details=details, decision=outcome),
        at=at,
    )
    call.event_id = verdict.event.id
    text = OUTCOME_TEXT[call.status]
    if call.status is IntercomStatus.ANSWERED and not verdict.granted:
        text = NOT_OPENED_TEXT
    if door.device.disabled_at is None:
        with force_locale(_settings(call).default_locale):
            commands.issue(door.device, Command.DISPLAY, event_id=verdict.event.id, text=str(text))
    _LOGGER.info(
        "intercom call %s %s: %s (%s)",
        call.id,
        call.status.value,
        verdict.decision.decision,
        verdict.decision.reason.value,
    )
    return verdict


def _answer_lockdown(scope: Scope, door: Door, at: datetime) -> policy.AccessDecision | None:
    subject = None
    if scope.role is UserRole.RESIDENT and scope.user.person_id is not None:
        person = db.session.get(Person, scope.user.person_id)
        subject = subject_of(person, None)[0] if person is not None else None
    return door_modes.remote_open_lockdown(scope, door.point, subject, at)


def _door_of(call: IntercomCall) -> Door:
    """The calling door; if its device is gone or moved, another device of the same point."""
    point = db.session.get(AccessPoint, call.access_point_id)
    device = db.session.get(Device, call.device_id) if call.device_id else None
    if device is None or device.access_point_id != call.access_point_id:
        device = next(iter(commands.actuators(point)), None)
    if device is None:
        raise Conflict(_l("The door that placed this call is no longer provisioned."))
    return Door(device=device, point=point, community=db.session.get(Community, call.community_id))


def _settings(call: IntercomCall) -> community_settings.CommunitySettings:
    community = db.session.get(Community, call.community_id)
    return community_settings.effective(community.settings)


# --- what the door and the pages read -----------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds") if value is not None else None


def door_body(call: IntercomCall) -> dict[str, Any]:
    """The call as its door reads it (docs/protocol.md, "The door intercom")."""
    body: dict[str, Any] = {
        "id": call.id,
        "status": call.status.value,
        "ring_until": _time(call.ring_until),
        "created_at": _time(call.created_at),
    }
    if call.guard_until is not None:
        body["guard_until"] = _time(call.guard_until)
    if call.ended_at is not None:
        body["ended_at"] = _time(call.ended_at)
    if call.event_id is not None:
        body["event_id"] = call.event_id
        decision, reason = _OUTCOMES[call.status]
        body["decision"] = decision.value
        body["reason"] = reason.value
    return body


def call_payload(call: IntercomCall) -> dict[str, Any]:
    """A call on the live pages (the ``intercom`` feed): no picture, only whether it has one."""
    point = db.session.get(AccessPoint, call.access_point_id)
    unit = db.session.get(Unit, call.unit_id)
    building = db.session.get(Building, unit.building_id) if unit else None
    return {
        "id": call.id,
        "community_id": call.community_id,
        "unit_id": call.unit_id,
        "unit": f"{building.name}-{unit.number}" if unit and building else "",
        "door": point.name if point else "",
        "status": call.status.value,
        "live": call.live,
        "has_snapshot": call.snapshot is not None,
        "created_at": _time(call.created_at),
        "ring_until": _time(call.ring_until),
        "guard_until": _time(call.guard_until),
        "status_at": _time(call.status_at),
    }


# The residents' ring streams count against a budget of their own (as many per process as
# the pages'), so that a phone waiting for the door never takes a live page's place; and an
# account holds one: every portal page rings, and the newest page's stream replaces the page
# left behind (whose stream would otherwise hold its place until its next heartbeat).
RING_STREAMS = "intercom"

INTERCOM = live.register(
    live.Feed(
        name="intercom",
        model=IntercomCall,
        changed=(IntercomCall.status_at,),
        community=IntercomCall.community_id,
        event="intercom",
        payload=call_payload,
        readers=_DESK,  # the guard booth; residents follow their unit's (``unit_subscriber``)
    )
)


def unit_subscriber(scope: Scope) -> live.Subscriber:
    """A resident's stream of their own unit's calls (nobody else's)."""
    unit = scope.user.unit
    if scope.role is not UserRole.RESIDENT or unit is None:
        raise NotFound(_l("No such page."))
    unit_id = unit.id
    return live.Subscriber(
        feeds=frozenset({INTERCOM.name}),
        community_ids=frozenset({unit.community_id}),
        budget=RING_STREAMS,
        user_id=scope.user.id,
        one_per_account=True,
        keep=lambda change: change.payload.get("unit_id") == unit_id,
    )
