"""Encryption at rest for biometric templates and identity documents (key: DATA_KEY).

Every token names the key that made it: ``k<key id>:`` and a Fernet token, where the key
id is 8 hex digits derived from the key (``key_id``). Tokens written before key ids
existed have no prefix (they begin ``gAAAA``): they are the *legacy* id and are tried
against every configured key. ``DATA_KEY`` encrypts; ``DATA_KEYS_RETIRED`` only decrypts,
so processes that hold both read old and new rows while ``flask rotate-data-key``
re-encrypts (docs/deploy.md, "Rotating DATA_KEY").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from flask import Flask, current_app

LEGACY_KEY_ID = "legacy"  # tokens without a prefix: whichever configured key opens them
_PREFIX = b"k"
_ID_LENGTH = 8
_HEADER_LENGTH = len(_PREFIX) + _ID_LENGTH + 1  # b"k" + id + b":"


class DecryptionError(Exception):
    """Stored data that this server's DATA_KEY cannot open (a wrong or rotated key)."""


def key_id(key: str) -> str:
    """The id a key's tokens carry: 8 hex digits of a hash of the key (not the key)."""
    raw = base64.urlsafe_b64decode(key.encode())
    return hashlib.sha256(b"gatekeeper data key id\0" + raw).hexdigest()[:_ID_LENGTH]


def token_key_id(token: bytes) -> str:
    """The id of the key that made ``token`` (``LEGACY_KEY_ID`` for an unprefixed one)."""
    if token[:1] == _PREFIX and token[_HEADER_LENGTH - 1 : _HEADER_LENGTH] == b":":
        return token[1 : _HEADER_LENGTH - 1].decode("ascii", "replace")
    return LEGACY_KEY_ID


@dataclass(frozen=True)
class KeyRing:
    """The configured keys: ``current`` encrypts, every key (current first) decrypts."""

    current: str  # the current key's id
    fernets: dict[str, Fernet]  # by key id, the current key first
    keys: dict[str, str]  # by key id, the keys themselves (for derived keys)

    @classmethod
    def of(cls, current: str, retired: Iterable[str] = ()) -> KeyRing:
        keys = {key_id(current): current}
        for key in retired:
            keys.setdefault(key_id(key), key)
        return cls(key_id(current), {kid: Fernet(key) for kid, key in keys.items()}, keys)

    @property
    def header(self) -> bytes:
        return _PREFIX + self.current.encode("ascii") + b":"

    def encrypt(self, plain: bytes) -> bytes:
        return self.header + self.fernets[self.current].encrypt(plain)

    def decrypt(self, token: bytes) -> bytes:
        kid = token_key_id(token)
        try:
            if kid != LEGACY_KEY_ID:
                fernet = self.fernets.get(kid)
                if fernet is None:
                    raise DecryptionError(f"made under key {kid}, which is not configured")
                return fernet.decrypt(token[_HEADER_LENGTH:])
            for fernet in self.fernets.values():
                try:
                    return fernet.decrypt(token)
                except InvalidToken:
                    continue
        except InvalidToken as error:
            raise DecryptionError(f"cannot decrypt with the key {kid}") from error
        raise DecryptionError("cannot decrypt with any configured DATA_KEY")

    def decrypt_many(self, tokens: Iterable[bytes]) -> list[bytes]:
        """``decrypt`` of each token; tokens of the current key take the short way."""
        header, length = self.header, _HEADER_LENGTH
        fernet = self.fernets[self.current]
        out = []
        for token in tokens:
            if token[:length] == header:
                try:
                    out.append(fernet.decrypt(token[length:]))
                except InvalidToken as error:
                    raise DecryptionError(f"cannot decrypt with the key {self.current}") from error
            else:
                out.append(self.decrypt(token))
        return out

    def is_current(self, token: bytes) -> bool:
        """Whether ``token`` names the current key (a rotation leaves it as it is)."""
        return token[:_HEADER_LENGTH] == self.header


def key_ring(app: Flask | None = None) -> KeyRing:
    """The app's key ring, built once per app."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    ring = app.extensions.get("data_key_ring")
    if ring is None:
        settings = app.config["SETTINGS"]
        ring = app.extensions["data_key_ring"] = KeyRing.of(
            settings.data_key, settings.data_keys_retired
        )
    return ring


def encrypt(plain: bytes) -> bytes:
    """Authenticated encryption (AES-128-CBC + HMAC-SHA256, Fernet) with DATA_KEY, the
    token prefixed with the key's id."""
    return key_ring().encrypt(plain)


def decrypt(token: bytes) -> bytes:
    """Open a token with the key it names (DATA_KEY or one of DATA_KEYS_RETIRED)."""
    return key_ring().decrypt(token)


def decrypt_many(tokens: Iterable[bytes]) -> list[bytes]:
    """``decrypt`` of each token, with the keys looked up once (a gallery's thousands)."""
    return key_ring().decrypt_many(tokens)


def _derive(key: str, purpose: str) -> bytes:
    secret = base64.urlsafe_b64decode(key.encode())
    return hmac.digest(secret, b"gatekeeper derived key: " + purpose.encode(), hashlib.sha256)


def derived_key(purpose: str, app: Flask | None = None) -> bytes:
    """A 32-byte key for ``purpose`` (HMAC-SHA256 of the purpose under DATA_KEY): data the
    server signs for itself, such as the shared face gallery files, without reusing
    DATA_KEY as it is. A new DATA_KEY gives new derived keys."""
    ring = key_ring(app)
    return _derive(ring.keys[ring.current], purpose)


def derived_keys(purpose: str, app: Flask | None = None) -> list[bytes]:
    """``derived_key`` under every configured key, the current one first: what the server
    signed or hashed under a retired key still checks until that key is dropped."""
    return [_derive(key, purpose) for key in key_ring(app).keys.values()]


def encrypt_text(plain: str) -> bytes:
    return encrypt(plain.encode("utf-8"))


def decrypt_text(token: bytes) -> str:
    return decrypt(token).decode("utf-8")
