"""Mosquitto's side of device identity: accounts, password file, ACL, config and reload.

The server keeps the broker in step with its database by rendering two files that
Mosquitto reads (``passwd`` and ``acl``) and sending the broker SIGHUP, which makes it
reload both and disconnect clients whose account is gone. Everything here is plain
text and files: no database, no Flask, so the launcher and tests can use it too.

Accounts (docs/protocol.md sections 2 and 5):

- a device (username = device id) reads only ``gk/v1/{community}/{device}/cmd`` and its
  community's retained key set ``gk/v1/{community}/keys``, and writes only its own
  ``ack``, ``evt`` and ``status``;
- the server reads every device's ``ack``, ``evt`` and ``status``, writes every
  device's ``cmd`` and every community's ``keys``, and reads and writes every
  community's ``alerts``;
- an officer reads ``gk/v1/{community}/alerts`` of each community they cover, and their own
  ``gk/v1/{community}/officers/{username}/dispatch`` there (the server writes it).

A disabled device is simply absent from the files.

Client ids are bound to accounts (docs/broker.md, "Client ids"): devices and officers
connect on the device listener, where Mosquitto replaces whatever client id a client
sends with its username (``use_username_as_clientid``), so no device can take over
another client's session, the worker's included; the server's processes connect on their
own listener, which knows only the server's accounts (``passwd-server``) and keeps the
client ids they choose.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import secrets
import signal
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from hardware.topics import (
    ALL_OFFICER_DISPATCH,
    DEVICE_SUFFIXES,
    ROOT,
    alerts_topic,
    allowlist_delta_topic,
    allowlist_topic,
    device_topic,
    keys_topic,
    officer_dispatch_topic,
)

_LOGGER = logging.getLogger(__name__)

# mosquitto_passwd's default for the "$7$" (PBKDF2-SHA512) format.
PBKDF2_ITERATIONS = 101

PASSWORD_FILE = "passwd"  # noqa: S105 (a file name): devices and officers
SERVER_PASSWORD_FILE = "passwd-server"  # noqa: S105 (a file name): the server's accounts
ACL_FILE = "acl"
LOCK_FILE = ".lock"
FILE_MODE = 0o600

# Usernames go into "user <name>" lines and "<name>:<hash>" lines; ids go into topics.
_SAFE_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_SAFE_TOPIC_LEVEL = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def mosquitto_password_hash(
    password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """A password-file hash Mosquitto 2 accepts: ``$7$iterations$salt$hash`` (base64)."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


class AccountKind(StrEnum):
    DEVICE = "device"
    SERVER = "server"
    OFFICER = "officer"


class Access(StrEnum):
    """The access words of Mosquitto's ACL file ("topic read ...")."""

    READ = "read"
    WRITE = "write"
    READWRITE = "readwrite"


@dataclass(frozen=True)
class BrokerAccount:
    """One broker login and what it may touch.

    ``community_id`` is the device's community; ``community_ids`` the communities an
    officer covers. Build accounts with ``device``, ``server`` and ``officer``.
    """

    username: str
    password_hash: str
    kind: AccountKind
    community_id: str | None = None
    community_ids: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _SAFE_USERNAME.match(self.username):
            raise ValueError(f"unsafe broker username {self.username!r}")
        if not self.password_hash.startswith("$") or any(c in self.password_hash for c in ":\r\n "):
            raise ValueError(f"not a Mosquitto password hash for {self.username!r}")
        if self.kind is AccountKind.DEVICE:
            if self.community_id is None:
                raise ValueError("a device account needs its community")
            _check_level(self.community_id)
            _check_level(self.username)
        for community_id in self.community_ids:
            _check_level(community_id)

    @classmethod
    def device(cls, device_id: str, password_hash: str, community_id: str) -> BrokerAccount:
        return cls(device_id, password_hash, AccountKind.DEVICE, community_id=community_id)

    @classmethod
    def server(cls, username: str, password_hash: str) -> BrokerAccount:
        return cls(username, password_hash, AccountKind.SERVER)

    @classmethod
    def officer(
        cls, username: str, password_hash: str, community_ids: Iterable[str]
    ) -> BrokerAccount:
        return cls(
            username,
            password_hash,
            AccountKind.OFFICER,
            community_ids=tuple(sorted(set(community_ids))),
        )

    def rules(self) -> list[tuple[Access, str]]:
        """The ACL lines of this account: (access, topic)."""
        if self.kind is AccountKind.DEVICE:
            community_id = self.community_id or ""  # never empty: checked in __post_init__
            own = [device_topic(community_id, self.username, s) for s in DEVICE_SUFFIXES]
            return [
                (Access.READ, own[0]),
                (Access.READ, keys_topic(community_id)),
                *((Access.WRITE, topic) for topic in own[1:]),
                (Access.READ, allowlist_topic(community_id, self.username)),
                (Access.READ, allowlist_delta_topic(community_id, self.username)),
            ]
        if self.kind is AccountKind.SERVER:
            return [
                *((Access.READ, f"{ROOT}/+/+/{suffix}") for suffix in DEVICE_SUFFIXES[1:]),
                (Access.WRITE, f"{ROOT}/+/+/cmd"),
                (Access.WRITE, f"{ROOT}/+/keys"),
                (Access.READWRITE, f"{ROOT}/+/alerts"),
                (Access.READWRITE, ALL_OFFICER_DISPATCH),
                (Access.WRITE, f"{ROOT}/+/+/allowlist"),
                (Access.WRITE, f"{ROOT}/+/+/allowlist/delta"),
            ]
        return [
            *((Access.READ, alerts_topic(c)) for c in self.community_ids),
            *((Access.READ, officer_dispatch_topic(c, self.username)) for c in self.community_ids),
        ]


