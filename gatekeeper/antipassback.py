"""Anti-passback: a person who entered through a gate pair cannot enter again until they left.

A *pair* is an entry access point and an exit access point of one community, or one point
used both ways when its device reports a ``direction`` (``in``: entry, ``out``: exit). A
granted passage moves the person's state for the pair: an entry marks them inside, an exit
outside. A second entry while inside is a violation, until the pair's forgiveness time has
passed since the entry (then the person is forgiven: the state was probably missed, a
tailgate out). In ``hard`` mode a violation is denied ``anti_passback``; in ``soft`` mode it
is granted and recorded. Exits are never refused here.

Pure: plain data in, a verdict out; the server keeps the state and applies the verdict in
the transaction that stores the event (``server.access.antipassback``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class PassbackMode(StrEnum):
    """What a violation does: ``soft`` grants and records it, ``hard`` denies it."""

    SOFT = "soft"
    HARD = "hard"


class Passage(StrEnum):
    """What a presentation at a pair's point means for the pair."""

    ENTRY = "entry"
    EXIT = "exit"


@dataclass(frozen=True)
class Pair:
    """A gate pair: where one enters, where one leaves, and the rule's settings.

    ``forgive_after`` None: never forgiven by time (only a staff reset).
    """

    entry_point_id: str
    exit_point_id: str
    mode: PassbackMode
    forgive_after: timedelta | None = None

    @property
    def one_point(self) -> bool:
        """One access point used both ways (directions tell entries from exits)."""
        return self.entry_point_id == self.exit_point_id


@dataclass(frozen=True)
class Presence:
    """A person's last passage through a pair: inside since ``entered_at``, or outside."""

    inside: bool = False
    entered_at: datetime | None = None


OUTSIDE = Presence()


@dataclass(frozen=True)
class Verdict:
    """What the rule makes of a passage: whether it may pass, whether it broke the rule
    (a violation, denied in hard mode and recorded in soft mode), and the person's
    presence after it (unchanged when denied)."""

    allowed: bool
    violation: bool
    presence: Presence


def passage(pair: Pair, point_id: str, direction: str | None) -> Passage | None:
    """What a presentation at ``point_id`` with ``direction`` is for ``pair``, or None when it
    is neither its entry nor its exit (another point; one point used both ways without a
    direction; a direction against the point's own, e.g. ``out`` at the entry point)."""
    if pair.one_point:
        if point_id != pair.entry_point_id or direction is None:
            return None
        return Passage.ENTRY if direction == "in" else Passage.EXIT
    if point_id == pair.entry_point_id:
        return Passage.ENTRY if direction != "out" else None
    if point_id == pair.exit_point_id:
        return Passage.EXIT if direction != "in" else None
    return None


def forgiven(pair: Pair, presence: Presence, at: datetime) -> bool:
    """Whether an entry at ``at`` no longer counts: the forgiveness time has passed since
    the entry (at its edge, exactly ``forgive_after`` later, the person is forgiven)."""
    if pair.forgive_after is None or presence.entered_at is None:
        return False
    return at >= presence.entered_at + pair.forgive_after


def judge(pair: Pair, presence: Presence, step: Passage, at: datetime) -> Verdict:
    """The verdict for a passage ``step`` at ``at`` (timezone-aware) by a person whose last
    state for ``pair`` is ``presence`` (``OUTSIDE`` when none is stored)."""
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    if step is Passage.EXIT:
        return Verdict(allowed=True, violation=False, presence=OUTSIDE)
    inside = Presence(inside=True, entered_at=at)
    if not presence.inside or forgiven(pair, presence, at):
        return Verdict(allowed=True, violation=False, presence=inside)
    if pair.mode is PassbackMode.HARD:
        return Verdict(allowed=False, violation=True, presence=presence)
    return Verdict(allowed=True, violation=True, presence=inside)
