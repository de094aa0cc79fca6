"""Mosquitto helpers: password hashes in the broker's own file format."""

from __future__ import annotations

import base64
import hashlib
import secrets

# mosquitto_passwd's default for the "$7$" (PBKDF2-SHA512) format.
PBKDF2_ITERATIONS = 101


def mosquitto_password_hash(
    password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """A password-file hash Mosquitto 2 accepts: ``$7$iterations$salt$hash`` (base64)."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
