"""Who a worker is: its id, its MQTT client id, and the lock that keeps the id its own.

Several workers run side by side (on one host or many). Each needs an MQTT client id of its
own, the same after a restart: its session at the broker is persistent, and what the broker
queued for it while it was away is delivered only to that client id. The id is
``<MQTT_CLIENT_ID>-<host>-<WORKER_ID>``; without ``WORKER_ID`` a worker takes the lowest
number from 1 that no running worker of this host holds, so the first worker of a host is
always ``...-1``, a restarted one gets its old number back, and a second ``flask worker``
started by mistake becomes ``...-2`` instead of taking the first one's session over (two
clients with one id knock each other off the broker, again and again).

A worker holds its id with an exclusive ``flock`` on ``<INSTANCE_DIR>/workers/<id>.lock``
for as long as it runs; the kernel releases it when the process dies, however it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from server.settings import Settings

# How many numbers an unnamed worker tries before it gives up.
MAX_AUTOMATIC_IDS = 64
# The heartbeat row of a worker is "worker:<worker id>" (server.models.ServiceHeartbeat).
HEARTBEAT_PREFIX = "worker:"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class WorkerIdTaken(Exception):
    """Another running worker holds this worker id."""


def host_name() -> str:
    """This host's name as it may appear in a client id: letters, digits, ``_ . -``."""
    name = _UNSAFE.sub("-", socket.gethostname()).strip("-.")
    return (name or "host")[:48]


@dataclass(frozen=True)
class WorkerIdentity:
    """A worker's id (``<host>-<WORKER_ID>``) and the names derived from it."""

    worker_id: str
    client_id: str
    chosen: bool  # WORKER_ID was set: the worker refuses to start rather than take another

    @classmethod
    def of(cls, settings: Settings, number: str, *, chosen: bool) -> WorkerIdentity:
        worker_id = f"{host_name()}-{number}"
        return cls(worker_id, f"{settings.mqtt_client_id}-{worker_id}", chosen)

    @property
    def heartbeat_name(self) -> str:
        return HEARTBEAT_PREFIX + self.worker_id


class IdentityLock:
    """The ``flock`` that makes a worker id one process's own; ``release()`` gives it up
    (and the kernel, when the process dies)."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for whoever looks: which process holds it
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing releases the lock
            self._fd = None


def _lock_path(settings: Settings, identity: WorkerIdentity) -> Path:
    return settings.instance_dir / "workers" / f"{identity.worker_id}.lock"


def _is_free(path: Path) -> bool:
    probe = IdentityLock(path)
    try:
        return probe.try_acquire()
    finally:
        probe.release()


def choose_identity(settings: Settings) -> WorkerIdentity:
    """``WORKER_ID`` when set, else the lowest number no running worker of this host holds.

    Only a choice: ``claim_identity`` takes it (another worker may start in between).
    """
    if settings.worker_id is not None:
        return WorkerIdentity.of(settings, settings.worker_id, chosen=True)
    for number in range(1, MAX_AUTOMATIC_IDS + 1):
        identity = WorkerIdentity.of(settings, str(number), chosen=False)
        if _is_free(_lock_path(settings, identity)):
            return identity
    raise WorkerIdTaken(f"all {MAX_AUTOMATIC_IDS} worker ids of this host are taken")


def claim_identity(settings: Settings, identity: WorkerIdentity) -> IdentityLock:
    """Hold ``identity`` for this process; ``WorkerIdTaken`` when a running worker has it."""
    lock = IdentityLock(_lock_path(settings, identity))
    if not lock.try_acquire():
        raise WorkerIdTaken(
            f"another worker runs as {identity.worker_id} (MQTT client id {identity.client_id})"
        )
    return lock
