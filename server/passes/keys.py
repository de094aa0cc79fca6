"""The key ring that signs QR tokens: one signing key at a time, older ones still verifying.

The newest key signs for ``PASS_KEY_ROTATION_DAYS``; then the worker (or the first token
signed after that) makes the next one. A retired key keeps verifying until every token
it can have signed has expired: a pass lasts at most ``MAX_PASS_DAYS``, so that is its
signing period plus that many days. Private keys are stored encrypted with DATA_KEY;
public keys are published to doors by id (``server.passes.keyset``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gatekeeper import passtokens
from server.core import crypto
from server.extensions import db
from server.models import SigningKey, utcnow

# The longest a pass can last (the upper bound of the community setting pass_max_days).
MAX_PASS_DAYS = 366
_KEY_ID_SPACE = 0x10000
_RELOAD_ON = frozenset({passtokens.TokenProblem.UNKNOWN_KEY, passtokens.TokenProblem.BAD_SIGNATURE})


@dataclass(frozen=True)
class PublicKey:
    key_id: int
    public_key: bytes
    signs_until: datetime
    verifies_until: datetime


class _PublicKeyCache:
    """Public keys by id, per process; reloaded when a token names an id it lacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[int, bytes] | None = None

    def get(self) -> dict[int, bytes]:
        with self._lock:
            if self._keys is None:
                self._keys = _load_public_keys(utcnow())
            return self._keys

    def reload(self) -> dict[int, bytes]:
        with self._lock:
            self._keys = _load_public_keys(utcnow())
            return self._keys


def _load_public_keys(now: datetime) -> dict[int, bytes]:
    rows = db.session.execute(
        select(SigningKey.key_id, SigningKey.public_key).where(SigningKey.verifies_until > now)
    ).all()
    return {key_id: bytes(public) for key_id, public in rows}


def _cache() -> _PublicKeyCache:
    extensions = current_app.extensions
    cache = extensions.get("pass_public_keys")
    if cache is None:
        cache = extensions.setdefault("pass_public_keys", _PublicKeyCache())
    return cache


def verify(token: str) -> passtokens.Claims:
    """The claims of a token signed by one of our keys; raises ``passtokens.TokenError``."""
    cache = _cache()
    try:
        return passtokens.verify(token, cache.get())
    except passtokens.TokenError as error:
        if error.problem not in _RELOAD_ON:
            raise
    # A key made by another process since this one loaded the ring, or one retired, or a
    # database restored under the same ids: read the ring again once.
    return passtokens.verify(token, cache.reload())


def public_keys(now: datetime | None = None) -> list[PublicKey]:
    """The keys doors need to check tokens now, oldest first."""
    rows = db.session.scalars(
        select(SigningKey)
        .where(SigningKey.verifies_until > (now or utcnow()))
        .order_by(SigningKey.created_at, SigningKey.key_id)
    )
    return [
        PublicKey(row.key_id, bytes(row.public_key), row.signs_until, row.verifies_until)
        for row in rows
    ]


def signing_key(now: datetime | None = None) -> tuple[int, Ed25519PrivateKey]:
    """The key id and private key that sign new tokens, made when there is none."""
    now = now or utcnow()
    row = _current(now)
    if row is None:
        row = _new_key(now)
    private = Ed25519PrivateKey.from_private_bytes(crypto.decrypt(row.private_key_encrypted))
    return row.key_id, private


def _new_key(now: datetime) -> SigningKey:
    """A fresh key with the next free id, committed at once in its own transaction.

    A key must outlive the request that needed it (a token it signed may be printed even if
    that request fails), so it never rides on the caller's transaction. When another process
    makes one at the same moment, the id clashes and theirs is used.
    """
    days = current_app.config["SETTINGS"].pass_key_rotation_days
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    signs_until = now + timedelta(days=days)
    try:
        with Session(db.engine) as session, session.begin():
            newest = session.scalar(
                select(SigningKey.key_id).order_by(SigningKey.created_at.desc()).limit(1)
            )
            in_use = set(session.scalars(select(SigningKey.key_id)))
            key_id = 1 if newest is None else (newest + 1) % _KEY_ID_SPACE
            while key_id in in_use or key_id == 0:
                key_id = (key_id + 1) % _KEY_ID_SPACE
            session.add(
                SigningKey(
                    key_id=key_id,
                    private_key_encrypted=crypto.encrypt(raw),
                    public_key=passtokens.public_key_bytes(private),
                    created_at=now,
                    signs_until=signs_until,
                    verifies_until=signs_until + timedelta(days=MAX_PASS_DAYS),
                )
            )
    except IntegrityError:
        pass  # someone else's key is as good
    _cache().reload()
    row = _current(now)
    if row is None:
        raise RuntimeError("no signing key after making one")
    return row


def _current(now: datetime) -> SigningKey | None:
    return db.session.scalar(
        select(SigningKey)
        .where(SigningKey.signs_until > now)
        .order_by(SigningKey.signs_until.desc())
        .limit(1)
    )


def rotate(now: datetime | None = None) -> bool:
    """Make the next key when the current one stops signing within a day; drop dead keys.

    Returns True when the published key set changed. The caller commits.
    """
    now = now or utcnow()
    latest = db.session.scalar(select(func.max(SigningKey.signs_until)))
    made = latest is None or latest <= now + timedelta(days=1)
    if made:
        # The successor starts signing now; the old key still verifies what it signed. It is
        # made before our own delete below: on SQLite a writer must not wait on itself.
        _new_key(now)
    removed = db.session.execute(delete(SigningKey).where(SigningKey.verifies_until <= now))
    changed = made or bool(removed.rowcount)
    if changed:
        _cache().reload()
    return changed
