"""server.core.crypto: key ids on every token, legacy tokens, retired keys, unknown keys."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from server.core.crypto import LEGACY_KEY_ID, DecryptionError, KeyRing, key_id, token_key_id

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()
OTHER = Fernet.generate_key().decode()


def test_a_token_names_the_key_that_made_it() -> None:
    ring = KeyRing.of(NEW)
    token = ring.encrypt(b"template")
    assert token.startswith(b"k" + key_id(NEW).encode() + b":")
    assert token_key_id(token) == key_id(NEW) == ring.current
    assert len(key_id(NEW)) == 8 and key_id(NEW) != key_id(OLD)
    assert key_id(NEW).encode() not in NEW.encode()  # the id is no part of the key
    assert ring.is_current(token)
    assert ring.decrypt(token) == b"template"
    assert ring.decrypt_many([token, ring.encrypt(b"")]) == [b"template", b""]


def test_legacy_tokens_without_an_id_still_open() -> None:
    legacy = Fernet(OLD).encrypt(b"written before key ids")
    assert token_key_id(legacy) == LEGACY_KEY_ID
    assert KeyRing.of(OLD).decrypt(legacy) == b"written before key ids"
    # Once OLD is retired, a legacy token is tried against it too.
    rotated = KeyRing.of(NEW, [OLD])
    assert rotated.decrypt(legacy) == b"written before key ids"
    assert rotated.decrypt_many([legacy]) == [b"written before key ids"]
    assert not rotated.is_current(legacy)
    with pytest.raises(DecryptionError, match="any configured"):
        KeyRing.of(NEW).decrypt(legacy)


def test_retired_keys_read_but_never_write() -> None:
    old_token = KeyRing.of(OLD).encrypt(b"id number")
    ring = KeyRing.of(NEW, [OLD, OLD, NEW])  # repeats are one key
    assert list(ring.keys) == [key_id(NEW), key_id(OLD)]
    assert ring.decrypt(old_token) == b"id number"
    assert ring.decrypt_many([old_token, ring.encrypt(b"x")]) == [b"id number", b"x"]
    assert token_key_id(ring.encrypt(b"x")) == key_id(NEW)
    assert not ring.is_current(old_token)


def test_a_token_of_a_key_not_configured_is_refused() -> None:
    token = KeyRing.of(OTHER).encrypt(b"secret")
    for ring in (KeyRing.of(NEW), KeyRing.of(NEW, [OLD])):
        with pytest.raises(DecryptionError, match=f"key {key_id(OTHER)}, which is not"):
            ring.decrypt(token)
        with pytest.raises(DecryptionError):
            ring.decrypt_many([ring.encrypt(b"ok"), token])


def test_a_token_tampered_with_or_forged_under_a_known_id_is_refused() -> None:
    ring = KeyRing.of(NEW, [OLD])
    token = bytearray(ring.encrypt(b"secret"))
    token[-5] ^= 1
    with pytest.raises(DecryptionError, match=key_id(NEW)):
        ring.decrypt(bytes(token))
    with pytest.raises(DecryptionError):
        ring.decrypt_many([bytes(token)])
    # OLD's token relabelled as NEW's: the id picks NEW, which cannot open it.
    forged = ring.header + Fernet(OLD).encrypt(b"secret")
    with pytest.raises(DecryptionError):
        ring.decrypt(forged)
    with pytest.raises(DecryptionError):
        ring.decrypt(b"not a token")
