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
        "MQTT_CLIENT_ID",
        "gatekeeper-worker",
        "Start of each worker's MQTT client id: `<MQTT_CLIENT_ID>-<host>-<WORKER_ID>`, the same "
        "after a restart, so its persistent session (and what the broker queued for it) "
        "carries on.",
    ),
    Variable(
        "WORKER_ID",
        "(unset)",
        "This worker's name among the workers of its host (letters, digits, `_ . -`). Unset: "
        "the lowest number from 1 that no running worker of this host (and `INSTANCE_DIR`) "
        "holds. A second worker with the same id refuses to start.",
    ),
    Variable(
        "MQTT_SHARED_SUBSCRIPTIONS",
        "0",
        "`1`: the workers share device traffic through MQTT shared subscriptions "
        "(`$share/...`), each message to one of them: set it to run several workers. `0`: "
        "each worker subscribes on its own and gets every message (one worker; Mosquitto 2.0 "
        "keeps such subscriptions over its own restart, not shared ones: `docs/broker.md`).",
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
        "PIN_RATE_LIMIT",
        "30 per minute",
        "Keypad codes one device may send (`POST /api/v1/verify/pin`); the keypad's own "
        "lockout after wrong codes is a community setting.",
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
        "holds a gunicorn thread there. The stream process (gevent: a greenlet each, "
        "`docs/deploy.md`) is given 1000. More answer 503 and retry.",
    ),
    Variable(
        "PAGE_STREAMS_PER_PROCESS",
        "2",
        "Live pages (`/live`: the device console, the cars page, a resident's door opening) one "
        "web process updates at once; each holds a gunicorn thread there. The stream process "
        "is given 1000. More answer 503, and the page says to reload.",
    ),
    Variable(
        "STREAM_PORT",
        "(unset)",
        "Port of the stream process on the pages' own host, for a site with no proxy that "
        "routes `/live` and `/api/v1/alerts/stream` to it (`make run` sets it): pages open "
        "their streams on `<scheme>://<their host>:<STREAM_PORT>`. Unset: on the pages' own "
        "origin (behind the proxy of `docs/deploy.md`, or served by the web process itself, "
        "a thread each).",
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
    Variable(
        "FACE_GALLERY_MEMORY_MB",
        "256",
        "Face galleries one process keeps, in MiB (memory maps included); past it the least "
        "recently used community's gallery is dropped, and loaded again at its next face "
        '(`docs/faces.md`, "Galleries in memory").',
    ),
    Variable(
        "FACE_GALLERY_DIR",
        "<INSTANCE_DIR>/face-galleries",
        "Where the web processes of one machine share decrypted face galleries, one read-only "
        "file per community (mode 0600, signed). A local disk, or tmpfs to keep them off disk; "
        "`off`: each process keeps its own copy in memory.",
    ),
    Variable("WORKER_HEARTBEAT_SECONDS", "30", "Interval of the worker's heartbeat job."),
    Variable(
        "SQLITE_BUSY_TIMEOUT_SECONDS",
        "5",
        "SQLite only: how long a write waits for another process's or thread's write "
        "transaction before it fails with `database is locked` (HTTP 503).",
    ),
    Variable("DEFAULT_TIMEZONE", "Asia/Shanghai", "Time zone given to new communities."),
    Variable("LOG_LEVEL", "INFO", "Python logging level."),
    Variable(
        "LOG_FORMAT",
        "text",
        "`text` (one readable line per record) or `json` (one JSON object per line, for a log "
        "shipper). Either way, a line logged while serving an HTTP request carries its request "
        "id (`X-Request-ID`), and so does the `open` command that request caused "
        "(`docs/deploy.md`).",
    ),
    Variable(
        "METRICS_TOKEN",
        "(unset)",
        "Bearer token Prometheus sends to read `/metrics` (and the worker's `METRICS_PORT`) "
        "from any address; at least 16 characters. Unset: only this machine may read them "
        "(a loopback address, not through a proxy).",
    ),
    Variable(
        "METRICS_PORT",
        "(unset)",
        "Port on which `flask worker` serves its own Prometheus metrics (`/metrics`): on "
        "127.0.0.1, or on every address when `METRICS_TOKEN` is set. Give each worker on a "
        "machine its own port. Unset: the worker serves none.",
    ),
    Variable(
        "PROXY_HOPS",
        "0",
        "Reverse proxies in front of gunicorn whose `X-Forwarded-For`, `-Proto`, `-Host` and "
        "`-Port` the server believes (1 behind one nginx). 0: the peer's address is the "
        "client's, and forwarded headers are ignored.",
    ),
    Variable(
        "VAPID_PRIVATE_KEY",
        "(unset)",
        "The Web Push (VAPID, RFC 8292) private key: a PEM file's path, or the key itself "
        "(base64url of its 32 bytes, or PEM text). Unset: no Web Push; the portal offers no "
        "subscription (`docs/notifications.md`).",
    ),
    Variable(
        "VAPID_CONTACT",
        "(unset)",
        "The contact push services may reach about our pushes (`mailto:ops@example.cn` or an "
        "https URL): the VAPID `sub` claim. Required with `VAPID_PRIVATE_KEY`.",
    ),
    Variable(
        "DATA_KEYS_RETIRED",
        "(unset)",
        "Comma-separated keys that still decrypt but never encrypt: the keys `DATA_KEY` "
        "replaced, until `flask rotate-data-key` has re-encrypted everything under `DATA_KEY` "
        '(`docs/deploy.md`, "Rotating DATA_KEY"). Keep them with `DATA_KEY`, outside the '
        "backups.",
    ),
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
    worker_id: str | None
    mqtt_shared_subscriptions: bool
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
    face_gallery_memory_mb: int
    face_gallery_dir: Path | None  # None: no shared files, each process its own copy
    worker_heartbeat_seconds: int
    sqlite_busy_timeout_seconds: int
    default_timezone: str
    log_level: str
    log_format: str = "text"
    metrics_token: str | None = None
    metrics_port: int | None = None
    proxy_hops: int = 0
    stream_port: int | None = None  # None: pages open their streams on their own origin
    pin_rate_limit: str = "30 per minute"
    vapid_private_key: str | None = None  # the key's PEM text; None: Web Push off
    vapid_contact: str | None = None
    data_keys_retired: tuple[str, ...] = ()  # decrypt only (server.core.crypto)

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
            "worker_id": parser.optional_text("WORKER_ID"),
            "mqtt_shared_subscriptions": parser.choice("MQTT_SHARED_SUBSCRIPTIONS", ("0", "1"))
            == "1",
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
            "pin_rate_limit": parser.text("PIN_RATE_LIMIT", "30 per minute"),
            "pass_key_rotation_days": parser.integer("PASS_KEY_ROTATION_DAYS", 30, low=1, high=365),
            "alert_streams_per_process": parser.integer(
                "ALERT_STREAMS_PER_PROCESS", 4, low=1, high=100_000
            ),
            "page_streams_per_process": parser.integer(
                "PAGE_STREAMS_PER_PROCESS", 2, low=1, high=100_000
            ),
            "stream_port": parser.optional_integer("STREAM_PORT", low=1, high=65535),
            "ratelimit_storage_uri": parser.text("RATELIMIT_STORAGE_URI", "memory://"),
            "webhook_allowed_hosts": parser.hosts("WEBHOOK_ALLOWED_HOSTS"),
            "face_gallery_memory_mb": parser.integer(
                "FACE_GALLERY_MEMORY_MB", 256, low=1, high=1024 * 1024
            ),
            "face_gallery_dir": _gallery_dir(
                parser.text("FACE_GALLERY_DIR", ""), instance_dir / "face-galleries"
            ),
            "worker_heartbeat_seconds": parser.integer(
                "WORKER_HEARTBEAT_SECONDS", 30, low=1, high=3600
            ),
            "sqlite_busy_timeout_seconds": parser.integer(
                "SQLITE_BUSY_TIMEOUT_SECONDS", 5, low=1, high=600
            ),
            "default_timezone": parser.text("DEFAULT_TIMEZONE", "Asia/Shanghai"),
            "log_level": parser.choice(
                "LOG_LEVEL", _LOG_LEVELS, default="INFO", transform=str.upper
            ),
            "log_format": parser.choice("LOG_FORMAT", ("text", "json")),
            "metrics_token": parser.optional_text("METRICS_TOKEN"),
            "metrics_port": parser.optional_integer("METRICS_PORT", low=1, high=65535),
            "proxy_hops": parser.integer("PROXY_HOPS", 0, low=0, high=5),
            **_vapid(parser),
            "data_keys_retired": _retired_data_keys(parser),
        }
        parser.check(
            "MQTT_URL",
            _valid_mqtt_url(values["mqtt_url"]),
            "must look like mqtt://[user:password@]host[:port]",
        )
        parser.check(
            "WORKER_ID",
            values["worker_id"] is None or _valid_worker_id(values["worker_id"]),
            "must be 1 to 32 letters, digits, '_', '.' or '-'",
        )
        parser.check(
            "MQTT_CLIENT_ID",
            _valid_worker_id(values["mqtt_client_id"], 64),
            "must be 1 to 64 letters, digits, '_', '.' or '-'",
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
            "PIN_RATE_LIMIT",
        ):
            parser.check(
                name,
                _valid_rate_limit(values[name.lower()]),
                "must look like '10 per minute'",
            )
        if values["metrics_token"] is not None and len(values["metrics_token"]) < 16:
            parser.problems.append("METRICS_TOKEN: must be at least 16 characters")  # not echoed
        if parser.problems:
            raise SettingsError(parser.problems)
        return cls(**values)


