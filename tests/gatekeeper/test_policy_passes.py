"""gatekeeper.policy.decide_pass: each rule, in order, with frozen instants; and
``pass_status``, whether a pass is usable at an instant (what lists and pages show)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gatekeeper.policy import (
    AccessPointView,
    LeaseWindow,
    Membership,
    PassView,
    Rule,
    Subject,
    decide_pass,
    pass_status,
    pass_window,
)
from gatekeeper.schedule import WeeklySchedule
from gatekeeper.vocabulary import (
    AccessPointKind,
    PassStatus,
    PersonRole,
    PersonStatus,
    Reason,
    Zone,
)

START = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
END = START + timedelta(days=1)
DOOR = AccessPointView("ap_door", AccessPointKind.DOOR, Zone.BUILDING, building_id="bld_1")
OTHER = AccessPointView("ap_other", AccessPointKind.DOOR, Zone.BUILDING, building_id="bld_2")
OWNER = Subject("per_1", memberships=(Membership(PersonRole.OWNER, "bld_1"),))


def visitor_pass(**changes) -> PassView:
    values = {
        "access_point_ids": frozenset({"ap_door"}),
        "valid_from": START,
        "valid_until": END,
        "max_uses": 1,
        "uses": 0,
        "issuer": OWNER,
    }
    return PassView(**{**values, **changes})


RULE_CASES = [
    ({}, DOOR, START, Reason.VISITOR_PASS, Rule.PASS_VALID),
    ({}, DOOR, END - timedelta(seconds=1), Reason.VISITOR_PASS, Rule.PASS_VALID),
    ({}, DOOR, END, Reason.PASS_EXPIRED, Rule.PASS_EXPIRED),
    ({}, DOOR, START - timedelta(seconds=1), Reason.PASS_INVALID, Rule.PASS_NOT_YET_VALID),
    ({"uses": 1}, DOOR, START, Reason.PASS_USED_UP, Rule.PASS_USED_UP),
    ({}, OTHER, START, Reason.NOT_AUTHORIZED_HERE, Rule.PASS_NOT_LISTED),
    ({"revoked": True}, DOOR, START, Reason.PASS_REVOKED, Rule.PASS_REVOKED),
    # Revocation wins over everything, expiry over the door and the count.
    ({"revoked": True, "uses": 1}, OTHER, END, Reason.PASS_REVOKED, Rule.PASS_REVOKED),
    ({"uses": 1}, OTHER, END, Reason.PASS_EXPIRED, Rule.PASS_EXPIRED),
    ({"issuer": None}, DOOR, START, Reason.VISITOR_PASS, Rule.PASS_VALID),  # staff's
    (
        {"issuer": Subject("per_1", status=PersonStatus.MOVED_OUT)},
        DOOR,
        START,
        Reason.PASS_REVOKED,
        Rule.PASS_ISSUER_GONE,
    ),
]


@pytest.mark.parametrize(("changes", "point", "at", "reason", "rule"), RULE_CASES)
def test_rules(changes, point, at, reason, rule) -> None:
    decision = decide_pass(visitor_pass(**changes), point, at)
    assert (decision.reason, decision.rule) == (reason, rule)


def test_every_pass_rule_has_a_case() -> None:
    covered = {params[4] for params in RULE_CASES} | {Rule.PASS_ISSUER_GONE}
    server_side = {Rule.PASS_OFFLINE, Rule.VEHICLE_EXIT}  # uploads and barrier exits
    assert covered | server_side >= {r for r in Rule if r.value.startswith("pass.")}


def test_a_tenants_pass_lives_as_long_as_the_lease() -> None:
    lease_end = START + timedelta(hours=6)
    tenant = Subject("per_2", leases=(LeaseWindow("bld_1", START - timedelta(days=30), lease_end),))
    pass_ = visitor_pass(issuer=tenant, max_uses=5)
    assert decide_pass(pass_, DOOR, lease_end - timedelta(seconds=1)).granted
    late = decide_pass(pass_, DOOR, lease_end)
    assert (late.reason, late.rule) == (Reason.PASS_REVOKED, Rule.PASS_ISSUER_GONE)
    assert "lease" in late.detail


def test_the_door_schedule_still_applies() -> None:
    night_closed = AccessPointView(
        "ap_door",
        AccessPointKind.DOOR,
        Zone.BUILDING,
        building_id="bld_1",
        schedule=WeeklySchedule.from_json(
            [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "06:00", "end": "22:00"}]
        ),
    )
    at_night = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    decision = decide_pass(visitor_pass(), night_closed, at_night)
    assert (decision.reason, decision.rule) == (Reason.OUTSIDE_SCHEDULE, Rule.POINT_SCHEDULE)
    assert decide_pass(visitor_pass(), night_closed, START + timedelta(hours=2)).granted


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError):
        decide_pass(visitor_pass(), DOOR, datetime(2026, 11, 21, 8, 0))
    with pytest.raises(ValueError):
        visitor_pass(valid_from=datetime(2026, 11, 21))


# pass_status ---------------------------------------------------------------------------------

SECOND = timedelta(seconds=1)


def status(at: datetime = START, **changes) -> PassStatus:
    values = {
        "revoked": False,
        "uses": 0,
        "max_uses": 1,
        "valid_from": START,
        "valid_until": END,
        "at": at,
    }
    return pass_status(**{**values, **changes})


def test_the_window_is_half_open() -> None:
    assert pass_window(START, END, START - SECOND) is PassStatus.UPCOMING
    assert pass_window(START, END, START) is PassStatus.ACTIVE
    assert pass_window(START, END, END - SECOND) is PassStatus.ACTIVE
    assert pass_window(START, END, END) is PassStatus.EXPIRED
    assert status(START - SECOND) is PassStatus.UPCOMING
    assert status(START) is status(END - SECOND) is PassStatus.ACTIVE
    assert status(END) is PassStatus.EXPIRED


def test_uses_count_up_to_the_limit() -> None:
    assert status(uses=2, max_uses=3) is PassStatus.ACTIVE
    assert status(uses=3, max_uses=3) is PassStatus.USED
    assert status(uses=4, max_uses=3) is PassStatus.USED  # offline uploads overshoot


@pytest.mark.parametrize("at", [START - SECOND, START, END])
def test_revoked_wins_then_used_then_the_window(at) -> None:
    assert status(at, revoked=True, uses=1) is PassStatus.REVOKED
    assert status(at, uses=1) is PassStatus.USED  # a spent pass stays "used" after its end


def test_naive_instants_are_refused_by_the_status_too() -> None:
    with pytest.raises(ValueError):
        status(datetime(2026, 11, 21, 8, 0))


def test_a_pass_view_reports_its_status() -> None:
    assert visitor_pass().status(START) is PassStatus.ACTIVE
    assert visitor_pass(uses=1).status(START) is PassStatus.USED
    assert visitor_pass(revoked=True).status(START - SECOND) is PassStatus.REVOKED
    assert visitor_pass().status(END) is PassStatus.EXPIRED


# Each status, as a door without a schedule on the pass reads it (the issuer still here).
_DOOR_READS = {
    PassStatus.ACTIVE: Rule.PASS_VALID,
    PassStatus.UPCOMING: Rule.PASS_NOT_YET_VALID,
    PassStatus.EXPIRED: Rule.PASS_EXPIRED,
    PassStatus.USED: Rule.PASS_USED_UP,
    PassStatus.REVOKED: Rule.PASS_REVOKED,
}


@pytest.mark.parametrize("revoked", [False, True])
@pytest.mark.parametrize(("uses", "max_uses"), [(0, 1), (1, 1), (2, 5), (5, 5)])
@pytest.mark.parametrize("at", [START - SECOND, START, END - SECOND, END, END + SECOND])
def test_the_door_and_the_status_agree(revoked, uses, max_uses, at) -> None:
    """A listed door opens exactly for an active pass; otherwise the door's rule is the
    status's, except that the door reads the window before the uses."""
    pass_ = visitor_pass(revoked=revoked, uses=uses, max_uses=max_uses)
    current = pass_.status(at)
    decision = decide_pass(pass_, DOOR, at)
    assert decision.granted is (current is PassStatus.ACTIVE)
    window = pass_window(START, END, at)
    if current is PassStatus.USED and window is not PassStatus.ACTIVE:
        assert decision.rule is _DOOR_READS[window]
    else:
        assert decision.rule is _DOOR_READS[current]
