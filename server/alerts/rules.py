"""The alert rules, fed from the database: wandering, not seen, missed patrols, spoofing.

``gatekeeper.alert_rules`` decides; this module gathers the facts it needs and raises
what it returns through ``server.alerts.service.raise_alert``. Callers:

- the ingest, for every stored ``tag_read`` (``on_tag_read``): a read that can be judged
  at once (no guardian window) is judged at once;
- the worker's jobs: ``judge_wandering_reads`` (reads whose guardian window has passed),
  ``flag_inactive_elders`` and ``judge_patrol_rounds``;
- ``server.access.decision.decide``, for every stored access event (``after_access_event``).

Every function leaves the commit to its caller. ``docs/alert_rules.md`` has the rules.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from gatekeeper import alert_rules as rules
from gatekeeper.identity import mask_name
from gatekeeper.schedule import schedule_from_json
from gatekeeper.vocabulary import (
    AlertType,
    CredentialType,
    Decision,
    DeviceKind,
    PersonRole,
    PersonStatus,
    Reason,
    Severity,
    Zone,
)
from hardware.protocol import EventType
from server.alerts import patrol_rounds
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
    Membership,
    PatrolRoute,
    Person,
    RfidTag,
    guardianships,
    utcnow,
)
from server.notifications import service as notifications

_LOGGER = logging.getLogger(__name__)

# Readers whose tag reads can be wandering.
EXIT_ZONES = (Zone.PERIMETER, Zone.KINDERGARTEN)
# How far back the wandering job looks for reads still to judge: covers a worker that
# stopped after storing a read and came back later (already judged reads are skipped).
WANDERING_HORIZON = timedelta(hours=1)
# Patrol reads may arrive a little late (QoS 1 from a reader that lost its link briefly).
PATROL_GRACE = timedelta(minutes=1)
# A worker stopped for longer does not judge rounds older than this on its return.
PATROL_CATCH_UP = timedelta(days=7)
# Remote opens are not someone seen at the door.
_NOT_SEEN = (CredentialType.REMOTE,)


def wandering_settings(community: Community) -> rules.WanderingSettings:
    settings = community_settings.effective(community.settings)
    return rules.WanderingSettings(
        time_zone=community.timezone,
        night_start=settings.night_start,
        night_end=settings.night_end,
        school_start=settings.school_start,
        school_end=settings.school_end,
        guardian_window=timedelta(minutes=settings.guardian_window_minutes),
    )


# Wandering ----------------------------------------------------------------------------------


def _tag_read(device: Device, row: DeviceEvent) -> rules.TagRead:
    return rules.TagRead(
        event_id=row.id,
        reader_id=device.id,
        zone=device.zone,
        access_point_id=device.access_point_id,
        at=row.occurred_at,
        received_at=row.received_at,
    )


# A membership as the wandering rule needs it: role, valid from, valid until.
_Role = tuple[PersonRole, datetime | None, datetime | None]


@dataclass(frozen=True)
class _Tagged:
    """A tag's wearer and all their memberships (their roles depend on the instant)."""

    person: Person
    memberships: tuple[_Role, ...]

    def wearer(self, at: datetime) -> rules.Wearer:
        roles = frozenset(
            role
            for role, start, end in self.memberships
            if (start is None or start <= at) and (end is None or at < end)
        )
        return rules.Wearer(self.person.id, roles, self.person.wander_risk)


def tag_wearers(community_id: str, epcs: Iterable[str]) -> dict[str, _Tagged]:
    """The wearers of these tags (enabled tags of people who have not moved out)."""
    epcs = {e.upper() for e in epcs}
    if not epcs:
        return {}
    rows = db.session.execute(
        select(RfidTag.epc, Person)
        .join(Person, Person.id == RfidTag.person_id)
        .where(
            RfidTag.community_id == community_id,
            RfidTag.epc.in_(epcs),
            RfidTag.disabled_at.is_(None),
            Person.status != PersonStatus.MOVED_OUT,
        )
    ).all()
    memberships: dict[str, list[_Role]] = defaultdict(list)
    for person_id, role, start, end in db.session.execute(
        select(
            Membership.person_id, Membership.role, Membership.valid_from, Membership.valid_until
        ).where(Membership.person_id.in_({person.id for _epc, person in rows}))
    ):
        memberships[person_id].append((role, start, end))
    return {epc: _Tagged(person, tuple(memberships[person.id])) for epc, person in rows}


