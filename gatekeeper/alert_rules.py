"""Alert rules for officers: wandering, not seen, missed patrols, spoofing.

Pure functions over plain values: the server gathers the facts (the tag read, who wears
the tag, the guardians' passes nearby, when an elder was last seen, the reads at each
patrol checkpoint, the recent spoof denials at a door) and raises what these return.
``docs/alert_rules.md`` describes the rules and the choices behind them.

Every instant is timezone-aware; local times (night, school hours, patrol schedules) are
read in the community's zone. Night, school hours and rounds are half-open,
``[start, end)``; the guardian window includes both ends.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from gatekeeper.schedule import (
    MINUTES_PER_DAY,
    WeeklySchedule,
    WeeklyWindow,
    require_aware,
    zone_info,
)
from gatekeeper.vocabulary import AlertType, PersonRole, Severity, Zone

WEEKDAYS = frozenset({1, 2, 3, 4, 5})
ALL_DAYS = frozenset(range(1, 8))


def _minute(hhmm: str) -> int:
    hour, minute = hhmm.split(":")
    return int(hour) * 60 + int(minute)


def daily_window(start: str, end: str, days: frozenset[int] = ALL_DAYS) -> WeeklySchedule | None:
    """``HH:MM``-``HH:MM`` on ``days`` as a schedule (``end`` before ``start`` crosses
    midnight); ``None`` when start equals end: a window that is never open."""
    start_minute, end_minute = _minute(start), _minute(end)
    if start_minute == end_minute:
        return None
    return WeeklySchedule.of(
        [WeeklyWindow(days, start_minute, end_minute if end_minute else MINUTES_PER_DAY)]
    )


# Wandering ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WanderingSettings:
    """The community's tunables the wandering rule reads (``server.community.settings``)."""

    time_zone: str
    night_start: str = "22:00"
    night_end: str = "06:00"
    school_start: str = "08:00"
    school_end: str = "17:00"
    guardian_window: timedelta = timedelta(minutes=5)

    def is_night(self, at: datetime) -> bool:
        night = daily_window(self.night_start, self.night_end)
        return night is not None and night.contains(at, self.time_zone)

    def in_school_hours(self, at: datetime) -> bool:
        school = daily_window(self.school_start, self.school_end, WEEKDAYS)
        return school is not None and school.contains(at, self.time_zone)


@dataclass(frozen=True)
class TagRead:
    """A ``tag_read`` a reader reported: ``at`` is the device's time, ``received_at`` ours."""

    event_id: str
    reader_id: str
    zone: Zone | None
    access_point_id: str | None
    at: datetime
    received_at: datetime

    @property
    def settles_from(self) -> datetime:
        """The read's instant for deciding when to judge it: a reader whose clock runs
        ahead must not postpone the judgement, so the earlier of the two times."""
        return min(self.at, self.received_at)


@dataclass(frozen=True)
class Wearer:
    """Who wears the tag: their current roles and the wander-risk flag."""

    person_id: str
    roles: frozenset[PersonRole]
    wander_risk: bool


@dataclass(frozen=True)
class GuardianPass:
    """A guardian seen at a reader (their tag) or granted at an access point (face, card ...)."""

    person_id: str
    at: datetime
    reader_id: str | None = None
    access_point_id: str | None = None


class Exit(StrEnum):
    """Which boundary a watched read crossed."""

    PERIMETER = "perimeter"
    KINDERGARTEN = "kindergarten"


class Outcome(StrEnum):
    IGNORE = "ignore"  # not a read this rule watches
    WAIT = "wait"  # a guardian may still pass within the window: judge later
    ACCOMPANIED = "accompanied"  # a guardian passed the same exit within the window
    ALERT = "alert"


@dataclass(frozen=True)
class WanderingVerdict:
    outcome: Outcome
    alert_type: AlertType | None = None
    severity: Severity | None = None
    exit: Exit | None = None
    guardian_id: str | None = None
    # When a WAIT read can be judged for good.
    settles_at: datetime | None = None


