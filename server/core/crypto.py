"""Encryption at rest for biometric templates and identity documents (key: DATA_KEY)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app


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


def encrypt_text(plain: str) -> bytes:
    return encrypt(plain.encode("utf-8"))


def decrypt_text(token: bytes) -> str:
    return decrypt(token).decode("utf-8")