def _guardian_passes(
    community_id: str, person_id: str, read: rules.TagRead, window: timedelta
) -> list[rules.GuardianPass]:
    """The guardians' tags at the read's reader and their grants at its access point,
    within ``window`` either side of the read."""
    guardian_ids = list(
        db.session.scalars(
            select(guardianships.c.guardian_id).where(guardianships.c.person_id == person_id)
        )
    )
    if not guardian_ids:
        return []
    low, high = read.at - window, read.at + window
    passes: list[rules.GuardianPass] = []
    tags = dict(
        db.session.execute(
            select(RfidTag.epc, RfidTag.person_id).where(
                RfidTag.community_id == community_id,
                RfidTag.person_id.in_(guardian_ids),
                RfidTag.disabled_at.is_(None),
            )
        ).all()
    )
    if tags:
        reads = db.session.execute(
            select(DeviceEvent.occurred_at, DeviceEvent.payload).where(
                DeviceEvent.device_id == read.reader_id,
                DeviceEvent.type == EventType.TAG_READ.value,
                DeviceEvent.occurred_at >= low,
                DeviceEvent.occurred_at <= high,
            )
        ).all()
        passes += [
            rules.GuardianPass(tags[tag], at, reader_id=read.reader_id)
            for at, payload in reads
            if (tag := str(payload.get("tag", "")).upper()) in tags
        ]
    if read.access_point_id is not None:
        grants = db.session.execute(
            select(AccessEvent.person_id, AccessEvent.occurred_at).where(
                AccessEvent.community_id == community_id,
                AccessEvent.access_point_id == read.access_point_id,
                AccessEvent.person_id.in_(guardian_ids),
                AccessEvent.decision == Decision.GRANT,
                AccessEvent.credential_type.not_in(_NOT_SEEN),
                AccessEvent.occurred_at >= low,
                AccessEvent.occurred_at <= high,
            )
        ).all()
        passes += [
            rules.GuardianPass(guardian, at, access_point_id=read.access_point_id)
            for guardian, at in grants
        ]
    return passes


def _wandering_key(person_id: str) -> str:
    return f"wandering:{person_id}"


def already_judged(community_id: str, dedup_key: str, row: DeviceEvent) -> bool:
    """Whether an alert of ``dedup_key`` (open or not) already holds this read as evidence."""
    alerts = db.session.scalars(
        select(Alert.evidence).where(
            Alert.community_id == community_id,
            Alert.dedup_key == dedup_key,
            Alert.updated_at >= row.received_at,
        )
    )
    return any(row.id in (evidence or {}).get("device_event_ids", []) for evidence in alerts)


