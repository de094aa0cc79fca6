"""Courier codes' pure rules: drawing, checking, hashing, masking, status, the lockout count."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from gatekeeper import pincodes
from gatekeeper.pincodes import CodeStatus, KeypadRules

KEY = b"k" * 32
AT = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)


def test_new_codes_are_six_digits_with_leading_zeros_and_spread() -> None:
    drawn = [pincodes.new_pin() for _ in range(2000)]
    assert all(len(pin) == 6 and pin.isascii() and pin.isdigit() for pin in drawn)
    assert len(set(drawn)) > 1990  # a million codes: repeats are rare
    first_digits = Counter(pin[0] for pin in drawn)
    assert set(first_digits) == set("0123456789")  # leading zeros are kept


@pytest.mark.parametrize(
    "text", ["12345", "1234567", "12 456", "12345a", "١٢٣٤٥٦", "１２３４５６", ""]
)
def test_only_six_ascii_digits_are_a_code(text: str) -> None:
    with pytest.raises(pincodes.PinError):
        pincodes.checked_pin(text)


def test_a_code_is_checked_around_its_spaces() -> None:
    assert pincodes.checked_pin(" 042917\n") == "042917"


def test_the_hash_is_keyed_and_bound_to_the_door() -> None:
    digest = pincodes.pin_hash(KEY, "ap_1", "042917")
    assert len(digest) == 64 and "042917" not in digest
    assert digest == pincodes.pin_hash(KEY, "ap_1", " 042917 ")
    assert digest != pincodes.pin_hash(KEY, "ap_2", "042917")
    assert digest != pincodes.pin_hash(b"x" * 32, "ap_1", "042917")
    assert digest != pincodes.pin_hash(KEY, "ap_1", "042918")


def test_masked_shows_the_last_two_digits() -> None:
    assert pincodes.masked("17") == "••••17"


@pytest.mark.parametrize(
    ("revoked", "uses", "max_uses", "until", "status"),
    [
        (False, 0, 1, AT + timedelta(seconds=1), CodeStatus.UNUSED),
        (False, 2, 5, AT + timedelta(seconds=1), CodeStatus.UNUSED),
        (False, 0, 1, AT, CodeStatus.EXPIRED),  # the end is not in the window
        (False, 1, 1, AT + timedelta(hours=1), CodeStatus.USED),
        (False, 1, 1, AT - timedelta(hours=1), CodeStatus.USED),  # used before it ended
        (True, 1, 1, AT - timedelta(hours=1), CodeStatus.REVOKED),
    ],
)
def test_status_revoked_then_used_then_expired(revoked, uses, max_uses, until, status) -> None:
    assert (
        pincodes.code_status(
            revoked=revoked, uses=uses, max_uses=max_uses, valid_until=until, at=AT
        )
        is status
    )


def test_failures_count_from_the_window_or_the_last_unlock() -> None:
    rules = KeypadRules(max_failures=5, window=timedelta(minutes=10), lock=timedelta(minutes=15))
    assert pincodes.failures_since(rules, AT, None) == AT - timedelta(minutes=10)
    old = AT - timedelta(hours=1)
    assert pincodes.failures_since(rules, AT, old) == AT - timedelta(minutes=10)
    recent = AT - timedelta(minutes=3)
    assert pincodes.failures_since(rules, AT, recent) == recent
    assert not pincodes.locks_now(rules, 4)
    assert pincodes.locks_now(rules, 5) and pincodes.locks_now(rules, 6)