def watched_exit(read: TagRead, wearer: Wearer, settings: WanderingSettings) -> Exit | None:
    """The boundary this read is watched at, or ``None``.

    - perimeter readers: elders and children with the wander-risk flag;
    - kindergarten readers: every tagged child, during school hours (Monday-Friday).
    """
    is_elder = PersonRole.ELDER in wearer.roles
    is_child = PersonRole.CHILD in wearer.roles
    if read.zone is Zone.PERIMETER and wearer.wander_risk and (is_elder or is_child):
        return Exit.PERIMETER
    if read.zone is Zone.KINDERGARTEN and is_child and settings.in_school_hours(read.at):
        return Exit.KINDERGARTEN
    return None


def same_exit(read: TagRead, guardian: GuardianPass) -> bool:
    """A guardian passed where the ward did: the same reader, or the reader's access point."""
    if guardian.reader_id is not None and guardian.reader_id == read.reader_id:
        return True
    return read.access_point_id is not None and guardian.access_point_id == read.access_point_id


def settles(read: TagRead, settings: WanderingSettings) -> datetime:
    """When a read can be judged for good: the guardian window after it has passed."""
    return read.settles_from + settings.guardian_window


def judge_wandering(
    read: TagRead,
    wearer: Wearer,
    guardian_passes: Iterable[GuardianPass],
    settings: WanderingSettings,
    now: datetime,
) -> WanderingVerdict:
    """Whether this read is a wandering alert, an accompanied exit, or not decided yet.

    ``guardian_passes`` are passes of this wearer's guardians (the caller picks them); one
    at the same exit within ``guardian_window`` before or after the read means
    accompanied. Until the window after the read has passed, an unaccompanied read is
    ``WAIT``: the caller judges it again later.
    """
    require_aware(now, "now")
    place = watched_exit(read, wearer, settings)
    if place is None:
        return WanderingVerdict(Outcome.IGNORE)
    window = settings.guardian_window
    for guardian in sorted(guardian_passes, key=lambda g: abs(g.at - read.at)):
        if same_exit(read, guardian) and abs(guardian.at - read.at) <= window:
            return WanderingVerdict(Outcome.ACCOMPANIED, exit=place, guardian_id=guardian.person_id)
    settles_at = settles(read, settings)
    if now < settles_at:
        return WanderingVerdict(Outcome.WAIT, exit=place, settles_at=settles_at)
    alert_type = (
        AlertType.ELDER_WANDERING
        if PersonRole.ELDER in wearer.roles and place is Exit.PERIMETER
        else AlertType.CHILD_WANDERING
    )
    severity = Severity.HIGH if settings.is_night(read.at) else Severity.MEDIUM
    return WanderingVerdict(Outcome.ALERT, alert_type, severity, place)


# Not seen -----------------------------------------------------------------------------------


def absence_start(
    last_seen_at: datetime | None, watched_since: datetime, now: datetime, hours: int
) -> datetime | None:
    """When an elder's current absence began, if it has lasted ``hours``; else ``None``.

    Someone never seen counts from ``watched_since`` (e.g. when they were enrolled).
    The instant names the absence: one alert per absence, a new one after they are seen.
    """
    start = last_seen_at if last_seen_at is not None else watched_since
    require_aware(start, "last_seen_at")
    if require_aware(now, "now") - start >= timedelta(hours=hours):
        return start
    return None


# Patrol -------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Round:
    """One patrol round, ``[start, end)``."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Visit:
    """A read that counted: a guard's tag at a checkpoint, in its turn on an ordered route."""

    checkpoint: str
    at: datetime
    tag: str | None = None


