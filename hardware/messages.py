"""Payloads of docs/protocol.md section 5: typed values, encoded to and decoded from JSON.

Decoding validates: a bad payload raises ``PayloadError`` with a short reason, which
consumers log and count; it never takes a consumer down. Unknown fields are
ignored (the protocol's forward-compatibility rule).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gatekeeper.passtokens import MAX_TOKEN_CHARS, TAG_BYTES
from gatekeeper.text import unstorable_text_at
from gatekeeper.vocabulary import Reason
from hardware.protocol import Command, EventType

MAX_PAYLOAD_BYTES = 64 * 1024
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_HEX = re.compile(r"^[0-9A-Fa-f]{2,64}$")
_CARD = re.compile(r"^[0-9A-Fa-f]{8,32}$")  # an IC card UID, as ``/verify/card`` takes it
_REASONS = frozenset(reason.value for reason in Reason)
DIRECTIONS = ("in", "out")
# The one signature algorithm of QR tokens (gatekeeper.passtokens); a key set may one day
# list others, which a door that does not know them skips.
KEY_ALGORITHM = "Ed25519"
PUBLIC_KEY_BYTES = 32


class PayloadError(ValueError):
    """A payload that does not follow the protocol; ``reason`` is short and loggable."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def format_ts(value: datetime) -> str:
    """ISO 8601 with an explicit offset and milliseconds (``2026-11-21T00:30:05.120+00:00``)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.isoformat(timespec="milliseconds")


def parse_ts(value: Any, name: str = "ts") -> datetime:
    """An aware datetime from an ISO 8601 string with offset; naive times are refused."""
    if not isinstance(value, str) or len(value) > 40:
        raise PayloadError(f"{name} must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise PayloadError(f"{name} is not ISO 8601") from error
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise PayloadError(f"{name} has no UTC offset")
    return parsed.astimezone(UTC)


def _load(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError("payload too large")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise PayloadError("not UTF-8 JSON") from error
    if not isinstance(data, dict):
        raise PayloadError("payload is not a JSON object")
    found = unstorable_text_at(data)
    if found is not None:  # text no database or encoder downstream can take
        where, flaw = found
        raise PayloadError(f"text at {where or 'the top'!r} holds a {flaw}")
    return data


def _dump(data: dict[str, Any]) -> bytes:
    return json.dumps(
        {k: v for k, v in data.items() if v is not None}, ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")


def _identifier(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not _ID.match(value):
        raise PayloadError(f"{name} missing or malformed")
    return value


def _optional_int(data: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PayloadError(f"{name} must be an integer in [{low}, {high}]")
    return value


def _optional_text(data: dict[str, Any], name: str, limit: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise PayloadError(f"{name} must be a string of at most {limit} characters")
    return value


@dataclass(frozen=True)
class CommandMessage:
    """Server -> device on ``cmd``."""

    cmd_id: str
    cmd: Command
    issued_at: datetime
    expires_at: datetime
    event_id: str | None = None
    open_ms: int | None = None
    text: str | None = None
    # The server's HTTP request that caused the command, for joining logs (present only then).
    request_id: str | None = None

    def encode(self) -> bytes:
        body: dict[str, Any] = {
            "cmd_id": self.cmd_id,
            "cmd": self.cmd.value,
            "event_id": self.event_id,
            "open_ms": self.open_ms,
            "text": self.text,
            "issued_at": format_ts(self.issued_at),
            "expires_at": format_ts(self.expires_at),
        }
        if self.request_id:
            body["request_id"] = self.request_id
        return _dump(body)

    @classmethod
    def decode(cls, payload: bytes) -> CommandMessage:
        data = _load(payload)
        try:
            cmd = Command(data.get("cmd"))
        except ValueError as error:
            raise PayloadError("unknown cmd") from error
        return cls(
            cmd_id=_identifier(data, "cmd_id"),
            cmd=cmd,
            issued_at=parse_ts(data.get("issued_at"), "issued_at"),
            expires_at=parse_ts(data.get("expires_at"), "expires_at"),
            event_id=_optional_text(data, "event_id", 64),
            open_ms=_optional_int(data, "open_ms", 0, 3_600_000),
            text=_optional_text(data, "text", 500),
            request_id=_optional_text(data, "request_id", 64),
        )

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


@dataclass(frozen=True)
class AckMessage:
    """Device -> server on ``ack``: the outcome of one command."""

    cmd_id: str
    ok: bool
    ts: datetime
    detail: str = ""

    def encode(self) -> bytes:
        return _dump(
            {"cmd_id": self.cmd_id, "ok": self.ok, "detail": self.detail, "ts": format_ts(self.ts)}
        )

    @classmethod
    def decode(cls, payload: bytes) -> AckMessage:
        data = _load(payload)
        if not isinstance(data.get("ok"), bool):
            raise PayloadError("ok must be true or false")
        return cls(
            cmd_id=_identifier(data, "cmd_id"),
            ok=data["ok"],
            ts=parse_ts(data.get("ts")),
            detail=_optional_text(data, "detail", 255) or "",
        )


# Extra fields each event type may carry, with their bounds.
_EVENT_FIELDS: dict[EventType, tuple[str, ...]] = {
    EventType.DOOR_HELD_OPEN: ("open_ms",),
    EventType.TAG_READ: ("tag", "rssi"),
    EventType.PASS_USED: ("token", "direction"),
    EventType.INTERCOM_CALL: ("unit", "building", "snapshot"),
    EventType.OFFLINE_DECISION: ("credential", "direction"),
}
# An intercom call's snapshot over MQTT: base64 of a JPEG of at most this many bytes (the
# whole payload stays within MAX_PAYLOAD_BYTES). Larger pictures go over HTTP.
MAX_MQTT_SNAPSHOT_BYTES = 45 * 1024


@dataclass(frozen=True)
class EventMessage:
    """Device -> server on ``evt``; ``seq`` increases per device."""

    type: EventType
    seq: int
    ts: datetime
    fields: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return _dump(
            {"type": self.type.value, "seq": self.seq, "ts": format_ts(self.ts), **self.fields}
        )

    @classmethod
    def decode(cls, payload: bytes) -> EventMessage:
        data = _load(payload)
        try:
            kind = EventType(data.get("type"))
        except ValueError as error:
            raise PayloadError("unknown event type") from error
        seq = _optional_int(data, "seq", 0, 2**63 - 1)
        if seq is None:
            raise PayloadError("seq missing")
        extra: dict[str, Any] = {}
        wanted = _EVENT_FIELDS.get(kind, ())
        if "open_ms" in wanted:
            extra["open_ms"] = _optional_int(data, "open_ms", 0, 86_400_000)
        if "tag" in wanted:
            tag = data.get("tag")
            if not isinstance(tag, str) or not _HEX.match(tag):
                raise PayloadError("tag must be hex")
            extra["tag"] = tag.upper()
            extra["rssi"] = _optional_int(data, "rssi", -150, 50)
        if "token" in wanted:
            # Only bounded here: the server checks the code itself and records a bad one.
            token = data.get("token")
            if not isinstance(token, str) or not 0 < len(token.strip()) <= MAX_TOKEN_CHARS:
                raise PayloadError(f"token must be a code of 1 to {MAX_TOKEN_CHARS} characters")
            extra["token"] = token.strip()
        if "direction" in wanted:
            direction = data.get("direction")
            if direction is not None and direction not in DIRECTIONS:
                raise PayloadError("direction must be in or out")
            extra["direction"] = direction
        if "unit" in wanted:
            extra.update(_intercom_fields(data))
        if "credential" in wanted:
            extra.update(offline_decision_fields(data))
        return cls(
            type=kind,
            seq=seq,
            ts=parse_ts(data.get("ts")),
            fields={k: v for k, v in extra.items() if v is not None},
        )


# What an ``offline_decision`` may say (docs/protocol.md section 6, "Offline decisions").
OFFLINE_CREDENTIALS = ("card", "qr", "face")
OFFLINE_DECISIONS = ("grant", "deny")


def offline_decision_fields(data: dict[str, Any]) -> dict[str, Any]:
    """An ``offline_decision``'s credential with what was presented (``card`` hex for a card,
    ``token`` for a code), the ``pid`` the door matched, its decision and reason (a reason
    code), and ``list_version``; bounded, and nothing else kept."""
    credential = data.get("credential")
    if credential not in OFFLINE_CREDENTIALS:
        raise PayloadError("credential must be card, qr or face")
    fields: dict[str, Any] = {"credential": credential}
    if credential == "card":
        card = data.get("card")
        if not isinstance(card, str) or not _CARD.match(card):
            raise PayloadError("card must be 8 to 32 hex digits")
        fields["card"] = card.upper()
    if credential == "qr":
        token = data.get("token")
        if not isinstance(token, str) or not 0 < len(token.strip()) <= MAX_TOKEN_CHARS:
            raise PayloadError(f"token must be a code of 1 to {MAX_TOKEN_CHARS} characters")
        fields["token"] = token.strip()
    if data.get("pid") is not None:
        fields["pid"] = _identifier(data, "pid")
    decision = data.get("decision")
    if decision not in OFFLINE_DECISIONS:
        raise PayloadError("decision must be grant or deny")
    fields["decision"] = decision
    reason = data.get("reason")
    if not isinstance(reason, str) or reason not in _REASONS:
        raise PayloadError("reason must be a reason code")
    fields["reason"] = reason
    version = _optional_int(data, "list_version", 0, 2**63 - 1)
    if version is None:
        raise PayloadError("list_version missing")
    fields["list_version"] = version
    return fields


def _intercom_fields(data: dict[str, Any]) -> dict[str, Any]:
    """An ``intercom_call``'s unit (required), building and snapshot (base64 JPEG), bounded."""
    unit = data.get("unit")
    if not isinstance(unit, str) or not 0 < len(unit.strip()) <= 40:
        raise PayloadError("unit must be a unit number of 1 to 40 characters")
    building = _optional_text(data, "building", 80)
    snapshot = data.get("snapshot")
    if snapshot is not None:
        too_big = f"snapshot must be base64 of at most {MAX_MQTT_SNAPSHOT_BYTES} bytes"
        if not isinstance(snapshot, str) or len(snapshot) > 4 * MAX_MQTT_SNAPSHOT_BYTES // 3 + 4:
            raise PayloadError(too_big)
        try:
            decoded = base64.b64decode(snapshot, validate=True)
        except (binascii.Error, ValueError) as error:
            raise PayloadError("snapshot must be base64") from error
        if len(decoded) > MAX_MQTT_SNAPSHOT_BYTES:
            raise PayloadError(too_big)
    return {
        "unit": unit.strip(),
        "building": building.strip() if building else None,
        "snapshot": snapshot,
    }


