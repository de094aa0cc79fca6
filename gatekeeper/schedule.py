"""Weekly schedules: when an access point is open, when a worker may come.

The server stores a schedule as JSON, the same shape for access points and workers::

    [{"days": [1, 2, 3, 4, 5], "start": "08:00", "end": "18:00"},
     {"days": [5], "start": "22:00", "end": "06:00"}]

- ``days`` are ISO weekdays, 1 = Monday ... 7 = Sunday.
- ``start`` and ``end`` are local wall-clock times ``HH:MM`` in the community's time zone;
  ``end`` may be ``"24:00"`` (the end of the day).
- ``end`` before ``start`` means the window crosses midnight: it belongs to the day it
  *starts* on, so ``days: [5], 22:00-06:00`` covers Friday 22:00 to Saturday 06:00.
- A window includes its start and excludes its end.

"No schedule of its own" is ``None`` (or ``[]`` in the database), never an empty
:class:`WeeklySchedule`: :func:`schedule_from_json` turns both into ``None`` and the
caller treats ``None`` as "no restriction". An empty ``WeeklySchedule`` would be a
schedule that is never open, which nobody means to store, so it cannot be built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MINUTES_PER_DAY = 24 * 60

_TIME = re.compile(r"^(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})$", re.ASCII)
_WINDOW_KEYS = frozenset({"days", "start", "end"})


def require_aware(value: datetime, name: str = "datetime") -> datetime:
    """Return ``value`` if it carries a time zone; raise ValueError for a naive datetime."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got the naive {value.isoformat()}")
    return value


def zone_info(zone: ZoneInfo | str) -> ZoneInfo:
    """The ``ZoneInfo`` for an IANA name (or the zone itself); ValueError if unknown."""
    if isinstance(zone, ZoneInfo):
        return zone
    if not isinstance(zone, str) or not zone:
        raise ValueError(f"a time zone must be an IANA name such as 'Asia/Shanghai', got {zone!r}")
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {zone!r}") from error


def _format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _parse_time(value: object, *, field: str, where: str, allow_end_of_day: bool) -> int:
    if not isinstance(value, str):
        raise ValueError(f"{where}: {field} must be a string 'HH:MM', got {value!r}")
    match = _TIME.match(value)
    if match is None:
        raise ValueError(f"{where}: {field} must be 'HH:MM', got {value!r}")
    hour, minute = int(match["hour"]), int(match["minute"])
    if allow_end_of_day and (hour, minute) == (24, 0):
        return MINUTES_PER_DAY
    if hour > 23 or minute > 59:
        allowed = "00:00-23:59 or 24:00" if allow_end_of_day else "00:00-23:59"
        raise ValueError(f"{where}: {field} must be within {allowed}, got {value!r}")
    return hour * 60 + minute


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    """One weekly window: on each of ``days``, from ``start_minute`` to ``end_minute``.

    Minutes count from local midnight; ``end_minute`` is 1..1440 (1440 = "24:00").
    ``end_minute < start_minute`` crosses midnight into the next day.
    """

    days: frozenset[int]
    start_minute: int
    end_minute: int

    def __post_init__(self) -> None:
        days = frozenset(self.days)
        object.__setattr__(self, "days", days)
        if not days:
            raise ValueError("a schedule window needs at least one day")
        for day in days:
            if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 7:
                raise ValueError(f"days are ISO weekdays 1 (Monday) to 7 (Sunday), got {day!r}")
        if not 0 <= self.start_minute < MINUTES_PER_DAY:
            raise ValueError(f"start_minute must be 0..1439, got {self.start_minute}")
        if not 0 < self.end_minute <= MINUTES_PER_DAY:
            raise ValueError(f"end_minute must be 1..1440, got {self.end_minute}")
        if self.start_minute == self.end_minute:
            raise ValueError(
                "a window cannot start and end at the same time; use 00:00-24:00 for the whole day"
            )

    @property
    def crosses_midnight(self) -> bool:
        """True when the window ends on the day after the one it starts on."""
        return self.end_minute < self.start_minute

    @classmethod
    def from_json(cls, data: object, *, where: str = "schedule window") -> WeeklyWindow:
        """Build a window from ``{"days": [...], "start": "HH:MM", "end": "HH:MM"}``."""
        if not isinstance(data, dict):
            raise ValueError(f"{where} must be an object with days, start and end, got {data!r}")
        missing = sorted(_WINDOW_KEYS - data.keys())
        if missing:
            raise ValueError(f"{where} is missing {', '.join(missing)}")
        unknown = sorted(str(key) for key in data.keys() - _WINDOW_KEYS)
        if unknown:
            raise ValueError(f"{where} has unknown field(s) {', '.join(unknown)}")
        days = data["days"]
        if not isinstance(days, list | tuple) or not days:
            raise ValueError(f"{where}: days must be a non-empty list of weekdays 1-7")
        seen: set[int] = set()
        for day in days:
            if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 7:
                raise ValueError(
                    f"{where}: days are ISO weekdays 1 (Monday) to 7 (Sunday), got {day!r}"
                )
            if day in seen:
                raise ValueError(f"{where}: day {day} is listed twice")
            seen.add(day)
        start = _parse_time(data["start"], field="start", where=where, allow_end_of_day=False)
        end = _parse_time(data["end"], field="end", where=where, allow_end_of_day=True)
        if start == end:
            raise ValueError(
                f"{where}: start and end are both {data['start']!r}; "
                "use 00:00-24:00 for the whole day"
            )
        return cls(days=frozenset(seen), start_minute=start, end_minute=end)

    def to_json(self) -> dict[str, Any]:
        """The stored form, the inverse of :meth:`from_json`."""
        return {
            "days": sorted(self.days),
            "start": _format_minute(self.start_minute),
            "end": _format_minute(self.end_minute),
        }

    def contains_local(self, weekday: int, second_of_day: float) -> bool:
        """Whether local wall-clock time (ISO ``weekday``, seconds since midnight) is inside."""
        start = self.start_minute * 60
        end = self.end_minute * 60
        if not self.crosses_midnight:
            return weekday in self.days and start <= second_of_day < end
        previous_day = 7 if weekday == 1 else weekday - 1
        # The evening part belongs to today, the small hours to the day before.
        return (weekday in self.days and second_of_day >= start) or (
            previous_day in self.days and second_of_day < end
        )


