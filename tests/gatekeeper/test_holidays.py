"""The holiday calendar: closed days, other hours, local-midnight edges, a DST zone, workers
and visitor passes on a holiday.

Time is frozen by passing explicit timezone-aware instants; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gatekeeper.holidays import Calendar, Holiday, HolidayEffect, hours_from_json, local_day
from gatekeeper.policy import (
    AccessPointView,
    CredentialView,
    Membership,
    PassView,
    Rule,
    Subject,
    WorkerPermit,
    decide_access,
    decide_pass,
)
from gatekeeper.schedule import WeeklySchedule
from gatekeeper.vocabulary import AccessPointKind, CredentialType, PersonRole, Reason, Zone

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")  # summer time: 2027-03-28 02:00 -> 03:00
SECOND = timedelta(seconds=1)

# 春节 2027: Friday 5 February to Thursday 11 February.
SPRING = (date(2027, 2, 5), date(2027, 2, 11))

SIDE_GATE = AccessPointView(id="ap_side", kind=AccessPointKind.GATE, zone=Zone.PERIMETER)
KINDERGARTEN = AccessPointView(
    id="ap_kg", kind=AccessPointKind.DOOR, zone=Zone.KINDERGARTEN, building_id="bld_kg"
)
DOOR_B1 = AccessPointView(
    id="ap_b1", kind=AccessPointKind.DOOR, zone=Zone.BUILDING, building_id="bld_1"
)
CARD = CredentialView(kind=CredentialType.CARD)
OFFICE_HOURS = WeeklySchedule.from_json(
    [{"days": [1, 2, 3, 4, 5], "start": "08:00", "end": "18:00"}]
)


def sh(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2027, month, day, hour, minute, second, tzinfo=SHANGHAI)


def closing(points: set[str] | None = None, name: str = "春节") -> Holiday:
    return Holiday(name=name, first_day=SPRING[0], last_day=SPRING[1], access_point_ids=points)


def short_hours(points: set[str] | None = None) -> Holiday:
    return Holiday(
        name="春节",
        first_day=SPRING[0],
        last_day=SPRING[1],
        effect=HolidayEffect.HOURS,
        hours=hours_from_json([{"start": "10:00", "end": "16:00"}]),
        access_point_ids=points,
    )


def on(point: AccessPointView, *holidays: Holiday, zone: str = "Asia/Shanghai") -> AccessPointView:
    return replace(point, holidays=Calendar.of(holidays), time_zone=zone)


def resident(building: str = "bld_1") -> Subject:
    return Subject(
        person_id="per_r",
        credential=CARD,
        memberships=(Membership(role=PersonRole.OWNER, building_id=building),),
    )


def worker(*points: str, schedule: WeeklySchedule | None = OFFICE_HOURS) -> Subject:
    return Subject(
        person_id="per_w",
        credential=CARD,
        memberships=(Membership(role=PersonRole.WORKER),),
        worker_permit=WorkerPermit(access_point_ids=frozenset(points), schedule=schedule),
    )


def visitor_pass(*points: str) -> PassView:
    return PassView(
        access_point_ids=frozenset(points),
        valid_from=sh(1, 1),
        valid_until=sh(3, 1),
        max_uses=5,
    )


# -- the calendar itself -------------------------------------------------------------------


def test_a_period_covers_its_first_and_last_local_day_inclusive() -> None:
    calendar = Calendar.of([closing({"ap_side"})])
    assert calendar.effect("ap_side", sh(2, 4, 23, 59, 59), SHANGHAI) is None
    assert calendar.effect("ap_side", sh(2, 5), SHANGHAI) is not None  # local midnight
    assert calendar.effect("ap_side", sh(2, 8, 12), SHANGHAI) is not None  # in the middle
    assert calendar.effect("ap_side", sh(2, 11, 23, 59, 59), SHANGHAI) is not None
    assert calendar.effect("ap_side", sh(2, 12), SHANGHAI) is None  # the day after
    assert calendar.effect("ap_other", sh(2, 8, 12), SHANGHAI) is None  # not listed


def test_dates_are_read_in_the_community_zone_not_in_utc() -> None:
    calendar = Calendar.of([closing({"ap_side"})])
    # 2027-02-04 16:00 UTC is 5 February 00:00 in Shanghai: already the holiday.
    assert calendar.effect("ap_side", datetime(2027, 2, 4, 16, tzinfo=UTC), SHANGHAI) is not None
    assert (
        calendar.effect("ap_side", datetime(2027, 2, 4, 15, 59, 59, tzinfo=UTC), "Asia/Shanghai")
        is None
    )
    assert local_day(datetime(2027, 2, 4, 16, tzinfo=UTC), SHANGHAI) == date(2027, 2, 5)


def test_a_holiday_without_points_applies_to_every_point() -> None:
    calendar = Calendar.of([short_hours(None)])
    assert calendar.effect("ap_anything", sh(2, 6, 12), SHANGHAI) is not None


def test_closing_wins_over_hours_when_two_holidays_overlap() -> None:
    calendar = Calendar.of([short_hours(None), closing({"ap_side"}, name="关闭")])
    found = calendar.effect("ap_side", sh(2, 6, 12), SHANGHAI)
    assert found is not None and found.name == "关闭"


def test_a_holiday_checks_its_own_shape() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        Holiday(name="x", first_day=date(2027, 2, 2), last_day=date(2027, 2, 1))
    with pytest.raises(ValueError, match="needs its hours"):
        Holiday(name="x", first_day=SPRING[0], last_day=SPRING[1], effect=HolidayEffect.HOURS)
    with pytest.raises(ValueError, match="no hours"):
        Holiday(name="x", first_day=SPRING[0], last_day=SPRING[1], hours=OFFICE_HOURS)
    with pytest.raises(TypeError, match="must be a date"):
        Holiday(name="x", first_day=sh(2, 5), last_day=SPRING[1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not one string"):
        Holiday(name="x", first_day=SPRING[0], last_day=SPRING[1], access_point_ids="ap_side")  # type: ignore[arg-type]


def test_hours_without_days_hold_every_day_and_bad_hours_say_why() -> None:
    hours = hours_from_json([{"start": "10:00", "end": "16:00"}])
    assert hours.to_json() == [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "10:00", "end": "16:00"}]
    with pytest.raises(ValueError, match="HH:MM"):
        hours_from_json([{"start": "10", "end": "16:00"}])
    with pytest.raises(ValueError, match="at least one window"):
        hours_from_json([])
    with pytest.raises(ValueError, match="list of windows"):
        hours_from_json({"start": "10:00"})


# -- decide_access ---------------------------------------------------------------------------


def test_a_closed_point_refuses_a_resident_on_the_holiday_and_admits_the_day_after() -> None:
    gate = on(SIDE_GATE, closing({"ap_side"}))
    refused = decide_access(resident(), gate, sh(2, 8, 9))
    assert (refused.reason, refused.rule) == (Reason.HOLIDAY_CLOSED, Rule.HOLIDAY_CLOSED)
    assert "春节" in (refused.detail or "")
    assert decide_access(resident(), gate, sh(2, 12, 9)).reason is Reason.RESIDENT


def test_midnight_edges_of_a_closed_period() -> None:
    gate = on(SIDE_GATE, closing({"ap_side"}))
    assert decide_access(resident(), gate, sh(2, 5) - SECOND).granted
    assert decide_access(resident(), gate, sh(2, 5)).reason is Reason.HOLIDAY_CLOSED
    assert decide_access(resident(), gate, sh(2, 12) - SECOND).reason is Reason.HOLIDAY_CLOSED
    assert decide_access(resident(), gate, sh(2, 12)).granted


def test_a_holiday_closes_only_the_points_it_lists() -> None:
    holiday = closing({"ap_kg", "ap_side"})
    assert decide_access(resident(), on(DOOR_B1, holiday), sh(2, 8, 9)).reason is Reason.RESIDENT
    kg = decide_access(resident("bld_kg"), on(KINDERGARTEN, holiday), sh(2, 8, 9))
    assert kg.reason is Reason.HOLIDAY_CLOSED


def test_someone_with_no_right_here_still_hears_not_authorized_on_a_holiday() -> None:
    door = on(DOOR_B1, closing({"ap_b1"}))
    assert decide_access(resident("bld_9"), door, sh(2, 8, 9)).reason is Reason.NOT_AUTHORIZED_HERE


def test_other_hours_replace_the_point_weekly_schedule() -> None:
    # The office door keeps weekday office hours; on the holiday it opens 10:00-16:00 every day.
    door = on(replace(DOOR_B1, schedule=OFFICE_HOURS), short_hours({"ap_b1"}))
    saturday = (2, 6)  # closed by the weekly schedule, open on holiday hours
    assert decide_access(resident(), door, sh(*saturday, 10)).reason is Reason.RESIDENT
    assert decide_access(resident(), door, sh(*saturday, 16) - SECOND).granted
    late = decide_access(resident(), door, sh(*saturday, 16))
    assert (late.reason, late.rule) == (Reason.HOLIDAY_CLOSED, Rule.HOLIDAY_HOURS)
    assert "10:00-16:00" in (late.detail or "")
    monday_morning = decide_access(resident(), door, sh(2, 8, 9))  # weekly: open; holiday: not yet
    assert monday_morning.rule is Rule.HOLIDAY_HOURS
    # The day after the period the weekly schedule is back: Friday 12 February 09:00 opens.
    assert decide_access(resident(), door, sh(2, 12, 9)).granted


def test_a_worker_is_refused_at_a_closed_point_on_a_holiday_monday() -> None:
    door = on(KINDERGARTEN, closing({"ap_kg"}))
    cleaner = worker("ap_kg")
    assert decide_access(cleaner, door, sh(2, 1, 9)).reason is Reason.WORKER  # a plain Monday
    refused = decide_access(cleaner, door, sh(2, 8, 9))  # Monday of 春节
    assert (refused.reason, refused.rule) == (Reason.HOLIDAY_CLOSED, Rule.HOLIDAY_CLOSED)


def test_a_worker_follows_the_holiday_hours_instead_of_the_permit_weekly_hours() -> None:
    door = on(KINDERGARTEN, short_hours({"ap_kg"}))
    cleaner = worker("ap_kg")
    assert decide_access(cleaner, door, sh(2, 8, 9)).rule is Rule.HOLIDAY_HOURS
    assert decide_access(cleaner, door, sh(2, 8, 10)).reason is Reason.WORKER
    # Sunday is outside the permit's weekdays; the holiday's hours stand in for them.
    assert decide_access(cleaner, door, sh(2, 7, 12)).reason is Reason.WORKER
    # Points the worker's permit does not list stay refused.
    assert decide_access(worker("ap_side"), door, sh(2, 8, 12)).rule is Rule.WORKER_NOT_LISTED


def test_a_worker_keeps_the_weekly_permit_at_points_the_holiday_leaves_alone() -> None:
    door = on(KINDERGARTEN, closing({"ap_side"}))
    assert decide_access(worker("ap_kg"), door, sh(2, 8, 9)).reason is Reason.WORKER
    assert decide_access(worker("ap_kg"), door, sh(2, 7, 9)).rule is Rule.WORKER_SCHEDULE


def test_the_day_is_local_in_a_zone_with_summer_time() -> None:
    # Berlin moves from 02:00 to 03:00 on Sunday 28 March 2027; the holiday is that Sunday.
    easter = Holiday(name="Ostern", first_day=date(2027, 3, 28), last_day=date(2027, 3, 28))
    gate = on(SIDE_GATE, easter, zone="Europe/Berlin")
    first = datetime(2027, 3, 28, tzinfo=BERLIN)  # 27 March 23:00 UTC (still winter time)
    assert first.utcoffset() == timedelta(hours=1)
    assert decide_access(resident(), gate, first - SECOND).granted
    assert decide_access(resident(), gate, first).reason is Reason.HOLIDAY_CLOSED
    # The day has 23 hours: it ends at 22:00 UTC, local midnight in summer time.
    end = datetime(2027, 3, 28, 22, tzinfo=UTC)
    assert decide_access(resident(), gate, end - SECOND).reason is Reason.HOLIDAY_CLOSED
    assert decide_access(resident(), gate, end).granted


def test_holiday_hours_are_wall_clock_hours_across_summer_time() -> None:
    holiday = Holiday(
        name="Ostern",
        first_day=date(2027, 3, 27),
        last_day=date(2027, 3, 28),
        effect=HolidayEffect.HOURS,
        hours=hours_from_json([{"start": "10:00", "end": "16:00"}]),
    )
    gate = on(SIDE_GATE, holiday, zone="Europe/Berlin")
    # 10:00 local is 09:00 UTC on Saturday (winter), 08:00 UTC on Sunday (summer).
    assert decide_access(resident(), gate, datetime(2027, 3, 27, 9, tzinfo=UTC)).granted
    assert not decide_access(resident(), gate, datetime(2027, 3, 27, 8, 59, tzinfo=UTC)).granted
    assert decide_access(resident(), gate, datetime(2027, 3, 28, 8, tzinfo=UTC)).granted
    assert not decide_access(resident(), gate, datetime(2027, 3, 28, 7, 59, tzinfo=UTC)).granted


def test_hours_across_midnight_hold_on_the_holiday_days_only() -> None:
    evening = Holiday(
        name="除夕",
        first_day=date(2027, 2, 6),  # a Saturday
        last_day=date(2027, 2, 6),
        effect=HolidayEffect.HOURS,
        hours=hours_from_json([{"start": "18:00", "end": "02:00"}]),
    )
    door = on(replace(DOOR_B1, schedule=OFFICE_HOURS), evening)
    assert decide_access(resident(), door, sh(2, 6, 1)).granted  # small hours of the day
    assert decide_access(resident(), door, sh(2, 6, 12)).rule is Rule.HOLIDAY_HOURS
    assert decide_access(resident(), door, sh(2, 6, 23, 59, 59)).granted
    # Sunday 01:00 is no holiday: the weekly office hours are back, and they are closed.
    assert decide_access(resident(), door, sh(2, 7, 1)).rule is Rule.POINT_SCHEDULE


def test_points_without_holidays_decide_as_before() -> None:
    assert SIDE_GATE.holidays.effect("ap_side", sh(2, 8, 9), SHANGHAI) is None
    assert decide_access(resident(), SIDE_GATE, sh(2, 8, 9)).granted


# -- decide_pass -------------------------------------------------------------------------------


def test_a_visitor_pass_is_refused_at_a_closed_point_and_opens_the_day_after() -> None:
    gate = on(SIDE_GATE, closing({"ap_side"}))
    refused = decide_pass(visitor_pass("ap_side"), gate, sh(2, 8, 9))
    assert (refused.reason, refused.rule) == (Reason.HOLIDAY_CLOSED, Rule.HOLIDAY_CLOSED)
    assert decide_pass(visitor_pass("ap_side"), gate, sh(2, 12, 9)).reason is Reason.VISITOR_PASS


def test_a_visitor_pass_follows_the_holiday_hours() -> None:
    gate = on(replace(SIDE_GATE, schedule=OFFICE_HOURS), short_hours(None))
    assert decide_pass(visitor_pass("ap_side"), gate, sh(2, 6, 12)).granted  # Saturday
    assert decide_pass(visitor_pass("ap_side"), gate, sh(2, 6, 9)).rule is Rule.HOLIDAY_HOURS


def test_the_pass_own_problems_come_before_the_holiday() -> None:
    gate = on(SIDE_GATE, closing({"ap_side"}))
    assert decide_pass(visitor_pass("ap_kg"), gate, sh(2, 8, 9)).rule is Rule.PASS_NOT_LISTED
