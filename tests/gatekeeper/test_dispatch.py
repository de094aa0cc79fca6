"""The choice of the officer to dispatch: nearest on the plan, then least busy, then by name."""

from __future__ import annotations

from gatekeeper.dispatch import Candidate, distance, nearest, ranked


def names(order: list[Candidate]) -> list[str]:
    return [c.name for c in order]


def test_the_nearest_on_the_plan_comes_first() -> None:
    near = Candidate("usr_1", "李", (0.5, 0.5))
    far = Candidate("usr_2", "王", (0.9, 0.9))
    middle = Candidate("usr_3", "张", (0.2, 0.5))
    assert names(ranked((0.45, 0.5), [far, middle, near])) == ["李", "张", "王"]
    assert nearest((0.45, 0.5), [far, middle, near]) == near
    assert distance((0.0, 0.0), (0.3, 0.4)) == 0.5


def test_ties_go_to_the_least_busy_then_by_name() -> None:
    busy = Candidate("usr_1", "a", (0.1, 0.5), busy=2)
    idle_b = Candidate("usr_2", "b", (0.9, 0.5), busy=0)
    idle_c = Candidate("usr_3", "c", (0.5, 0.1), busy=0)
    # All three 0.4 from the spot.
    assert names(ranked((0.5, 0.5), [busy, idle_c, idle_b])) == ["b", "c", "a"]


def test_unknown_positions_come_after_known_ones_least_busy_first() -> None:
    placed = Candidate("usr_1", "z", (0.99, 0.99), busy=5)
    lost_busy = Candidate("usr_2", "a", None, busy=1)
    lost_idle = Candidate("usr_3", "b", None, busy=0)
    assert names(ranked((0.0, 0.0), [lost_busy, lost_idle, placed])) == ["z", "b", "a"]


def test_without_the_alerts_spot_the_least_busy_then_by_name() -> None:
    one = Candidate("usr_1", "b", (0.1, 0.1), busy=1)
    other = Candidate("usr_2", "c", (0.9, 0.9), busy=0)
    third = Candidate("usr_3", "a", None, busy=1)
    assert names(ranked(None, [one, other, third])) == ["c", "a", "b"]


def test_nobody_on_duty() -> None:
    assert nearest((0.5, 0.5), []) is None
