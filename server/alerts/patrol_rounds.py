"""Patrol rounds as the guards walked them: whose tags count, and a route's recent rounds.

Only a guard's tag counts at a checkpoint (``RfidTag.guard``, set by staff); on an ordered
route only a read in its turn (``gatekeeper.alert_rules.judge_round`` decides). The worker's
``server.alerts.rules.judge_patrol_rounds`` raises ``patrol_missed`` from the same judgement
that the route's page and ``GET /patrol-routes/{id}/rounds`` show.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from gatekeeper import alert_rules as rules
from gatekeeper.identity import mask_name
from gatekeeper.schedule import schedule_from_json
from hardware.protocol import EventType
from server.core.scope import Scope
from server.extensions import db
from server.models import Community, Device, DeviceEvent, PatrolRoute, Person, RfidTag, utcnow

# How far back a route's page and API look by default, and at most.
RECENT_HOURS = 24
MAX_HOURS = 7 * 24


def guard_tags(community_id: str) -> dict[str, str]:
    """The community's guard tags in use: EPC (upper case) -> the wearer's person id."""
    return dict(
        db.session.execute(
            select(RfidTag.epc, RfidTag.person_id).where(
                RfidTag.community_id == community_id,
                RfidTag.guard.is_(True),
                RfidTag.disabled_at.is_(None),
            )
        ).all()
    )


def checkpoint_devices(route: PatrolRoute) -> tuple[list[str], dict[str, Device]]:
    """The route's checkpoints that can be visited (in route order) and their devices: a
    checkpoint removed or disabled since is not judged."""
    devices = {
        d.id: d
        for d in db.session.scalars(
            select(Device).where(
                Device.community_id == route.community_id,
                Device.id.in_(list(route.checkpoint_device_ids)),
                Device.disabled_at.is_(None),
            )
        )
    }
    return [d for d in route.checkpoint_device_ids if d in devices], devices


def judge(
    route: PatrolRoute, checkpoints: Sequence[str], rounds: Sequence[rules.Round]
) -> list[rules.RoundResult]:
    """Each of ``rounds`` judged on the tag reads at ``checkpoints``: guards' tags only, in
    turn when the route is ordered."""
    if not rounds or not checkpoints:
        return []
    reads = sorted(
        (
            (at, device_id, str(payload.get("tag", "")).upper() or None)
            for device_id, at, payload in db.session.execute(
                select(DeviceEvent.device_id, DeviceEvent.occurred_at, DeviceEvent.payload).where(
                    DeviceEvent.device_id.in_(list(checkpoints)),
                    DeviceEvent.type == EventType.TAG_READ.value,
                    DeviceEvent.occurred_at >= rounds[0].start,
                    DeviceEvent.occurred_at < rounds[-1].end,
                )
            ).all()
        ),
        key=lambda read: read[0],
    )
    instants = [at for at, _device, _tag in reads]
    guards = guard_tags(route.community_id)
    results = []
    for patrol_round in rounds:  # each round is given only its own reads (a week of them)
        first = bisect_left(instants, patrol_round.start)
        last = bisect_left(instants, patrol_round.end)
        mine = [(device, at, tag) for at, device, tag in reads[first:last]]
        results.append(
            rules.judge_round(
                patrol_round, checkpoints, mine, guard_tags=guards, ordered=route.ordered
            )
        )
    return results


@dataclass(frozen=True)
class VisitView:
    device_id: str
    device_name: str
    at: datetime
    tag: str | None
    person_id: str | None
    person_name: str | None  # masked for a role that reads no personal data


@dataclass(frozen=True)
class RoundView:
    start: datetime
    end: datetime
    status: str  # complete | missed | in_progress
    missed_device_ids: list[str]
    missed_names: list[str]
    visits: list[VisitView]


def recent(
    scope: Scope, route_id: str, hours: int = RECENT_HOURS, now: datetime | None = None
) -> list[RoundView]:
    """The route's rounds that ended in the last ``hours`` and the one under way, newest
    first: the checkpoints read (when, by whose guard tag) and those missed so far."""
    route = scope.get(PatrolRoute, route_id)
    community = db.session.get(Community, route.community_id)
    now = now or utcnow()
    try:
        schedule = schedule_from_json(route.schedule)
    except ValueError:
        return []
    rounds = rules.patrol_rounds(
        route.round_minutes,
        schedule,
        community.timezone,
        # No round before the route was made (as the worker judges them).
        after=max(now - timedelta(hours=hours), route.created_at),
        until=now + timedelta(minutes=route.round_minutes),
    )
    rounds = [r for r in rounds if r.start <= now]
    checkpoints, devices = checkpoint_devices(route)
    results = judge(route, checkpoints, rounds)
    guards = guard_tags(route.community_id)
    wearers = {
        p.id: p
        for p in db.session.scalars(select(Person).where(Person.id.in_(set(guards.values()))))
    }
    full_names = scope.reads(Person)
    views = []
    for result in results:
        visits = []
        for visit in result.visits:
            person = wearers.get(guards.get((visit.tag or "").upper(), ""))
            name = None
            if person is not None:
                name = person.name if full_names else mask_name(person.name)
            visits.append(
                VisitView(
                    device_id=visit.checkpoint,
                    device_name=devices[visit.checkpoint].name,
                    at=visit.at,
                    tag=visit.tag,
                    person_id=person.id if person is not None else None,
                    person_name=name,
                )
            )
        if result.round.end > now:
            status = "in_progress"
        else:
            status = "complete" if result.complete else "missed"
        views.append(
            RoundView(
                start=result.round.start,
                end=result.round.end,
                status=status,
                missed_device_ids=list(result.missed),
                missed_names=[devices[d].name for d in result.missed],
                visits=visits,
            )
        )
    return list(reversed(views))
