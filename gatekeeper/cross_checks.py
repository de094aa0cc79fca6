"""Cross-checks no single credential makes: plate against face, tag against face, card
against the distance walked.

Pure functions over plain values, like ``gatekeeper.alert_rules``: the server gathers the
passes (``server.alerts.cross_checks``) and raises what these return.
``docs/alert_rules.md`` ("Cross-checks") describes the rules and the choices behind them.

Every instant is timezone-aware. Every window includes both its ends; a walk is impossible
only when it needs strictly more time than there was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from gatekeeper.schedule import require_aware


@dataclass(frozen=True)
class Pass:
    """Someone or something at an access point: an access event, or a tag read at a reader
    of that access point."""

    event_id: str
    access_point_id: str
    at: datetime


@dataclass(frozen=True)
class Gates:
    """Which access points are one gate: each point is its own gate, and each of
    ``groups`` (the community's ``gate_groups``: e.g. a car barrier and the pedestrian gate
    beside it) is one gate too."""

    groups: tuple[frozenset[str], ...] = ()

    @classmethod
    def of(cls, groups: Iterable[Iterable[str]]) -> Gates:
        return cls(tuple(frozenset(group) for group in groups))

    def members(self, access_point_id: str) -> frozenset[str]:
        """The access points of ``access_point_id``'s gate, itself included."""
        found = {access_point_id}
        for group in self.groups:
            if access_point_id in group:
                found |= group
        return frozenset(found)

    def same(self, a: str, b: str) -> bool:
        return b in self.members(a)


def _near(at: datetime, other: datetime, window: timedelta) -> bool:
    return abs(other - at) <= window


# Plate against face -------------------------------------------------------------------------


def plate_face_mismatch(
    plate: Pass, strangers: Iterable[Pass], gates: Gates, window: timedelta
) -> tuple[Pass, ...]:
    """The unknown faces at the plate's gate within ``window`` before or after a known car
    was let in: the car's driver or passenger is no one the community knows. Oldest first;
    empty: no mismatch."""
    require_aware(plate.at, "plate.at")
    return tuple(
        sorted(
            (
                face
                for face in strangers
                if gates.same(plate.access_point_id, face.access_point_id)
                and _near(plate.at, face.at, window)
            ),
            key=lambda face: (face.at, face.event_id),
        )
    )


# Tag against face ---------------------------------------------------------------------------


class ExitOutcome(StrEnum):
    SEEN = "seen"  # the wearer's face was seen at that gate within the window
    WAIT = "wait"  # the face may still be seen within the window after: judge later
    ALERT = "alert"


def settles(read: Pass, window: timedelta, received_at: datetime | None = None) -> datetime:
    """When a tag read can be judged for good: ``window`` after the earlier of the reader's
    time and the server's receive time (a reader whose clock runs ahead must not postpone
    the alert)."""
    start = read.at if received_at is None else min(read.at, received_at)
    return start + window


def tag_exit_without_face(
    read: Pass,
    faces: Iterable[Pass],
    gates: Gates,
    window: timedelta,
    now: datetime,
    received_at: datetime | None = None,
) -> ExitOutcome:
    """Whether an elder's tag read at an exit had the elder's own face seen at the same gate
    (``faces``: the wearer's face events) within ``window`` before or after it. Until the
    read ``settles``, an unmatched read is ``WAIT``."""
    require_aware(now, "now")
    for face in faces:
        if gates.same(read.access_point_id, face.access_point_id) and _near(
            read.at, face.at, window
        ):
            return ExitOutcome.SEEN
    if now < settles(read, window, received_at):
        return ExitOutcome.WAIT
    return ExitOutcome.ALERT


# Card against the walk ----------------------------------------------------------------------


@dataclass(frozen=True)
class Walking:
    """The least time a person needs between two access points: the community's table
    (``walk_seconds``, either direction), else ``min_gate_seconds`` between two distinct
    perimeter gates, else no limit. Points of one gate need no time."""

    gates: Gates = field(default_factory=Gates)
    pairs: Mapping[frozenset[str], int] = field(default_factory=dict)
    perimeter: frozenset[str] = frozenset()
    min_gate_seconds: int = 0

    def seconds(self, a: str, b: str) -> int | None:
        """The least seconds from ``a`` to ``b``; ``None``: no limit."""
        if self.gates.same(a, b):
            return None
        listed = self.pairs.get(frozenset({a, b}))
        if listed is not None:
            return listed
        if a in self.perimeter and b in self.perimeter and self.min_gate_seconds > 0:
            return self.min_gate_seconds
        return None

    @property
    def longest(self) -> timedelta:
        """How far back an earlier pass can still make a later one impossible."""
        return timedelta(seconds=max([self.min_gate_seconds, *self.pairs.values()]))


def impossible_travel(earlier: Pass, later: Pass, walking: Walking) -> int | None:
    """The seconds the walk from ``earlier`` to ``later`` needs when that is more than the
    time between them (one card in two places: a clone); else ``None``. The order of the
    two passes does not matter (a device may send its events late)."""
    require_aware(later.at, "later.at")
    need = walking.seconds(earlier.access_point_id, later.access_point_id)
    if need is None:
        return None
    return need if abs(later.at - earlier.at) < timedelta(seconds=need) else None
