"""The cross-checks, fed from the database: plate against face, tag against face, card
against the walk.

``gatekeeper.cross_checks`` decides; this module gathers the passes and raises what it
returns through ``server.alerts.service.raise_alert``. Callers:

- ``server.access.decision.decide``, for every stored access event (``after_access_event``):
  ``plate_face_mismatch`` (a granted plate, or an unknown face) and ``impossible_travel``
  (a granted card);
- the worker's wandering job (``judge_tag_exits``): ``tag_exit_without_face``, once the
  window after an elder's tag read at an exit has passed.

Every function leaves the commit to its caller. ``docs/alert_rules.md`` has the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, bindparam, select

from gatekeeper import cross_checks as checks
from gatekeeper.identity import mask_name
from gatekeeper.vocabulary import (
    AlertType,
    CredentialType,
    Decision,
    DeviceKind,
    PersonRole,
    Reason,
    Severity,
    Zone,
)
from hardware.protocol import EventType
from server.alerts import rules as alert_rules
from server.alerts.service import raise_alert
from server.alerts.summaries import N_, summary
from server.community import settings as community_settings
from server.core.localtime import local_time
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    Alert,
    Community,
    Device,
    DeviceEvent,
    Person,
    utcnow,
)

# How far back the tag-exit job looks for reads still to judge (as the wandering job).
TAG_EXIT_HORIZON = timedelta(hours=1)


def gates(settings: community_settings.CommunitySettings) -> checks.Gates:
    return checks.Gates.of(settings.gate_groups)


def _perimeter(community_id: str) -> frozenset[str]:
    return frozenset(
        db.session.scalars(
            select(AccessPoint.id).where(
                AccessPoint.community_id == community_id, AccessPoint.zone == Zone.PERIMETER
            )
        )
    )


def _walk_table(settings: community_settings.CommunitySettings) -> checks.Walking:
    """The community's walking times without its perimeter (which ``longest`` does not need)."""
    pairs = {
        frozenset({row["from"], row["to"]}): int(row["seconds"]) for row in settings.walk_seconds
    }
    return checks.Walking(gates(settings), pairs, frozenset(), settings.min_gate_seconds)


def _pass(event: checks.Pass | AccessEvent | Row[Any]) -> checks.Pass:
    """An event, or a row of its id, access point and time, as the checks take it."""
    if isinstance(event, checks.Pass):
        return event
    return checks.Pass(event.id, event.access_point_id, event.occurred_at)


def _place(access_point_id: str) -> str:
    point = db.session.get(AccessPoint, access_point_id)
    return point.name if point is not None else access_point_id


def after_access_event(
    event: AccessEvent, *, strangers_around: Sequence[checks.Pass] | None = None
) -> Alert | None:
    """Called by ``server.access.decision.decide`` for each stored access event.

    ``strangers_around``: for a plate, the unknown faces at its gate within the window, when
    the barrier's own read fetched them already (``strangers_criteria``); else they are
    read here."""
    if event.access_point_id is None:
        return None
    is_plate_grant = (
        event.credential_type is CredentialType.PLATE
        and event.decision is Decision.GRANT
        and event.person_id is not None
    )
    is_stranger = (
        event.credential_type is CredentialType.FACE and event.reason == Reason.UNKNOWN_FACE.value
    )
    is_card_grant = (
        event.credential_type is CredentialType.CARD
        and event.decision is Decision.GRANT
        and event.person_id is not None
    )
    if not (is_plate_grant or is_stranger or is_card_grant):
        return None
    community = db.session.get(Community, event.community_id)
    settings = community_settings.effective(community.settings)
    if is_card_grant:
        return _impossible_travel(event, community, settings)
    return _plate_face(
        event, community, settings, plate_first=is_plate_grant, strangers=strangers_around
    )


# Plate against face -------------------------------------------------------------------------


def _around(community_id: Any) -> tuple[ColumnElement[bool], ...]:
    """The events at a gate's points (``members``) between ``window_start`` and
    ``window_end``."""
    return (
        AccessEvent.community_id == community_id,
        AccessEvent.access_point_id.in_(bindparam("members", expanding=True)),
        AccessEvent.occurred_at >= bindparam("window_start"),
        AccessEvent.occurred_at <= bindparam("window_end"),
    )


def strangers_criteria(community_id: Any) -> tuple[ColumnElement[bool], ...]:
    """The unknown faces at a gate within the plate-against-face window, as a ``WHERE`` for a
    statement that reads them with others (the barrier's candidates,
    ``server.access.plate``); bound by ``gate_parameters``."""
    return (
        *_around(community_id),
        AccessEvent.credential_type == CredentialType.FACE,
        AccessEvent.reason == Reason.UNKNOWN_FACE.value,
    )


def gate_parameters(
    access_point_id: str, at: datetime, settings: community_settings.CommunitySettings
) -> dict[str, Any]:
    """The gate of ``access_point_id`` and the window around ``at`` (``members``,
    ``window_start``, ``window_end``)."""
    window = timedelta(seconds=settings.plate_face_window_seconds)
    return {
        "members": list(gates(settings).members(access_point_id)),
        "window_start": at - window,
        "window_end": at + window,
    }


