"""One-time courier codes: six digits typed on a door's keypad (pure; no server, no store).

A code is drawn at random (``secrets``), shown once to whoever issued it, and kept only as
a keyed hash (HMAC-SHA256 under a server key) bound to its access point: the same digits at
another door hash differently, and a stolen table gives nothing without the key. Six digits
are a small space (a million), so the keypad's lockout (``KeypadLockout``) is what stops
guessing: after ``max_failures`` wrong codes within a window, every code is refused for a
while.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

PIN_DIGITS = 6
_PIN = re.compile(rf"^[0-9]{{{PIN_DIGITS}}}$")


class PinError(ValueError):
    """Text that is not a code (the wrong length, or not only ASCII digits)."""


def new_pin() -> str:
    """Six random digits (leading zeros allowed): every code equally likely."""
    return f"{secrets.randbelow(10**PIN_DIGITS):0{PIN_DIGITS}d}"


def checked_pin(text: str) -> str:
    """``text`` as a code: exactly six ASCII digits (spaces around it are dropped)."""
    pin = text.strip()
    if not _PIN.match(pin):
        raise PinError(f"a code is {PIN_DIGITS} digits")
    return pin


def pin_hash(key: bytes, access_point_id: str, pin: str) -> str:
    """The stored form of ``pin`` at ``access_point_id``: HMAC-SHA256, hex."""
    message = f"courier-code:{access_point_id}:{checked_pin(pin)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def masked(hint: str) -> str:
    """A code as lists show it: only its last two digits (``hint``)."""
    return "•" * (PIN_DIGITS - len(hint)) + hint


@dataclass(frozen=True)
class KeypadRules:
    """A community's keypad settings: ``max_failures`` wrong codes within
    ``window`` lock the keypad for ``lock``."""

    max_failures: int
    window: timedelta
    lock: timedelta


def failures_since(rules: KeypadRules, at: datetime, last_unlocked: datetime | None) -> datetime:
    """From when wrong codes count: the window back from ``at``, but never before the end of
    the last lock (a lock's own failures do not lock it again)."""
    start = at - rules.window
    if last_unlocked is not None and last_unlocked > start:
        return last_unlocked
    return start


def locks_now(rules: KeypadRules, failures: int) -> bool:
    """Whether ``failures`` wrong codes (this one included) lock the keypad."""
    return failures >= rules.max_failures


class CodeStatus(StrEnum):
    """Where a courier code stands (derived, never stored: ``code_status``)."""

    UNUSED = "unused"  # uses left, within its window
    USED = "used"  # no use left
    EXPIRED = "expired"
    REVOKED = "revoked"


def code_status(
    *, revoked: bool, uses: int, max_uses: int, valid_until: datetime, at: datetime
) -> CodeStatus:
    """The code's status at ``at``: revoked, then used up, then the end of its window."""
    if revoked:
        return CodeStatus.REVOKED
    if uses >= max_uses:
        return CodeStatus.USED
    if valid_until <= at:
        return CodeStatus.EXPIRED
    return CodeStatus.UNUSED
