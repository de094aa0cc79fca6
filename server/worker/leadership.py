"""Which worker runs the scheduled jobs: the one holding a lock on the database's side.

Every worker consumes MQTT; only the leader runs APScheduler's jobs (lease ends, offline
devices, escalation, retention, key rotation, overstays, wandering, patrol...). Each worker
tries to take the lock at every heartbeat, so when the leader dies another one leads
within a heartbeat interval (two at most), and a worker started by mistake never runs a
job twice.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection of
  the lock's own, held for the leader's life. A leader that dies closes its connection and
  PostgreSQL releases the lock at once; one whose connection breaks (a network fault, a
  database restart) notices at its next heartbeat and stops leading. In between, each job
  checks in its own transaction that the lock is still held by that connection (``confirm``),
  so a job does not start on a leader that has lost the lock; it then takes that job's own
  transaction-level advisory lock (``pg_advisory_xact_lock``), so no two transactions ever
  run one job at once: not a leader that lost the scheduler lock unnoticed (its lock
  connection cut, its pool still answering) and the new one, nor the new leader and the
  transaction a killed leader left behind until PostgreSQL ends it (the new leader waits
  for it, then finds its work undone: jobs act on committed state). TCP keepalives on the
  connection bound how long a silently dead link goes unnoticed. A pooler in transaction
  mode (PgBouncer) cannot hold session locks: give the workers a direct connection.
- SQLite: an exclusive ``flock`` on ``<database file>-scheduler.lock``, released by the
  kernel when the process dies. (SQLite is one machine anyway.)
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from server.worker.identity import IdentityLock

_LOGGER = logging.getLogger(__name__)

# pg_try_advisory_lock(key1, key2): key1 names this application ("gk"), key2 the lock.
ADVISORY_CLASS = 0x676B
SCHEDULER_LOCK = 1
# A job's transaction lock: pg_advisory_xact_lock(JOB_CLASS, job_key(name)), waited for at
# most JOB_LOCK_WAIT_S (then the job is skipped until its next run).
JOB_CLASS = 0x676A
JOB_LOCK_WAIT_S = 30
# libpq options of the lock's connection: TCP keepalives find a dead link within ~40 s, and
# a database that does not answer does not hold up the election for long.
CONNECT_ARGS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def job_key(job: str) -> int:
    """The second key of ``job``'s transaction lock: a stable 32-bit signed hash of its name."""
    key = zlib.crc32(job.encode())
    return key - (1 << 32) if key >= 1 << 31 else key


class LeaderLock(Protocol):
    """What the worker needs from a leadership lock."""

    @property
    def where(self) -> str: ...

    def try_acquire(self) -> bool: ...

    def still_held(self) -> bool: ...

    def confirm(self, session: Session, job: str) -> bool: ...

    def release(self) -> None: ...


class AdvisoryLock:
    """PostgreSQL's session-level advisory lock, on a connection of its own."""

    def __init__(self, engine: Engine):
        self._engine = create_engine(engine.url, poolclass=NullPool, connect_args=CONNECT_ARGS)
        self._connection: Connection | None = None
        self._backend_pid: int | None = None

    @property
    def where(self) -> str:
        return f"PostgreSQL advisory lock ({ADVISORY_CLASS}, {SCHEDULER_LOCK})"

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL session that holds the lock (``pg_locks.pid``), while it does."""
        return self._backend_pid

    def try_acquire(self) -> bool:
        if self._backend_pid is not None:
            return True
        try:
            if self._connection is None:
                connection = self._engine.connect()
                connection.execution_options(isolation_level="AUTOCOMMIT")
                self._connection = connection
            taken = self._connection.execute(
                text("SELECT pg_try_advisory_lock(CAST(:a AS integer), CAST(:b AS integer))"),
                {"a": ADVISORY_CLASS, "b": SCHEDULER_LOCK},
            ).scalar()
            if taken:
                self._backend_pid = self._connection.execute(
                    text("SELECT pg_backend_pid()")
                ).scalar()
            return bool(taken)
        except SQLAlchemyError as error:
            _LOGGER.warning("cannot try the scheduler lock: %s", error.__class__.__name__)
            self._close()
            return False

    def still_held(self) -> bool:
        """Whether the lock's connection still answers (a session lock lives as long)."""
        if self._connection is None or self._backend_pid is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            _LOGGER.warning("the scheduler lock's connection broke: %s", error.__class__.__name__)
            self._close()
            return False
        return True

    def confirm(self, session: Session, job: str) -> bool:
        """Whether, seen from ``session``'s transaction, our connection still holds the lock;
        then ``job``'s transaction lock, held until that transaction ends (waiting for
        another transaction running the same job to end; False if it lasts too long)."""
        if self._backend_pid is None:
            return False
        held = session.scalar(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND classid::int8 = :a AND objid::int8 = :b AND objsubid = 2 AND pid = :pid"
            ),
            {"a": ADVISORY_CLASS, "b": SCHEDULER_LOCK, "pid": self._backend_pid},
        )
        if not held:
            return False
        previous = session.scalar(text("SELECT current_setting('lock_timeout')"))
        wait = {"name": "lock_timeout", "value": f"{JOB_LOCK_WAIT_S}s"}
        try:
            session.execute(text("SELECT set_config(:name, :value, true)"), wait)
            session.execute(
                text("SELECT pg_advisory_xact_lock(CAST(:a AS integer), CAST(:b AS integer))"),
                {"a": JOB_CLASS, "b": job_key(job)},
            )
        except OperationalError as error:  # lock_timeout: the other one still runs
            session.rollback()
            _LOGGER.warning("job %s still runs in another transaction: %s", job, error.orig)
            return False
        session.execute(
            text("SELECT set_config(:name, :value, true)"),
            {"name": "lock_timeout", "value": previous},
        )
        return True

    def release(self) -> None:
        if self._connection is not None and self._backend_pid is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.execute(
                    text("SELECT pg_advisory_unlock(CAST(:a AS integer), CAST(:b AS integer))"),
                    {"a": ADVISORY_CLASS, "b": SCHEDULER_LOCK},
                )
        self._close()

    def _close(self) -> None:
        connection, self._connection, self._backend_pid = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                connection.close()


class FileLock(IdentityLock):
    """An exclusive ``flock`` on a file, for SQLite (one machine): the identity's kind of
    lock, with what the scheduler asks of a lock."""

    @property
    def where(self) -> str:
        return f"file lock {self.path}"

    def still_held(self) -> bool:
        return self.held  # a flock lasts as long as the open file

    def confirm(self, session: Session, job: str) -> bool:
        return self.held  # one machine: the kernel's flock cannot be split


def scheduler_lock(engine: Engine, instance_dir: Path) -> LeaderLock:
    """The scheduler's lock for this database: advisory on PostgreSQL, a file beside SQLite's."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine)
    database = engine.url.database
    if database and database != ":memory:":
        return FileLock(Path(f"{Path(database).resolve()}-scheduler.lock"))
    instance_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(instance_dir / "scheduler.lock")
