"""Which officer on duty to dispatch to an alert: the nearest on the site plan.

Pure (no Flask, no database): the server gathers the candidates (officers on duty who cover
the alert's community, where each last said they are, how many unresolved alerts each is
dispatched to) and this module orders them. Positions are points on the community's site
plan as fractions of the picture (``plan_x``, ``plan_y`` from the top left, 0..1), so
distances are Euclidean on the plan.

Order (docs/alerts.md, "Dispatch"): officers whose position is known, when the alert's spot
is known, by distance; officers at the same distance, and every officer whose position (or
the alert's spot) is unknown, by how busy they are (fewest unresolved assignments first),
then by name. Known distances come before unknown ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

# Two distances closer than this are a tie (rounding of positions stored as floats).
TIE = 1e-9

Spot = tuple[float, float]


@dataclass(frozen=True)
class Candidate:
    """An officer on duty who covers the alert's community."""

    officer_id: str
    name: str
    position: Spot | None  # on the plan, or None when unknown
    busy: int = 0  # unresolved alerts they are dispatched to


def distance(a: Spot, b: Spot) -> float:
    """Euclidean distance between two points of the plan."""
    return math.hypot(a[0] - b[0], a[1] - b[1])


def ranked(spot: Spot | None, candidates: Iterable[Candidate]) -> list[Candidate]:
    """The candidates, the one to dispatch first (see the module's order)."""

    def key(candidate: Candidate) -> tuple[int, float, int, str, str]:
        if spot is None or candidate.position is None:
            return (1, 0.0, candidate.busy, candidate.name, candidate.officer_id)
        far = distance(spot, candidate.position)
        return (0, round(far / TIE) * TIE, candidate.busy, candidate.name, candidate.officer_id)

    return sorted(candidates, key=key)


def nearest(spot: Spot | None, candidates: Iterable[Candidate]) -> Candidate | None:
    """The officer to dispatch with one click, or None when nobody is on duty."""
    order = ranked(spot, candidates)
    return order[0] if order else None