@cache
def _around_gate(*, plates: bool) -> Select[Any]:
    """The events at a gate's points within a window but one: its granted plates of known
    people, or (``plates`` false) the ids, points and times of its unknown faces; built once."""
    community_id = bindparam("community_id")
    other = AccessEvent.id != bindparam("event_id")
    if plates:
        return select(AccessEvent).where(
            *_around(community_id),
            other,
            AccessEvent.credential_type == CredentialType.PLATE,
            AccessEvent.decision == Decision.GRANT,
            AccessEvent.person_id.is_not(None),
        )
    return select(AccessEvent.id, AccessEvent.access_point_id, AccessEvent.occurred_at).where(
        *strangers_criteria(community_id), other
    )


def _plate_face(
    event: AccessEvent,
    community: Community,
    settings: community_settings.CommunitySettings,
    *,
    plate_first: bool,
    strangers: Sequence[checks.Pass] | None = None,
) -> Alert | None:
    """A known car's grant and the unknown faces around it at its gate: one alert per car
    grant, which later faces add to."""
    gate = gates(settings)
    window = timedelta(seconds=settings.plate_face_window_seconds)

    def around(*, plates: bool) -> Sequence[Any]:
        # Neither read needs ``event`` stored (it excludes it): it waits for the request's
        # one flush, and a change to it before then costs no UPDATE.
        parameters = {
            "community_id": event.community_id,
            **gate_parameters(event.access_point_id, event.occurred_at, settings),
            "event_id": event.id,
        }
        result = db.session.execute(
            _around_gate(plates=plates), parameters, execution_options={"autoflush": False}
        )
        return result.scalars().all() if plates else result.all()

    faces: Sequence[checks.Pass | AccessEvent | Row[Any]]
    if plate_first:
        plates = [event]
        faces = strangers if strangers is not None else around(plates=False)
    else:
        faces = [event]
        plates = around(plates=True)
    alert = None
    for plate in plates:
        found = checks.plate_face_mismatch(_pass(plate), map(_pass, faces), gate, window)
        if not found:
            continue
        alert = raise_alert(
            community_id=event.community_id,
            type=AlertType.PLATE_FACE_MISMATCH,
            severity=Severity.MEDIUM,
            summary=summary(
                N_(
                    "Known car %(plate)s let in at %(place)s at %(time)s with a stranger's face "
                    "at the same gate"
                ),
                plate=plate.plate or "",
                place=_place(plate.access_point_id),
                time=local_time(plate.occurred_at, community.timezone),
            ),
            access_point_id=plate.access_point_id,
            device_id=plate.device_id,
            evidence={
                "event_ids": [plate.id, *(face.event_id for face in found)],
                "plate_event_id": plate.id,
                "face_event_ids": [face.event_id for face in found],
                "person_id": plate.person_id,
                "plate": plate.plate,
            },
            dedup_key=f"plate_face_mismatch:{plate.id}",
        )
    return alert


# Card against the walk ----------------------------------------------------------------------


@cache
def _other_card_grants() -> Select[Any]:
    """A person's card grants at other points within a window, newest first; built once."""
    return (
        select(AccessEvent.id, AccessEvent.access_point_id, AccessEvent.occurred_at)
        .where(
            AccessEvent.community_id == bindparam("community_id"),
            AccessEvent.person_id == bindparam("person_id"),
            AccessEvent.credential_type == CredentialType.CARD,
            AccessEvent.decision == Decision.GRANT,
            AccessEvent.access_point_id.is_not(None),
            # The same point is never a walk: a card used again and again at one door (a
            # resident coming and going) reads no rows.
            AccessEvent.access_point_id != bindparam("access_point_id"),
            AccessEvent.occurred_at > bindparam("since"),
            AccessEvent.occurred_at < bindparam("until"),
            AccessEvent.id != bindparam("event_id"),
        )
        .order_by(AccessEvent.occurred_at.desc())
    )


def _impossible_travel(
    event: AccessEvent, community: Community, settings: community_settings.CommunitySettings
) -> Alert | None:
    """The person's other card grants close enough in time that the walk between the two
    points cannot be made: one open alert per person. The perimeter is read only when there
    are such grants (a resident's card at one door reads one statement)."""
    table = _walk_table(settings)
    longest = table.longest
    if longest <= timedelta(0):
        return None
    others = db.session.execute(  # without ``event`` (not flushed for it, as _plate_face)
        _other_card_grants(),
        {
            "community_id": event.community_id,
            "person_id": event.person_id,
            "access_point_id": event.access_point_id,
            "since": event.occurred_at - longest,
            "until": event.occurred_at + longest,
            "event_id": event.id,
        },
        execution_options={"autoflush": False},
    ).all()
    if not others:
        return None
    walk = replace(table, perimeter=_perimeter(community.id))
    for other in others:
        need = checks.impossible_travel(_pass(other), _pass(event), walk)
        if need is None:
            continue
        first, second = sorted([other, event], key=lambda row: row.occurred_at)
        seconds = int(abs((event.occurred_at - other.occurred_at).total_seconds()))
        person = db.session.get(Person, event.person_id)
        return raise_alert(
            community_id=event.community_id,
            type=AlertType.IMPOSSIBLE_TRAVEL,
            severity=Severity.HIGH,
            summary=summary(
                N_(
                    "Card of %(name)s used at %(first)s and %(second)s %(seconds)s s apart; "
                    "the walk takes at least %(need)s s (a copied card?)"
                ),
                name=mask_name(person.name) if person is not None else "",
                first=_place(first.access_point_id),
                second=_place(second.access_point_id),
                seconds=seconds,
                need=need,
            ),
            access_point_id=event.access_point_id,
            device_id=event.device_id,
            evidence={
                "event_ids": [first.id, second.id],
                "person_id": event.person_id,
                "access_point_ids": [first.access_point_id, second.access_point_id],
            },
            dedup_key=f"impossible_travel:{event.person_id}",
        )
    return None