@dataclass(frozen=True)
class RoundResult:
    round: Round
    missed: tuple[str, ...]  # checkpoint reader ids that saw no tag, in route order
    # The reads that counted, oldest first: one per checkpoint visited (the first).
    visits: tuple[Visit, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.missed


def _local_instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """Wall-clock ``minute`` after local midnight of ``day``, as an instant in UTC."""
    local = datetime.combine(day, time(), zone) + timedelta(minutes=minute)  # wall-clock sum
    return local.astimezone(UTC)


def patrol_rounds(
    round_minutes: int,
    schedule: WeeklySchedule | None,
    time_zone: str,
    after: datetime,
    until: datetime,
) -> list[Round]:
    """The rounds that end in ``(after, until]``, oldest first.

    Rounds start at the start of each schedule window (local time; no schedule: every
    day from 00:00 to 24:00) and follow each other every ``round_minutes`` up to the
    window's end; a last stretch shorter than a round is not a round.
    """
    if round_minutes <= 0:
        raise ValueError("round_minutes must be positive")
    zone = zone_info(time_zone)
    after, until = require_aware(after, "after"), require_aware(until, "until")
    if until <= after:
        return []
    length = timedelta(minutes=round_minutes)
    windows = (
        schedule.windows if schedule is not None else (WeeklyWindow(ALL_DAYS, 0, MINUTES_PER_DAY),)
    )
    rounds: set[Round] = set()
    # A window starts on the day before ``after`` at the earliest (it may cross midnight).
    day = (after.astimezone(zone) - length).date() - timedelta(days=1)
    last_day = until.astimezone(zone).date()
    while day <= last_day:
        for window in windows:
            if day.isoweekday() not in window.days:
                continue
            end_minute = window.end_minute + (MINUTES_PER_DAY if window.crosses_midnight else 0)
            start = _local_instant(day, window.start_minute, zone)
            end = _local_instant(day, end_minute, zone)
            # Absolute time from the window's start: a clock change inside moves nothing.
            begin = start
            while begin + length <= end:
                finish = begin + length
                if after < finish <= until:
                    rounds.add(Round(begin, finish))
                begin = finish
        day += timedelta(days=1)
    return sorted(rounds)


def judge_round(
    patrol_round: Round,
    checkpoints: Sequence[str],
    reads: Iterable[tuple[str, datetime] | tuple[str, datetime, str | None]],
    guard_tags: Collection[str] | None = None,
    ordered: bool = False,
) -> RoundResult:
    """Which ``checkpoints`` saw no guard's tag in the round, and the reads that counted.

    ``reads`` are ``(reader_id, at)`` or ``(reader_id, at, tag)``. With ``guard_tags`` (EPCs,
    upper-case), only a read of one of them counts: anyone else's tag (an elder's, a child's)
    or a read without a tag visits nothing; ``None`` counts every tag. ``ordered``: the reads
    are taken oldest first and one counts only at the next checkpoint not yet visited, in
    route order, whichever guard makes it; a read at any other checkpoint (ahead of its turn,
    or one visited already) counts for nothing and leaves the round where it was, so that
    checkpoint must be read again in its turn. A checkpoint listed on the route after the
    one the round stopped at is missed.
    """
    guards = None if guard_tags is None else {t.upper() for t in guard_tags}
    listed = set(checkpoints)
    in_round: list[tuple[datetime, str, str | None]] = []
    for read in reads:
        reader, at = read[0], read[1]
        tag = read[2] if len(read) > 2 else None  # type: ignore[misc]
        if reader not in listed or not patrol_round.start <= at < patrol_round.end:
            continue
        if guards is not None and (tag is None or tag.upper() not in guards):
            continue
        in_round.append((at, reader, tag))
    in_round.sort(key=lambda read: read[0])
    visits: dict[str, Visit] = {}
    for at, reader, tag in in_round:
        if reader in visits:
            continue
        if ordered and reader != checkpoints[len(visits)]:
            continue  # out of turn: counts for nothing
        visits[reader] = Visit(reader, at, tag)
    return RoundResult(
        patrol_round,
        tuple(c for c in checkpoints if c not in visits),
        tuple(visits.values()),
    )


# Spoofing -----------------------------------------------------------------------------------


def spoof_attempt(
    denials: Iterable[datetime], now: datetime, attempts: int, window: timedelta
) -> bool:
    """Whether ``attempts`` ``spoof_suspected`` denials at one access point fall within
    the ``window`` up to ``now`` (inclusive)."""
    require_aware(now, "now")
    return sum(1 for at in denials if now - window < at <= now) >= attempts