def _check_level(value: str) -> None:
    """An id used as a topic level must not be a wildcard, hold a '/' or break a line."""
    if not _SAFE_TOPIC_LEVEL.match(value):
        raise ValueError(f"unsafe topic level {value!r}")


_FILE_ORDER = (AccountKind.SERVER, AccountKind.DEVICE, AccountKind.OFFICER)


def _unique(accounts: Iterable[BrokerAccount]) -> list[BrokerAccount]:
    accounts = list(accounts)
    twice = [name for name, n in Counter(a.username for a in accounts).items() if n > 1]
    if twice:
        raise ValueError(f"broker usernames used twice: {', '.join(sorted(twice))}")
    return sorted(accounts, key=lambda a: (_FILE_ORDER.index(a.kind), a.username))


_HEADER = "# Generated by Gatekeeper from its database; edits are overwritten.\n"


def render_password_file(accounts: Iterable[BrokerAccount]) -> str:
    """Mosquitto's ``password_file``: one ``username:hash`` line per account."""
    return _HEADER + "".join(f"{a.username}:{a.password_hash}\n" for a in _unique(accounts))


def render_acl_file(accounts: Iterable[BrokerAccount]) -> str:
    """Mosquitto's ``acl_file``: a ``user`` block per account, exact topics except the server's.

    Nothing precedes the first ``user`` line, so anonymous clients (which the config
    refuses anyway) would have no access at all.
    """
    blocks = []
    for account in _unique(accounts):
        lines = [f"# {account.kind.value}", f"user {account.username}"]
        lines += [f"topic {access.value} {topic}" for access, topic in account.rules()]
        blocks.append("\n".join(lines) + "\n")
    return _HEADER + "\n" + "\n".join(blocks)


@dataclass(frozen=True)
class WrittenFiles:
    """What ``write_broker_files`` wrote: the paths and accounts per kind (no secrets)."""

    password_file: Path
    server_password_file: Path
    acl_file: Path
    counts: dict[str, int]

    def summary(self) -> str:
        counts = ", ".join(f"{self.counts.get(k.value, 0)} {k.value}" for k in AccountKind)
        return (
            f"{self.password_file}, {self.server_password_file} and {self.acl_file}: "
            f"{counts} account(s)"
        )


AccountSource = Iterable[BrokerAccount] | Callable[[], Iterable[BrokerAccount]]


