"""gatekeeper.allowlist: canonical bytes, Ed25519 signatures, faces encrypted to a device."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gatekeeper import allowlist, passtokens
from gatekeeper.allowlist import AllowlistError

KEY = Ed25519PrivateKey.generate()
KEYS = {3: passtokens.public_key_bytes(KEY)}
BODY = {"v": 1, "kind": "full", "version": 42, "entries": [{"pid": "per_1", "name": "王*明"}]}


def test_canonical_bytes_sort_keys_drop_sig_and_keep_chinese() -> None:
    raw = allowlist.canonical_bytes({"b": 1, "a": {"y": "王", "x": [1, 2]}, "sig": "zzz"})
    assert raw == b'gk-allowlist-v1\n{"a":{"x":[1,2],"y":"\xe7\x8e\x8b"},"b":1}'


def test_a_signed_list_verifies_and_names_its_key() -> None:
    signed = allowlist.sign(BODY, 3, KEY)
    assert signed["kid"] == 3 and isinstance(signed["sig"], str) and "=" not in signed["sig"]
    allowlist.verify(signed, KEYS)
    # key order on the wire does not matter: the bytes signed are canonical
    allowlist.verify(json.loads(json.dumps(dict(reversed(list(signed.items()))))), KEYS)


def test_one_byte_changed_fails() -> None:
    signed = allowlist.sign(BODY, 3, KEY)
    changed = {**signed, "entries": [{"pid": "per_1", "name": "王*朋"}]}
    with pytest.raises(AllowlistError, match="bad signature"):
        allowlist.verify(changed, KEYS)
    with pytest.raises(AllowlistError, match="bad signature"):
        allowlist.verify({**signed, "version": 43}, KEYS)


def test_another_kid_or_another_key_fails() -> None:
    signed = allowlist.sign(BODY, 3, KEY)
    with pytest.raises(AllowlistError, match="unknown key id"):
        allowlist.verify({**signed, "kid": 4}, KEYS)
    forged = allowlist.sign(BODY, 3, Ed25519PrivateKey.generate())
    with pytest.raises(AllowlistError, match="bad signature"):
        allowlist.verify(forged, KEYS)


@pytest.mark.parametrize("change", [{"v": 2}, {"sig": None}, {"sig": "!!"}, {"kid": "3"}], ids=repr)
def test_other_formats_and_broken_signatures_fail(change: dict) -> None:
    with pytest.raises(AllowlistError):
        allowlist.verify({**allowlist.sign(BODY, 3, KEY), **change}, KEYS)


def test_faces_seal_to_the_device_and_open_there_only() -> None:
    device_key = X25519PrivateKey.generate()
    template = allowlist.pack_template([i / 128 for i in range(128)])
    sealer = allowlist.FaceSealer(device_key.public_key().public_bytes_raw(), "dev_1")
    sealed = sealer.seal("per_1", template)
    opener = allowlist.FaceOpener(device_key, "dev_1", sealer.enc)
    assert opener.open("per_1", sealed) == template
    assert allowlist.unpack_template(opener.open("per_1", sealed))[5] == pytest.approx(5 / 128)
    with pytest.raises(AllowlistError, match="per_2"):  # another entry's pid
        opener.open("per_2", sealed)
    with pytest.raises(AllowlistError):  # another device id in the key derivation
        allowlist.FaceOpener(device_key, "dev_2", sealer.enc).open("per_1", sealed)
    with pytest.raises(AllowlistError):  # another device's key
        allowlist.FaceOpener(X25519PrivateKey.generate(), "dev_1", sealer.enc).open("per_1", sealed)
    with pytest.raises(AllowlistError, match="unknown face encryption"):
        allowlist.FaceOpener(device_key, "dev_1", {**sealer.enc, "alg": "none"})


def test_templates_are_128_little_endian_floats() -> None:
    raw = allowlist.pack_template([1.0] * 128)
    assert len(raw) == 512 and raw[:4] == b"\x00\x00\x80\x3f"
    with pytest.raises(AllowlistError):
        allowlist.pack_template([1.0] * 127)
    with pytest.raises(AllowlistError):
        allowlist.unpack_template(raw[:-1])