def _judge_read(
    community: Community,
    settings: rules.WanderingSettings,
    device: Device,
    row: DeviceEvent,
    tagged: _Tagged | None,
    now: datetime,
) -> Alert | None:
    """Judge one stored ``tag_read``; raise its alert when the verdict is ``ALERT``."""
    if tagged is None:
        return None
    person, wearer = tagged.person, tagged.wearer(row.occurred_at)
    read = _tag_read(device, row)
    # Most reads are not watched, and an unsettled one cannot alert yet: skip the queries.
    if rules.watched_exit(read, wearer, settings) is None or now < rules.settles(read, settings):
        return None
    guardians = _guardian_passes(community.id, person.id, read, settings.guardian_window)
    verdict = rules.judge_wandering(read, wearer, guardians, settings, now)
    if verdict.outcome is not rules.Outcome.ALERT or verdict.alert_type is None:
        return None
    if already_judged(community.id, _wandering_key(person.id), row):
        return None
    place = device.access_point.name if device.access_point else device.name
    elder = verdict.alert_type is AlertType.ELDER_WANDERING
    if verdict.exit is rules.Exit.KINDERGARTEN:
        text = (
            N_(
                "Elder %(name)s left the kindergarten during school hours (%(place)s) "
                "without a guardian at %(time)s"
            )
            if elder
            else N_(
                "Child %(name)s left the kindergarten during school hours (%(place)s) "
                "without a guardian at %(time)s"
            )
        )
    else:
        text = (
            N_("Elder %(name)s went out through %(place)s without a guardian at %(time)s")
            if elder
            else N_("Child %(name)s went out through %(place)s without a guardian at %(time)s")
        )
    when = local_time(read.at, settings.time_zone)
    alert = raise_alert(
        community_id=community.id,
        type=verdict.alert_type,
        severity=verdict.severity or Severity.MEDIUM,
        summary=summary(text, name=mask_name(person.name), place=place, time=when),
        access_point_id=device.access_point_id,
        device_id=device.id,
        evidence={
            "device_event_ids": [row.id],
            "person_id": person.id,
            "tag": row.payload["tag"],
            "reader_device_ids": [device.id],
        },
        dedup_key=_wandering_key(person.id),
    )
    notifications.tag_left_perimeter(person, place, read.at)  # the guardians (queued)
    return alert


def tag_of(row: DeviceEvent) -> str | None:
    tag = (row.payload or {}).get("tag")
    return tag.upper() if isinstance(tag, str) else None


def on_tag_read(device: Device, row: DeviceEvent, now: datetime | None = None) -> Alert | None:
    """Called by the ingest for each stored ``tag_read``.

    A read at an exit is judged here only if it can be judged for good now (the
    community's guardian window is 0); otherwise ``judge_wandering_reads`` judges it
    once the window after it has passed, so a guardian following the ward still counts.
    """
    if device.kind is not DeviceKind.RFID_READER or device.zone not in EXIT_ZONES:
        return None
    community = db.session.get(Community, device.community_id)
    settings = wandering_settings(community)
    tag = tag_of(row)
    if settings.guardian_window > timedelta(0) or tag is None:
        return None
    tagged = tag_wearers(community.id, [tag]).get(tag)
    return _judge_read(community, settings, device, row, tagged, now or utcnow())


def judge_wandering_reads(now: datetime | None = None) -> int:
    """The worker's job: judge exit reads whose guardian window has passed; returns the
    number of alerts raised or updated. A read is judged until it leads to an alert, so a
    read the job saw too early is judged on a later run; one already in an alert's evidence
    is skipped."""
    now = now or utcnow()
    readers = db.session.scalars(
        select(Device).where(
            Device.kind == DeviceKind.RFID_READER,
            Device.zone.in_(EXIT_ZONES),
            Device.disabled_at.is_(None),
        )
    ).all()
    by_community: dict[str, dict[str, Device]] = defaultdict(dict)
    for reader in readers:
        by_community[reader.community_id][reader.id] = reader
    raised = 0
    for community_id, community_readers in by_community.items():
        community = db.session.get(Community, community_id)
        settings = wandering_settings(community)
        if settings.guardian_window <= timedelta(0):
            continue  # judged by the ingest as they arrived
        since = now - settings.guardian_window - WANDERING_HORIZON
        rows = db.session.scalars(
            select(DeviceEvent)
            .where(
                DeviceEvent.device_id.in_(list(community_readers)),
                DeviceEvent.type == EventType.TAG_READ.value,
                DeviceEvent.received_at > since,
            )
            .order_by(DeviceEvent.received_at)
        ).all()
        wearers = tag_wearers(community.id, {t for row in rows if (t := tag_of(row))})
        for row in rows:
            tag = tag_of(row)
            reader = community_readers[row.device_id]
            tagged = wearers.get(tag) if tag else None
            if _judge_read(community, settings, reader, row, tagged, now):
                raised += 1
    return raised


# Not seen -----------------------------------------------------------------------------------


