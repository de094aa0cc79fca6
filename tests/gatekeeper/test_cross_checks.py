"""The cross-checks at their thresholds' edges: frozen instants, plain values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gatekeeper import cross_checks as checks
from gatekeeper.cross_checks import ExitOutcome, Gates, Pass, Walking

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
S = timedelta(seconds=1)
MINUTE = timedelta(seconds=60)
GATES = Gates.of([["barrier", "north"]])


def at(point: str, offset: timedelta, event_id: str = "e") -> Pass:
    return Pass(event_id, point, T0 + offset)


def test_gates_are_each_point_and_each_listed_group() -> None:
    assert GATES.same("barrier", "north") and GATES.same("north", "barrier")
    assert GATES.same("back", "back")
    assert not GATES.same("barrier", "back")
    assert GATES.members("barrier") == {"barrier", "north"}
    assert Gates().members("x") == {"x"}


@pytest.mark.parametrize("offset", [-MINUTE, -S, timedelta(0), S, MINUTE])
def test_a_stranger_at_the_same_gate_within_the_window_either_side_is_a_mismatch(offset) -> None:
    plate = at("barrier", timedelta(0), "plate")
    face = at("north", offset, "face")
    assert checks.plate_face_mismatch(plate, [face], GATES, MINUTE) == (face,)


@pytest.mark.parametrize("offset", [-MINUTE - S, MINUTE + S])
def test_a_stranger_just_outside_the_window_is_not(offset) -> None:
    plate = at("barrier", timedelta(0), "plate")
    assert checks.plate_face_mismatch(plate, [at("north", offset)], GATES, MINUTE) == ()


def test_a_stranger_at_another_gate_is_not_and_matches_come_oldest_first() -> None:
    plate = at("barrier", timedelta(0), "plate")
    later, earlier = at("barrier", 10 * S, "b"), at("north", -10 * S, "a")
    faces = [at("back", timedelta(0), "x"), later, earlier]
    assert checks.plate_face_mismatch(plate, faces, GATES, MINUTE) == (earlier, later)


WINDOW = timedelta(seconds=120)


@pytest.mark.parametrize("offset", [-WINDOW, timedelta(0), WINDOW])
def test_the_elders_face_at_the_exits_gate_within_the_window_means_seen(offset) -> None:
    read = at("north", timedelta(0), "read")
    outcome = checks.tag_exit_without_face(
        read, [at("barrier", offset)], GATES, WINDOW, T0 + 10 * WINDOW
    )
    assert outcome is ExitOutcome.SEEN


def test_without_the_face_the_read_waits_for_the_window_then_alerts() -> None:
    read = at("north", timedelta(0), "read")
    faces = [at("north", WINDOW + S), at("north", -WINDOW - S), at("back", timedelta(0))]

    def judge(now: datetime, **more) -> ExitOutcome:
        return checks.tag_exit_without_face(read, faces, GATES, WINDOW, now, **more)

    assert judge(T0) is ExitOutcome.WAIT
    assert judge(T0 + WINDOW - S) is ExitOutcome.WAIT
    assert judge(T0 + WINDOW) is ExitOutcome.ALERT
    # A reader whose clock runs ahead does not postpone the alert: the server's time counts.
    assert judge(T0 + WINDOW - 5 * S, received_at=T0 - 5 * S) is ExitOutcome.ALERT


WALK = Walking(
    gates=GATES,
    pairs={frozenset({"north", "east"}): 300},
    perimeter=frozenset({"north", "barrier", "east", "south"}),
    min_gate_seconds=60,
)


def test_the_walk_comes_from_the_table_else_the_default_between_perimeter_gates() -> None:
    assert WALK.seconds("north", "east") == WALK.seconds("east", "north") == 300
    assert WALK.seconds("north", "south") == 60
    assert WALK.seconds("north", "barrier") is None  # one gate
    assert WALK.seconds("north", "lobby") is None  # not a perimeter gate, not listed
    assert WALK.longest == timedelta(seconds=300)
    assert Walking(perimeter=frozenset({"a", "b"})).seconds("a", "b") is None  # default off


@pytest.mark.parametrize(
    ("second", "apart", "expected"),
    [
        ("east", 299 * S, 300),
        ("east", 300 * S, None),  # exactly the walk: possible
        ("south", 59 * S, 60),
        ("south", 60 * S, None),
        ("barrier", S, None),
        ("lobby", S, None),
    ],
)
def test_a_card_faster_than_the_walk_is_impossible_travel(second, apart, expected) -> None:
    first = at("north", timedelta(0), "a")
    later = at(second, apart, "b")
    assert checks.impossible_travel(first, later, WALK) == expected
    assert checks.impossible_travel(later, first, WALK) == expected  # order does not matter
