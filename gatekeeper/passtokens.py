"""Signed QR tokens: visitor passes and residents' rotating "scan to open" codes.

A token is a few dozen bytes of claims signed with Ed25519, written in RFC 4648 base32
without padding (``A-Z2-7``), which a QR code stores in its compact alphanumeric mode:

=====  =====  ==========================================================================
bytes  field  meaning
=====  =====  ==========================================================================
1      head   high nibble: format version (1); low nibble: kind (1 pass, 2 resident code)
2      kid    key id of the signing key (big-endian); doors look the public key up by it
4      ctag   community tag: the first 4 bytes of SHA-256 over ``community:<id>``
8      serial random serial of the pass (or of the resident's code); no personal data
4      nbf    not valid before (Unix seconds, UTC)
4      exp    not valid from (Unix seconds, UTC): the window is ``[nbf, exp)``
1      uses   the pass's number of uses (0 for a resident code); offline doors count it
1      n      number of access-point tags that follow (0 .. 8)
4 * n  atag   access-point tags: the first 4 bytes of SHA-256 over ``access-point:<id>``
64     sig    Ed25519 signature over every byte above
=====  =====  ==========================================================================

A pass for two doors is 97 bytes, 156 characters: a version 7 QR code at error correction
M. Nothing secret or personal is inside: a serial, a window, tags. Anyone can read the claims;
only the holder of the private key can make them, so a door that knows the public keys
(published with their ids) checks a token without the server.

This module only encodes, signs, parses and verifies. Whether a pass is revoked, used up or
meant for this door is the server's business (or, offline, the door's best effort).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum, StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

FORMAT_VERSION = 1
SIGNATURE_BYTES = 64
TAG_BYTES = 4
SERIAL_BYTES = 8
MAX_ACCESS_POINT_TAGS = 8
# The fixed part: head, kid, ctag, serial, nbf, exp, uses, n.
_HEADER = struct.Struct(">BH4s8sIIBB")
# The longest token text (eight tags); longer input is not parsed at all.
MAX_TOKEN_CHARS = -(-(_HEADER.size + MAX_ACCESS_POINT_TAGS * TAG_BYTES + SIGNATURE_BYTES) * 8 // 5)
_BASE32_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


class TokenKind(IntEnum):
    PASS = 1
    RESIDENT_CODE = 2


class TokenProblem(StrEnum):
    """Why a token was refused before any database lookup."""

    MALFORMED = "malformed"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"


class TokenError(ValueError):
    def __init__(self, problem: TokenProblem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail


def community_tag(community_id: str) -> bytes:
    return hashlib.sha256(f"community:{community_id}".encode()).digest()[:TAG_BYTES]


def access_point_tag(access_point_id: str) -> bytes:
    return hashlib.sha256(f"access-point:{access_point_id}".encode()).digest()[:TAG_BYTES]


@dataclass(frozen=True)
class Claims:
    """What a token says. Times are whole seconds, UTC."""

    kind: TokenKind
    key_id: int
    community_tag: bytes
    serial: bytes
    not_before: datetime
    not_after: datetime
    max_uses: int = 0
    access_point_tags: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.key_id <= 0xFFFF:
            raise ValueError("key_id must fit in 16 bits")
        if len(self.community_tag) != TAG_BYTES or len(self.serial) != SERIAL_BYTES:
            raise ValueError("community_tag is 4 bytes and serial 8 bytes")
        if not 0 <= self.max_uses <= 0xFF:
            raise ValueError("max_uses must fit in one byte")
        if len(self.access_point_tags) > MAX_ACCESS_POINT_TAGS:
            raise ValueError(f"at most {MAX_ACCESS_POINT_TAGS} access points")
        if any(len(tag) != TAG_BYTES for tag in self.access_point_tags):
            raise ValueError("access-point tags are 4 bytes")
        for moment in (self.not_before, self.not_after):
            if moment.tzinfo is None:
                raise ValueError("claims need timezone-aware times")
        if self.not_after <= self.not_before:
            raise ValueError("not_after must be after not_before")

    def allows_access_point(self, access_point_id: str) -> bool:
        return access_point_tag(access_point_id) in self.access_point_tags

    def window_state(self, at: datetime) -> int:
        """-1 before the window, 0 inside it, 1 after it."""
        if at < self.not_before:
            return -1
        return 0 if at < self.not_after else 1


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _moment(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _payload(claims: Claims) -> bytes:
    head = _HEADER.pack(
        (FORMAT_VERSION << 4) | int(claims.kind),
        claims.key_id,
        claims.community_tag,
        claims.serial,
        _seconds(claims.not_before),
        _seconds(claims.not_after),
        claims.max_uses,
        len(claims.access_point_tags),
    )
    return head + b"".join(claims.access_point_tags)


def sign(claims: Claims, private_key: Ed25519PrivateKey) -> str:
    """The token text for ``claims`` (deterministic: Ed25519 signatures are)."""
    payload = _payload(claims)
    raw = payload + private_key.sign(payload)
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def parse(token: str) -> tuple[Claims, bytes, bytes]:
    """Claims, signed bytes and signature of ``token``, without checking the signature."""
    text = token.strip().upper()
    if not text or len(text) > MAX_TOKEN_CHARS or not set(text) <= _BASE32_ALPHABET:
        raise TokenError(TokenProblem.MALFORMED, "not a Gatekeeper code")
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except binascii.Error as error:
        raise TokenError(TokenProblem.MALFORMED, "not a Gatekeeper code") from error
    if len(raw) < _HEADER.size + SIGNATURE_BYTES:
        raise TokenError(TokenProblem.MALFORMED, "the code is too short")
    head, key_id, ctag, serial, nbf, exp, uses, count = _HEADER.unpack_from(raw)
    if head >> 4 != FORMAT_VERSION:
        raise TokenError(TokenProblem.UNSUPPORTED_VERSION, f"code format {head >> 4}")
    expected = _HEADER.size + count * TAG_BYTES + SIGNATURE_BYTES
    if len(raw) != expected or count > MAX_ACCESS_POINT_TAGS:
        raise TokenError(TokenProblem.MALFORMED, "the code's length does not match its content")
    try:
        kind = TokenKind(head & 0x0F)
        tags = tuple(
            raw[offset : offset + TAG_BYTES]
            for offset in range(_HEADER.size, _HEADER.size + count * TAG_BYTES, TAG_BYTES)
        )
        claims = Claims(kind, key_id, ctag, serial, _moment(nbf), _moment(exp), uses, tags)
    except ValueError as error:
        raise TokenError(TokenProblem.MALFORMED, f"inconsistent claims: {error}") from error
    signed = raw[:-SIGNATURE_BYTES]
    return claims, signed, raw[-SIGNATURE_BYTES:]


def verify(token: str, public_keys: Mapping[int, bytes]) -> Claims:
    """The claims of ``token`` if its signature checks with the key its id names.

    ``public_keys`` maps key ids to raw 32-byte Ed25519 public keys. Raises :class:`TokenError`.
    """
    claims, signed, signature = parse(token)
    raw_key = public_keys.get(claims.key_id)
    if raw_key is None:
        raise TokenError(TokenProblem.UNKNOWN_KEY, f"unknown key id {claims.key_id}")
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(signature, signed)
    except InvalidSignature as error:
        raise TokenError(TokenProblem.BAD_SIGNATURE, "the signature does not match") from error
    return claims


def public_key_bytes(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def rotating_window(at: datetime, step_s: int) -> tuple[datetime, datetime]:
    """The ``[start, end)`` of the ``step_s``-second step holding ``at`` (TOTP-style steps)."""
    seconds = _seconds(at)
    start = seconds - seconds % step_s
    return _moment(start), _moment(start + step_s)