def _last_seen(community_id: str, people: Iterable[Person]) -> dict[str, datetime]:
    """The last tag read or access event (remote opens aside) of each person."""
    ids = [p.id for p in people]
    seen: dict[str, datetime] = {}

    def keep(person_id: str, at: datetime | None) -> None:
        if at is not None and (person_id not in seen or at > seen[person_id]):
            seen[person_id] = at

    for person_id, at in db.session.execute(
        select(AccessEvent.person_id, func.max(AccessEvent.occurred_at))
        .where(
            AccessEvent.community_id == community_id,
            AccessEvent.person_id.in_(ids),
            AccessEvent.credential_type.not_in(_NOT_SEEN),
        )
        .group_by(AccessEvent.person_id)
    ):
        keep(person_id, at)
    # Disabled tags too: a read still shows the person was there.
    tags = dict(
        db.session.execute(
            select(RfidTag.epc, RfidTag.person_id).where(
                RfidTag.community_id == community_id, RfidTag.person_id.in_(ids)
            )
        ).all()
    )
    if tags:
        tag = DeviceEvent.payload["tag"].as_string()
        for epc, at in db.session.execute(
            select(tag, func.max(DeviceEvent.occurred_at))
            .where(
                DeviceEvent.community_id == community_id,
                DeviceEvent.type == EventType.TAG_READ.value,
                tag.in_(list(tags)),
            )
            .group_by(tag)
        ):
            keep(tags[epc], at)
    return seen


def flag_inactive_elders(now: datetime | None = None) -> int:
    """The worker's job: one ``elder_inactive`` per absence of an elder who lives alone
    and has not been seen for ``elder_inactive_hours``; returns how many were raised."""
    now = now or utcnow()
    elders = db.session.scalars(
        select(Person)
        .where(
            Person.lives_alone.is_(True),
            Person.status == PersonStatus.ACTIVE,
            Person.id.in_(
                select(Membership.person_id).where(
                    Membership.role == PersonRole.ELDER,
                    (Membership.valid_from.is_(None)) | (Membership.valid_from <= now),
                    (Membership.valid_until.is_(None)) | (Membership.valid_until > now),
                )
            ),
        )
        .order_by(Person.community_id)
    ).all()
    by_community: dict[str, list[Person]] = defaultdict(list)
    for elder in elders:
        by_community[elder.community_id].append(elder)
    raised = 0
    for community_id, people in by_community.items():
        community = db.session.get(Community, community_id)
        hours = community_settings.effective(community.settings).elder_inactive_hours
        seen = _last_seen(community_id, people)
        for person in people:
            start = rules.absence_start(seen.get(person.id), person.created_at, now, hours)
            if start is None:
                continue
            key = f"elder_inactive:{person.id}:{start.isoformat()}"
            exists = db.session.scalar(
                select(Alert.id).where(Alert.community_id == community_id, Alert.dedup_key == key)
            )
            if exists is not None:
                continue  # this absence has its alert, even if it was resolved since
            text = (
                N_("Elder %(name)s, living alone, not seen since %(time)s")
                if person.id in seen
                else N_("Elder %(name)s, living alone, never seen since enrolment (%(time)s)")
            )
            raise_alert(
                community_id=community_id,
                type=AlertType.ELDER_INACTIVE,
                severity=Severity.HIGH,
                summary=summary(
                    text,
                    name=mask_name(person.name),
                    time=local_time(start, community.timezone),
                ),
                evidence={"person_id": person.id, "last_seen_at": start.isoformat()},
                dedup_key=key,
            )
            raised += 1
    return raised


# Patrol -------------------------------------------------------------------------------------


