"""Live pages: changes to rows as Server-Sent Events, from whichever process made them.

Rows change in the web processes (a door's request, a staff member's button) and in the
worker (a device's ack or status, a scheduled job), so a stream cannot wait for a signal in
its own process. The rooms that own the data register *feeds* here (``register``): a table,
the columns that say when a row last changed (server time), its community column, the SSE
event's name and the payload of a row, and who reads it (roles that read every row of their
community, roles that read only the rows they own). The alerts (``server.alerts.stream``),
device commands and devices (``server.devices.feeds``) and cars inside
(``server.access.feeds``) are feeds.

Each process runs one ``Broadcaster`` thread, started by the first stream and ended when the
last one closes. It reads, for each feed an open stream wants, the rows whose change time
moved (one short query on a pooled connection, given back at once) and hands each change to
the queues of the streams that may see it: their communities, their feeds, only their own
rows where the feed says so. When it reads:

- on PostgreSQL, when told: every feed's table has a trigger (``gk_live_notify``, a
  migration) that sends ``NOTIFY gk_live, '<feed>:<community id>'`` with each change,
  delivered at its commit. The broadcaster holds one connection of its own for ``LISTEN
  gk_live`` (autocommit, no transaction, TCP keepalives) and reads a feed only after a
  notification that some open stream may want (its feed, one of its communities), at most
  once per ``COALESCE_S`` (a burst of changes is one read), and every feed once per
  ``SAFETY_POLL_S`` in case a notification was lost. While nothing changes it sends the
  database nothing else. When that connection is lost (the database restarted, the backend
  was ended) it polls every ``POLL_S`` meanwhile, connects again with a growing pause
  (``RECONNECT_MAX_S`` at most) and then reads every feed once, for what changed while it
  was away;
- on SQLite, which has no notifications: every ``POLL_S``.

A stream thread waits on its own queue and holds no database connection; it writes a comment
every ``HEARTBEAT_S`` so that a client that went away is noticed, and ends after
``STREAM_MAX_S`` (the browser's ``EventSource`` reconnects by itself, with ``Last-Event-ID``,
and the caller's rights are checked again). Each kind of stream has a budget per process
(``Subscriber.budget``): one more answers 503 with ``Retry-After``, and the page says to
reload. A web process under gunicorn's threads spends a thread on each stream; the stream
process (``server.streams``, gevent) a greenlet. A kind of stream may be one per account
(``Subscriber.one_per_account``, the door intercom's ring): a newer stream of the account
replaces the older one, which ends with ``event: replaced`` (``REPLACED``).

Pages open their streams on their own origin, or, where the stream process listens on
another port of the same host and no proxy routes the streams to it (``make run``), on
``stream_origin()`` (``STREAM_PORT``).

A change can be committed a little after its change time was taken (a long transaction, clocks
of two hosts): each read looks ``LOOKBACK_S`` behind the newest change it has seen and skips
what it already sent, so such a change is late, not lost. What was in a table when a feed
started to be watched is the past: it is not sent (a reconnecting client asks for what it
missed with ``Last-Event-ID``, ``resume``).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import queue
import re
import select as select_module  # looked up per call: gevent patches it in the stream process
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import psycopg
from flask import Flask, Response, current_app, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute
from werkzeug.wsgi import ClosingIterator

from server.core import metrics
from server.core.errors import Invalid, NotFound
from server.core.problems import problem
from server.core.scope import Scope
from server.extensions import db
from server.models import Community, UserRole

_LOGGER = logging.getLogger(__name__)

POLL_S = 0.2
# PostgreSQL: the channel the feeds' triggers notify, a feed read at most this often after a
# notification, every feed read this often all the same (a notification lost), and the
# longest pause between two tries to connect the listener again.
CHANNEL = "gk_live"
COALESCE_S = 0.1
SAFETY_POLL_S = 5.0
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0
LISTENER_NAME = "gatekeeper-live"  # its application_name in pg_stat_activity
LOOKBACK_S = 5.0
HEARTBEAT_S = 15.0
STREAM_MAX_S = 300.0
# What EventSource waits before reconnecting (milliseconds, sent in the stream).
RETRY_MS = 3000
# Changes read per query, and the most a reconnecting client is sent from Last-Event-ID.
PAGE = 500
RESUME_LIMIT = 200
# A client that falls this far behind is cut off (it reconnects and resumes).
QUEUE_SIZE = 1000
# The budget the pages' streams share (``/live``); the officers' console has its own.
PAGE_STREAMS = "pages"
BUSY = _l("Too many live streams on this server process; try again shortly.")
_EXTENSION = "live_broadcaster"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Change:
    """One state of one row, as a stream sends it."""

    row_id: str
    community_id: str
    changed_at: datetime
    payload: dict[str, Any]
    feed: str = ""
    event: str = "change"
    owner: str | None = None  # the account the row is (a command's issuer)

    @property
    def event_id(self) -> str:
        """The SSE ``id``: the change's time in microseconds and the row (resumable)."""
        return f"{_micros(self.changed_at)}.{self.row_id}"

    def frame(self) -> bytes:
        data = json.dumps(self.payload, ensure_ascii=False, separators=(",", ":"))
        return f"id: {self.event_id}\nevent: {self.event}\ndata: {data}\n\n".encode()