@dataclass(frozen=True, slots=True)
class WeeklySchedule:
    """A set of weekly windows in local wall-clock time; open when any window is."""

    windows: tuple[WeeklyWindow, ...]

    def __post_init__(self) -> None:
        windows = tuple(self.windows)
        object.__setattr__(self, "windows", windows)
        if not windows:
            raise ValueError(
                "a schedule needs at least one window; use None for 'no schedule of its own'"
            )

    @classmethod
    def from_json(cls, data: object) -> WeeklySchedule:
        """Validate the stored JSON list and build the schedule; ValueError says what is wrong."""
        if not isinstance(data, list | tuple):
            raise ValueError(f"a schedule must be a list of windows, got {type(data).__name__}")
        if not data:
            raise ValueError(
                "a schedule needs at least one window; store null for 'no schedule of its own'"
            )
        return cls(
            windows=tuple(
                WeeklyWindow.from_json(item, where=f"schedule window {index}")
                for index, item in enumerate(data, start=1)
            )
        )

    @classmethod
    def of(cls, windows: Iterable[WeeklyWindow]) -> WeeklySchedule:
        """A schedule from windows already built."""
        return cls(windows=tuple(windows))

    def to_json(self) -> list[dict[str, Any]]:
        """The stored form, the inverse of :meth:`from_json`."""
        return [window.to_json() for window in self.windows]

    def contains(self, at: datetime, zone: ZoneInfo | str) -> bool:
        """Whether the instant ``at`` falls in a window, read as local time in ``zone``.

        ``at`` must be timezone-aware; it is converted to ``zone`` first, so a window
        "08:00-18:00" means 08:00-18:00 on the community's clocks, summer time or not.
        """
        local = require_aware(at, "at").astimezone(zone_info(zone))
        second_of_day = (
            local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1_000_000
        )
        weekday = local.isoweekday()
        return any(window.contains_local(weekday, second_of_day) for window in self.windows)


def schedule_from_json(data: object) -> WeeklySchedule | None:
    """The stored column as a schedule: ``None`` or ``[]`` mean "no schedule of its own"."""
    if data is None or (isinstance(data, list | tuple) and not data):
        return None
    return WeeklySchedule.from_json(data)
