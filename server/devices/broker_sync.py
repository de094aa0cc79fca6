"""Keeps Mosquitto's password file and ACL in step with the database.

After a change to who may use the broker is committed (a device provisioned, its
secret rotated, disabled or enabled; an officer given MQTT credentials, disabled or
moved), the view calls ``sync_broker``: when ``MQTT_BROKER_DIR`` is set it rewrites
``passwd`` and ``acl`` there from the database and sends the broker SIGHUP
(``MQTT_BROKER_PIDFILE``). Mosquitto then reloads both files and disconnects clients
whose account is gone or whose password changed. A broker that is down never fails the
request: the files are still written, and it reads them when it starts.

``flask broker-files`` writes the same files for operators who run their own broker.
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import selectinload

from hardware.broker import (
    BrokerAccount,
    WrittenFiles,
    mosquitto_password_hash,
    reload_broker,
    write_broker_files,
)
from hardware.bus import BrokerAddress
from hardware.topics import alerts_topic, officer_dispatch_topic
from server.core import audit
from server.core.errors import Conflict, Forbidden, Invalid
from server.core.messaging import WEB_CLIENT_PREFIX
from server.core.scope import Scope
from server.extensions import db
from server.models import Device, User, UserRole
from server.settings import Settings

_LOGGER = logging.getLogger(__name__)


def _settings(app_or_settings: Flask | Settings | None) -> Settings:
    if isinstance(app_or_settings, Settings):
        return app_or_settings
    app = app_or_settings if app_or_settings is not None else current_app
    return app.config["SETTINGS"]


def server_account(settings: Settings) -> BrokerAccount | None:
    """The server's own account, from the user and password in ``MQTT_URL`` (None without)."""
    address = BrokerAddress.from_url(settings.mqtt_url)
    if not address.username or address.password is None:
        return None
    return BrokerAccount.server(address.username, mosquitto_password_hash(address.password))


def accounts_from_db(settings: Settings | None = None) -> list[BrokerAccount]:
    """Every broker account: the server's, enabled devices', officers' with MQTT credentials.

    Device ids and the server's name take precedence; an officer whose username clashes
    with one of them, or cannot be written safely, is left out (and logged): one bad row
    must not keep every other change from reaching the broker.
    """
    settings = settings or _settings(None)
    accounts: list[BrokerAccount] = []
    server = server_account(settings)
    if server is None:
        _LOGGER.warning("MQTT_URL has no user and password: the broker files hold no server")
    else:
        accounts.append(server)
    devices = db.session.execute(
        select(Device.id, Device.community_id, Device.mqtt_password_hash)
        .where(Device.disabled_at.is_(None))
        .order_by(Device.id)
    )
    accounts += [BrokerAccount.device(d.id, d.mqtt_password_hash, d.community_id) for d in devices]
    taken = {a.username for a in accounts}
    for officer in _officers_with_credentials():
        if officer.username in taken or _is_server_client_id(officer.username, settings):
            _LOGGER.warning("officer %s clashes with a broker account; left out", officer.username)
            continue
        try:
            accounts.append(_officer_account(officer, officer.mqtt_password_hash or ""))
        except ValueError as error:
            _LOGGER.warning("officer %s left out of the broker files: %s", officer.id, error)
    return accounts


def _officer_account(officer: User, password_hash: str) -> BrokerAccount:
    return BrokerAccount.officer(
        officer.username, password_hash, (c.id for c in officer.communities)
    )


def _officers_with_credentials() -> Iterable[User]:
    return db.session.scalars(
        select(User)
        .where(
            User.role == UserRole.OFFICER,
            User.disabled_at.is_(None),
            User.mqtt_password_hash.is_not(None),
        )
        .options(selectinload(User.communities))
        .order_by(User.username)
    )


def write_files(directory: Path, settings: Settings) -> WrittenFiles:
    """Write the broker files from the database (read while the files' lock is held)."""
    return write_broker_files(directory, lambda: accounts_from_db(settings))


def sync_broker(app_or_settings: Flask | Settings | None = None) -> bool:
    """Rewrite the broker files and reload the broker, if configured; never raises.

    Call it after the commit that changed devices or officers' credentials, inside an
    application context. Answers True when the files were written.
    """
    settings = _settings(app_or_settings)
    if settings.mqtt_broker_dir is None:
        return False
    try:
        written = write_files(settings.mqtt_broker_dir, settings)
    except Exception:
        # The change is committed; the broker catches up on the next sync or start.
        _LOGGER.exception("could not write the broker files in %s", settings.mqtt_broker_dir)
        db.session.rollback()
        return False
    _LOGGER.info("broker files written: %s", written.summary())
    if settings.mqtt_broker_pidfile is not None:
        reload_broker(settings.mqtt_broker_pidfile)
    return True


