"""gatekeeper.policy.decide_pass: each rule, in order, with frozen instants."""

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
)
from gatekeeper.schedule import WeeklySchedule
from gatekeeper.vocabulary import AccessPointKind, PersonRole, PersonStatus, Reason, Zone

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