def write_broker_files(directory: Path | str, accounts: AccountSource) -> WrittenFiles:
    """Write ``passwd``, ``passwd-server`` and ``acl`` into ``directory``, each atomically.

    ``passwd`` (the device listener's) holds devices and officers, ``passwd-server`` (the
    server listener's) the server's accounts only; the ACL covers them all.

    An exclusive lock on ``directory/.lock`` keeps two processes from interleaving. Pass a
    callable to read the accounts while the lock is held: the last writer then always
    writes the newest state, even when two changes race.

    New files are mode 0600. When a file is already there its group and group-read bit
    are kept, so an operator can ``chgrp mosquitto`` them once for a broker that runs as
    another user.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory / LOCK_FILE):
        rows = _unique(accounts() if callable(accounts) else accounts)
        password_file = directory / PASSWORD_FILE
        server_password_file = directory / SERVER_PASSWORD_FILE
        acl_file = directory / ACL_FILE
        servers = [a for a in rows if a.kind is AccountKind.SERVER]
        _replace(password_file, render_password_file(a for a in rows if a not in servers))
        _replace(server_password_file, render_password_file(servers))
        _replace(acl_file, render_acl_file(rows))
    counts = Counter(a.kind.value for a in rows)
    return WrittenFiles(password_file, server_password_file, acl_file, dict(counts))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    mode, gid = FILE_MODE, -1
    with contextlib.suppress(FileNotFoundError):
        current = path.stat()
        mode |= current.st_mode & 0o040
        gid = current.st_gid
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if gid != -1:
                with contextlib.suppress(PermissionError):
                    os.fchown(handle.fileno(), -1, gid)
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def reload_broker(pidfile: Path | str) -> bool:
    """Send SIGHUP to the Mosquitto whose pid is in ``pidfile``; True when it was sent.

    A missing, unreadable or stale pid file is logged and answers False: a request that
    changed a device must not fail because the broker is down.
    """
    try:
        pid = int(Path(pidfile).read_text().strip())
    except (OSError, ValueError) as error:
        _LOGGER.warning("cannot reload the broker: pid file %s: %s", pidfile, error)
        return False
    if pid <= 1:
        _LOGGER.warning("cannot reload the broker: pid file %s holds %s", pidfile, pid)
        return False
    name = _process_name(pid)
    if name is not None and "mosquitto" not in name:
        # A stale pid file whose number now belongs to another program: SIGHUP could kill it.
        _LOGGER.warning("not reloading: pid %s from %s is %r, not mosquitto", pid, pidfile, name)
        return False
    try:
        os.kill(pid, signal.SIGHUP)
    except (ProcessLookupError, PermissionError) as error:
        _LOGGER.warning("cannot reload the broker (pid %s from %s): %s", pid, pidfile, error)
        return False
    return True


def _process_name(pid: int) -> str | None:
    """The program name of ``pid`` from /proc, or None where /proc cannot tell."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


# Per-client queue of QoS 1 messages the broker keeps (in flight or waiting).
MAX_QUEUED_MESSAGES = 100_000


def mosquitto_config(
    listener_host: str,
    port: int,
    directory: Path | str,
    persistence_dir: Path | str,
    *,
    server_port: int,
    server_host: str = "127.0.0.1",
    pid_file: Path | str | None = None,
    user: str | None = None,
    log_dest: Sequence[str] = ("stdout",),
) -> str:
    """Text of a ``mosquitto.conf`` with two listeners that authenticate against the files.

    Devices and officers connect on ``listener_host:port``, where their client id is their
    username; the server's processes on ``server_host:server_port`` (loopback by default),
    which admits only the accounts in ``passwd-server``. ``directory`` holds the files;
    ``persistence_dir`` keeps sessions and queued QoS 1 messages across a broker restart.
    ``user`` is the account Mosquitto runs as: started as root without it, Mosquitto
    switches to the ``mosquitto`` user and then cannot write the pid or persistence file
    in a folder only root may write.
    """
    directory = Path(directory)
    lines = [
        "# Generated by Gatekeeper; edits are overwritten.",
        # Each listener names its own password file; both share the ACL.
        "per_listener_settings true",
        "persistence true",
        f"persistence_location {Path(persistence_dir)}/",
        # Mosquitto drops QoS 1 messages beyond 1000 queued per client by default: a burst
        # of events while the worker restarts would be lost. Queue generously instead.
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
    ]
    if pid_file is not None:
        lines.append(f"pid_file {Path(pid_file)}")
    if user is not None:
        lines.append(f"user {user}")
    lines += [f"log_dest {dest}" for dest in log_dest]
    lines += [
        "",
        "# Devices and officers: the client id is the username, whatever the client sends.",
        f"listener {port} {listener_host}",
        "allow_anonymous false",
        "use_username_as_clientid true",
        f"password_file {directory / PASSWORD_FILE}",
        f"acl_file {directory / ACL_FILE}",
        "",
        "# The server's web processes and workers, with client ids of their own.",
        f"listener {server_port} {server_host}",
        "allow_anonymous false",
        f"password_file {directory / SERVER_PASSWORD_FILE}",
        f"acl_file {directory / ACL_FILE}",
        "",
    ]
    return "\n".join(lines)