# Officers' MQTT credentials ---------------------------------------------------------------


@dataclass(frozen=True)
class OfficerCredentials:
    """An officer's broker login; the password exists only in this answer."""

    username: str
    password: str
    topics: list[str]

    def as_answer(self) -> dict[str, Any]:
        return {"username": self.username, "password": self.password, "topics": self.topics}


def issue_officer_credentials(scope: Scope, user_id: str) -> OfficerCredentials:
    """A new MQTT password for an officer (themself or by an admin); the old one stops working.

    The officer may then read ``gk/v1/{community}/alerts`` of each community they cover, and
    their own ``gk/v1/{community}/officers/{username}/dispatch`` there.
    """
    user = scope.get(User, user_id)  # 404 for anyone the caller cannot see
    if user.id != scope.user.id and not scope.is_admin:
        raise Forbidden(_l("Only the officer themself or an administrator can do this."))
    if user.role is not UserRole.OFFICER:
        raise Invalid(_l("Only officer accounts get MQTT credentials."))
    if user.disabled:
        raise Invalid(_l("This account is disabled."))
    if _username_is_reserved(user.username):
        raise Conflict(
            _l(
                "The broker username '%(username)s' belongs to another account.",
                username=user.username,
            )
        )
    password = secrets.token_urlsafe(32)
    password_hash = mosquitto_password_hash(password)
    try:
        _officer_account(user, password_hash)
    except ValueError as error:  # a name the broker files cannot hold
        raise Invalid(
            _l("This account cannot have MQTT credentials: %(why)s.", why=str(error))
        ) from None
    user.mqtt_password_hash = password_hash
    audit.record(scope.user, "user.mqtt_credentials", community_id=None, target=user)
    return OfficerCredentials(
        user.username,
        password,
        [alerts_topic(c.id) for c in user.communities]
        + [officer_dispatch_topic(c.id, user.username) for c in user.communities],
    )


def _username_is_reserved(username: str) -> bool:
    settings = _settings(None)
    server = server_account(settings)
    if server is not None and server.username == username:
        return True
    if _is_server_client_id(username, settings):
        return True
    return db.session.get(Device, username) is not None


def _is_server_client_id(username: str, settings: Settings) -> bool:
    """Whether ``username`` could be a server process's MQTT client id: a worker's
    ``<MQTT_CLIENT_ID>-<host>-<id>`` or a web process's ``gatekeeper-web-...``. On the device
    listener an officer's client id is their username, so such an officer would take over
    that process's session."""
    return username.startswith((f"{settings.mqtt_client_id}-", WEB_CLIENT_PREFIX))


# flask broker-files --------------------------------------------------------------------------


@click.command("broker-files")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for passwd and acl (default: MQTT_BROKER_DIR).",
)
@click.option(
    "--reload/--no-reload",
    default=True,
    show_default=True,
    help="Send the broker SIGHUP afterwards (needs MQTT_BROKER_PIDFILE).",
)
@with_appcontext
def broker_files(directory: Path | None, reload: bool) -> None:
    """Write Mosquitto's password file and ACL from the database."""
    settings = _settings(None)
    directory = directory or settings.mqtt_broker_dir
    if directory is None:
        click.echo("error: give --dir or set MQTT_BROKER_DIR", err=True)
        sys.exit(1)
    try:
        written = write_files(directory.resolve(), settings)
    except (OperationalError, ProgrammingError) as error:
        db.session.rollback()
        click.echo(
            f"error: the database is not ready ({error.orig}); run 'flask db upgrade' first",
            err=True,
        )
        sys.exit(1)
    except (OSError, ValueError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    click.echo(f"Wrote {written.summary()}.")
    if not reload:
        return
    if settings.mqtt_broker_pidfile is None:
        click.echo("MQTT_BROKER_PIDFILE is not set: reload the broker yourself (SIGHUP).")
    elif reload_broker(settings.mqtt_broker_pidfile):
        click.echo(f"Reloaded the broker (pid file {settings.mqtt_broker_pidfile}).")
    else:
        click.echo(f"The broker was not reloaded (pid file {settings.mqtt_broker_pidfile}).")