def _retired_data_keys(parser: _Parser) -> tuple[str, ...]:
    """DATA_KEYS_RETIRED: keys that only decrypt (never echoed in a problem)."""
    raw = parser.optional_text("DATA_KEYS_RETIRED") or ""
    keys = tuple(key.strip() for key in raw.split(",") if key.strip())
    for number, key in enumerate(keys, 1):
        if not _check_data_key(key):
            parser.problems.append(f"DATA_KEYS_RETIRED: key {number} is too short or malformed")
    return keys


def _vapid(parser: _Parser) -> dict[str, Any]:
    """``vapid_private_key`` (PEM text) and ``vapid_contact``: both or neither."""
    raw = parser.optional_text("VAPID_PRIVATE_KEY")
    contact = parser.optional_text("VAPID_CONTACT")
    if raw is None:
        return {}
    try:
        pem = vapid_pem(raw)
    except ValueError as error:
        parser.problems.append(f"VAPID_PRIVATE_KEY: {error}")
        return {}
    if contact is None or not contact.startswith(("mailto:", "https://")):
        parser.problems.append("VAPID_CONTACT: must be a mailto: or https:// URL")
        return {}
    return {"vapid_private_key": pem, "vapid_contact": contact}


def vapid_pem(raw: str) -> str:
    """The P-256 private key ``raw`` names (a PEM file's path, PEM text, or base64url of the
    32-byte scalar) as PKCS#8 PEM text; ``ValueError`` saying why not."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    text = raw
    if "-----BEGIN" not in raw and len(raw) != 43:  # 43: 32 bytes in unpadded base64url
        path = Path(raw)
        if not path.is_file():
            raise ValueError("no such file, and not a key")
        text = path.read_text(encoding="ascii", errors="replace")
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:
            scalar = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            key = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
    except (ValueError, TypeError) as error:
        raise ValueError("not a readable private key") from error
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("must be a P-256 (prime256v1) key")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


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

    def optional_text(self, name: str) -> str | None:
        return self._raw(name)

    def optional_integer(self, name: str, low: int, high: int) -> int | None:
        if self._raw(name) is None:
            return None
        return self.integer(name, low, low=low, high=high)

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


def _gallery_dir(raw: str, default: Path) -> Path | None:
    """``FACE_GALLERY_DIR``: a folder, ``off`` for none, empty for the default."""
    if raw.lower() == "off":
        return None
    return Path(raw).resolve() if raw else default


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


def _valid_worker_id(value: str, longest: int = 32) -> bool:
    """An id that goes into MQTT client ids and file names as it is."""
    return len(value) <= longest and all(c.isascii() and (c.isalnum() or c in "_.-") for c in value)


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