def judge_patrol_rounds(now: datetime | None = None) -> int:
    """The worker's job: judge each route's rounds that ended since its ``checked_until``
    (less a grace for late reads); a checkpoint counts only a guard's tag, and on an ordered
    route only in its turn; one ``patrol_missed`` per route while it is open,
    updated with every further missed round. Returns the number of missed rounds."""
    now = now or utcnow()
    until = now - PATROL_GRACE
    missed_rounds = 0
    for route in db.session.scalars(select(PatrolRoute).order_by(PatrolRoute.id)).all():
        community = db.session.get(Community, route.community_id)
        after = max(route.checked_until or route.created_at, until - PATROL_CATCH_UP)
        try:
            schedule = schedule_from_json(route.schedule)
        except ValueError:
            _LOGGER.warning("patrol route %s has an invalid schedule; skipped", route.id)
            continue
        rounds = rules.patrol_rounds(
            route.round_minutes, schedule, community.timezone, after=after, until=until
        )
        if not rounds:
            continue
        route.checked_until = rounds[-1].end
        # Only guards' tags count, in turn on an ordered route (server.alerts.patrol_rounds).
        checkpoints, devices = patrol_rounds.checkpoint_devices(route)
        for result in patrol_rounds.judge(route, checkpoints, rounds):
            if result.complete:
                continue
            missed_rounds += 1
            _raise_patrol_missed(route, community, result, devices, len(checkpoints))
    return missed_rounds


def _raise_patrol_missed(
    route: PatrolRoute,
    community: Community,
    result: rules.RoundResult,
    devices: dict[str, Device],
    total: int,
) -> Alert:
    zone = community.timezone
    start = local_time(result.round.start, zone)
    end = local_time(result.round.end, zone)
    names = ", ".join(devices[d].name for d in result.missed)
    return raise_alert(
        community_id=route.community_id,
        type=AlertType.PATROL_MISSED,
        severity=Severity.MEDIUM,
        summary=summary(
            N_(
                "Patrol %(route)s: round %(start)s to %(end)s missed %(missed)s of %(total)s "
                "checkpoints: %(names)s"
            ),
            route=route.name,
            start=start,
            end=end,
            missed=len(result.missed),
            total=total,
            names=names,
        ),
        device_id=result.missed[0],
        evidence={
            "route_id": route.id,
            "rounds": [
                {
                    "start": result.round.start.isoformat(),
                    "end": result.round.end.isoformat(),
                    "missed_device_ids": list(result.missed),
                }
            ],
            "missed_device_ids": list(result.missed),
        },
        dedup_key=f"patrol_missed:{route.id}",
    )


# Spoofing -----------------------------------------------------------------------------------


def after_access_event(event: AccessEvent) -> Alert | None:
    """Called by ``server.access.decision.decide`` for each stored access event: enough
    ``spoof_suspected`` denials at one access point within the window raise (or add to)
    that access point's ``spoof_attempt`` alert."""
    if (
        event.decision is not Decision.DENY
        or event.reason != Reason.SPOOF_SUSPECTED.value
        or event.access_point_id is None
    ):
        return None
    community = db.session.get(Community, event.community_id)
    settings = community_settings.effective(community.settings)
    window = timedelta(minutes=settings.spoof_window_minutes)
    denials = db.session.execute(
        select(AccessEvent.id, AccessEvent.occurred_at).where(
            AccessEvent.community_id == event.community_id,
            AccessEvent.access_point_id == event.access_point_id,
            AccessEvent.decision == Decision.DENY,
            AccessEvent.reason == Reason.SPOOF_SUSPECTED.value,
            AccessEvent.occurred_at > event.occurred_at - window,
            AccessEvent.occurred_at <= event.occurred_at,
        )
    ).all()
    times = [at for _id, at in denials]
    if not rules.spoof_attempt(times, event.occurred_at, settings.spoof_attempts, window):
        return None
    point = db.session.get(AccessPoint, event.access_point_id)
    evidence: dict[str, Any] = {"event_ids": [event_id for event_id, _at in denials]}
    return raise_alert(
        community_id=event.community_id,
        type=AlertType.SPOOF_ATTEMPT,
        severity=Severity.HIGH,
        summary=summary(
            N_("%(count)s spoofing attempts (photo or screen) at %(place)s within %(minutes)s min"),
            count=len(denials),
            place=point.name,
            minutes=settings.spoof_window_minutes,
        ),
        access_point_id=event.access_point_id,
        device_id=event.device_id,
        evidence=evidence,
        dedup_key=f"spoof_attempt:{event.access_point_id}",
    )
