"""The Flask server: management API, device endpoints, pages, worker and CLI."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Mapping

import click
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from server.settings import Settings, SettingsError

# One BLAS thread per process unless told otherwise: numpy's and dlib's OpenBLAS pools both
# spin while idle, and on two cores that made a face check 2-3 times slower
# (bench/verify_face.py). Set before numpy or dlib load, which happens later, on first use.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Two images (frame and depth) of up to 8 MiB each, plus form fields.
MAX_CONTENT_LENGTH = 20 * 1024 * 1024


def create_app(overrides: Mapping[str, str] | None = None) -> Flask:
    """Build the app from the environment; ``overrides`` replace environment variables."""
    environ = {**os.environ, **(overrides or {})}
    try:
        settings = Settings.from_env(environ)
    except SettingsError as error:
        if click.get_current_context(silent=True) is not None:
            raise click.ClickException(str(error)) from None  # a message, not a traceback
        raise
    app = Flask(__name__, instance_path=str(settings.instance_dir))
    app.config.from_mapping(_flask_config(settings))
    from server.core import logs

    logs.configure(settings.log_level, settings.log_format)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if settings.proxy_hops:  # the client's address and scheme as the proxies saw them
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)

    from server import cli, web
    from server.access import allowlists
    from server.api import init_app as init_api
    from server.core import auth, bodies, headers, i18n, messaging, metrics, problems
    from server.extensions import csrf, db, limiter, login_manager, migrate
    from server.passes import keyset

    logs.init_app(app)  # the request id first: every later hook's log lines carry it
    problems.init_url_limit(app)  # then, so an over-long URL meets no other hook
    bodies.init_app(app)  # then text that cannot be stored is refused
    db.init_app(app)
    migrate.init_app(app, db, directory=_migrations_dir(), render_as_batch=True, compare_type=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    i18n.init_app(app)
    limiter.init_app(app)
    auth.init_app(app)
    headers.init_app(app)
    messaging.init_app(app)
    metrics.init_app(app)
    init_api(app)
    web.init_app(app)
    problems.init_app(app)
    cli.init_app(app)
    keyset.init_app(app)
    allowlists.init_app(app)  # lists of the doors a flush touches are rebuilt
    return app


def load_face_models() -> None:
    """Load the face models (dlib's detector, 5- and 68-point predictors and descriptor
    network, about 1.7 s and 130 MB) into this process now rather than at its first face
    request. gunicorn's master calls it before it forks the web workers
    (``server.gunicorn_config.on_starting``): they share one copy of the models and no door
    waits for them. dlib's models give the same descriptors after a fork (no threads run in
    the master: one BLAS thread, ``OPENBLAS_NUM_THREADS`` above)."""
    import numpy as np

    from gatekeeper import faces, liveness

    faces.engine()
    # The 68-point predictor loads on its first use; a blank image is enough to use it.
    liveness.face_landmarks(np.zeros((8, 8, 3), np.uint8), faces.FaceBox(0, 0, 8, 8))


def _flask_config(settings: Settings) -> dict[str, object]:
    return {
        "SETTINGS": settings,
        "SECRET_KEY": settings.secret_key,
        "TESTING": settings.env == "test",
        "SQLALCHEMY_DATABASE_URI": settings.database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(settings),
        "MAX_CONTENT_LENGTH": MAX_CONTENT_LENGTH,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": settings.is_production,
        "REMEMBER_COOKIE_SECURE": settings.is_production,
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
        "RATELIMIT_STORAGE_URI": settings.ratelimit_storage_uri,
        "RATELIMIT_HEADERS_ENABLED": True,
        "API_TITLE": "Gatekeeper",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": "/api/v1/docs/assets/",
        # No badge from validator.swagger.io: the docs page loads nothing from elsewhere.
        "OPENAPI_SWAGGER_UI_CONFIG": {"validatorUrl": None},
    }


def _engine_options(settings: Settings) -> dict[str, object]:
    """SQLite: how long a statement waits for another connection's write lock before it
    fails with ``database is locked`` (``sqlite3.connect``'s ``timeout`` is SQLite's busy
    timeout)."""
    options: dict[str, object] = {"pool_pre_ping": True}
    if settings.database_url.startswith("sqlite"):
        options["connect_args"] = {"timeout": float(settings.sqlite_busy_timeout_seconds)}
    return options


def _migrations_dir() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")


# About 80 MiB of WAL at 4 KiB pages before a request checkpoints it itself.
WAL_AUTOCHECKPOINT_PAGES = 20_000


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    """SQLite: enforce foreign keys, let readers and a writer overlap.

    How long a writer waits on another's lock is the connection's ``timeout``
    (``SQLITE_BUSY_TIMEOUT_SECONDS``, 5 s by default, as ``sqlite3.connect``'s).

    ``synchronous=NORMAL`` is SQLite's advice for WAL: commits no longer wait for an fsync
    each (the WAL is synced at checkpoints), so a power cut can lose the last moments of
    events but never corrupts the file. PostgreSQL is the durable production choice.

    Checkpoints (and their fsyncs) are the worker's job (``checkpoint_sqlite``, every few
    seconds), not a door's request: by default SQLite runs one inside whichever commit
    fills 1,000 pages of WAL, which was most of the verify path's P99. The automatic one
    stays as a safety net at ``WAL_AUTOCHECKPOINT_PAGES`` for a deployment without a worker.
    """
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        cursor.close()
