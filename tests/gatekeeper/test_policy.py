"""The access policy: every reason and rule, the edges of every window, multi-role subjects.

Time is frozen by passing explicit timezone-aware instants; nothing here reads a clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gatekeeper.holidays import Calendar, Holiday, HolidayEffect, hours_from_json
from gatekeeper.policy import (
    DENIAL_PRECEDENCE,
    AccessDecision,
    AccessPointView,
    CredentialView,
    LeaseWindow,
    Membership,
    PersonStatus,
    Rule,
    Subject,
    WorkerPermit,
    decide_access,
    most_informative,
)
from gatekeeper.schedule import WeeklySchedule
from gatekeeper.vocabulary import (
    AccessPointKind,
    CredentialType,
    Decision,
    PersonRole,
    Reason,
    Zone,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
SECOND = timedelta(seconds=1)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "policy.md"


def local(day: int, hour: int = 0, minute: int = 0, second: int = 0, month: int = 11) -> datetime:
    """Local time in Shanghai, 2026 (20 November is a Friday, 23 November a Monday)."""
    return datetime(2026, month, day, hour, minute, second, tzinfo=SHANGHAI)


NOW = local(20, 10, 0)  # Friday 10:00

B1, B2, B3 = "bld_1", "bld_2", "bld_3"
DOOR_B1 = AccessPointView(id="ap_b1", kind=AccessPointKind.DOOR, zone=Zone.BUILDING, building_id=B1)
DOOR_B2 = AccessPointView(id="ap_b2", kind=AccessPointKind.DOOR, zone=Zone.BUILDING, building_id=B2)
DOOR_B3 = AccessPointView(id="ap_b3", kind=AccessPointKind.DOOR, zone=Zone.BUILDING, building_id=B3)
GATE = AccessPointView(id="ap_gate", kind=AccessPointKind.GATE, zone=Zone.PERIMETER)
BARRIER = AccessPointView(id="ap_barrier", kind=AccessPointKind.BARRIER, zone=Zone.PERIMETER)

WEEKDAY_DAYTIME = WeeklySchedule.from_json(
    [{"days": [1, 2, 3, 4, 5], "start": "08:00", "end": "17:00"}]
)
# A gate open 06:00-23:00 every day.
GATE_HOURS = WeeklySchedule.from_json(
    [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "06:00", "end": "23:00"}]
)
NIGHT_GATE = replace(GATE, schedule=GATE_HOURS)

CARD = CredentialView(kind=CredentialType.CARD)


def person(**fields: object) -> Subject:
    return Subject(person_id="per_1", credential=CARD, **fields)  # type: ignore[arg-type]


def resident(
    building: str | None = B1, role: PersonRole = PersonRole.OWNER, **fields: object
) -> Subject:
    return person(memberships=(Membership(role=role, building_id=building),), **fields)


def lease(starts: datetime, ends: datetime, building: str = B1) -> LeaseWindow:
    return LeaseWindow(unit_building_id=building, starts_at=starts, ends_at=ends)


LEASE_START = local(1, 0, 0)
LEASE_END = local(1, 0, 0, month=12)
CURRENT_LEASE = lease(LEASE_START, LEASE_END)


def tenant(*leases: LeaseWindow, **fields: object) -> Subject:
    return person(
        memberships=(Membership(role=PersonRole.TENANT, building_id=B1),),
        leases=leases or (CURRENT_LEASE,),
        **fields,
    )


def worker(permit: WorkerPermit | None = None, **fields: object) -> Subject:
    return person(
        memberships=(Membership(role=PersonRole.WORKER),),
        worker_permit=permit or WorkerPermit(access_point_ids=frozenset({GATE.id, DOOR_B1.id})),
        **fields,
    )


def with_credential(subject: Subject, **fields: object) -> Subject:
    return replace(subject, credential=CredentialView(**fields))  # type: ignore[arg-type]


# -- every rule and every reason: a case that gives it, and a near case that does not ------


@dataclass(frozen=True)
class Case:
    name: str
    subject: Subject
    point: AccessPointView
    at: datetime
    decision: Decision
    reason: Reason
    rule: Rule
    near: tuple[Subject, AccessPointView, datetime]
    near_reason: Reason
    near_rule: Rule


def case(
    name: str,
    hit: tuple[Subject, AccessPointView, datetime],
    expected: tuple[Reason, Rule],
    near: tuple[Subject, AccessPointView, datetime],
    near_expected: tuple[Reason, Rule],
) -> pytest.ParameterSet:
    reason, rule = expected
    grants = {Reason.RESIDENT, Reason.TENANT, Reason.WORKER}
    decision = Decision.GRANT if reason in grants else Decision.DENY
    return pytest.param(
        Case(name, *hit, decision, reason, rule, near, *near_expected),  # type: ignore[misc]
        id=name,
    )


OWNER = resident()
GRANT_RESIDENT = (Reason.RESIDENT, Rule.RESIDENT_OWN_BUILDING)


def credential_cases() -> list[pytest.ParameterSet]:
    cases = []
    disabled = {
        CredentialType.CARD: Reason.CARD_DISABLED,
        CredentialType.TAG: Reason.CARD_DISABLED,
        CredentialType.REMOTE: Reason.CARD_DISABLED,
        CredentialType.PLATE: Reason.UNKNOWN_PLATE,
        CredentialType.FACE: Reason.UNKNOWN_FACE,
        CredentialType.QR: Reason.PASS_REVOKED,
    }
    for kind, reason in disabled.items():
        cases.append(
            case(
                f"{kind}-disabled",
                (with_credential(OWNER, kind=kind, disabled=True), DOOR_B1, NOW),
                (reason, Rule.CREDENTIAL_DISABLED),
                (with_credential(OWNER, kind=kind, disabled=False), DOOR_B1, NOW),
                GRANT_RESIDENT,
            )
        )
    not_yet = {CredentialType.CARD: Reason.CARD_DISABLED, CredentialType.QR: Reason.PASS_INVALID}
    not_yet |= {
        CredentialType.PLATE: Reason.UNKNOWN_PLATE,
        CredentialType.FACE: Reason.UNKNOWN_FACE,
    }
    for kind, reason in not_yet.items():
        cases.append(
            case(
                f"{kind}-not-yet-valid",
                (with_credential(OWNER, kind=kind, valid_from=NOW + SECOND), DOOR_B1, NOW),
                (reason, Rule.CREDENTIAL_NOT_YET_VALID),
                (with_credential(OWNER, kind=kind, valid_from=NOW), DOOR_B1, NOW),
                GRANT_RESIDENT,
            )
        )
    expired = {CredentialType.CARD: Reason.CARD_DISABLED, CredentialType.QR: Reason.PASS_EXPIRED}
    expired |= {
        CredentialType.TAG: Reason.CARD_DISABLED,
        CredentialType.PLATE: Reason.UNKNOWN_PLATE,
    }
    for kind, reason in expired.items():
        cases.append(
            case(
                f"{kind}-expired",
                (with_credential(OWNER, kind=kind, valid_until=NOW), DOOR_B1, NOW),
                (reason, Rule.CREDENTIAL_EXPIRED),
                (with_credential(OWNER, kind=kind, valid_until=NOW + SECOND), DOOR_B1, NOW),
                GRANT_RESIDENT,
            )
        )
    return cases


PERSON_CASES = [
    case(
        "person-suspended",
        (resident(status=PersonStatus.SUSPENDED), DOOR_B1, NOW),
        (Reason.PERSON_SUSPENDED, Rule.PERSON_SUSPENDED),
        (resident(status=PersonStatus.ACTIVE), DOOR_B1, NOW),
        GRANT_RESIDENT,
    ),
    case(
        "person-moved-out",
        (resident(status=PersonStatus.MOVED_OUT), GATE, NOW),
        (Reason.PERSON_SUSPENDED, Rule.PERSON_MOVED_OUT),
        (resident(status=PersonStatus.ACTIVE), GATE, NOW),
        (Reason.RESIDENT, Rule.RESIDENT_SHARED_POINT),
    ),
    case(
        "person-pending",
        (tenant(status=PersonStatus.PENDING), DOOR_B1, NOW),
        (Reason.PERSON_SUSPENDED, Rule.PERSON_PENDING),
        (tenant(status=PersonStatus.ACTIVE), DOOR_B1, NOW),
        (Reason.TENANT, Rule.TENANT_LEASE),
    ),
    case(
        "person-not-yet-valid",
        (resident(valid_from=NOW + SECOND), DOOR_B1, NOW),
        (Reason.PERSON_SUSPENDED, Rule.PERSON_NOT_YET_VALID),
        (resident(valid_from=NOW), DOOR_B1, NOW),
        GRANT_RESIDENT,
    ),
    case(
        "person-expired",
        (resident(valid_until=NOW), DOOR_B1, NOW),
        (Reason.PERSON_SUSPENDED, Rule.PERSON_EXPIRED),
        (resident(valid_until=NOW + SECOND), DOOR_B1, NOW),
        GRANT_RESIDENT,
    ),
]


def membership(valid_from: datetime | None = None, valid_until: datetime | None = None) -> Subject:
    return person(
        memberships=(
            Membership(PersonRole.RESIDENT, B1, valid_from=valid_from, valid_until=valid_until),
        )
    )


RESIDENT_CASES = [
    case(
        "resident-own-building",
        (OWNER, DOOR_B1, NOW),
        GRANT_RESIDENT,
        (OWNER, DOOR_B2, NOW),
        (Reason.NOT_AUTHORIZED_HERE, Rule.RESIDENT_OTHER_BUILDING),
    ),
    case(
        "resident-shared-point",
        (OWNER, BARRIER, NOW),
        (Reason.RESIDENT, Rule.RESIDENT_SHARED_POINT),
        (person(), BARRIER, NOW),
        (Reason.NOT_AUTHORIZED_HERE, Rule.NO_ROLE),
    ),
    case(
        "resident-other-building",
        (resident(B2), DOOR_B1, NOW),
        (Reason.NOT_AUTHORIZED_HERE, Rule.RESIDENT_OTHER_BUILDING),
        (resident(B2), DOOR_B2, NOW),
        GRANT_RESIDENT,
    ),
    case(
        "resident-membership-not-started",
        (membership(valid_from=NOW + SECOND), DOOR_B1, NOW),
        (Reason.NOT_AUTHORIZED_HERE, Rule.RESIDENT_MEMBERSHIP_NOT_STARTED),
        (membership(valid_from=NOW), DOOR_B1, NOW),
        GRANT_RESIDENT,
    ),
    case(
        "resident-membership-ended",
        (membership(valid_until=NOW), DOOR_B1, NOW),
        (Reason.NOT_AUTHORIZED_HERE, Rule.RESIDENT_MEMBERSHIP_ENDED),
        (membership(valid_until=NOW + SECOND), DOOR_B1, NOW),
        GRANT_RESIDENT,
    ),
]

TENANT_CASES = [
    case(
        "tenant-lease",
        (tenant(), DOOR_B1, LEASE_END - SECOND),
        (Reason.TENANT, Rule.TENANT_LEASE),
        (tenant(), DOOR_B1, LEASE_END),
        (Reason.LEASE_EXPIRED, Rule.TENANT_LEASE_EXPIRED),
    ),
    case(
        "tenant-lease-not-started",
        (tenant(), DOOR_B1, LEASE_START - SECOND),
        (Reason.LEASE_NOT_STARTED, Rule.TENANT_LEASE_NOT_STARTED),
        (tenant(), DOOR_B1, LEASE_START),
        (Reason.TENANT, Rule.TENANT_LEASE),
    ),
    case(
        "tenant-lease-expired",
        (tenant(), GATE, LEASE_END + SECOND),
        (Reason.LEASE_EXPIRED, Rule.TENANT_LEASE_EXPIRED),
        (tenant(), GATE, LEASE_END - SECOND),
        (Reason.TENANT, Rule.TENANT_LEASE),
    ),
    case(
        "tenant-other-building",
        (tenant(lease(LEASE_START, LEASE_END, B2)), DOOR_B1, NOW),
        (Reason.NOT_AUTHORIZED_HERE, Rule.TENANT_OTHER_BUILDING),
        (tenant(lease(LEASE_START, LEASE_END, B2)), DOOR_B2, NOW),
        (Reason.TENANT, Rule.TENANT_LEASE),
    ),
]

PERMIT_FROM = local(2, 0, 0)  # Monday 2 November
PERMIT_UNTIL = local(28, 0, 0)  # Saturday 28 November
SCHEDULED = WorkerPermit(
    access_point_ids=frozenset({GATE.id, DOOR_B1.id}),
    schedule=WEEKDAY_DAYTIME,
    valid_from=PERMIT_FROM,
    valid_until=PERMIT_UNTIL,
)

WORKER_CASES = [
    case(
        "worker-permit",
        (worker(SCHEDULED), DOOR_B1, NOW),
        (Reason.WORKER, Rule.WORKER_PERMIT),
        (worker(SCHEDULED), DOOR_B2, NOW),
        (Reason.NOT_AUTHORIZED_HERE, Rule.WORKER_NOT_LISTED),
    ),
    case(
        "worker-not-listed",
        (worker(SCHEDULED), BARRIER, NOW),
        (Reason.NOT_AUTHORIZED_HERE, Rule.WORKER_NOT_LISTED),
        (worker(SCHEDULED), GATE, NOW),
        (Reason.WORKER, Rule.WORKER_PERMIT),
    ),
    case(
        "worker-permit-not-started",
        (worker(replace(SCHEDULED, valid_from=NOW + SECOND)), GATE, NOW),
        (Reason.OUTSIDE_SCHEDULE, Rule.WORKER_PERMIT_NOT_STARTED),
        (worker(replace(SCHEDULED, valid_from=NOW)), GATE, NOW),
        (Reason.WORKER, Rule.WORKER_PERMIT),
    ),
    case(
        "worker-permit-expired",
        (worker(replace(SCHEDULED, valid_until=NOW)), GATE, NOW),
        (Reason.OUTSIDE_SCHEDULE, Rule.WORKER_PERMIT_EXPIRED),
        (worker(replace(SCHEDULED, valid_until=NOW + SECOND)), GATE, NOW),
        (Reason.WORKER, Rule.WORKER_PERMIT),
    ),
    case(
        "worker-schedule",
        (worker(SCHEDULED), GATE, local(20, 17, 0)),
        (Reason.OUTSIDE_SCHEDULE, Rule.WORKER_SCHEDULE),
        (worker(SCHEDULED), GATE, local(20, 16, 59, 59)),
        (Reason.WORKER, Rule.WORKER_PERMIT),
    ),
]

# A one-day holiday, Friday 20 November: the gate closed, or open 10:00-16:00 only.
HOLIDAY_GATE = replace(
    GATE,
    holidays=Calendar.of(
        [Holiday(name="h", first_day=date(2026, 11, 20), last_day=date(2026, 11, 20))]
    ),
)
HOLIDAY_HOURS_GATE = replace(
    NIGHT_GATE,
    holidays=Calendar.of(
        [
            Holiday(
                name="h",
                first_day=date(2026, 11, 20),
                last_day=date(2026, 11, 20),
                effect=HolidayEffect.HOURS,
                hours=hours_from_json([{"start": "10:00", "end": "16:00"}]),
            )
        ]
    ),
)

OTHER_CASES = [
    case(
        "point-schedule",
        (OWNER, NIGHT_GATE, local(20, 23, 0)),
        (Reason.OUTSIDE_SCHEDULE, Rule.POINT_SCHEDULE),
        (OWNER, NIGHT_GATE, local(20, 22, 59, 59)),
        (Reason.RESIDENT, Rule.RESIDENT_SHARED_POINT),
    ),
    case(
        "no-role",
        (person(), DOOR_B1, NOW),
        (Reason.NOT_AUTHORIZED_HERE, Rule.NO_ROLE),
        (OWNER, DOOR_B1, NOW),
        GRANT_RESIDENT,
    ),
    case(
        # A tenant membership without any lease gives no right: the lease is the right.
        "tenant-membership-without-lease",
        (person(memberships=(Membership(PersonRole.TENANT, B1),)), DOOR_B1, NOW),
        (Reason.NOT_AUTHORIZED_HERE, Rule.NO_ROLE),
        (tenant(), DOOR_B1, NOW),
        (Reason.TENANT, Rule.TENANT_LEASE),
    ),
    case(
        "holiday-closed",
        (OWNER, HOLIDAY_GATE, local(20, 0, 0)),
        (Reason.HOLIDAY_CLOSED, Rule.HOLIDAY_CLOSED),
        (OWNER, HOLIDAY_GATE, local(20, 0, 0) - SECOND),
        (Reason.RESIDENT, Rule.RESIDENT_SHARED_POINT),
    ),
    case(
        "holiday-hours",
        (OWNER, HOLIDAY_HOURS_GATE, local(20, 16, 0)),
        (Reason.HOLIDAY_CLOSED, Rule.HOLIDAY_HOURS),
        (OWNER, HOLIDAY_HOURS_GATE, local(20, 15, 59, 59)),
        (Reason.RESIDENT, Rule.RESIDENT_SHARED_POINT),
    ),
]

ALL_CASES = (
    credential_cases() + PERSON_CASES + RESIDENT_CASES + TENANT_CASES + WORKER_CASES + OTHER_CASES
)

# Everything decide_access can answer.
POSSIBLE_REASONS = {
    Reason.RESIDENT,
    Reason.TENANT,
    Reason.WORKER,
    Reason.CARD_DISABLED,
    Reason.UNKNOWN_PLATE,
    Reason.UNKNOWN_FACE,
    Reason.PASS_REVOKED,
    Reason.PASS_INVALID,
    Reason.PASS_EXPIRED,
    Reason.PERSON_SUSPENDED,
    Reason.NOT_AUTHORIZED_HERE,
    Reason.LEASE_EXPIRED,
    Reason.LEASE_NOT_STARTED,
    Reason.OUTSIDE_SCHEDULE,
    Reason.HOLIDAY_CLOSED,
}


def decide(subject: Subject, point: AccessPointView, at: datetime) -> AccessDecision:
    return decide_access(subject, point, at)


@pytest.mark.parametrize("c", ALL_CASES)
def test_the_case_gives_its_reason_and_rule(c: Case) -> None:
    result = decide(c.subject, c.point, c.at)
    assert (result.decision, result.reason, result.rule) == (c.decision, c.reason, c.rule)
    assert result.granted is (c.decision is Decision.GRANT)
    if result.decision is Decision.DENY:
        assert result.detail


@pytest.mark.parametrize("c", ALL_CASES)
def test_the_near_case_does_not(c: Case) -> None:
    result = decide(*c.near)
    assert (result.reason, result.rule) == (c.near_reason, c.near_rule)
    assert (result.reason, result.rule) != (c.reason, c.rule)


# Rules of visitor passes and cars: decided by ``decide_pass`` and the plate path
# (tests/gatekeeper/test_policy_passes.py), not by ``decide_access``; anti-passback's by
# ``gatekeeper.antipassback`` after it (tests/gatekeeper/test_antipassback.py), door modes' by
# ``gatekeeper.doormodes`` (tests/gatekeeper/test_doormodes.py).
NOT_ACCESS_RULES = {
    rule
    for rule in Rule
    if rule.value.startswith(("pass.", "vehicle.", "anti_passback.", "door_mode."))
}
# Temporary cars' rules are the server's (server.access.parking; the fee: test_tariff.py).
NOT_ACCESS_RULES |= {rule for rule in Rule if rule.value.startswith("parking.")}
# The intercom's outcomes are the server's (server.access.intercom; tests/access/test_intercom.py).
NOT_ACCESS_RULES |= {rule for rule in Rule if rule.value.startswith("intercom.")}


def test_every_reason_and_every_rule_has_a_case() -> None:
    cases = [param.values[0] for param in ALL_CASES]
    assert {c.reason for c in cases} == POSSIBLE_REASONS
    assert {c.rule for c in cases} == set(Rule) - NOT_ACCESS_RULES


# -- the lease, to the second ---------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        pytest.param(LEASE_START - SECOND, Reason.LEASE_NOT_STARTED, id="start-minus-1s"),
        pytest.param(LEASE_START, Reason.TENANT, id="start"),
        pytest.param(LEASE_START + SECOND, Reason.TENANT, id="start-plus-1s"),
        pytest.param(LEASE_END - SECOND, Reason.TENANT, id="end-minus-1s"),
        pytest.param(LEASE_END - timedelta(microseconds=1), Reason.TENANT, id="end-minus-1us"),
        pytest.param(LEASE_END, Reason.LEASE_EXPIRED, id="end"),
        pytest.param(LEASE_END + SECOND, Reason.LEASE_EXPIRED, id="end-plus-1s"),
    ],
)
@pytest.mark.parametrize("point", [DOOR_B1, GATE, BARRIER], ids=["door", "gate", "barrier"])
def test_lease_boundary_to_the_second(at: datetime, reason: Reason, point: AccessPointView) -> None:
    assert decide(tenant(), point, at).reason is reason


def test_a_lease_entered_as_local_midnight_is_stored_as_utc_16_00_the_day_before() -> None:
    # Entered as 1 December 00:00 to 1 June 00:00 in Shanghai; the database keeps UTC.
    stored = lease(
        datetime(2026, 11, 30, 16, 0, tzinfo=UTC), datetime(2027, 5, 31, 16, 0, tzinfo=UTC)
    )
    subject = tenant(stored)
    assert stored.starts_at == datetime(2026, 12, 1, 0, 0, tzinfo=SHANGHAI)
    before = datetime(2026, 11, 30, 23, 59, 59, tzinfo=SHANGHAI)
    assert decide(subject, DOOR_B1, before).reason is Reason.LEASE_NOT_STARTED
    assert decide(subject, DOOR_B1, before.astimezone(UTC)).reason is Reason.LEASE_NOT_STARTED
    assert decide(subject, DOOR_B1, datetime(2026, 12, 1, tzinfo=SHANGHAI)).reason is Reason.TENANT
    assert decide(subject, DOOR_B1, datetime(2026, 11, 30, 16, tzinfo=UTC)).reason is Reason.TENANT
    last = datetime(2027, 5, 31, 23, 59, 59, tzinfo=SHANGHAI)
    assert decide(subject, DOOR_B1, last).reason is Reason.TENANT
    assert decide(subject, DOOR_B1, last + SECOND).reason is Reason.LEASE_EXPIRED
    # Details speak the community's time, not UTC.
    detail = decide(subject, DOOR_B1, before).detail
    assert detail == "the lease starts at 2026-12-01T00:00:00+08:00"


def test_an_early_end_is_just_an_earlier_ends_at() -> None:
    ended_early = lease(LEASE_START, local(15, 12, 0))
    assert decide(tenant(ended_early), DOOR_B1, local(15, 11, 59, 59)).granted
    assert decide(tenant(ended_early), DOOR_B1, local(15, 12, 0)).reason is Reason.LEASE_EXPIRED


def test_several_leases() -> None:
    past = lease(local(1, month=6), local(1, month=9))
    current = lease(local(1, month=9), local(1, month=12))
    future = lease(local(1, month=12), local(1, month=12) + timedelta(days=180))
    # Back to back (a renewal): the handover instant is covered.
    assert decide(tenant(past, current), DOOR_B1, local(1, month=9)).reason is Reason.TENANT
    # Any covering lease grants, whatever the others say.
    assert decide(tenant(past, current, future), DOOR_B1, NOW).reason is Reason.TENANT
    # Only future leases: not started, and the detail names the earliest start.
    result = decide(tenant(future, replace(future, starts_at=local(5, month=12))), DOOR_B1, NOW)
    assert result.reason is Reason.LEASE_NOT_STARTED
    assert "2026-12-01T00:00:00+08:00" in (result.detail or "")
    # A gap between an old lease and a renewal: expired, and the detail tells the next start.
    result = decide(tenant(past, future), DOOR_B1, NOW)
    assert result.reason is Reason.LEASE_EXPIRED
    assert result.detail == (
        "the lease ended at 2026-09-01T00:00:00+08:00; "
        "the next one starts at 2026-12-01T00:00:00+08:00"
    )
    # Leases elsewhere do not decide at this building's door.
    elsewhere = lease(LEASE_START, LEASE_END, B2)
    assert decide(tenant(past, elsewhere), DOOR_B1, NOW).reason is Reason.LEASE_EXPIRED
    assert decide(tenant(past, elsewhere), DOOR_B2, NOW).reason is Reason.TENANT
    # At a shared point every lease counts.
    assert decide(tenant(past, elsewhere), GATE, NOW).reason is Reason.TENANT


def test_a_lease_cancelled_before_it_started_never_grants() -> None:
    cancelled = lease(local(1, month=12), local(25))  # ended early, before its start
    assert decide(tenant(cancelled), DOOR_B1, local(24)).reason is Reason.LEASE_NOT_STARTED
    assert decide(tenant(cancelled), DOOR_B1, local(25)).reason is Reason.LEASE_EXPIRED
    assert decide(tenant(cancelled), DOOR_B1, local(2, month=12)).reason is Reason.LEASE_EXPIRED


# -- residents, elders, children ------------------------------------------------------


@pytest.mark.parametrize(
    "role", [PersonRole.OWNER, PersonRole.RESIDENT, PersonRole.ELDER, PersonRole.CHILD]
)
def test_people_who_live_in_a_unit_pass_as_residents(role: PersonRole) -> None:
    subject = resident(B1, role)
    assert decide(subject, DOOR_B1, NOW).reason is Reason.RESIDENT
    assert decide(subject, GATE, NOW).rule is Rule.RESIDENT_SHARED_POINT
    assert decide(subject, BARRIER, NOW).reason is Reason.RESIDENT
    assert decide(subject, DOOR_B2, NOW).reason is Reason.NOT_AUTHORIZED_HERE


def test_a_resident_without_a_unit_passes_only_shared_points() -> None:
    subject = resident(None, PersonRole.RESIDENT)
    assert decide(subject, GATE, NOW).reason is Reason.RESIDENT
    assert decide(subject, DOOR_B1, NOW).rule is Rule.RESIDENT_OTHER_BUILDING


def test_a_membership_at_this_door_says_more_than_one_elsewhere() -> None:
    subject = person(
        memberships=(
            Membership(PersonRole.RESIDENT, B1, valid_until=NOW),
            Membership(PersonRole.RESIDENT, B2),
        )
    )
    assert decide(subject, DOOR_B1, NOW).rule is Rule.RESIDENT_MEMBERSHIP_ENDED
    assert decide(subject, DOOR_B2, NOW).rule is Rule.RESIDENT_OWN_BUILDING
    assert decide(subject, DOOR_B3, NOW).rule is Rule.RESIDENT_OTHER_BUILDING


# -- workers: schedule and date range at each edge ------------------------------------


@pytest.mark.parametrize(
    ("at", "rule"),
    [
        # 2 November (Monday) is the first day of the permit.
        pytest.param(local(1, 12, 0), Rule.WORKER_PERMIT_NOT_STARTED, id="day-before"),
        pytest.param(PERMIT_FROM - SECOND, Rule.WORKER_PERMIT_NOT_STARTED, id="from-minus-1s"),
        pytest.param(local(2, 7, 59, 59), Rule.WORKER_SCHEDULE, id="first-day-07:59:59"),
        pytest.param(local(2, 8, 0), Rule.WORKER_PERMIT, id="first-day-08:00"),
        pytest.param(local(2, 16, 59, 59), Rule.WORKER_PERMIT, id="first-day-16:59:59"),
        pytest.param(local(2, 17, 0), Rule.WORKER_SCHEDULE, id="first-day-17:00"),
        pytest.param(local(21, 10, 0), Rule.WORKER_SCHEDULE, id="saturday"),
        # 27 November (Friday) is the last day; the permit ends at 28 November 00:00.
        pytest.param(local(27, 16, 59, 59), Rule.WORKER_PERMIT, id="last-day-16:59:59"),
        pytest.param(local(27, 17, 0), Rule.WORKER_SCHEDULE, id="last-day-17:00"),
        pytest.param(PERMIT_UNTIL - SECOND, Rule.WORKER_SCHEDULE, id="until-minus-1s"),
        pytest.param(PERMIT_UNTIL, Rule.WORKER_PERMIT_EXPIRED, id="until"),
        pytest.param(local(30, 10, 0), Rule.WORKER_PERMIT_EXPIRED, id="monday-after"),
    ],
)
def test_worker_schedule_and_date_range(at: datetime, rule: Rule) -> None:
    result = decide(worker(SCHEDULED), DOOR_B1, at)
    assert result.rule is rule
    assert result.reason is (
        Reason.WORKER if rule is Rule.WORKER_PERMIT else Reason.OUTSIDE_SCHEDULE
    )


def test_a_worker_without_schedule_or_range_may_come_any_time_to_listed_points() -> None:
    anytime = worker(WorkerPermit(access_point_ids=[GATE.id]))  # type: ignore[arg-type]
    assert decide(anytime, GATE, local(22, 3, 0)).reason is Reason.WORKER
    assert decide(anytime, DOOR_B1, local(22, 3, 0)).reason is Reason.NOT_AUTHORIZED_HERE


def test_a_worker_night_shift_crosses_midnight() -> None:
    night = WeeklySchedule.from_json([{"days": [5], "start": "22:00", "end": "06:00"}])
    subject = worker(WorkerPermit(access_point_ids=frozenset({GATE.id}), schedule=night))
    assert decide(subject, GATE, local(20, 21, 59)).reason is Reason.OUTSIDE_SCHEDULE
    assert decide(subject, GATE, local(20, 22, 0)).reason is Reason.WORKER
    assert decide(subject, GATE, local(21, 1, 0)).reason is Reason.WORKER
    assert decide(subject, GATE, local(21, 7, 0)).reason is Reason.OUTSIDE_SCHEDULE


# -- several roles --------------------------------------------------------------------


def test_any_granting_role_grants() -> None:
    subject = person(
        memberships=(Membership(PersonRole.OWNER, B1), Membership(PersonRole.TENANT, B2)),
        leases=(lease(LEASE_START, LEASE_END, B2),),
        worker_permit=WorkerPermit(access_point_ids=frozenset({DOOR_B3.id})),
    )
    assert decide(subject, DOOR_B1, NOW).reason is Reason.RESIDENT
    assert decide(subject, DOOR_B2, NOW).reason is Reason.TENANT
    assert decide(subject, DOOR_B3, NOW).reason is Reason.WORKER
    assert decide(subject, GATE, NOW).reason is Reason.RESIDENT  # resident before tenant
    assert decide(subject, DOOR_B2, LEASE_END).reason is Reason.LEASE_EXPIRED


def test_the_most_informative_denial_wins() -> None:
    old_lease = lease(local(1, month=6), local(1, month=9), B2)
    next_lease = lease(local(1, month=12), local(1, month=12) + timedelta(days=90), B3)
    night_worker = WorkerPermit(
        access_point_ids=frozenset({GATE.id}),
        schedule=WeeklySchedule.from_json([{"days": [5], "start": "22:00", "end": "06:00"}]),
    )
    subject = person(
        memberships=(Membership(PersonRole.RESIDENT, B1, valid_until=local(1, month=10)),),
        leases=(old_lease, next_lease),
        worker_permit=night_worker,
    )
    # Gate: membership ended, leases expired, worker outside hours -> "not now" wins.
    assert decide(subject, GATE, NOW).rule is Rule.WORKER_SCHEDULE
    # B2: the lease there expired; the resident and worker rules say "not here".
    assert decide(subject, DOOR_B2, NOW).rule is Rule.TENANT_LEASE_EXPIRED
    # B3: the lease there has not started.
    assert decide(subject, DOOR_B3, NOW).rule is Rule.TENANT_LEASE_NOT_STARTED
    # B1: only "not authorised" answers; the resident rule's, being first and specific.
    assert decide(subject, DOOR_B1, NOW).rule is Rule.RESIDENT_MEMBERSHIP_ENDED


def test_most_informative_follows_the_documented_precedence() -> None:
    denials = [
        AccessDecision(Decision.DENY, reason, Rule.NO_ROLE)
        for reason in reversed(DENIAL_PRECEDENCE)
    ]
    for expected in DENIAL_PRECEDENCE:
        assert most_informative(denials) == AccessDecision(Decision.DENY, expected, Rule.NO_ROLE)
        denials = [d for d in denials if d.reason is not expected]
    assert most_informative([]) is None


# -- the point's own schedule ----------------------------------------------------------


def test_a_closed_point_is_closed_to_every_role() -> None:
    late = local(20, 23, 30)
    assert decide(OWNER, NIGHT_GATE, late).rule is Rule.POINT_SCHEDULE
    assert decide(tenant(), NIGHT_GATE, late).rule is Rule.POINT_SCHEDULE
    anytime_worker = worker(WorkerPermit(access_point_ids=frozenset({GATE.id})))
    assert decide(anytime_worker, NIGHT_GATE, late).rule is Rule.POINT_SCHEDULE
    assert decide(anytime_worker, NIGHT_GATE, local(21, 6, 0)).reason is Reason.WORKER


def test_the_point_schedule_is_checked_after_the_roles() -> None:
    closed_door = replace(DOOR_B1, schedule=GATE_HOURS)
    late = local(20, 23, 30)
    # No right here at all: told so, not "come back at 06:00".
    assert decide(resident(B2), closed_door, late).rule is Rule.RESIDENT_OTHER_BUILDING
    assert decide(person(), closed_door, late).rule is Rule.NO_ROLE
    # A role's own denial stands too.
    assert decide(tenant(), closed_door, LEASE_END + timedelta(hours=23, minutes=30)).rule is (
        Rule.TENANT_LEASE_EXPIRED
    )
    # A right here, but the door is closed.
    assert decide(OWNER, closed_door, late).rule is Rule.POINT_SCHEDULE
    # Person and credential rules come before both.
    suspended = resident(status=PersonStatus.SUSPENDED)
    assert decide(suspended, closed_door, late).rule is Rule.PERSON_SUSPENDED
    disabled = with_credential(OWNER, kind=CredentialType.CARD, disabled=True)
    assert decide(disabled, closed_door, late).rule is Rule.CREDENTIAL_DISABLED


def test_point_schedule_across_midnight_and_edges() -> None:
    # A barrier that only opens at night (e.g. residents' night parking).
    night_only = replace(
        BARRIER,
        schedule=WeeklySchedule.from_json(
            [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "22:00", "end": "06:00"}]
        ),
    )
    assert decide(OWNER, night_only, local(20, 21, 59, 59)).rule is Rule.POINT_SCHEDULE
    assert decide(OWNER, night_only, local(20, 22, 0)).granted
    assert decide(OWNER, night_only, local(21, 5, 59, 59)).granted
    assert decide(OWNER, night_only, local(21, 6, 0)).rule is Rule.POINT_SCHEDULE


def test_point_schedule_in_a_zone_with_summer_time() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    sunday_daytime = WeeklySchedule.from_json([{"days": [7], "start": "08:00", "end": "18:00"}])
    gate = replace(GATE, schedule=sunday_daytime, time_zone="Europe/Berlin")
    # Spring forward, 29 March 2026: 08:00 local is 06:00 UTC (a week earlier it was 07:00).
    assert decide(OWNER, gate, datetime(2026, 3, 29, 5, 59, 59, tzinfo=UTC)).rule is (
        Rule.POINT_SCHEDULE
    )
    assert decide(OWNER, gate, datetime(2026, 3, 29, 6, 0, tzinfo=UTC)).granted
    assert decide(OWNER, gate, datetime(2026, 3, 22, 6, 30, tzinfo=UTC)).rule is (
        Rule.POINT_SCHEDULE
    )
    assert decide(OWNER, gate, datetime(2026, 3, 22, 7, 0, tzinfo=UTC)).granted
    assert decide(OWNER, gate, datetime(2026, 3, 29, 8, 0, tzinfo=berlin)).granted


def test_the_same_instant_in_any_zone_decides_the_same() -> None:
    for at in (local(20, 22, 59, 59), local(20, 23, 0), LEASE_END - SECOND, LEASE_END):
        for subject in (OWNER, tenant(), worker(SCHEDULED)):
            in_utc = decide(subject, NIGHT_GATE, at.astimezone(UTC))
            in_new_york = decide(subject, NIGHT_GATE, at.astimezone(ZoneInfo("America/New_York")))
            assert decide(subject, NIGHT_GATE, at) == in_utc == in_new_york


# -- inputs ---------------------------------------------------------------------------

NAIVE = datetime(2026, 11, 20, 10, 0)  # naive on purpose


def test_a_naive_decision_time_raises() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide_access(OWNER, DOOR_B1, NAIVE)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: LeaseWindow(B1, NAIVE, LEASE_END), id="lease-start"),
        pytest.param(lambda: LeaseWindow(B1, LEASE_START, NAIVE), id="lease-end"),
        pytest.param(lambda: Membership(PersonRole.OWNER, B1, valid_from=NAIVE), id="membership"),
        pytest.param(lambda: CredentialView(CredentialType.CARD, valid_until=NAIVE), id="cred"),
        pytest.param(lambda: WorkerPermit(frozenset(), valid_from=NAIVE), id="permit"),
        pytest.param(lambda: Subject("per_1", valid_until=NAIVE), id="person"),
    ],
)
def test_naive_datetimes_in_inputs_raise(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build()


def test_inputs_accept_the_stored_strings() -> None:
    subject = Subject(
        person_id="per_1",
        status="active",  # type: ignore[arg-type]
        memberships=[Membership(role="owner", building_id=B1)],  # type: ignore[arg-type, list-item]
        leases=[],  # type: ignore[arg-type]
        credential=CredentialView(kind="card"),  # type: ignore[arg-type]
    )
    point = AccessPointView(id="ap_b1", kind="door", zone="building", building_id=B1)  # type: ignore[arg-type]
    assert subject.status is PersonStatus.ACTIVE
    assert isinstance(subject.memberships, tuple)
    assert point.kind is AccessPointKind.DOOR
    assert decide(subject, point, NOW).reason is Reason.RESIDENT


def test_inputs_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="time zone"):
        AccessPointView("ap", AccessPointKind.GATE, Zone.PERIMETER, time_zone="Mars/Base")
    with pytest.raises(ValueError):
        Subject("per_1", status="asleep")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Membership(role="officer")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not one string"):
        WorkerPermit(access_point_ids="ap_gate")  # type: ignore[arg-type]


def test_values_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        OWNER.status = PersonStatus.SUSPENDED  # type: ignore[misc]
    assert hash(OWNER) == hash(resident())


def test_a_subject_without_a_credential_skips_the_credential_rules() -> None:
    assert decide(replace(OWNER, credential=None), DOOR_B1, NOW).reason is Reason.RESIDENT


# -- docs ------------------------------------------------------------------------------


def test_the_docs_name_every_rule_and_reason() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for rule in Rule:
        assert f"`{rule}`" in text, rule
    for reason in POSSIBLE_REASONS:
        assert f"`{reason}`" in text, reason