def _micros(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000 + value.microsecond


def event_id_at(value: datetime) -> str:
    """An SSE id that resumes from ``value`` (a page gives its rendering time to its stream,
    so that nothing changed between the page and the stream's start is lost)."""
    return f"{_micros(value)}."


def parse_event_id(value: str | None) -> datetime | None:
    """The time in an SSE id this module wrote, or None for anything else."""
    micros, dot, _row = (value or "").partition(".")
    if not dot or not micros.isdigit() or len(micros) > 18:
        return None
    try:
        return datetime.fromtimestamp(int(micros) // 1_000_000, UTC).replace(
            microsecond=int(micros) % 1_000_000
        )
    except (OverflowError, OSError, ValueError):
        return None


# Feeds ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Feed:
    """A table whose changes streams may follow.

    ``changed``: the columns that say when a row changed, in the order they are written (a
    later one is null until it happens: a car's ``entered_at``, then ``exited_at``); server
    time, indexed. ``payload`` makes one row's event data, or ``changes`` a batch's changes
    (when a payload needs more than its row). ``readers`` read every row of the communities
    they see, ``owners`` only the rows whose ``owner`` column is their account; a feed with
    neither is no page's (the alerts have their own endpoint).
    """

    name: str
    model: type
    changed: tuple[InstrumentedAttribute[Any], ...]
    community: InstrumentedAttribute[Any]
    event: str
    payload: Callable[[Any], dict[str, Any]] | None = None
    changes: Callable[[Sequence[Any]], list[Change]] | None = None
    owner: InstrumentedAttribute[Any] | None = None
    readers: frozenset[UserRole] = frozenset()
    owners: frozenset[UserRole] = frozenset()

    @property
    def changed_at_column(self) -> ColumnElement[datetime]:
        """When a row last changed: the latest of ``changed`` that is set."""
        if len(self.changed) == 1:
            return self.changed[0]
        return func.coalesce(*reversed(self.changed))

    def after(self, since: datetime) -> ColumnElement[bool]:
        """Rows changed after ``since``, in a form each column's index serves."""
        return or_(*(column > since for column in self.changed))

    def changed_at(self, row: Any) -> datetime:
        for column in reversed(self.changed):
            value = getattr(row, column.key)
            if value is not None:
                return value
        return _EPOCH

    def build(self, rows: Sequence[Any]) -> list[Change]:
        """The changes of these rows (their current state)."""
        if self.changes is not None:
            return self.changes(rows)
        if self.payload is None:
            raise TypeError(f"feed {self.name} has neither payload nor changes")
        return [
            Change(
                row.id,
                getattr(row, self.community.key),
                self.changed_at(row),
                self.payload(row),
                feed=self.name,
                event=self.event,
                owner=getattr(row, self.owner.key) if self.owner is not None else None,
            )
            for row in rows
        ]

    def readable_by(self, role: UserRole) -> bool:
        return role in self.readers or role in self.owners


FEEDS: dict[str, Feed] = {}


def register(feed: Feed) -> Feed:
    """Make ``feed`` known to every broadcaster (the rooms call this when imported)."""
    FEEDS[feed.name] = feed
    return feed


# Streams ----------------------------------------------------------------------------------------


class TooManyStreams(Exception):
    """This process already serves as many streams of this kind as it may."""


@dataclass(eq=False)
class Subscriber:
    """One open stream: its feeds, the communities it may see (None: all), the feeds where it
    sees only the rows its account owns, any other test a change must pass (``keep``), the
    budget it counts against, and its queue."""

    feeds: frozenset[str]
    community_ids: frozenset[str] | None
    budget: str = PAGE_STREAMS
    user_id: str | None = None
    own_only: frozenset[str] = frozenset()
    keep: Callable[[Change], bool] | None = None
    changes: queue.Queue[Change] = field(default_factory=lambda: queue.Queue(QUEUE_SIZE))
    overflowed: bool = False
    # One stream of this budget per account: a newer one replaces it (``REPLACED``).
    one_per_account: bool = False

    def wants(self, change: Change) -> bool:
        if change.feed not in self.feeds:
            return False
        if self.community_ids is not None and change.community_id not in self.community_ids:
            return False
        if change.feed in self.own_only and (self.user_id is None or change.owner != self.user_id):
            return False
        return self.keep is None or self.keep(change)

    def offer(self, change: Change) -> None:
        try:
            self.changes.put_nowait(change)
        except queue.Full:
            self.overflowed = True


@dataclass
class _Cursor:
    """How far one feed has been read: the newest change seen and what was sent lately."""

    newest: datetime | None = None
    seen: dict[str, datetime] = field(default_factory=dict)  # row id -> newest state sent


class Broadcaster:
    """One per process: reads the feeds open streams want when they change, fans the changes
    out (told by PostgreSQL's notifications; polling SQLite every ``POLL_S``).

    ``feeds``: the feeds this broadcaster always polls when ``poll`` is called by hand (from
    the start of their tables); otherwise it polls the registered feeds its streams want.
    ``listen``: whether to wait for notifications (None: on PostgreSQL).
    """

    def __init__(
        self,
        app: Flask,
        feeds: Iterable[Feed] | None = None,
        *,
        poll_s: float = POLL_S,
        lookback_s: float = LOOKBACK_S,
        listen: bool | None = None,
        coalesce_s: float = COALESCE_S,
        safety_poll_s: float = SAFETY_POLL_S,
    ):
        self.app = app
        self.poll_s = poll_s
        self.lookback = timedelta(seconds=lookback_s)
        self.listen = listen
        self.coalesce_s = coalesce_s
        self.safety_poll_s = safety_poll_s
        self._own = {feed.name: feed for feed in feeds or ()}
        # Lock order: _lock (streams, thread), then _poll_lock (cursors), never the reverse.
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._subscribers: set[Subscriber] = set()
        self._cursors: dict[str, _Cursor] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._bell: _Bell | None = None  # wakes the listening thread (under _lock)
        self._listener: _Listener | None = None  # the listening thread's, while connected

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    @property
    def listening(self) -> bool:
        """Whether the thread is waiting for PostgreSQL's notifications right now."""
        return self._listener is not None

    def feed(self, name: str) -> Feed:
        return self._own.get(name) or FEEDS[name]

    def subscribe(self, subscriber: Subscriber, limit: int) -> None:
        """Start receiving changes from now on (the thread starts with the first stream);
        ``TooManyStreams`` when ``limit`` streams of the same budget are open."""
        for name in subscriber.feeds:
            self.feed(name)  # KeyError for a feed nobody registered
        with self._lock:
            if subscriber.one_per_account:
                _replace_own(self._subscribers, subscriber)
                self._count_streams()
            if sum(1 for s in self._subscribers if s.budget == subscriber.budget) >= limit:
                raise TooManyStreams
            with self._poll_lock:
                self._start_feeds(subscriber.feeds - self._cursors.keys())
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="live-broadcaster", daemon=True
                )
                self._thread.start()
            self._subscribers.add(subscriber)
            self._count_streams()

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber not in self._subscribers:
                return
            self._subscribers.discard(subscriber)
            self._count_streams()
            wanted = set(self._own).union(*(s.feeds for s in self._subscribers))
            with self._poll_lock:
                for name in set(self._cursors) - wanted:
                    del self._cursors[name]  # watched again later: started afresh
            if not self._subscribers and self._bell is not None:
                self._bell.ring()  # the listening thread ends now, not at its next poll

    def stop(self) -> None:
        """End the thread and forget every stream (tests, shutdown): streams still open get
        nothing more, and the next stream starts a fresh thread. Returns once the thread has
        let go of the database, so the caller may wipe or close it."""
        self._stop.set()
        with self._lock:
            self._subscribers.clear()
            self._count_streams()
            thread = self._thread
            if self._bell is not None:
                self._bell.ring()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
            if thread.is_alive():
                _LOGGER.warning("the live broadcaster did not stop within 5 s")
        with self._lock, self._poll_lock:
            self._cursors.clear()

    def _count_streams(self) -> None:
        """The open streams per budget, for ``/metrics`` (``gk_live_streams``); under _lock."""
        counts = collections.Counter(s.budget for s in self._subscribers)
        metrics.live_streams(counts, kinds=(PAGE_STREAMS,))

    def _start_feeds(self, names: Iterable[str]) -> None:
        """What is in these feeds' tables now is the past: mark it seen without sending it."""
        names = list(names)
        if not names:
            return
        with self.app.app_context():
            try:
                for name in names:
                    feed = self.feed(name)
                    cursor = _Cursor(newest=_newest(feed))
                    if cursor.newest is not None:
                        for row_id, changed_at in self._changed_rows(feed, cursor):
                            _remember(cursor, row_id, changed_at)
                    self._cursors[name] = cursor
            finally:
                db.session.remove()

    def _run(self) -> None:
        if self._listens():
            self._run_listening()
        else:
            self._run_polling()

    def _listens(self) -> bool:
        if self.listen is not None:
            return self.listen
        with self.app.app_context():
            return db.engine.dialect.name == "postgresql"

    def _finished(self) -> bool:
        """Whether the thread should end: stopped, or its last stream gone. Decided under the
        lock a new stream takes, so that it either finds this thread going on or none."""
        if self._stop.is_set():
            return True
        with self._lock:
            if self._subscribers:
                return False
            self._thread = None  # the next stream starts a fresh thread
            with self._poll_lock:
                for name in set(self._cursors) - set(self._own):
                    del self._cursors[name]
            return True

    def _run_polling(self) -> None:
        while not self._stop.wait(self.poll_s):
            if self._finished():
                return
            self._read()

    def _run_listening(self) -> None:
        """Wait for notifications; read what they name (see the module's docstring).

        The bell and the listener are this thread's own: a thread that is ending (its last
        stream gone) may still be closing them while the next stream starts a fresh thread
        with its own."""
        bell = _Bell()
        listener: _Listener | None = None
        with self._lock:
            self._bell = bell
        due: set[str] = set()  # feeds notified since their last read
        everything = False  # read every feed (started, reconnected, the safety poll)
        last_read = 0.0
        safety_at = time.monotonic() + self.safety_poll_s
        retry_at, pause = 0.0, RECONNECT_MIN_S
        try:
            while not self._finished():
                now = time.monotonic()
                if listener is None and now >= retry_at:
                    try:
                        listener = _Listener(self.app)
                    except (psycopg.Error, OSError) as error:
                        _LOGGER.warning(
                            "cannot listen for live changes (%s); polling every %.1f s, "
                            "trying again in %.1f s",
                            error,
                            self.poll_s,
                            pause,
                        )
                        retry_at, pause = now + pause, min(pause * 2, RECONNECT_MAX_S)
                    else:
                        self._listener = listener
                        pause = RECONNECT_MIN_S
                        everything = True  # what changed before it listened
                if listener is None:  # meanwhile, poll
                    self._read()
                    bell.wait(min(self.poll_s, max(0.0, retry_at - now)))
                    continue
                if now >= safety_at:
                    everything = True
                if everything or (due and now >= last_read + self.coalesce_s):
                    self._read(None if everything else due)
                    if everything:
                        safety_at = now + self.safety_poll_s
                    due, everything, last_read = set(), False, now
                    continue
                timeout = last_read + self.coalesce_s - now if due else safety_at - now
                try:
                    notified = listener.wait(bell, max(0.0, timeout))
                except Exception as error:  # psycopg's, the socket's (fd gone): lost
                    _LOGGER.warning("lost the live changes' listener (%s); reconnecting", error)
                    listener.close()
                    listener = None
                    self._listener = None
                    retry_at = time.monotonic()
                    continue
                due |= self._wanted(notified)
        finally:
            if listener is not None:
                listener.close()
            with self._lock:
                if self._listener is listener:
                    self._listener = None
                if self._bell is bell:
                    self._bell = None
            bell.close()

    def _wanted(self, notified: Iterable[tuple[str, str]]) -> set[str]:
        """The notified feeds that an open stream may want (its feed, its community)."""
        notified = set(notified)
        if not notified:
            return set()
        with self._lock:
            subscribers = list(self._subscribers)
        return {
            feed
            for feed, community_id in notified
            if feed in self._cursors
            and any(
                feed in s.feeds and (s.community_ids is None or community_id in s.community_ids)
                for s in subscribers
            )
        }

    def _read(self, names: Iterable[str] | None = None) -> None:
        """Poll ``names`` (None: every feed watched) and hand the changes to the streams."""
        try:
            changes = self.poll(names)
        except Exception:  # a database hiccup must not end the pages' updates for good
            _LOGGER.exception("reading the live feeds failed; trying again")
            return
        if changes:
            with self._lock:
                subscribers = list(self._subscribers)
            for change in changes:
                for subscriber in subscribers:
                    if subscriber.wants(change):
                        subscriber.offer(change)

    def poll(self, names: Iterable[str] | None = None) -> list[Change]:
        """The changes since the last poll of these feeds (None: every feed watched), each
        row's state once, oldest first."""
        with self._poll_lock:
            for name in self._own.keys() - self._cursors.keys():
                self._cursors[name] = _Cursor()  # polled by hand: from the table's start
            wanted = set(self._cursors) if names is None else set(names) & set(self._cursors)
            changes: list[Change] = []
            with self.app.app_context():
                try:
                    for name in sorted(wanted):
                        changes.extend(self._poll_feed(self.feed(name), self._cursors[name]))
                finally:
                    db.session.remove()
        changes.sort(key=lambda change: change.changed_at)
        return changes

    def _poll_feed(self, feed: Feed, cursor: _Cursor) -> list[Change]:
        fresh = [
            row_id
            for row_id, changed_at in self._changed_rows(feed, cursor)
            if cursor.seen.get(row_id) is None or cursor.seen[row_id] < changed_at
        ]
        if not fresh:
            _forget_old(cursor, self.lookback)
            return []
        key = feed.model.id  # type: ignore[attr-defined]
        rows = db.session.scalars(
            select(feed.model).where(key.in_(fresh)).order_by(feed.changed_at_column, key)
        ).all()
        changes = feed.build(rows)
        for change in changes:
            _remember(cursor, change.row_id, change.changed_at)
        _forget_old(cursor, self.lookback)
        return changes

    def _changed_rows(self, feed: Feed, cursor: _Cursor) -> Iterator[tuple[str, datetime]]:
        """(id, change time) of the rows changed since ``LOOKBACK_S`` before the newest change
        seen, in pages (only these two columns: most polls find nothing new)."""
        start = _EPOCH if cursor.newest is None else cursor.newest - self.lookback
        key = feed.model.id  # type: ignore[attr-defined]
        changed = feed.changed_at_column
        since, after_id = start, ""
        while True:
            statement = select(key, changed).where(feed.after(start))
            if after_id:
                statement = statement.where(
                    or_(changed > since, and_(changed == since, key > after_id))
                )
            page = db.session.execute(statement.order_by(changed, key).limit(PAGE)).all()
            yield from ((row_id, changed_at) for row_id, changed_at in page)
            if len(page) < PAGE:
                return
            since, after_id = page[-1][1], page[-1][0]


