"""Strangers: unknown faces grouped into clusters, and when a cluster deserves an alert.

Pure (numpy and the standard library). The server keeps clusters and sightings in its
database (``server/alerts/strangers.py``); this module decides which cluster a new face joins,
how the cluster's centroid moves, whether the sightings so far cross a community's
thresholds, and how an alert sums them up. ``docs/strangers.md`` has the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import numpy as np

TEMPLATE_SIZE = 128


@dataclass(frozen=True)
class Assignment:
    """Where a new unknown face goes: the row of the nearest centroid, or a new cluster."""

    index: int | None  # row in the centroid matrix; None: start a new cluster
    distance: float | None  # to the nearest centroid; None when there was none


def assign(centroids: np.ndarray, template: np.ndarray, tolerance: float) -> Assignment:
    """The cluster whose centroid is nearest ``template``, if closer than ``tolerance``.

    ``centroids`` is an N x 128 matrix (N may be 0): one vectorised distance computation.
    """
    vector = np.asarray(template, dtype=np.float32).reshape(TEMPLATE_SIZE)
    matrix = np.asarray(centroids, dtype=np.float32).reshape(-1, TEMPLATE_SIZE)
    if len(matrix) == 0:
        return Assignment(None, None)
    distances = np.linalg.norm(matrix - vector, axis=1)
    best = int(np.argmin(distances))
    distance = float(distances[best])
    return Assignment(best if distance < tolerance else None, distance)


def running_mean(centroid: np.ndarray, count: int, template: np.ndarray) -> np.ndarray:
    """The centroid of ``count`` faces after one more joins (float32)."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    old = np.asarray(centroid, dtype=np.float64).reshape(TEMPLATE_SIZE)
    new = np.asarray(template, dtype=np.float64).reshape(TEMPLATE_SIZE)
    return ((old * count + new) / (count + 1)).astype(np.float32)


@dataclass(frozen=True)
class Sighting:
    """One unknown face of a cluster at an access point."""

    seen_at: datetime  # timezone-aware
    access_point_id: str | None  # None: the access point was deleted since


@dataclass(frozen=True)
class StrangerThresholds:
    """A community's stranger rules (``server.community.settings``)."""

    sightings: int = 3  # this many sightings within the window ...
    window: timedelta = timedelta(hours=24)
    access_points: int = 2  # ... or at this many access points within the window ...
    night_start: time = time(22, 0)  # ... or any sighting at night (community time) ...
    night_end: time = time(6, 0)  # ... which may cross midnight; start == end: no night
    time_zone: str = "Asia/Shanghai"


class Trigger(StrEnum):
    """Which rule made a cluster alert."""

    SIGHTINGS = "sightings"
    ACCESS_POINTS = "access_points"
    NIGHT = "night"


@dataclass(frozen=True)
class Verdict:
    """The rules' answer for a cluster at one instant."""

    triggers: tuple[Trigger, ...]
    in_window: tuple[Sighting, ...]  # the sightings the rules looked at, oldest first

    @property
    def alert(self) -> bool:
        return bool(self.triggers)


def is_night(at: datetime, start: time, end: time, zone: str | ZoneInfo) -> bool:
    """Whether ``at`` falls in the night ``start``-``end`` (community time, start included).

    ``end`` before ``start`` crosses midnight (22:00-06:00); equal times mean no night.
    """
    if at.tzinfo is None:
        raise ValueError(f"at must be timezone-aware, got {at.isoformat()}")
    local = at.astimezone(zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)).time()
    local = local.replace(tzinfo=None)
    if start < end:
        return start <= local < end
    if start > end:
        return local >= start or local < end
    return False


def judge(sightings: Sequence[Sighting], rules: StrangerThresholds, now: datetime) -> Verdict:
    """Which rules the cluster's sightings within the window (``now - window``, ``now``] meet.

    Every rule looks only at the window: a night sighting or a door from last month is
    no reason to alert today.
    """
    start = now - rules.window
    recent = tuple(sorted((s for s in sightings if start < s.seen_at <= now), key=_seen_at))
    triggers = []
    if len(recent) >= rules.sightings:
        triggers.append(Trigger.SIGHTINGS)
    if len(_access_points(recent)) >= rules.access_points:
        triggers.append(Trigger.ACCESS_POINTS)
    night = (rules.night_start, rules.night_end, rules.time_zone)
    if any(is_night(s.seen_at, *night) for s in recent):
        triggers.append(Trigger.NIGHT)
    return Verdict(tuple(triggers), recent)


def summary(sightings: Sequence[Sighting], zone: str | ZoneInfo) -> str:
    """``Unknown person seen 3 times at 2 doors since 21:40`` (community time).

    The start shows its date too when it is not on the last sighting's day.
    """
    if not sightings:
        raise ValueError("a summary needs at least one sighting")
    info = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)
    ordered = sorted(sightings, key=_seen_at)
    first, last = ordered[0].seen_at.astimezone(info), ordered[-1].seen_at.astimezone(info)
    since = f"{first:%H:%M}" if first.date() == last.date() else f"{first:%Y-%m-%d %H:%M}"
    count, doors = len(ordered), len(_access_points(ordered))
    times = "once" if count == 1 else f"{count} times"
    places = "1 door" if doors == 1 else f"{doors} doors"
    return f"Unknown person seen {times} at {places} since {since}"


def _access_points(sightings: Sequence[Sighting]) -> set[str]:
    return {s.access_point_id for s in sightings if s.access_point_id is not None}


def _seen_at(sighting: Sighting) -> datetime:
    return sighting.seen_at
