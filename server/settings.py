"""Configuration: environment variables parsed once into a typed, frozen object.

Every variable the server reads is declared in ``VARIABLES`` (the README's
configuration table is written from it); nothing else in the code base looks at
``os.environ``.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENVIRONMENTS = ("development", "test", "production")


class SettingsError(Exception):
    """One or more environment variables are missing or invalid."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, default (as text) and meaning."""

    name: str
    default: str | None
    help: str


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "GK_ENV",
        "development",
        "`development`, `test` or `production`. Production requires "
        "`SECRET_KEY` and `DATA_KEY` to be set and marks cookies `Secure`.",
    ),
    Variable(
        "INSTANCE_DIR",
        "./instance",
        "Folder for local state: the SQLite file, generated dev keys, the local broker's files.",
    ),
    Variable(
        "DATABASE_URL",
        "sqlite:///<INSTANCE_DIR>/gatekeeper.db",
        "SQLAlchemy URL; `postgresql+psycopg://user:pass@host/db` in production.",
    ),
    Variable(
        "SECRET_KEY",
        "generated into `<INSTANCE_DIR>/secret_key`",
        "Signs session cookies and CSRF tokens. At least 32 characters.",
    ),
    Variable(
        "DATA_KEY",
        "generated into `<INSTANCE_DIR>/data_key`",
        "Key that encrypts biometric templates and ID documents at rest (urlsafe base64 of "
        "32 bytes); keep it outside the database.",
    ),
    Variable(
        "MQTT_URL",
        "mqtt://127.0.0.1:1883",
        "Broker the worker connects to, `mqtt://user:password@host:port` (`mqtts://` for "
        "TLS). When unset, `make run` starts a local Mosquitto.",
    ),
    Variable(
        "MQTT_CLIENT_ID", "gatekeeper-worker", "MQTT client id of the worker (persistent session)."
    ),
    Variable(
        "MQTT_BROKER_DIR",
        "(unset)",
        "Folder where the server writes Mosquitto's password file and ACL (`passwd`, `acl`) "
        "from the provisioned devices. Unset: the server leaves the broker's files alone.",
    ),
    Variable(
        "MQTT_BROKER_PIDFILE",
        "(unset)",
        "Mosquitto's pid file; after rewriting the files the server sends it SIGHUP, so "
        "device changes apply without a restart.",
    ),
    Variable("DEVICE_HEARTBEAT_SECONDS", "60", "Heartbeat interval devices are expected to keep."),
    Variable(
        "DEVICE_OFFLINE_AFTER_MISSES",
        "3",
        "Missed heartbeats after which the worker marks a device offline and raises an alert.",
    ),
    Variable(
        "COMMAND_TTL_SECONDS",
        "10",
        "How long a command stays valid (`expires_at - issued_at`); doors drop it after that.",
    ),
    Variable(
        "TOKEN_TTL_HOURS",
        "12",
        "Lifetime of API bearer tokens (`POST /api/v1/auth/token`) and of page sign-ins.",
    ),
    Variable(
        "LOGIN_RATE_LIMIT",
        "10 per minute",
        "Login attempts (page and token endpoint) allowed per client address.",
    ),
    Variable(
        "PASS_RATE_LIMIT",
        "30 per hour",
        "Visitor passes one account may issue (`POST /api/v1/passes` and the portal).",
    ),
    Variable(
        "REGISTRATION_RATE_LIMIT",
        "10 per hour",
        "Self-registration forms one client address may send through the lobby's link "
        "(`/join/...`), counted whether or not they are filed.",
    ),
    Variable(
        "REMOTE_OPEN_RATE_LIMIT",
        "10 per minute",
        "Remote opens one account may send (`POST /api/v1/access-points/{id}/open`).",
    ),
    Variable(
        "PASS_KEY_ROTATION_DAYS",
        "30",
        "Days a pass-signing key signs before the worker makes a new one; old keys keep "
        "verifying until every token they signed has expired.",
    ),
    Variable(
        "ALERT_STREAMS_PER_PROCESS",
        "4",
        "Officer consoles (`/api/v1/alerts/stream`) one web process serves at once; each "
        "holds a gunicorn thread. More answer 503 and retry.",
    ),
    Variable(
        "PAGE_STREAMS_PER_PROCESS",
        "2",
        "Live pages (`/live`: the device console, the cars page, a resident's door opening) one "
        "web process updates at once; each holds a gunicorn thread. More answer 503, and the "
        "page says to reload.",
    ),
    Variable(
        "RATELIMIT_STORAGE_URI",
        "memory://",
        "Where rate-limit counters live. `memory://` counts per process: with several web "
        "processes (gunicorn's workers, hosts) use `redis://...`, so that each limit holds "
        "across them; `make run` starts a local Redis and sets it.",
    ),
    Variable(
        "WEBHOOK_ALLOWED_HOSTS",
        "(unset)",
        "Comma-separated host names (or IP addresses) webhooks may point to although they "
        "resolve to a loopback, private, link-local or reserved address, such as an internal "
        "police records system. Every other webhook must resolve to public addresses only.",
    ),
    Variable("WORKER_HEARTBEAT_SECONDS", "30", "Interval of the worker's heartbeat job."),
    Variable("DEFAULT_TIMEZONE", "Asia/Shanghai", "Time zone given to new communities."),
    Variable("LOG_LEVEL", "INFO", "Python logging level."),
)

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Settings:
    """The server's configuration, read once at start."""

    env: str
    instance_dir: Path
    database_url: str
    secret_key: str
    data_key: str
    mqtt_url: str
    mqtt_client_id: str
    mqtt_broker_dir: Path | None
    mqtt_broker_pidfile: Path | None
    device_heartbeat_seconds: int
    device_offline_after_misses: int
    command_ttl_seconds: int
    token_ttl_hours: int
    login_rate_limit: str
    pass_rate_limit: str
    remote_open_rate_limit: str
    registration_rate_limit: str
    pass_key_rotation_days: int
    alert_streams_per_process: int
    page_streams_per_process: int
    ratelimit_storage_uri: str
    webhook_allowed_hosts: frozenset[str]
    worker_heartbeat_seconds: int
    default_timezone: str
    log_level: str

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse and validate ``environ`` (default: ``os.environ``); raise ``SettingsError``."""
        env = os.environ if environ is None else environ
        parser = _Parser(env)
        gk_env = parser.choice("GK_ENV", ENVIRONMENTS)
        production = gk_env == "production"
        instance_dir = Path(env.get("INSTANCE_DIR") or "instance").resolve()
        database_url = parser.text("DATABASE_URL", f"sqlite:///{instance_dir / 'gatekeeper.db'}")
        if database_url.startswith("postgresql://"):  # the driver we ship is psycopg 3
            database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
        parser.check(
            "DATABASE_URL",
            _valid_database_url(database_url),
            "must be a sqlite:/// or postgresql:// URL",
        )
        values: dict[str, Any] = {
            "env": gk_env,
            "instance_dir": instance_dir,
            "database_url": database_url,
            "secret_key": parser.key(
                "SECRET_KEY", instance_dir, production, _new_secret_key, _check_secret_key
            ),
            "data_key": parser.key(
                "DATA_KEY", instance_dir, production, _new_data_key, _check_data_key
            ),
            "mqtt_url": parser.text("MQTT_URL", "mqtt://127.0.0.1:1883"),
            "mqtt_client_id": parser.text("MQTT_CLIENT_ID", "gatekeeper-worker"),
            "mqtt_broker_dir": parser.path("MQTT_BROKER_DIR"),
            "mqtt_broker_pidfile": parser.path("MQTT_BROKER_PIDFILE"),
            "device_heartbeat_seconds": parser.integer(
                "DEVICE_HEARTBEAT_SECONDS", 60, low=1, high=3600
            ),
            "device_offline_after_misses": parser.integer(
                "DEVICE_OFFLINE_AFTER_MISSES", 3, low=1, high=100
            ),
            "command_ttl_seconds": parser.integer("COMMAND_TTL_SECONDS", 10, low=1, high=3600),
            "token_ttl_hours": parser.integer("TOKEN_TTL_HOURS", 12, low=1, high=24 * 30),
            "login_rate_limit": parser.text("LOGIN_RATE_LIMIT", "10 per minute"),
            "pass_rate_limit": parser.text("PASS_RATE_LIMIT", "30 per hour"),
            "remote_open_rate_limit": parser.text("REMOTE_OPEN_RATE_LIMIT", "10 per minute"),
            "registration_rate_limit": parser.text("REGISTRATION_RATE_LIMIT", "10 per hour"),
            "pass_key_rotation_days": parser.integer("PASS_KEY_ROTATION_DAYS", 30, low=1, high=365),
            "alert_streams_per_process": parser.integer(
                "ALERT_STREAMS_PER_PROCESS", 4, low=1, high=1000
            ),
            "page_streams_per_process": parser.integer(
                "PAGE_STREAMS_PER_PROCESS", 2, low=1, high=1000
            ),
            "ratelimit_storage_uri": parser.text("RATELIMIT_STORAGE_URI", "memory://"),
            "webhook_allowed_hosts": parser.hosts("WEBHOOK_ALLOWED_HOSTS"),
            "worker_heartbeat_seconds": parser.integer(
                "WORKER_HEARTBEAT_SECONDS", 30, low=1, high=3600
            ),
            "default_timezone": parser.text("DEFAULT_TIMEZONE", "Asia/Shanghai"),
            "log_level": parser.choice(
                "LOG_LEVEL", _LOG_LEVELS, default="INFO", transform=str.upper
            ),
        }
        parser.check(
            "MQTT_URL",
            _valid_mqtt_url(values["mqtt_url"]),
            "must look like mqtt://[user:password@]host[:port]",
        )
        parser.check(
            "DEFAULT_TIMEZONE",
            is_time_zone(values["default_timezone"]),
            "must be an IANA time zone such as Asia/Shanghai",
        )
        for name in (
            "LOGIN_RATE_LIMIT",
            "PASS_RATE_LIMIT",
            "REMOTE_OPEN_RATE_LIMIT",
            "REGISTRATION_RATE_LIMIT",
        ):
            parser.check(
                name,
                _valid_rate_limit(values[name.lower()]),
                "must look like '10 per minute'",
            )
        if parser.problems:
            raise SettingsError(parser.problems)
        return cls(**values)


def is_time_zone(name: str) -> bool:
    """True when ``name`` is an IANA time zone this machine knows."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


