"""Community-local times: what staff type and read, converted to and from UTC.

Storage is UTC; forms and files speak the community's zone. A ``ValueError``'s text is a
lazy translation: ``str(error)`` is in the request's language (English outside one).
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l


def local_to_utc(naive: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time in ``zone`` as an aware UTC datetime; ValueError if it never exists.

    A time skipped by a clock change (DST) would otherwise silently move by an hour.
    """
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    local = naive.replace(tzinfo=zone)
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        when = naive.strftime("%Y-%m-%d %H:%M")
        raise ValueError(
            _l("%(time)s does not exist in %(zone)s (clock change)", time=when, zone=zone.key)
        )
    return local.astimezone(UTC)


def parse_local_time(text: str, zone: ZoneInfo, *, end_of_day: bool = False) -> datetime:
    """``2026-12-01T09:00`` (or a date) in the community's zone, as aware UTC.

    A date alone means 00:00 that day, or with ``end_of_day`` 00:00 the day after.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value) + timedelta(days=1 if end_of_day else 0)
            naive = datetime.combine(day, time())
        else:
            naive = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            _l(
                "%(value)s is not a date (2026-12-01) or a local time (2026-12-01T09:00)",
                value=repr(value),
            )
        ) from None
    return local_to_utc(naive, zone)


def local_time(value: datetime | None, zone: str = "Asia/Shanghai") -> str:
    """A UTC timestamp shown in a community's time zone."""
    if value is None:
        return "—"
    return value.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")
