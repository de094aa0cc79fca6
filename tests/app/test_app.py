"""The application factory."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from server import create_app
from server.extensions import db
from tests.conftest import app_environment


def test_factory_builds_independent_apps(workdir: Path) -> None:
    first = create_app(app_environment(workdir, "sqlite:///" + str(workdir / "one.db")))
    second = create_app(
        app_environment(workdir, "sqlite:///" + str(workdir / "two.db"), TOKEN_TTL_HOURS="3")
    )
    assert first is not second
    assert first.config["SETTINGS"].token_ttl_hours == 12
    assert second.config["SETTINGS"].token_ttl_hours == 3
    assert first.config["TESTING"] is True
    with first.app_context():
        assert str(db.engine.url).endswith("one.db")


def test_overrides_win_over_environment(workdir: Path, monkeypatch) -> None:
    monkeypatch.setenv("TOKEN_TTL_HOURS", "5")
    app = create_app(app_environment(workdir, "sqlite://", TOKEN_TTL_HOURS="7"))
    assert app.config["SETTINGS"].token_ttl_hours == 7


def test_production_cookies_are_secure(workdir: Path) -> None:
    app = create_app(app_environment(workdir, "sqlite://", GK_ENV="production"))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True


def test_importing_starts_nothing() -> None:
    """No thread, connection or model load happens when the packages are imported."""
    import subprocess
    import sys

    code = (
        "import threading, server, server.models, server.worker, server.api, hardware.bus, "
        "gatekeeper.vocabulary; "
        "assert threading.active_count() == 1, threading.enumerate(); print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_healthz_says_what_is_wrong(client, app: Flask) -> None:
    """The test app's broker (127.0.0.1:1) is unreachable and no worker ever beat."""
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json["status"] == "degraded"
    assert answer.json["problems"] == [
        "the worker has never reported",
        "the broker at 127.0.0.1:1 is unreachable (Connection refused)",
    ]
    assert answer.json["checks"]["database"] == {"ok": True}
    assert client.get("/livez").json == {"status": "ok"}


def test_healthz_with_an_unreachable_database(workdir) -> None:
    broken = create_app(app_environment(workdir, f"sqlite:///{workdir}/no/such/folder/gk.db"))
    answer = broken.test_client().get("/healthz")
    assert answer.status_code == 503
    assert answer.json["checks"]["database"] == {"ok": False, "error": "OperationalError"}
    assert answer.json["problems"][0] == "the database does not answer (OperationalError)"
    assert broken.test_client().get("/livez").status_code == 200


def test_server_defaults_to_one_blas_thread() -> None:
    """Set before numpy or dlib load OpenBLAS; an explicit setting is left alone."""
    import os
    import subprocess
    import sys

    code = "import os, server; print(os.environ['OPENBLAS_NUM_THREADS'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    default = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert default.stdout.strip() == "1", default.stderr
    chosen = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "OPENBLAS_NUM_THREADS": "2"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert chosen.stdout.strip() == "2"