class _Parser:
    """Reads variables and collects every problem, so one run reports them all."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[str] = []

    def _raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return value.strip() if value is not None and value.strip() else None

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def path(self, name: str) -> Path | None:
        raw = self._raw(name)
        return Path(raw).resolve() if raw else None

    def hosts(self, name: str) -> frozenset[str]:
        """A comma-separated list of host names, lower case, as URLs spell them."""
        names = [_host_name(item) for item in (self._raw(name) or "").split(",")]
        names = [item for item in names if item]
        self.check(name, all(map(_valid_host_name, names)), "must be host names, comma-separated")
        return frozenset(names)

    def check(self, name: str, ok: bool, message: str) -> None:
        if not ok and not any(p.startswith(name + ":") for p in self.problems):
            self.problems.append(f"{name}: {message} (got {self.env.get(name, '')!r})")

    def choice(
        self,
        name: str,
        allowed: tuple[str, ...],
        default: str | None = None,
        transform: Callable[[str], str] = str.lower,
    ) -> str:
        default = default or allowed[0]
        raw = self._raw(name)
        value = transform(raw) if raw else default
        if value not in allowed:
            self.problems.append(f"{name}: must be one of {', '.join(allowed)} (got {raw!r})")
            return default
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name}: must be a whole number (got {raw!r})")
            return default
        if not low <= value <= high:
            self.problems.append(f"{name}: must be between {low} and {high} (got {value})")
            return default
        return value

    def key(
        self,
        name: str,
        instance_dir: Path,
        required: bool,
        generate: Callable[[], str],
        validate: Callable[[str], bool],
    ) -> str:
        raw = self._raw(name)
        if raw is None:
            if required:
                self.problems.append(f"{name}: is required when GK_ENV=production")
                return ""
            raw = _instance_key(instance_dir / name.lower(), generate)
        if not validate(raw):
            self.problems.append(f"{name}: is too short or malformed")
        return raw


def _instance_key(path: Path, generate: Callable[[], str]) -> str:
    """Read a development key from ``path``, creating it (mode 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def _new_secret_key() -> str:
    return secrets.token_urlsafe(48)


def _new_data_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _check_secret_key(value: str) -> bool:
    return len(value) >= 32


def _check_data_key(value: str) -> bool:
    import base64
    import binascii

    try:
        return len(base64.urlsafe_b64decode(value.encode())) == 32
    except (binascii.Error, ValueError):
        return False


def _valid_database_url(url: str) -> bool:
    return url.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://"))


def _valid_mqtt_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return parts.scheme in ("mqtt", "mqtts") and bool(parts.hostname) and (port is None or port > 0)


def _host_name(item: str) -> str:
    """``Records.Police.Internal.`` and ``[fd00::1]`` as a URL's host reads: lower, bare."""
    return item.strip().removeprefix("[").removesuffix("]").rstrip(".").lower()


def _valid_host_name(name: str) -> bool:
    """No scheme, path, port or spaces: ``http://x``, ``x:8080`` or ``x/y`` are mistakes."""
    if ":" in name:  # only an IPv6 address may hold colons
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return False
        return True
    return not any(char in name for char in "/@ ?#\\")


def _valid_rate_limit(value: str) -> bool:
    from limits import parse_many

    try:
        return bool(parse_many(value))
    except ValueError:
        return False