class _Bell:
    """Wakes the listening thread from another thread (a socket pair: ``select`` waits on it
    and on the listener's socket at once, under gevent too)."""

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def fileno(self) -> int:
        return self._reader.fileno()

    def ring(self) -> None:
        with contextlib.suppress(OSError):  # full (it rang already), or closed (thread ended)
            self._writer.send(b"x")

    def silence(self) -> None:
        with contextlib.suppress(OSError):  # nothing more to read
            while self._reader.recv(512):
                pass

    def wait(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, less when rung."""
        readable, _, _ = select_module.select([self], [], [], timeout)
        if readable:
            self.silence()

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


_NOTIFICATION = re.compile(r"^([a-z_]{1,40}):([A-Za-z0-9_]{1,64})$")


class _Listener:
    """A connection of its own that listens on ``CHANNEL`` (psycopg, autocommit: it never
    holds a transaction open), on the app's database."""

    def __init__(self, app: Flask):
        with app.app_context():
            url = db.engine.url.set(drivername="postgresql")
        self.connection = psycopg.connect(
            url.render_as_string(hide_password=False),
            autocommit=True,
            application_name=LISTENER_NAME,
            connect_timeout=5,
            # A peer that vanished without a word (a network cut) is noticed within a minute.
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
        try:
            self.connection.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            self.connection.close()
            raise

    def wait(self, bell: _Bell, timeout: float) -> list[tuple[str, str]]:
        """The (feed, community id) of the notifications that arrive within ``timeout``
        seconds (empty when none did, or the bell rang); psycopg's errors when the connection
        is lost."""
        if self.connection.closed or self.connection.broken:
            raise psycopg.OperationalError("the listener's connection is closed")
        socket_fd = self.connection.fileno()
        readable, _, _ = select_module.select([socket_fd, bell], [], [], timeout)
        if bell in readable:
            bell.silence()
        if socket_fd not in readable:
            return []
        found = []
        for notification in self.connection.notifies(timeout=0):
            match = _NOTIFICATION.match(notification.payload)
            if match:
                found.append((match[1], match[2]))
        return found

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):  # already gone
            self.connection.close()


def _newest(feed: Feed) -> datetime | None:
    """The newest change time in the feed's table (each column's own index)."""
    values = [db.session.scalar(select(func.max(column))) for column in feed.changed]
    present = [value for value in values if value is not None]
    return max(present) if present else None


def _remember(cursor: _Cursor, row_id: str, changed_at: datetime) -> None:
    cursor.seen[row_id] = changed_at
    if cursor.newest is None or changed_at > cursor.newest:
        cursor.newest = changed_at


def _forget_old(cursor: _Cursor, lookback: timedelta) -> None:
    if cursor.newest is None:
        return
    horizon = cursor.newest - lookback
    cursor.seen = {key: at for key, at in cursor.seen.items() if at >= horizon}


def broadcaster(app: Flask | None = None) -> Broadcaster:
    """This process's broadcaster (made on first use; its thread starts with a stream)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    existing = app.extensions.get(_EXTENSION)
    if existing is None:
        existing = app.extensions.setdefault(_EXTENSION, Broadcaster(app))
    return existing


def stop_broadcaster(app: Flask) -> None:
    """Stop this app's poller, if it ever started one (tests, before they wipe the data)."""
    existing = app.extensions.get(_EXTENSION)
    if existing is not None:
        existing.stop()


# Where pages open their streams -----------------------------------------------------------------

_HOST_NAME = re.compile(r"^[A-Za-z0-9.-]{1,253}$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]{2,45}$")


def stream_origin() -> str | None:
    """The origin of the stream process for this request's page, when it is on another port
    of the same host (``STREAM_PORT``, ``make run``): ``<scheme>://<this host>:<port>``; None
    when streams are on the page's own origin (a proxy routes them, or this process serves
    them), or when the request's host is no plain host name or address."""
    port = current_app.config["SETTINGS"].stream_port
    if port is None:
        return None
    host = urlsplit(f"//{request.host}").hostname or ""
    if _HOST_NAME.match(host):
        return f"{request.scheme}://{host}:{port}"
    if _IPV6.match(host):
        return f"{request.scheme}://[{host}]:{port}"
    return None


# Pages' streams ---------------------------------------------------------------------------------


def page_feeds(scope: Scope, names: Iterable[str]) -> list[Feed]:
    """The page feeds ``names`` asks for; ``Invalid`` for a name that is no page feed,
    ``NotFound`` for one this caller's role does not read (an officer's, a resident's)."""
    feeds = []
    for name in names:
        feed = FEEDS.get(name)
        if feed is None or not (feed.readers or feed.owners):
            raise Invalid(_l("No live feed called '%(name)s'.", name=name))
        if not feed.readable_by(scope.role):
            raise NotFound(_l("No such page."))
        feeds.append(feed)
    if not feeds:
        raise Invalid(_l("Name the live feeds to follow."))
    return feeds


def offers(scope: Scope, *names: str) -> bool:
    """Whether this caller may follow all of these feeds (a page shows its live state then)."""
    return all(name in FEEDS and FEEDS[name].readable_by(scope.role) for name in names)


def page_subscriber(scope: Scope, names: Iterable[str], community_id: str) -> Subscriber:
    """A page's stream of these feeds in one community the caller sees (else 404): every row
    of a feed the caller's role reads, only their own rows of a feed their role owns."""
    feeds = page_feeds(scope, names)
    community = scope.get(Community, community_id)
    return Subscriber(
        feeds=frozenset(feed.name for feed in feeds),
        community_ids=frozenset({community.id}),
        budget=PAGE_STREAMS,
        user_id=scope.user.id,
        own_only=frozenset(feed.name for feed in feeds if scope.role not in feed.readers),
    )


def resume(subscriber: Subscriber, since: datetime) -> list[Change]:
    """What a reconnecting page missed: the current state of its rows changed after ``since``
    (its feeds, communities and own rows), oldest first, at most ``RESUME_LIMIT``."""
    changes: list[Change] = []
    for name in sorted(subscriber.feeds):
        feed = FEEDS[name]
        statement = select(feed.model).where(feed.after(since))
        if subscriber.community_ids is not None:
            statement = statement.where(feed.community.in_(subscriber.community_ids))
        if name in subscriber.own_only:
            if feed.owner is None or subscriber.user_id is None:
                continue
            statement = statement.where(feed.owner == subscriber.user_id)
        key = feed.model.id  # type: ignore[attr-defined]
        rows = db.session.scalars(
            statement.order_by(feed.changed_at_column, key).limit(RESUME_LIMIT)
        ).all()
        changes.extend(change for change in feed.build(rows) if subscriber.wants(change))
    changes.sort(key=lambda change: change.changed_at)
    return changes[:RESUME_LIMIT]


def respond(
    hub: Broadcaster,
    subscriber: Subscriber,
    limit: int,
    missed: Callable[[datetime], list[Change]],
    *,
    heartbeat_s: float = HEARTBEAT_S,
    max_s: float = STREAM_MAX_S,
) -> Response:
    """The SSE response of one stream: subscribed, with what the client missed since its
    ``Last-Event-ID`` (``missed``); 503 with ``Retry-After`` when the budget is spent."""
    # No pooled connection held while waiting for the broadcaster's locks: their holder may
    # need one (a feed's start, a read), and many streams opening at once (the stream
    # process) would hold the whole pool waiting for it. What was loaded stays, expired.
    db.session.rollback()
    try:
        hub.subscribe(subscriber, limit)
    except TooManyStreams:
        return problem(503, BUSY, headers={"Retry-After": "10"})
    try:
        since = parse_event_id(
            request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
        )
        resumed = missed(since) if since else []
    except BaseException:
        hub.unsubscribe(subscriber)
        raise
    db.session.remove()  # the stream needs no database: give the connection back now
    body = event_stream(hub, subscriber, resumed, heartbeat_s=heartbeat_s, max_s=max_s)
    # A response closed before its first chunk never runs the generator's cleanup.
    closing = ClosingIterator(body, [lambda: hub.unsubscribe(subscriber)])
    return Response(
        closing,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def event_stream(
    hub: Broadcaster,
    subscriber: Subscriber,
    resumed: list[Change],
    *,
    heartbeat_s: float = HEARTBEAT_S,
    max_s: float = STREAM_MAX_S,
) -> Iterator[bytes]:
    """The body of one SSE response; unsubscribes when it ends or the client goes away."""
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
        sent: dict[str, datetime] = {}
        for change in resumed:
            sent[change.row_id] = change.changed_at
            yield change.frame()
        deadline = time.monotonic() + max_s
        while not subscriber.overflowed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                change = subscriber.changes.get(timeout=min(heartbeat_s, remaining))
            except queue.Empty:
                yield b": keepalive\n\n"
                continue
            if change is REPLACED:
                yield REPLACED.frame()  # the page stops following, and does not reconnect
                return
            if change.row_id in sent and sent[change.row_id] >= change.changed_at:
                continue  # already sent while resuming
            yield change.frame()
    finally:
        hub.unsubscribe(subscriber)


# One stream per account ------------------------------------------------------------------------

# What a stream of a ``one_per_account`` subscriber receives when a newer stream of the same
# account and budget replaced it (a page left behind, another tab): its last message,
# ``event: replaced``, after which the stream ends.
REPLACED = Change(
    row_id="replaced", community_id="", changed_at=_EPOCH, payload={}, event="replaced"
)


def _replace_own(subscribers: set[Subscriber], newer: Subscriber) -> None:
    """Take the streams ``newer`` replaces out of ``subscribers`` and end them (under the
    broadcaster's lock)."""
    for older in [
        s
        for s in subscribers
        if s.one_per_account
        and s.budget == newer.budget
        and newer.user_id is not None
        and s.user_id == newer.user_id
    ]:
        subscribers.discard(older)
        try:
            older.changes.put_nowait(REPLACED)
        except queue.Full:
            older.overflowed = True