@dataclass(frozen=True)
class StatusMessage:
    """Device -> server on ``status`` (retained); the last will is ``{"online": false}``."""

    online: bool
    ts: datetime | None = None
    fw: str | None = None

    def encode(self) -> bytes:
        return _dump(
            {"online": self.online, "fw": self.fw, "ts": format_ts(self.ts) if self.ts else None}
        )

    @classmethod
    def decode(cls, payload: bytes) -> StatusMessage:
        data = _load(payload)
        if not isinstance(data.get("online"), bool):
            raise PayloadError("online must be true or false")
        ts = parse_ts(data["ts"]) if data.get("ts") is not None else None
        return cls(online=data["online"], ts=ts, fw=_optional_text(data, "fw", 40))


OFFLINE_WILL = StatusMessage(online=False).encode()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _from_b64url(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or len(value) > 64:
        raise PayloadError(f"{name} must be base64url")
    text = value.rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as error:
        raise PayloadError(f"{name} must be base64url") from error


@dataclass(frozen=True)
class PublishedKey:
    """One public key of a key set: the id tokens name it by, and until when it counts."""

    key_id: int
    public_key: bytes
    signs_until: datetime
    verifies_until: datetime

    def encode(self) -> dict[str, Any]:
        return {
            "kid": self.key_id,
            "alg": KEY_ALGORITHM,
            "public_key": _b64url(self.public_key),
            "signs_until": format_ts(self.signs_until),
            "verifies_until": format_ts(self.verifies_until),
        }

    @classmethod
    def decode(cls, data: Any) -> PublishedKey:
        if not isinstance(data, dict):
            raise PayloadError("a key is not a JSON object")
        key_id = _optional_int(data, "kid", 0, 0xFFFF)
        if key_id is None:
            raise PayloadError("kid missing")
        public_key = _from_b64url(data.get("public_key"), "public_key")
        if len(public_key) != PUBLIC_KEY_BYTES:
            raise PayloadError(f"public_key must be {PUBLIC_KEY_BYTES} bytes")
        return cls(
            key_id=key_id,
            public_key=public_key,
            signs_until=parse_ts(data.get("signs_until"), "signs_until"),
            verifies_until=parse_ts(data.get("verifies_until"), "verifies_until"),
        )


@dataclass(frozen=True)
class KeySetMessage:
    """Server -> devices on ``gk/v1/{community}/keys`` (retained): the keys QR codes are signed
    with, and the community tag this community's codes carry. Doors check codes offline with it.
    """

    community_tag: bytes
    keys: tuple[PublishedKey, ...]
    ts: datetime

    def encode(self) -> bytes:
        return _dump(
            {
                "keys": [key.encode() for key in self.keys],
                "community_tag": self.community_tag.hex(),
                "ts": format_ts(self.ts),
            }
        )

    @classmethod
    def decode(cls, payload: bytes) -> KeySetMessage:
        data = _load(payload)
        tag = data.get("community_tag")
        if not isinstance(tag, str) or len(tag) != 2 * TAG_BYTES or not _HEX.match(tag):
            raise PayloadError(f"community_tag must be {TAG_BYTES} bytes in hex")
        keys = data.get("keys")
        if not isinstance(keys, list):
            raise PayloadError("keys must be a list")
        return cls(
            community_tag=bytes.fromhex(tag),
            keys=tuple(
                PublishedKey.decode(key)
                for key in keys
                if not isinstance(key, dict) or key.get("alg") == KEY_ALGORITHM
            ),
            ts=parse_ts(data.get("ts")),
        )

    def verifying_keys(self, at: datetime) -> dict[int, bytes]:
        """Raw public keys by id that still verify at ``at`` (``passtokens.verify`` takes these)."""
        return {key.key_id: key.public_key for key in self.keys if at < key.verifies_until}