# Tag against face ---------------------------------------------------------------------------


def _tag_exit_key(person_id: str) -> str:
    return f"tag_exit_without_face:{person_id}"


def judge_tag_exits(now: datetime | None = None) -> int:
    """The worker's job: an elder's tag read by a perimeter reader that belongs to an access
    point, with no face event of that elder at the access point's gate within
    ``tag_face_window_seconds`` either side, raises ``tag_exit_without_face`` once the
    window after the read has passed. Returns the number of alerts raised or updated."""
    now = now or utcnow()
    readers = db.session.scalars(
        select(Device).where(
            Device.kind == DeviceKind.RFID_READER,
            Device.zone == Zone.PERIMETER,
            Device.access_point_id.is_not(None),
            Device.disabled_at.is_(None),
        )
    ).all()
    by_community: dict[str, dict[str, Device]] = {}
    for reader in readers:
        by_community.setdefault(reader.community_id, {})[reader.id] = reader
    raised = 0
    for community_id, community_readers in sorted(by_community.items()):
        community = db.session.get(Community, community_id)
        settings = community_settings.effective(community.settings)
        window = timedelta(seconds=settings.tag_face_window_seconds)
        gate = gates(settings)
        rows = db.session.scalars(
            select(DeviceEvent)
            .where(
                DeviceEvent.device_id.in_(list(community_readers)),
                DeviceEvent.type == EventType.TAG_READ.value,
                DeviceEvent.received_at > now - window - TAG_EXIT_HORIZON,
            )
            .order_by(DeviceEvent.received_at)
        ).all()
        tags = {t for row in rows if (t := alert_rules.tag_of(row))}
        wearers = alert_rules.tag_wearers(community_id, tags) if tags else {}
        for row in rows:
            tag = alert_rules.tag_of(row)
            tagged = wearers.get(tag) if tag else None
            if tagged is None or PersonRole.ELDER not in tagged.wearer(row.occurred_at).roles:
                continue
            reader = community_readers[row.device_id]
            if _judge_exit(community, window, gate, reader, row, tagged.person, now):
                raised += 1
    return raised


def _judge_exit(
    community: Community,
    window: timedelta,
    gate: checks.Gates,
    reader: Device,
    row: DeviceEvent,
    person: Person,
    now: datetime,
) -> Alert | None:
    read = checks.Pass(row.id, reader.access_point_id, row.occurred_at)
    if now < checks.settles(read, window, row.received_at):
        return None  # the face may still come; most reads end here, before any query
    members = list(gate.members(reader.access_point_id))
    faces = db.session.execute(
        select(AccessEvent.id, AccessEvent.access_point_id, AccessEvent.occurred_at).where(
            AccessEvent.community_id == community.id,
            AccessEvent.person_id == person.id,
            AccessEvent.credential_type == CredentialType.FACE,
            AccessEvent.access_point_id.in_(members),
            AccessEvent.occurred_at >= row.occurred_at - window,
            AccessEvent.occurred_at <= row.occurred_at + window,
        )
    ).all()
    outcome = checks.tag_exit_without_face(
        read, [checks.Pass(*face) for face in faces], gate, window, now, row.received_at
    )
    if outcome is not checks.ExitOutcome.ALERT:
        return None
    if alert_rules.already_judged(community.id, _tag_exit_key(person.id), row):
        return None
    place = _place(reader.access_point_id)
    return raise_alert(
        community_id=community.id,
        type=AlertType.TAG_EXIT_WITHOUT_FACE,
        severity=Severity.MEDIUM,
        summary=summary(
            N_(
                "Elder %(name)s's tag went out through %(place)s at %(time)s "
                "with no face of theirs seen there"
            ),
            name=mask_name(person.name),
            place=place,
            time=local_time(row.occurred_at, community.timezone),
        ),
        access_point_id=reader.access_point_id,
        device_id=reader.id,
        evidence={
            "device_event_ids": [row.id],
            "person_id": person.id,
            "tag": row.payload.get("tag"),
            "reader_device_ids": [reader.id],
        },
        dedup_key=_tag_exit_key(person.id),
    )
