"""Weekly schedules: parsing the stored JSON, and local wall-clock semantics."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gatekeeper.schedule import (
    WeeklySchedule,
    WeeklyWindow,
    require_aware,
    schedule_from_json,
    zone_info,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")

OFFICE_HOURS = WeeklySchedule.from_json(
    [{"days": [1, 2, 3, 4, 5], "start": "08:00", "end": "18:00"}]
)
# Friday night into Saturday morning; the window belongs to Friday, the day it starts.
FRIDAY_NIGHT = WeeklySchedule.from_json([{"days": [5], "start": "22:00", "end": "06:00"}])


def shanghai(day: int, hour: int, minute: int = 0, second: int = 0, *, month: int = 11) -> datetime:
    """A local time in November 2026 (the 20th is a Friday, the 23rd a Monday)."""
    return datetime(2026, month, day, hour, minute, second, tzinfo=SHANGHAI)


# -- parsing ------------------------------------------------------------------------------


def test_from_json_reads_days_and_times() -> None:
    schedule = WeeklySchedule.from_json(
        [
            {"days": [1, 2, 3], "start": "08:30", "end": "17:45"},
            {"days": [6, 7], "start": "00:00", "end": "24:00"},
            {"days": [5], "start": "22:00", "end": "06:00"},
        ]
    )
    first, whole_day, night = schedule.windows
    assert first == WeeklyWindow(days=frozenset({1, 2, 3}), start_minute=510, end_minute=1065)
    assert (whole_day.start_minute, whole_day.end_minute) == (0, 1440)
    assert not whole_day.crosses_midnight
    assert night.crosses_midnight


def test_to_json_is_the_inverse_of_from_json() -> None:
    stored = [
        {"days": [1, 3, 5], "start": "07:05", "end": "24:00"},
        {"days": [7], "start": "23:00", "end": "01:30"},
    ]
    assert WeeklySchedule.from_json(stored).to_json() == stored
    assert WeeklySchedule.from_json(WeeklySchedule.from_json(stored).to_json()) == (
        WeeklySchedule.from_json(stored)
    )


def test_none_and_empty_mean_no_schedule_of_its_own() -> None:
    assert schedule_from_json(None) is None
    assert schedule_from_json([]) is None
    assert schedule_from_json([{"days": [1], "start": "08:00", "end": "09:00"}]) == (
        WeeklySchedule.from_json([{"days": [1], "start": "08:00", "end": "09:00"}])
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param({"days": [1]}, "must be a list of windows", id="not-a-list"),
        pytest.param("08:00-18:00", "must be a list of windows", id="a-string"),
        pytest.param([], "at least one window", id="empty"),
        pytest.param(["08:00"], "schedule window 1 must be an object", id="item-not-object"),
        pytest.param([{"days": [1], "start": "08:00"}], "missing end", id="missing-end"),
        pytest.param(
            [{"days": [1], "start": "08:00", "end": "09:00", "stat": "x"}],
            "unknown field(s) stat",
            id="unknown-field",
        ),
        pytest.param([{"days": [], "start": "08:00", "end": "09:00"}], "non-empty", id="no-days"),
        pytest.param([{"days": 1, "start": "08:00", "end": "09:00"}], "non-empty", id="days-int"),
        pytest.param([{"days": [0], "start": "08:00", "end": "09:00"}], "got 0", id="day-0"),
        pytest.param([{"days": [8], "start": "08:00", "end": "09:00"}], "got 8", id="day-8"),
        pytest.param([{"days": ["1"], "start": "08:00", "end": "09:00"}], "got '1'", id="day-str"),
        pytest.param([{"days": [True], "start": "08:00", "end": "09:00"}], "got True", id="bool"),
        pytest.param(
            [{"days": [2, 2], "start": "08:00", "end": "09:00"}], "listed twice", id="duplicate"
        ),
        pytest.param([{"days": [1], "start": "8:00", "end": "09:00"}], "'HH:MM'", id="one-digit"),
        pytest.param([{"days": [1], "start": "08:00:00", "end": "09:00"}], "'HH:MM'", id="secs"),
        pytest.param([{"days": [1], "start": 800, "end": "09:00"}], "a string", id="number"),
        pytest.param([{"days": [1], "start": "24:00", "end": "09:00"}], "00:00-23:59", id="24s"),
        pytest.param([{"days": [1], "start": "25:00", "end": "09:00"}], "00:00-23:59", id="25h"),
        pytest.param([{"days": [1], "start": "12:60", "end": "13:00"}], "00:00-23:59", id="60m"),
        pytest.param([{"days": [1], "start": "08:00", "end": "24:01"}], "or 24:00", id="24:01"),
        pytest.param([{"days": [1], "start": "08:00", "end": "08:00"}], "00:00-24:00", id="equal"),
        pytest.param(
            [
                {"days": [1], "start": "08:00", "end": "09:00"},
                {"days": [1], "start": "08:00", "end": "xx"},
            ],
            "schedule window 2:",
            id="names-the-window",
        ),
    ],
)
def test_from_json_refuses_bad_input_with_a_clear_message(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        WeeklySchedule.from_json(data)


def test_windows_and_schedules_check_themselves() -> None:
    with pytest.raises(ValueError, match="at least one window"):
        WeeklySchedule(windows=())
    with pytest.raises(ValueError, match="at least one day"):
        WeeklyWindow(days=frozenset(), start_minute=0, end_minute=60)
    with pytest.raises(ValueError, match="end_minute"):
        WeeklyWindow(days=frozenset({1}), start_minute=0, end_minute=1441)
    with pytest.raises(ValueError, match="same time"):
        WeeklyWindow(days=frozenset({1}), start_minute=60, end_minute=60)


# -- contains -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        (shanghai(20, 7, 59, 59), False),
        (shanghai(20, 8, 0, 0), True),  # the start is included
        (shanghai(20, 17, 59, 59), True),
        (shanghai(20, 18, 0, 0), False),  # the end is excluded
        (shanghai(21, 12, 0), False),  # Saturday
        (shanghai(23, 12, 0), True),  # Monday
    ],
)
def test_start_inclusive_end_exclusive(at: datetime, inside: bool) -> None:
    assert OFFICE_HOURS.contains(at, SHANGHAI) is inside


def test_the_end_is_exclusive_below_the_second() -> None:
    assert OFFICE_HOURS.contains(shanghai(20, 17, 59, 59).replace(microsecond=999_999), SHANGHAI)


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        pytest.param(shanghai(20, 21, 59), False, id="friday-21:59"),
        pytest.param(shanghai(20, 22, 0), True, id="friday-22:00"),
        pytest.param(shanghai(20, 23, 59, 59), True, id="friday-23:59:59"),
        pytest.param(shanghai(21, 0, 0), True, id="saturday-00:00"),
        pytest.param(shanghai(21, 1, 0), True, id="saturday-01:00"),
        pytest.param(shanghai(21, 5, 59, 59), True, id="saturday-05:59:59"),
        pytest.param(shanghai(21, 6, 0), False, id="saturday-06:00"),
        pytest.param(shanghai(21, 7, 0), False, id="saturday-07:00"),
        pytest.param(shanghai(21, 22, 30), False, id="saturday-22:30-not-listed"),
        pytest.param(shanghai(20, 1, 0), False, id="friday-01:00-belongs-to-thursday"),
        pytest.param(shanghai(19, 23, 0), False, id="thursday-23:00"),
    ],
)
def test_a_window_crossing_midnight_belongs_to_the_day_it_starts(
    at: datetime, inside: bool
) -> None:
    assert FRIDAY_NIGHT.contains(at, SHANGHAI) is inside


def test_sunday_night_wraps_into_monday() -> None:
    schedule = WeeklySchedule.from_json([{"days": [7], "start": "22:00", "end": "02:00"}])
    assert schedule.contains(shanghai(22, 23, 0), SHANGHAI)  # Sunday
    assert schedule.contains(shanghai(23, 1, 59), SHANGHAI)  # Monday small hours
    assert not schedule.contains(shanghai(23, 2, 0), SHANGHAI)
    assert not schedule.contains(shanghai(23, 23, 0), SHANGHAI)  # Monday evening


def test_24_00_is_the_end_of_the_day() -> None:
    evening = WeeklySchedule.from_json([{"days": [5], "start": "18:00", "end": "24:00"}])
    assert evening.contains(shanghai(20, 23, 59, 59), SHANGHAI)
    assert not evening.contains(shanghai(21, 0, 0), SHANGHAI)
    always = WeeklySchedule.from_json(
        [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "24:00"}]
    )
    assert all(
        always.contains(shanghai(day, hour), SHANGHAI)
        for day in range(16, 23)
        for hour in range(24)
    )


def test_the_instant_is_read_in_the_given_zone() -> None:
    # Friday 14:00 UTC is Friday 22:00 in Shanghai; 13:59 UTC is 21:59 there.
    assert FRIDAY_NIGHT.contains(datetime(2026, 11, 20, 14, 0, tzinfo=UTC), SHANGHAI)
    assert not FRIDAY_NIGHT.contains(datetime(2026, 11, 20, 13, 59, tzinfo=UTC), SHANGHAI)
    # Sunday 23:59 UTC is Monday 07:59 in Shanghai; Monday 00:00 UTC is 08:00 there.
    assert not OFFICE_HOURS.contains(datetime(2026, 11, 22, 23, 59, tzinfo=UTC), SHANGHAI)
    assert OFFICE_HOURS.contains(datetime(2026, 11, 23, 0, 0, tzinfo=UTC), SHANGHAI)
    # The same instant read in UTC is a Sunday night: outside office hours there.
    assert not OFFICE_HOURS.contains(datetime(2026, 11, 22, 23, 59, tzinfo=UTC), "UTC")


def test_the_zone_may_be_a_name_or_a_zoneinfo() -> None:
    at = shanghai(20, 9, 0)
    assert OFFICE_HOURS.contains(at, "Asia/Shanghai") is OFFICE_HOURS.contains(at, SHANGHAI) is True
    assert zone_info("Asia/Shanghai") is zone_info(SHANGHAI)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../etc/passwd"])
def test_an_unknown_zone_is_a_value_error(zone: str) -> None:
    with pytest.raises(ValueError, match="time zone"):
        OFFICE_HOURS.contains(shanghai(20, 9, 0), zone)


def test_naive_datetimes_raise() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE_HOURS.contains(datetime(2026, 11, 20, 9, 0), SHANGHAI)
    with pytest.raises(ValueError, match="timezone-aware"):
        require_aware(datetime(2026, 11, 20, 9, 0))
    with pytest.raises(TypeError):
        require_aware("2026-11-20T09:00:00+08:00")  # type: ignore[arg-type]


def test_shanghai_has_no_summer_time() -> None:
    # 08:00 in Shanghai is 00:00 UTC in January and in July alike.
    weekdays = WeeklySchedule.from_json(
        [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "08:00", "end": "09:00"}]
    )
    for month in (1, 4, 7, 10):
        assert weekdays.contains(datetime(2026, month, 15, 0, 0, tzinfo=UTC), SHANGHAI)
        assert not weekdays.contains(datetime(2026, month, 14, 23, 59, 59, tzinfo=UTC), SHANGHAI)


# -- a zone with summer time: windows are local wall-clock times --------------------------

SUNDAY_DAYTIME = WeeklySchedule.from_json([{"days": [7], "start": "08:00", "end": "18:00"}])


def test_spring_forward_keeps_local_opening_hours() -> None:
    # Sunday 2026-03-22 is winter time (UTC+1): 08:00 local is 07:00 UTC.
    assert not SUNDAY_DAYTIME.contains(datetime(2026, 3, 22, 6, 59, 59, tzinfo=UTC), BERLIN)
    assert SUNDAY_DAYTIME.contains(datetime(2026, 3, 22, 7, 0, tzinfo=UTC), BERLIN)
    # Sunday 2026-03-29 the clocks go forward at 02:00: 08:00 local is now 06:00 UTC.
    assert not SUNDAY_DAYTIME.contains(datetime(2026, 3, 29, 5, 59, 59, tzinfo=UTC), BERLIN)
    assert SUNDAY_DAYTIME.contains(datetime(2026, 3, 29, 6, 0, tzinfo=UTC), BERLIN)
    assert SUNDAY_DAYTIME.contains(datetime(2026, 3, 29, 15, 59, 59, tzinfo=UTC), BERLIN)
    assert not SUNDAY_DAYTIME.contains(datetime(2026, 3, 29, 16, 0, tzinfo=UTC), BERLIN)


def test_spring_forward_night_window_is_an_hour_shorter() -> None:
    night = WeeklySchedule.from_json([{"days": [7], "start": "01:00", "end": "04:00"}])
    assert night.contains(datetime(2026, 3, 29, 0, 30, tzinfo=UTC), BERLIN)  # 01:30 CET
    assert night.contains(datetime(2026, 3, 29, 1, 30, tzinfo=UTC), BERLIN)  # 03:30 CEST
    assert not night.contains(datetime(2026, 3, 29, 2, 0, tzinfo=UTC), BERLIN)  # 04:00 CEST
    # 02:00-03:00 does not exist that night, so a window on it never opens.
    missing_hour = WeeklySchedule.from_json([{"days": [7], "start": "02:00", "end": "03:00"}])
    assert not missing_hour.contains(datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC), BERLIN)
    assert not missing_hour.contains(datetime(2026, 3, 29, 1, 0, tzinfo=UTC), BERLIN)


def test_fall_back_repeats_the_hour_and_the_window_covers_both() -> None:
    repeated = WeeklySchedule.from_json([{"days": [7], "start": "02:00", "end": "03:00"}])
    assert repeated.contains(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), BERLIN)  # 02:30 CEST
    assert repeated.contains(datetime(2026, 10, 25, 1, 30, tzinfo=UTC), BERLIN)  # 02:30 CET
    assert not repeated.contains(datetime(2026, 10, 25, 2, 0, tzinfo=UTC), BERLIN)  # 03:00 CET
