"""The holiday calendar: days on which chosen access points close or keep other hours.

A community lists holidays, single days or named periods (春节 2027-02-05..2027-02-11),
each with its *first* and *last* day, both included, read as dates in the community's
zone: an instant is on the holiday when its local date falls in ``[first_day, last_day]``,
so the holiday runs from local midnight of its first day to local midnight after its last
day, whatever summer time does in between.

Each holiday applies to the access points it lists (``access_point_ids``) or, with
``None``, to every access point of the community, with one effect:

- ``closed``: nobody passes the point on those days (``holiday_closed``). A holiday closes
  what staff list (the kindergarten, the side gates, the office door), not the residents'
  own building doors: the server refuses a ``closed`` holiday for every point.
- ``hours``: the point keeps the holiday's ``hours`` on those days instead of its weekly
  schedule, in the weekly-schedule format of :mod:`gatekeeper.schedule` (a window without
  ``days`` means every day); outside them the point is closed for the holiday.

The calendar takes precedence over weekly schedules: on a holiday the point's weekly
schedule and the weekly hours of a worker's permit give way to the holiday's effect
(``gatekeeper.policy.decide_access`` and ``decide_pass`` read it). When several holidays
cover one point on one day (the server refuses that), ``closed`` wins, then the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from gatekeeper.schedule import WeeklySchedule, require_aware, zone_info

ALL_DAYS = (1, 2, 3, 4, 5, 6, 7)


class HolidayEffect(StrEnum):
    """What a holiday does to the access points it applies to (stored)."""

    CLOSED = "closed"
    HOURS = "hours"


def hours_from_json(data: object) -> WeeklySchedule:
    """A holiday's hours from JSON windows; a window without ``days`` holds every day.

    ValueError says what is wrong (the messages of ``WeeklySchedule.from_json``).
    """
    if not isinstance(data, list | tuple):
        raise ValueError(f"holiday hours must be a list of windows, got {type(data).__name__}")
    windows = [
        {"days": list(ALL_DAYS), **item} if isinstance(item, dict) and "days" not in item else item
        for item in data
    ]
    return WeeklySchedule.from_json(windows)


@dataclass(frozen=True, slots=True)
class Holiday:
    """One holiday: local days ``[first_day, last_day]``, its effect, the points it touches.

    ``access_point_ids`` ``None`` means every access point of the community; ``hours`` is
    required for ``HOURS`` and refused for ``CLOSED``.
    """

    name: str
    first_day: date
    last_day: date
    effect: HolidayEffect = HolidayEffect.CLOSED
    hours: WeeklySchedule | None = None
    access_point_ids: frozenset[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "effect", HolidayEffect(self.effect))
        for name in ("first_day", "last_day"):
            value = getattr(self, name)
            if isinstance(value, datetime) or not isinstance(value, date):
                raise TypeError(f"{name} must be a date, not {type(value).__name__}")
        if self.last_day < self.first_day:
            raise ValueError(
                f"the holiday ends ({self.last_day}) before it starts ({self.first_day})"
            )
        if self.effect is HolidayEffect.HOURS and self.hours is None:
            raise ValueError("a holiday with other hours needs its hours")
        if self.effect is HolidayEffect.CLOSED and self.hours is not None:
            raise ValueError("a closing holiday has no hours")
        if self.access_point_ids is not None:
            if isinstance(self.access_point_ids, str):
                raise TypeError("access_point_ids is a collection of ids, not one string")
            object.__setattr__(self, "access_point_ids", frozenset(self.access_point_ids))

    def covers_day(self, day: date) -> bool:
        """Whether the local date ``day`` is one of the holiday's days."""
        return self.first_day <= day <= self.last_day

    def applies_to(self, point_id: str) -> bool:
        """Whether the holiday touches the access point ``point_id``."""
        return self.access_point_ids is None or point_id in self.access_point_ids

    def open_at(self, at: datetime, zone: ZoneInfo | str) -> bool:
        """Whether a point under this holiday lets people through at ``at`` (on its days)."""
        if self.effect is HolidayEffect.CLOSED or self.hours is None:
            return False
        return self.hours.contains(at, zone)

    def hours_text(self) -> str:
        """The hours as ``HH:MM-HH:MM`` windows, for a denial's detail ("" when closed)."""
        if self.hours is None:
            return ""
        return ", ".join(f"{window['start']}-{window['end']}" for window in self.hours.to_json())

    def to_json(self) -> dict[str, Any]:
        """A plain form for logs and tests."""
        return {
            "name": self.name,
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "effect": str(self.effect),
            "hours": None if self.hours is None else self.hours.to_json(),
            "access_point_ids": None
            if self.access_point_ids is None
            else sorted(self.access_point_ids),
        }


def local_day(at: datetime, zone: ZoneInfo | str) -> date:
    """The community's calendar date at the instant ``at``."""
    return require_aware(at, "at").astimezone(zone_info(zone)).date()


@dataclass(frozen=True, slots=True)
class Calendar:
    """A community's holidays (or the part of them the caller read, e.g. today's)."""

    holidays: tuple[Holiday, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "holidays", tuple(self.holidays))

    @classmethod
    def of(cls, holidays: Iterable[Holiday]) -> Calendar:
        return cls(holidays=tuple(holidays))

    def __bool__(self) -> bool:
        return bool(self.holidays)

    def effect(self, point_id: str, at: datetime, zone: ZoneInfo | str) -> Holiday | None:
        """The holiday that governs ``point_id`` at the instant ``at``, or ``None``.

        ``at`` is read as a date in ``zone`` (the community's). A closing holiday wins
        over one with other hours; otherwise the first listed wins.
        """
        if not self.holidays:
            return None
        day = local_day(at, zone)
        found = [h for h in self.holidays if h.covers_day(day) and h.applies_to(point_id)]
        closing = [h for h in found if h.effect is HolidayEffect.CLOSED]
        return (closing or found or [None])[0]


NO_HOLIDAYS = Calendar()
