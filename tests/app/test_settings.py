"""Settings are parsed once from the environment, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import create_app
from server.settings import VARIABLES, Settings, SettingsError


def test_defaults_create_development_keys_once(tmp_path: Path) -> None:
    first = Settings.from_env({"INSTANCE_DIR": str(tmp_path)})
    second = Settings.from_env({"INSTANCE_DIR": str(tmp_path)})
    assert first.env == "development"
    assert first.database_url == f"sqlite:///{tmp_path / 'gatekeeper.db'}"
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 32
    assert first.data_key == second.data_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert first.mqtt_url == "mqtt://127.0.0.1:1883"
    assert first.token_ttl_hours == 12


def test_production_requires_keys(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"GK_ENV": "production", "INSTANCE_DIR": str(tmp_path)})
    message = str(caught.value)
    assert "SECRET_KEY: is required when GK_ENV=production" in message
    assert "DATA_KEY: is required when GK_ENV=production" in message
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("GK_ENV", "staging", "GK_ENV: must be one of development, test, production"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL: must be a sqlite:/// or postgresql:// URL"),
        ("MQTT_URL", "http://broker", "MQTT_URL: must look like mqtt://"),
        ("MQTT_URL", "mqtt://host:notaport", "MQTT_URL: must look like mqtt://"),
        ("TOKEN_TTL_HOURS", "soon", "TOKEN_TTL_HOURS: must be a whole number"),
        ("TOKEN_TTL_HOURS", "0", "TOKEN_TTL_HOURS: must be between 1 and 720"),
        ("WORKER_HEARTBEAT_SECONDS", "-5", "WORKER_HEARTBEAT_SECONDS: must be between 1 and 3600"),
        ("SQLITE_BUSY_TIMEOUT_SECONDS", "0", "SQLITE_BUSY_TIMEOUT_SECONDS: must be between 1"),
        ("DEFAULT_TIMEZONE", "Mars/Olympus", "DEFAULT_TIMEZONE: must be an IANA time zone"),
        ("LOGIN_RATE_LIMIT", "lots", "LOGIN_RATE_LIMIT: must look like '10 per minute'"),
        ("LOG_LEVEL", "chatty", "LOG_LEVEL: must be one of DEBUG"),
        ("SECRET_KEY", "short", "SECRET_KEY: is too short or malformed"),
        ("DATA_KEY", "not-base64-of-32-bytes", "DATA_KEY: is too short or malformed"),
        ("WEBHOOK_ALLOWED_HOSTS", "https://records.internal", "WEBHOOK_ALLOWED_HOSTS: must be"),
        ("WEBHOOK_ALLOWED_HOSTS", "records.internal:8443", "WEBHOOK_ALLOWED_HOSTS: must be"),
        ("WEBHOOK_ALLOWED_HOSTS", "a.internal b.internal", "WEBHOOK_ALLOWED_HOSTS: must be"),
    ],
)
def test_invalid_variable_is_named(tmp_path: Path, name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"INSTANCE_DIR": str(tmp_path), name: value})
    assert expected in str(caught.value)


def test_webhook_allowed_hosts_are_read_as_urls_spell_hosts(tmp_path: Path) -> None:
    assert Settings.from_env({"INSTANCE_DIR": str(tmp_path)}).webhook_allowed_hosts == frozenset()
    settings = Settings.from_env(
        {
            "INSTANCE_DIR": str(tmp_path),
            "WEBHOOK_ALLOWED_HOSTS": " Records.Police.Internal. ,[fd00::1],, 10.0.0.5 ",
        }
    )
    assert settings.webhook_allowed_hosts == {"records.police.internal", "fd00::1", "10.0.0.5"}


def test_all_problems_reported_together(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {"INSTANCE_DIR": str(tmp_path), "TOKEN_TTL_HOURS": "x", "MQTT_URL": "nope"}
        )
    assert len(caught.value.problems) == 2


def test_postgresql_url_uses_psycopg3(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"INSTANCE_DIR": str(tmp_path), "DATABASE_URL": "postgresql://u:p@db/gk"}
    )
    assert settings.database_url == "postgresql+psycopg://u:p@db/gk"


def test_every_variable_read_is_documented(tmp_path: Path) -> None:
    """The README's table is written from VARIABLES: nothing may be read that it lacks."""

    class Recording(dict):
        def __init__(self, *args: object) -> None:
            super().__init__(*args)
            self.read: set[str] = set()

        def get(self, key: str, default: object = None) -> object:
            self.read.add(key)
            return super().get(key, default)

    environ = Recording({"INSTANCE_DIR": str(tmp_path)})
    Settings.from_env(environ)
    assert environ.read == {v.name for v in VARIABLES}


@pytest.mark.parametrize(("setting", "expected_ms"), [(None, 5000), ("12", 12000)])
def test_sqlite_connections_wait_as_long_as_the_setting(
    tmp_path: Path, setting: str | None, expected_ms: int
) -> None:
    from server.extensions import db

    environ = {"INSTANCE_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/busy.db"}
    if setting is not None:
        environ["SQLITE_BUSY_TIMEOUT_SECONDS"] = setting
    app = create_app(environ)
    with app.app_context(), db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == expected_ms
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    with app.app_context():
        db.engine.dispose()


def test_create_app_reports_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="TOKEN_TTL_HOURS"):
        create_app({"INSTANCE_DIR": str(tmp_path), "TOKEN_TTL_HOURS": "never"})


def test_cli_shows_settings_error_without_traceback(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "INSTANCE_DIR": str(tmp_path),
        "TOKEN_TTL_HOURS": "never",
        "FLASK_APP": "server",
    }
    result = subprocess.run(
        [sys.executable, "-m", "flask", "seed"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "TOKEN_TTL_HOURS: must be a whole number" in result.stderr
    assert "Traceback" not in result.stderr
