"""The parking fee of a temporary car at the tariff's edges: free minutes, started hours,
local midnight, the night rate, the daily cap, stays of several days.

Pure: every instant is given (frozen), in the community's zone (UTC+8, no clock changes).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gatekeeper.tariff import Tariff, fee, yuan

SHANGHAI = ZoneInfo("Asia/Shanghai")
# ¥5 an hour, ¥2 an hour at night (22:00-07:00), ¥30 a day at most, 15 free minutes.
TARIFF = Tariff(
    free_minutes=15,
    hour_fen=500,
    night_hour_fen=200,
    night_start="22:00",
    night_end="07:00",
    daily_cap_fen=3000,
)


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=SHANGHAI)


def charged(entered: datetime, exited: datetime, tariff: Tariff = TARIFF) -> int:
    return fee(tariff, entered, exited, "Asia/Shanghai").fee_fen


def test_a_stay_within_the_free_minutes_costs_nothing() -> None:
    entered = local(10, 9)
    for stay in (timedelta(0), timedelta(minutes=14, seconds=59), timedelta(minutes=15)):
        result = fee(TARIFF, entered, entered + stay, "Asia/Shanghai")
        assert (result.fee_fen, result.free, result.hours, result.days) == (0, True, 0, ())
        assert result.duration_s == int(stay.total_seconds())


def test_one_minute_past_the_free_minutes_pays_the_first_hour_from_the_entry() -> None:
    entered = local(10, 9)
    result = fee(TARIFF, entered, entered + timedelta(minutes=16), "Asia/Shanghai")
    assert (result.fee_fen, result.free, result.hours) == (500, False, 1)
    # A second past the free minutes is enough.
    assert charged(entered, entered + timedelta(minutes=15, seconds=1)) == 500


def test_every_started_hour_counts_whole() -> None:
    entered = local(10, 9)
    assert charged(entered, entered + timedelta(hours=1)) == 500
    assert charged(entered, entered + timedelta(hours=1, seconds=1)) == 1000
    assert charged(entered, entered + timedelta(hours=2)) == 1000
    assert charged(entered, entered + timedelta(hours=2, minutes=1)) == 1500


def test_crossing_local_midnight_splits_the_stay_by_local_day() -> None:
    # 21:30 -> 00:40: hours start 21:30 (day), 22:30 and 23:30 (night), 00:30 (night, next day).
    result = fee(TARIFF, local(10, 21, 30), local(11, 0, 40), "Asia/Shanghai")
    assert result.fee_fen == 500 + 200 + 200 + 200
    first, second = result.days
    assert (first.date, first.day_hours, first.night_hours, first.fee_fen) == (
        date(2026, 3, 10),
        1,
        2,
        900,
    )
    assert (second.date, second.day_hours, second.night_hours, second.fee_fen) == (
        date(2026, 3, 11),
        0,
        1,
        200,
    )
    # The days are the community's: in UTC (13:30 -> 16:40) the stay is all one day.
    assert local(10, 21, 30).astimezone(UTC).date() == local(11, 0, 40).astimezone(UTC).date()


def test_the_night_rate_applies_to_hours_that_start_inside_the_night() -> None:
    assert charged(local(10, 23), local(11, 5)) == 6 * 200
    # 06:00 is night, 07:00 is day again (the end is excluded), 21:59 is day, 22:00 night.
    assert charged(local(10, 6), local(10, 8)) == 200 + 500
    assert charged(local(10, 21, 59), local(10, 22, 59)) == 500
    assert charged(local(10, 22), local(10, 23)) == 200


def test_without_a_night_price_every_hour_costs_the_day_price() -> None:
    day_only = Tariff(free_minutes=15, hour_fen=500)
    assert charged(local(10, 23), local(11, 5), day_only) == 6 * 500


def test_the_daily_cap_limits_each_local_day() -> None:
    # 08:00 -> 20:00: 12 day hours (¥60) capped at ¥30.
    result = fee(TARIFF, local(10, 8), local(10, 20), "Asia/Shanghai")
    [day] = result.days
    assert (day.charged_fen, day.fee_fen, day.capped) == (6000, 3000, True)
    assert result.fee_fen == 3000
    # Just under the cap stays as it is.
    assert charged(local(10, 8), local(10, 14)) == 3000  # 6 hours: exactly the cap
    assert fee(TARIFF, local(10, 8), local(10, 14), "Asia/Shanghai").days[0].capped is False


def test_a_stay_of_several_days_pays_at_most_the_cap_for_each_day_it_touches() -> None:
    # Day 1 08:00-24:00: 14 day + 2 night hours = ¥74 -> ¥30.
    # Day 2: 7 night + 15 day + 2 night = ¥93 -> ¥30. Day 3 00:00-10:00: 7 night + 3 day = ¥29.
    result = fee(TARIFF, local(10, 8), local(12, 10), "Asia/Shanghai")
    assert [(d.date.day, d.charged_fen, d.fee_fen) for d in result.days] == [
        (10, 7400, 3000),
        (11, 9300, 3000),
        (12, 2900, 2900),
    ]
    assert (result.fee_fen, result.hours) == (8900, 50)
    assert result.as_json()["days"][2] == {
        "date": "2026-03-12",
        "day_hours": 3,
        "night_hours": 7,
        "charged_fen": 2900,
        "fee_fen": 2900,
        "capped": False,
    }


def test_no_free_minutes_charges_the_first_second() -> None:
    tariff = Tariff(free_minutes=0, hour_fen=300)
    assert charged(local(10, 9), local(10, 9, 0, 1), tariff) == 300
    assert charged(local(10, 9), local(10, 9), tariff) == 0


def test_an_exit_read_before_the_entry_is_a_stay_of_zero() -> None:
    result = fee(TARIFF, local(10, 9), local(10, 8), "Asia/Shanghai")
    assert (result.fee_fen, result.duration_s) == (0, 0)


def test_a_night_window_that_does_not_cross_midnight() -> None:
    tariff = Tariff(
        free_minutes=0, hour_fen=500, night_hour_fen=100, night_start="00:00", night_end="06:00"
    )
    assert charged(local(10, 23), local(11, 1), tariff) == 500 + 100
    same = Tariff(
        free_minutes=0, hour_fen=500, night_hour_fen=100, night_start="03:00", night_end="03:00"
    )
    assert charged(local(10, 2), local(10, 5), same) == 3 * 500  # an empty window


@pytest.mark.parametrize(
    "values",
    [
        {"free_minutes": -1},
        {"free_minutes": 24 * 60 + 1},
        {"free_minutes": True},
        {"hour_fen": -1},
        {"hour_fen": 2.5},
        {"hour_fen": 1_000_001},
        {"night_hour_fen": -5},
        {"daily_cap_fen": "3000"},
        {"night_start": "24:00"},
        {"night_end": "7:00"},
    ],
)
def test_a_bad_tariff_is_refused(values: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(values))):
        Tariff(**values)


def test_instants_must_be_aware_and_the_zone_known() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        fee(TARIFF, datetime(2026, 3, 10, 9), local(10, 10), "Asia/Shanghai")
    with pytest.raises(ValueError, match="unknown time zone"):
        fee(TARIFF, local(10, 9), local(10, 10), "Mars/Olympus")


def test_fen_are_shown_as_yuan() -> None:
    assert [yuan(0), yuan(5), yuan(1250), yuan(123456), yuan(-100)] == [
        "¥0.00",
        "¥0.05",
        "¥12.50",
        "¥1,234.56",
        "-¥1.00",
    ]


def test_a_fraction_of_a_second_counts() -> None:
    tariff = Tariff(free_minutes=0, hour_fen=300)
    entered = local(10, 9)
    assert charged(entered, entered + timedelta(microseconds=1), tariff) == 300
    assert charged(entered, entered + timedelta(hours=1, microseconds=1), tariff) == 600
    assert charged(entered, entered + timedelta(minutes=15, microseconds=1)) == 500
