"""The QR token format: round trip, size, every way a token is refused."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper import passtokens
from gatekeeper.passtokens import Claims, TokenError, TokenKind, TokenProblem

KEY = Ed25519PrivateKey.generate()
KEYS = {7: passtokens.public_key_bytes(KEY)}
START = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)


def claims(**changes) -> Claims:
    values = {
        "kind": TokenKind.PASS,
        "key_id": 7,
        "community_tag": passtokens.community_tag("com_1"),
        "serial": bytes.fromhex("0123456789abcdef"),
        "not_before": START,
        "not_after": START + timedelta(days=1),
        "max_uses": 3,
        "access_point_tags": (
            passtokens.access_point_tag("ap_1"),
            passtokens.access_point_tag("ap_2"),
        ),
    }
    return Claims(**{**values, **changes})


def test_round_trip_and_size() -> None:
    token = passtokens.sign(claims(), KEY)
    assert len(token) == 156 and set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    assert passtokens.verify(token, KEYS) == claims()
    assert passtokens.verify(token.lower() + "\n", KEYS) == claims()  # scanners vary
    assert passtokens.sign(claims(), KEY) == token  # deterministic
    read = passtokens.verify(token, KEYS)
    assert read.allows_access_point("ap_2") and not read.allows_access_point("ap_3")
    assert read.window_state(START - timedelta(seconds=1)) == -1
    assert read.window_state(START) == 0
    assert read.window_state(START + timedelta(days=1)) == 1


def test_eight_doors_is_the_most() -> None:
    tags = tuple(passtokens.access_point_tag(f"ap_{i}") for i in range(8))
    token = passtokens.sign(claims(access_point_tags=tags), KEY)
    assert len(token) <= passtokens.MAX_TOKEN_CHARS
    assert passtokens.verify(token, KEYS).access_point_tags == tags
    with pytest.raises(ValueError, match="at most 8"):
        claims(access_point_tags=(*tags, passtokens.access_point_tag("ap_9")))


def test_times_keep_whole_seconds_in_utc() -> None:
    east8 = timezone(timedelta(hours=8))
    token = passtokens.sign(claims(not_before=datetime(2026, 11, 21, 16, 30, tzinfo=east8)), KEY)
    assert passtokens.verify(token, KEYS).not_before == START
    with pytest.raises(ValueError, match="timezone-aware"):
        claims(not_before=datetime(2026, 11, 21, 8, 30))
    with pytest.raises(ValueError, match="after"):
        claims(not_after=START)


def _raw(token: str) -> bytearray:
    return bytearray(base64.b32decode(token + "=" * (-len(token) % 8)))


def _text(raw: bytes) -> str:
    return base64.b32encode(bytes(raw)).decode().rstrip("=")


@pytest.mark.parametrize(
    ("mangle", "problem"),
    [
        (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), TokenProblem.BAD_SIGNATURE),
        (lambda raw: raw[:20] + bytes([raw[20] ^ 1]) + raw[21:], TokenProblem.BAD_SIGNATURE),
        (lambda raw: raw[:1] + b"\x00\x08" + raw[3:], TokenProblem.UNKNOWN_KEY),
        (lambda raw: bytes([0x21]) + raw[1:], TokenProblem.UNSUPPORTED_VERSION),
        (lambda raw: bytes([0x13]) + raw[1:], TokenProblem.MALFORMED),  # unknown kind
        (lambda raw: raw[:-10], TokenProblem.MALFORMED),
        (lambda raw: raw + b"\x00", TokenProblem.MALFORMED),
        (lambda raw: raw[:24] + b"\x09" + raw[25:], TokenProblem.MALFORMED),  # tag count
    ],
)
def test_mangled_tokens_are_refused(mangle, problem) -> None:
    token = passtokens.sign(claims(), KEY)
    with pytest.raises(TokenError) as caught:
        passtokens.verify(_text(mangle(bytes(_raw(token)))), KEYS)
    assert caught.value.problem is problem


@pytest.mark.parametrize("text", ["", "   ", "HELLO!", "https://example.com", "A" * 5000, "AAAA"])
def test_text_that_is_not_a_token(text) -> None:
    with pytest.raises(TokenError) as caught:
        passtokens.verify(text, KEYS)
    assert caught.value.problem is TokenProblem.MALFORMED


def test_another_key_under_the_same_id_fails() -> None:
    token = passtokens.sign(claims(), Ed25519PrivateKey.generate())
    with pytest.raises(TokenError) as caught:
        passtokens.verify(token, KEYS)
    assert caught.value.problem is TokenProblem.BAD_SIGNATURE


def test_rotating_windows() -> None:
    at = datetime(2026, 11, 21, 8, 30, 17, 500000, tzinfo=UTC)
    assert passtokens.rotating_window(at, 30) == (
        datetime(2026, 11, 21, 8, 30, tzinfo=UTC),
        datetime(2026, 11, 21, 8, 30, 30, tzinfo=UTC),
    )
    token = passtokens.sign(
        claims(kind=TokenKind.RESIDENT_CODE, max_uses=0, access_point_tags=()), KEY
    )
    assert len(token) == 143 and passtokens.verify(token, KEYS).kind is TokenKind.RESIDENT_CODE
