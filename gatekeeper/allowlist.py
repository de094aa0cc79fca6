"""Offline allowlists: what a door holds to decide without the server (docs/protocol.md,
section 6, "Allowlists").

Pure: the server signs and encrypts with these functions, a door (and the simulator, the
reference client) verifies and decrypts with them. A list or delta is a JSON object; its
signature covers its *canonical bytes*: the object without ``sig``, keys sorted at every
level, no whitespace, UTF-8 with non-ASCII characters as themselves, after the domain
``gk-allowlist-v1\\n``. Face templates in a list are encrypted to the device that holds it:
an ephemeral X25519 key agreed with the device's registered public key, HKDF-SHA256 to a
32-byte key, AES-256-GCM per template with the entry's ``pid`` as associated data.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT_VERSION = 1
DOMAIN = b"gk-allowlist-v1\n"
FACE_ALG = "X25519-HKDF-SHA256-A256GCM"
FACE_INFO = b"gk-allowlist-faces-v1"
TEMPLATE_FLOATS = 128
NONCE_BYTES = 12


class AllowlistError(ValueError):
    """A list, delta or face that must not be used: the message says why."""


def b64(raw: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError, TypeError) as error:
        raise AllowlistError("not base64url") from error


def canonical_bytes(body: Mapping[str, Any]) -> bytes:
    """What ``sig`` signs: the domain, then ``body`` without ``sig`` as canonical JSON."""
    unsigned = {key: value for key, value in body.items() if key != "sig"}
    text = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return DOMAIN + text.encode("utf-8")


def sign(body: Mapping[str, Any], kid: int, private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """``body`` with ``kid`` and its signature ``sig`` under ``private_key``."""
    signed = {key: value for key, value in body.items() if key != "sig"}
    signed["kid"] = kid
    signed["sig"] = b64(private_key.sign(canonical_bytes(signed)))
    return signed


def verify(body: Mapping[str, Any], public_keys: Mapping[int, bytes]) -> None:
    """Raise ``AllowlistError`` unless ``body`` is format 1 and signed by the key its ``kid``
    names among ``public_keys`` (raw 32-byte Ed25519 keys by id: the door's key set)."""
    if body.get("v") != FORMAT_VERSION:
        raise AllowlistError(f"format version {body.get('v')!r} is not {FORMAT_VERSION}")
    kid, sig = body.get("kid"), body.get("sig")
    if not isinstance(kid, int) or kid not in public_keys:
        raise AllowlistError(f"unknown key id {kid!r}")
    if not isinstance(sig, str):
        raise AllowlistError("no signature")
    try:
        Ed25519PublicKey.from_public_bytes(public_keys[kid]).verify(
            unb64(sig), canonical_bytes(body)
        )
    except (InvalidSignature, ValueError) as error:
        raise AllowlistError("bad signature") from error


# Face templates ---------------------------------------------------------------------------


def pack_template(vector: Sequence[float]) -> bytes:
    """128 floats as 512 bytes, little-endian float32 (what a list carries, encrypted)."""
    if len(vector) != TEMPLATE_FLOATS:
        raise AllowlistError(f"a template has {TEMPLATE_FLOATS} numbers, not {len(vector)}")
    return struct.pack(f"<{TEMPLATE_FLOATS}f", *vector)


def unpack_template(raw: bytes) -> tuple[float, ...]:
    if len(raw) != TEMPLATE_FLOATS * 4:
        raise AllowlistError("a template is 512 bytes")
    return struct.unpack(f"<{TEMPLATE_FLOATS}f", raw)


def _face_key(shared: bytes, device_id: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=FACE_INFO + device_id.encode()
    ).derive(shared)


class FaceSealer:
    """Encrypts the templates of one list (or delta) to one device: one ephemeral key."""

    def __init__(self, device_public_key: bytes, device_id: str) -> None:
        ephemeral = X25519PrivateKey.generate()
        peer = X25519PublicKey.from_public_bytes(device_public_key)
        self._aead = AESGCM(_face_key(ephemeral.exchange(peer), device_id))
        self.enc = {"alg": FACE_ALG, "epk": b64(ephemeral.public_key().public_bytes_raw())}

    def seal(self, pid: str, template: bytes) -> dict[str, str]:
        nonce = os.urandom(NONCE_BYTES)
        return {"n": b64(nonce), "c": b64(self._aead.encrypt(nonce, template, pid.encode()))}


class FaceOpener:
    """Decrypts a list's (or delta's) faces on the device that holds ``private_key``."""

    def __init__(self, private_key: X25519PrivateKey, device_id: str, enc: Mapping[str, Any]):
        if enc.get("alg") != FACE_ALG:
            raise AllowlistError(f"unknown face encryption {enc.get('alg')!r}")
        peer = X25519PublicKey.from_public_bytes(unb64(str(enc.get("epk", ""))))
        self._aead = AESGCM(_face_key(private_key.exchange(peer), device_id))

    def open(self, pid: str, sealed: Mapping[str, Any]) -> bytes:
        try:
            return self._aead.decrypt(
                unb64(str(sealed["n"])), unb64(str(sealed["c"])), pid.encode()
            )
        except (InvalidTag, KeyError, ValueError) as error:
            raise AllowlistError(f"a face of {pid} does not decrypt") from error
