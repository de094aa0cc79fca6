"""``VAPID_PRIVATE_KEY`` and ``VAPID_CONTACT``: a PEM file, PEM text or the raw scalar; both or
neither; a bad one is a settings error naming the variable, never the key."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from server.settings import Settings, SettingsError
from tests.notifications.keys import new_vapid_pem

CONTACT = "mailto:ops@example.cn"


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"INSTANCE_DIR": str(tmp_path), **env})


def test_without_a_key_push_is_off(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert settings.vapid_private_key is None and settings.vapid_contact is None


def test_a_key_is_read_from_a_file_pem_text_or_its_scalar(tmp_path: Path) -> None:
    pem = new_vapid_pem()
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    scalar = key.private_numbers().private_value.to_bytes(32, "big")  # type: ignore[union-attr]
    raw = base64.urlsafe_b64encode(scalar).rstrip(b"=").decode()
    path = tmp_path / "vapid.pem"
    path.write_text(pem)
    for given in (str(path), pem, raw):
        settings = _settings(tmp_path, VAPID_PRIVATE_KEY=given, VAPID_CONTACT=CONTACT)
        assert settings.vapid_private_key == pem and settings.vapid_contact == CONTACT


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"VAPID_PRIVATE_KEY": "/no/such/file.pem"}, "VAPID_PRIVATE_KEY: no such file"),
        ({"VAPID_PRIVATE_KEY": "A" * 43}, "VAPID_PRIVATE_KEY: not a readable private key"),
        ({"VAPID_CONTACT": "ops@example.cn"}, "VAPID_CONTACT: must be a mailto:"),
    ],
)
def test_a_bad_key_or_contact_is_a_settings_error(tmp_path: Path, env, says) -> None:
    env = {"VAPID_PRIVATE_KEY": new_vapid_pem(), "VAPID_CONTACT": CONTACT, **env}
    with pytest.raises(SettingsError) as raised:
        _settings(tmp_path, **env)
    assert says in str(raised.value)
    assert "PRIVATE KEY-----" not in str(raised.value)
