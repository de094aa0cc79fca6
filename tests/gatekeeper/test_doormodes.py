"""Door modes: which doors a lockdown or a release covers, when, whom a lockdown lets through,
and what a door is held in when both cover it. Instants are explicit: nothing reads a clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gatekeeper.doormodes import (
    DEFAULT_EXEMPT,
    EXEMPT_CHOICES,
    DoorModeKind,
    DoorModeView,
    ModeScope,
    door_state,
    exempt_account,
    lockdown_decision,
    roles_of,
)
from gatekeeper.policy import (
    AccessPointView,
    LeaseWindow,
    Membership,
    Rule,
    Subject,
    WorkerPermit,
)
from gatekeeper.vocabulary import AccessPointKind, Decision, PersonRole, Reason, Zone

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
LIFT = START + timedelta(hours=2)
SECOND = timedelta(seconds=1)

DOOR_B1 = AccessPointView(
    id="ap_b1", kind=AccessPointKind.DOOR, zone=Zone.BUILDING, building_id="b1"
)
DOOR_B2 = AccessPointView(
    id="ap_b2", kind=AccessPointKind.DOOR, zone=Zone.BUILDING, building_id="b2"
)
GATE = AccessPointView(id="ap_gate", kind=AccessPointKind.GATE, zone=Zone.PERIMETER)


def mode(
    scope: ModeScope = ModeScope.COMMUNITY,
    target: str | None = None,
    *,
    kind: DoorModeKind = DoorModeKind.LOCKDOWN,
    exempt: tuple[str, ...] = (),
    lifted_at: datetime | None = None,
    started_at: datetime = START,
    ident: str = "dmd_1",
    points: tuple[str, ...] = (),
) -> DoorModeView:
    return DoorModeView(
        id=ident,
        kind=kind,
        scope=scope,
        target_id=target,
        access_point_ids=frozenset(points),
        started_at=started_at,
        lifted_at=lifted_at,
        exempt_roles=frozenset(exempt),
        reason="Suspect seen",
    )


@pytest.mark.parametrize(
    ("scope", "target", "covered"),
    [
        (ModeScope.COMMUNITY, None, {"ap_b1", "ap_b2", "ap_gate"}),
        (ModeScope.BUILDING, "b1", {"ap_b1"}),  # not the shared gate
        (ModeScope.ACCESS_POINT, ("ap_gate",), {"ap_gate"}),
        (ModeScope.ACCESS_POINT, ("ap_gate", "ap_b2"), {"ap_gate", "ap_b2"}),  # chosen doors
    ],
)
def test_what_a_mode_covers(
    scope: ModeScope, target: str | tuple[str, ...] | None, covered: set[str]
) -> None:
    chosen = isinstance(target, tuple)
    lockdown = mode(scope, points=target) if chosen else mode(scope, target)  # type: ignore[arg-type]
    denied = {
        p.id
        for p in (DOOR_B1, DOOR_B2, GATE)
        if lockdown_decision([lockdown], p, START) is not None
    }
    assert denied == covered


def test_a_lockdown_holds_from_its_start_until_its_lift_to_the_second() -> None:
    lockdown = mode(lifted_at=LIFT)
    assert lockdown_decision([lockdown], DOOR_B1, START - SECOND) is None
    at_start = lockdown_decision([lockdown], DOOR_B1, START)
    assert at_start is not None
    assert (at_start.decision, at_start.reason, at_start.rule) == (
        Decision.DENY,
        Reason.LOCKDOWN,
        Rule.LOCKDOWN,
    )
    assert "Suspect seen" in (at_start.detail or "")
    assert lockdown_decision([lockdown], DOOR_B1, LIFT - SECOND) is not None
    assert lockdown_decision([lockdown], DOOR_B1, LIFT) is None


def test_the_roles_it_names_pass_and_every_lockdown_must_name_one() -> None:
    workers = mode(exempt=("worker", "staff"))
    assert lockdown_decision([workers], DOOR_B1, START, {"worker"}) is None
    assert lockdown_decision([workers], DOOR_B1, START, {"owner"}) is not None
    assert lockdown_decision([workers], DOOR_B1, START, ()) is not None  # a visitor's pass
    # A second lockdown over the door that names only staff stops the worker.
    staff_only = mode(ModeScope.BUILDING, "b1", exempt=("staff",), ident="dmd_2")
    assert lockdown_decision([workers, staff_only], DOOR_B1, START, {"worker"}) is not None
    assert lockdown_decision([workers, staff_only], DOOR_B2, START, {"worker"}) is None


def test_a_release_is_no_lockdown() -> None:
    release = mode(kind=DoorModeKind.EMERGENCY_RELEASE)
    assert lockdown_decision([release], DOOR_B1, START) is None


def test_a_release_wins_at_the_door_over_a_lockdown() -> None:
    lockdown = mode()
    release = mode(
        ModeScope.ACCESS_POINT,
        points=("ap_gate",),
        kind=DoorModeKind.EMERGENCY_RELEASE,
        lifted_at=LIFT,
    )
    assert door_state([lockdown, release], GATE, START) is DoorModeKind.EMERGENCY_RELEASE
    assert door_state([lockdown, release], DOOR_B1, START) is DoorModeKind.LOCKDOWN
    assert door_state([lockdown, release], GATE, LIFT) is DoorModeKind.LOCKDOWN
    assert door_state([release], GATE, LIFT) is None
    # Credentials at a released door are still decided by the lockdown.
    assert lockdown_decision([lockdown, release], GATE, START) is not None


def test_the_roles_a_person_holds_at_an_instant() -> None:
    subject = Subject(
        person_id="per_1",
        memberships=(
            Membership(PersonRole.OWNER, "b1"),
            Membership(PersonRole.ELDER, "b1", valid_until=START),  # ended
        ),
        leases=(LeaseWindow("b2", START - timedelta(days=1), START + timedelta(days=1)),),
        worker_permit=WorkerPermit(frozenset({"ap_b1"}), valid_from=START + SECOND),
    )
    assert roles_of(subject, START) == {"owner", "tenant"}
    assert roles_of(subject, START + SECOND) == {"owner", "tenant", "worker"}
    assert roles_of(subject, START - SECOND) == {"owner", "elder", "tenant"}


def test_accounts_and_choices() -> None:
    assert exempt_account("admin") == exempt_account("staff") == "staff"
    assert exempt_account("officer") == "officer"
    assert set(DEFAULT_EXEMPT) == {"staff", "officer"}
    assert {"worker", "owner", "staff", "officer"} <= set(EXEMPT_CHOICES)


def test_a_mode_is_checked_when_it_is_made() -> None:
    with pytest.raises(ValueError, match="no target"):
        mode(ModeScope.COMMUNITY, "b1")
    with pytest.raises(ValueError, match="no target"):
        mode(ModeScope.BUILDING, None)
    with pytest.raises(ValueError, match="names them"):
        mode(ModeScope.ACCESS_POINT)  # no point chosen
    with pytest.raises(ValueError, match="names them"):
        mode(ModeScope.BUILDING, "b1", points=("ap_b1",))
    with pytest.raises(TypeError):
        DoorModeView(
            "d",
            DoorModeKind.LOCKDOWN,
            ModeScope.ACCESS_POINT,
            None,
            START,
            access_point_ids="ap_b1",  # type: ignore[arg-type]
        )
    with pytest.raises(TypeError):
        DoorModeView(
            "d", DoorModeKind.LOCKDOWN, ModeScope.COMMUNITY, None, START, exempt_roles="staff"
        )  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aware"):
        mode(started_at=datetime(2026, 11, 20, 10, 0))
