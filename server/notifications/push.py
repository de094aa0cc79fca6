"""Web Push's key: the VAPID public key browsers subscribe with (``applicationServerKey``)."""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from flask import current_app


@lru_cache(maxsize=4)
def _public_of(pem: str) -> str:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    point = key.public_key().public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(point).rstrip(b"=").decode("ascii")


def public_key() -> str | None:
    """The uncompressed P-256 point of ``VAPID_PRIVATE_KEY``, base64url; None: push is off."""
    pem = current_app.config["SETTINGS"].vapid_private_key
    return _public_of(pem) if pem is not None else None
