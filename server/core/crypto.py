"""Encryption at rest for biometric templates and identity documents (key: DATA_KEY)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken
from flask import Flask, current_app


class DecryptionError(Exception):
    """Stored data that this server's DATA_KEY cannot open (a wrong or rotated key)."""


def _fernet() -> Fernet:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    fernet = app.extensions.get("data_fernet")
    if fernet is None:
        fernet = app.extensions["data_fernet"] = Fernet(app.config["SETTINGS"].data_key)
    return fernet


def encrypt(plain: bytes) -> bytes:
    """Authenticated encryption (AES-128-CBC + HMAC-SHA256, Fernet) with DATA_KEY."""
    return _fernet().encrypt(plain)


def decrypt(token: bytes) -> bytes:
    try:
        return _fernet().decrypt(token)
    except InvalidToken as error:
        raise DecryptionError("cannot decrypt with this DATA_KEY") from error


def decrypt_many(tokens: Iterable[bytes]) -> list[bytes]:
    """``decrypt`` of each token, with the key looked up once (a gallery's thousands)."""
    fernet = _fernet()
    try:
        return [fernet.decrypt(token) for token in tokens]
    except InvalidToken as error:
        raise DecryptionError("cannot decrypt with this DATA_KEY") from error


def derived_key(purpose: str, app: Flask | None = None) -> bytes:
    """A 32-byte key for ``purpose`` (HMAC-SHA256 of the purpose under DATA_KEY): data the
    server signs for itself, such as the shared face gallery files, without reusing
    DATA_KEY as it is. A new DATA_KEY gives new derived keys."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    secret = base64.urlsafe_b64decode(app.config["SETTINGS"].data_key.encode())
    return hmac.digest(secret, b"gatekeeper derived key: " + purpose.encode(), hashlib.sha256)


def encrypt_text(plain: str) -> bytes:
    return encrypt(plain.encode("utf-8"))


def decrypt_text(token: bytes) -> str:
    return decrypt(token).decode("utf-8")
