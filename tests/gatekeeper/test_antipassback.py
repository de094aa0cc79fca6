"""Anti-passback's pure rule: entries, exits, the two modes and forgiveness to the second.

Time is frozen by passing explicit timezone-aware instants; nothing here reads a clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gatekeeper.antipassback import (
    OUTSIDE,
    Pair,
    Passage,
    PassbackMode,
    Presence,
    forgiven,
    judge,
    passage,
)

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
HARD = Pair("ap_in", "ap_out", PassbackMode.HARD, timedelta(minutes=30))
SOFT = Pair("ap_in", "ap_out", PassbackMode.SOFT, timedelta(minutes=30))
ONE_POINT = Pair("ap_gate", "ap_gate", PassbackMode.HARD, None)


def _entered(at: datetime = T0) -> Presence:
    verdict = judge(HARD, OUTSIDE, Passage.ENTRY, at)
    assert (verdict.allowed, verdict.violation) == (True, False)
    return verdict.presence


def test_a_first_entry_marks_the_person_inside() -> None:
    assert _entered() == Presence(inside=True, entered_at=T0)


def test_hard_mode_denies_a_second_entry_and_keeps_the_state() -> None:
    inside = _entered()
    verdict = judge(HARD, inside, Passage.ENTRY, T0 + timedelta(minutes=5))
    assert (verdict.allowed, verdict.violation) == (False, True)
    assert verdict.presence == inside  # the first entry still counts, not the refused one


def test_soft_mode_grants_a_second_entry_flagged() -> None:
    inside = _entered()
    later = T0 + timedelta(minutes=5)
    verdict = judge(SOFT, inside, Passage.ENTRY, later)
    assert (verdict.allowed, verdict.violation) == (True, True)
    assert verdict.presence == Presence(inside=True, entered_at=later)


@pytest.mark.parametrize(
    ("after", "allowed"),
    [
        (timedelta(minutes=30) - timedelta(microseconds=1), False),
        (timedelta(minutes=30), True),  # at the edge: forgiven
        (timedelta(minutes=30, seconds=1), True),
    ],
)
def test_forgiveness_at_its_edge(after: timedelta, allowed: bool) -> None:
    inside = _entered()
    at = T0 + after
    verdict = judge(HARD, inside, Passage.ENTRY, at)
    assert (verdict.allowed, verdict.violation) == (allowed, not allowed)
    assert forgiven(HARD, inside, at) is allowed
    if allowed:
        assert verdict.presence == Presence(inside=True, entered_at=at)


def test_without_a_forgiveness_time_only_an_exit_lets_one_in_again() -> None:
    inside = judge(ONE_POINT, OUTSIDE, Passage.ENTRY, T0).presence
    a_year_later = T0 + timedelta(days=365)
    assert not judge(ONE_POINT, inside, Passage.ENTRY, a_year_later).allowed
    out = judge(ONE_POINT, inside, Passage.EXIT, a_year_later)
    assert (out.allowed, out.violation, out.presence) == (True, False, OUTSIDE)
    assert judge(ONE_POINT, out.presence, Passage.ENTRY, a_year_later).allowed


def test_exit_then_entry_is_granted() -> None:
    inside = _entered()
    out = judge(HARD, inside, Passage.EXIT, T0 + timedelta(minutes=1))
    assert (out.allowed, out.violation, out.presence) == (True, False, OUTSIDE)
    again = judge(HARD, out.presence, Passage.ENTRY, T0 + timedelta(minutes=2))
    assert (again.allowed, again.violation) == (True, False)


def test_an_exit_without_an_entry_is_allowed() -> None:
    verdict = judge(HARD, OUTSIDE, Passage.EXIT, T0)
    assert (verdict.allowed, verdict.violation, verdict.presence) == (True, False, OUTSIDE)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        judge(HARD, OUTSIDE, Passage.ENTRY, T0.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("pair", "point", "direction", "expected"),
    [
        (HARD, "ap_in", None, Passage.ENTRY),
        (HARD, "ap_in", "in", Passage.ENTRY),
        (HARD, "ap_in", "out", None),  # against the point's own way: not counted
        (HARD, "ap_out", None, Passage.EXIT),
        (HARD, "ap_out", "out", Passage.EXIT),
        (HARD, "ap_out", "in", None),
        (HARD, "ap_elsewhere", None, None),
        (ONE_POINT, "ap_gate", "in", Passage.ENTRY),
        (ONE_POINT, "ap_gate", "out", Passage.EXIT),
        (ONE_POINT, "ap_gate", None, None),  # one point without a direction: unknown
        (ONE_POINT, "ap_other", "in", None),
    ],
)
def test_what_a_presentation_means_for_a_pair(pair, point, direction, expected) -> None:
    assert passage(pair, point, direction) is expected
