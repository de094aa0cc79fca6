"""Signed allowlists for the door-side tests (docs/protocol.md section 6, "Allowlists"):
what the server publishes, built by hand with a test Ed25519 key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper import allowlist, passtokens

COMMUNITY = "com_test"
POINT = "ap_door"
DEVICE = "dev_door"
KID = 3
SIGNER = Ed25519PrivateKey.generate()
FORGER = Ed25519PrivateKey.generate()
KEYS = {KID: passtokens.public_key_bytes(SIGNER)}

HEADER: dict[str, Any] = {
    "timezone": "Asia/Shanghai",
    "schedule": None,
    "open_ms": 5000,
    "closures": [],
    "mode": None,
}


def ts(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def entry(
    pid: str,
    *,
    role: str = "owner",
    grant: str = "resident",
    windows: Iterable[tuple[datetime | None, datetime | None]] = ((None, None),),
    schedule: list[dict[str, Any]] | None = None,
    cards: Iterable[str] = (),
    code_serials: Iterable[str] = (),
    faces: Iterable[Mapping[str, str]] = (),
) -> dict[str, Any]:
    return {
        "pid": pid,
        "name": "王*明",
        "role": role,
        "grant": grant,
        "windows": [{"from": ts(start), "until": ts(end)} for start, end in windows],
        "schedule": schedule,
        "cards": list(cards),
        "code_serials": list(code_serials),
        "faces": list(faces),
    }


def full_list(
    version: int,
    entries: Iterable[dict[str, Any]],
    *,
    issued_at: str = "2026-12-07T07:00:00.000+00:00",
    key: Ed25519PrivateKey = SIGNER,
    kid: int = KID,
    enc: dict[str, str] | None = None,
    community_id: str = COMMUNITY,
    access_point_id: str = POINT,
    device_id: str = DEVICE,
    **header: Any,
) -> dict[str, Any]:
    body = {
        "v": 1,
        "kind": "full",
        "community_id": community_id,
        "access_point_id": access_point_id,
        "device_id": device_id,
        "version": version,
        "issued_at": issued_at,
        **HEADER,
        **header,
        "enc": enc,
        "entries": sorted(entries, key=lambda item: item["pid"]),
    }
    return allowlist.sign(body, kid, key)


def delta(
    from_version: int,
    *,
    upsert: Iterable[dict[str, Any]] = (),
    remove: Iterable[str] = (),
    key: Ed25519PrivateKey = SIGNER,
    enc: dict[str, str] | None = None,
    device_id: str = DEVICE,
    **header: Any,
) -> dict[str, Any]:
    body = {
        "v": 1,
        "kind": "delta",
        "community_id": COMMUNITY,
        "access_point_id": POINT,
        "device_id": device_id,
        "from_version": from_version,
        "version": from_version + 1,
        "issued_at": "2026-12-07T07:05:00.000+00:00",
        "upsert": list(upsert),
        "remove": list(remove),
        "header": {**HEADER, **header},
        "enc": enc,
    }
    return allowlist.sign(body, KID, key)


def resident_code(
    serial: bytes, not_before: datetime, not_after: datetime, *, key=SIGNER, kind=None
) -> str:
    claims = passtokens.Claims(
        kind=kind or passtokens.TokenKind.RESIDENT_CODE,
        key_id=KID,
        community_tag=passtokens.community_tag(COMMUNITY),
        serial=serial,
        not_before=not_before,
        not_after=not_after,
    )
    return passtokens.sign(claims, key)
