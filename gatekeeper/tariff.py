"""The parking fee of a temporary car (临时车): a community's tariff and what a stay costs.

Money is integer fen (分, 1/100 yuan, CNY) throughout; nothing here rounds.

The rules (docs/plates.md, "Temporary cars"):

- **Free minutes** are a grace, not a deduction: a stay of at most ``free_minutes``
  costs nothing; a longer stay is charged from its entry.
- **Started hours count**: the stay is cut into hours from the entry (entry + 0 h,
  entry + 1 h, ...); each hour that has started is charged whole.
- **Night rate**: an hour is charged at ``night_hour_fen`` when it *starts* inside the
  night window (local wall-clock time in the community's zone, ``night_start`` included,
  ``night_end`` excluded; the window may cross midnight); else at ``hour_fen``. Without
  a night price every hour costs ``hour_fen``.
- **Daily cap**: per calendar day in the community's zone. The hours are grouped by the
  local date on which each hour starts, and each day's sum is capped at ``daily_cap_fen``.
  A stay over several days pays at most the cap for each day it touches.

:func:`fee` is pure: the same instants, tariff and zone give the same fee and breakdown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gatekeeper.schedule import require_aware, zone_info

HOUR = timedelta(hours=1)
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$", re.ASCII)
# The longest a price, a cap or the free minutes may be (sanity bounds, shared with the
# settings' validation): ¥10,000 an hour or a day, a free day.
MAX_FEN = 1_000_000
MAX_FREE_MINUTES = 24 * 60


def _minute_of_day(text: str, name: str) -> int:
    match = _HHMM.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{name} must be HH:MM (00:00 to 23:59), got {text!r}")
    return int(match.group(1)) * 60 + int(match.group(2))


def _fen(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FEN:
        raise ValueError(f"{name} must be whole fen from 0 to {MAX_FEN}, got {value!r}")
    return value


@dataclass(frozen=True)
class Tariff:
    """What a temporary car pays: prices in fen, the night window in local ``HH:MM``."""

    free_minutes: int = 15
    hour_fen: int = 500
    night_hour_fen: int | None = None  # None: the day price around the clock
    night_start: str = "22:00"
    night_end: str = "07:00"
    daily_cap_fen: int | None = None  # None: no cap

    def __post_init__(self) -> None:
        free = self.free_minutes
        if isinstance(free, bool) or not isinstance(free, int) or not 0 <= free <= MAX_FREE_MINUTES:
            raise ValueError(f"free_minutes must be 0 to {MAX_FREE_MINUTES}, got {free!r}")
        _fen(self.hour_fen, "hour_fen")
        if self.night_hour_fen is not None:
            _fen(self.night_hour_fen, "night_hour_fen")
        if self.daily_cap_fen is not None:
            _fen(self.daily_cap_fen, "daily_cap_fen")
        _minute_of_day(self.night_start, "night_start")
        _minute_of_day(self.night_end, "night_end")

    def is_night(self, local: datetime) -> bool:
        """Whether a local wall-clock instant is inside the night window."""
        if self.night_hour_fen is None:
            return False
        start = _minute_of_day(self.night_start, "night_start")
        end = _minute_of_day(self.night_end, "night_end")
        minute = local.hour * 60 + local.minute
        if start == end:  # an empty window
            return False
        if start < end:
            return start <= minute < end
        return minute >= start or minute < end


@dataclass(frozen=True)
class DayCharge:
    """One local calendar day of a stay: its started hours and what they cost."""

    date: date
    day_hours: int
    night_hours: int
    charged_fen: int  # before the cap
    fee_fen: int  # after the cap
    capped: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "day_hours": self.day_hours,
            "night_hours": self.night_hours,
            "charged_fen": self.charged_fen,
            "fee_fen": self.fee_fen,
            "capped": self.capped,
        }


@dataclass(frozen=True)
class Fee:
    """What a stay costs, with the breakdown by local day."""

    fee_fen: int
    duration_s: int
    free: bool  # within the free minutes
    hours: int  # started hours charged (0 when free)
    days: tuple[DayCharge, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "fee_fen": self.fee_fen,
            "duration_s": self.duration_s,
            "free": self.free,
            "hours": self.hours,
            "days": [day.as_json() for day in self.days],
        }


def fee(tariff: Tariff, entered_at: datetime, exited_at: datetime, zone: ZoneInfo | str) -> Fee:
    """The fee of a stay from ``entered_at`` to ``exited_at`` (aware instants) under
    ``tariff``, days and night in ``zone`` (an IANA name). An exit before the entry is a
    stay of zero."""
    require_aware(entered_at, "entered_at")
    require_aware(exited_at, "exited_at")
    tz = zone_info(zone)
    stay = max(timedelta(0), exited_at - entered_at)
    seconds = int(stay.total_seconds())
    if stay <= timedelta(minutes=tariff.free_minutes):
        return Fee(0, seconds, True, 0, ())
    hours = -(-stay // HOUR)  # started hours (a microsecond into an hour starts it)
    by_day: dict[date, list[int]] = {}  # date -> [day hours, night hours, fen]
    for k in range(hours):
        local = (entered_at + k * HOUR).astimezone(tz)
        night = tariff.is_night(local)
        price = tariff.night_hour_fen if night and tariff.night_hour_fen is not None else None
        row = by_day.setdefault(local.date(), [0, 0, 0])
        row[1 if night else 0] += 1
        row[2] += tariff.hour_fen if price is None else price
    days = []
    for day, (day_hours, night_hours, charged) in sorted(by_day.items()):
        cap = tariff.daily_cap_fen
        capped = cap is not None and charged > cap
        days.append(
            DayCharge(day, day_hours, night_hours, charged, cap if capped else charged, capped)
        )
    return Fee(sum(d.fee_fen for d in days), seconds, False, hours, tuple(days))


def yuan(fen: int) -> str:
    """Fen as a price: ``¥12.50`` (``-¥1.00`` for a negative amount)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"
