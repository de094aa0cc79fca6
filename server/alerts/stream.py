"""The officers' live console: alerts as Server-Sent Events, from whichever process raised them.

Alerts are raised in web processes (verification) and in the worker (MQTT ingest, scheduled
jobs), so a stream cannot wait for an in-process signal. Instead each web process runs one
``AlertBroadcaster`` thread, started by the first stream and ended when the last one
closes. Every ``POLL_S`` it reads the alerts whose ``updated_at`` moved (one short query on a
pooled connection, given back at once) and hands each change to the queues of the streams
whose caller may see that community. A stream thread waits on its own queue and holds no
database connection; it writes a comment every ``HEARTBEAT_S`` so that a client that went
away is noticed (the write fails, the generator is closed, the subscriber removed) and
ends after ``STREAM_MAX_S`` (the browser's ``EventSource`` reconnects by itself, with
``Last-Event-ID``, and the caller's rights are checked again).

A change can be committed a little after its ``updated_at`` was taken (a long transaction,
clocks of two hosts): each poll looks ``LOOKBACK_S`` behind the newest change it has seen and
skips what it already sent, so such a change is late, not lost.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import ColumnElement, and_, func, or_, select

from server.alerts.channels import DeliveryReason, alert_payload
from server.extensions import db
from server.models import Alert, AlertHistory

_LOGGER = logging.getLogger(__name__)

POLL_S = 0.2
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
# Each open stream holds one of gunicorn's threads; keep some for everything else.
STREAMS_PER_PROCESS = 4
_EXTENSION = "alert_broadcaster"


@dataclass(frozen=True)
class AlertChange:
    """One state of one alert, as the console receives it."""

    alert_id: str
    community_id: str
    updated_at: datetime
    payload: dict[str, Any]

    @property
    def event_id(self) -> str:
        """The SSE ``id``: the change's time in microseconds and the alert (resumable)."""
        return f"{_micros(self.updated_at)}.{self.alert_id}"

    def frame(self) -> bytes:
        data = json.dumps(self.payload, ensure_ascii=False, separators=(",", ":"))
        return f"id: {self.event_id}\nevent: alert\ndata: {data}\n\n".encode()


def _micros(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000 + value.microsecond


def parse_event_id(value: str | None) -> datetime | None:
    """The time in an SSE id this module wrote, or None for anything else."""
    micros, dot, _alert = (value or "").partition(".")
    if not dot or not micros.isdigit() or len(micros) > 18:
        return None
    try:
        return datetime.fromtimestamp(int(micros) // 1_000_000, UTC).replace(
            microsecond=int(micros) % 1_000_000
        )
    except (OverflowError, OSError, ValueError):
        return None


class TooManyStreams(Exception):
    """This process already serves ``STREAMS_PER_PROCESS`` streams."""


@dataclass(eq=False)
class Subscriber:
    """One open stream: the communities it may see (None: all), the alert types it may
    not (staff: the police's), and its queue."""

    community_ids: frozenset[str] | None
    hidden_types: frozenset[str] = frozenset()
    changes: queue.Queue[AlertChange] = field(default_factory=lambda: queue.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def wants(self, change: AlertChange) -> bool:
        if change.payload.get("type") in self.hidden_types:
            return False
        return self.community_ids is None or change.community_id in self.community_ids

    def offer(self, change: AlertChange) -> None:
        try:
            self.changes.put_nowait(change)
        except queue.Full:
            self.overflowed = True


class AlertBroadcaster:
    """One per process: polls the alerts table while streams are open, fans changes out."""

    def __init__(self, app: Flask, *, poll_s: float = POLL_S, lookback_s: float = LOOKBACK_S):
        self.app = app
        self.poll_s = poll_s
        self.lookback = timedelta(seconds=lookback_s)
        self._lock = threading.Lock()
        self._subscribers: set[Subscriber] = set()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._seen: dict[str, datetime] = {}  # alert id -> the newest state handed out
        self._newest: datetime | None = None

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def subscribe(self, subscriber: Subscriber, limit: int = STREAMS_PER_PROCESS) -> None:
        """Start receiving changes from now on (the poller starts with the first stream)."""
        with self._lock:
            if len(self._subscribers) >= limit:
                raise TooManyStreams
            if self._thread is None or not self._thread.is_alive():
                self._start_locked()
            self._subscribers.add(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)

    def stop(self) -> None:
        """End the poller and forget every stream (tests, shutdown): streams still open get
        nothing more, and the next stream starts a fresh poller. Returns once the poller has
        let go of the database, so the caller may wipe or close it."""
        self._stop.set()
        with self._lock:
            self._subscribers.clear()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
            if thread.is_alive():
                _LOGGER.warning("the alert poller did not stop within 5 s")

    def _start_locked(self) -> None:
        # What is in the table now is the past: mark it seen without sending it.
        with self.app.app_context():
            try:
                self._newest = db.session.scalar(select(func.max(Alert.updated_at)))
                self._seen = {}
                if self._newest is not None:
                    for alert_id, updated_at in self._changed_rows():
                        self._remember(alert_id, updated_at)
            finally:
                db.session.remove()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="alert-broadcaster", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            with self._lock:
                if not self._subscribers:
                    self._thread = None  # the next stream starts a fresh poller
                    return
            try:
                changes = self.poll()
            except Exception:  # a database hiccup must not end the console for good
                _LOGGER.exception("polling alerts failed; trying again")
                continue
            if changes:
                with self._lock:
                    subscribers = list(self._subscribers)
                for change in changes:
                    for subscriber in subscribers:
                        if subscriber.wants(change):
                            subscriber.offer(change)

    def poll(self) -> list[AlertChange]:
        """The changes since the last poll (each alert state once)."""
        with self.app.app_context():
            try:
                fresh = [
                    alert_id
                    for alert_id, updated_at in self._changed_rows()
                    if self._seen.get(alert_id) is None or self._seen[alert_id] < updated_at
                ]
                rows = (
                    db.session.scalars(
                        select(Alert).where(Alert.id.in_(fresh)).order_by(Alert.updated_at)
                    ).all()
                    if fresh
                    else []
                )
                changes = changes_of(rows)
            finally:
                db.session.remove()
        for change in changes:
            self._remember(change.alert_id, change.updated_at)
        self._forget_old()
        return changes

    def _changed_rows(self) -> Iterator[tuple[str, datetime]]:
        """(id, updated_at) of the alerts changed since ``LOOKBACK_S`` before the newest change
        seen, in pages (only these two columns: most polls find nothing new)."""
        if self._newest is None:
            since, after_id = datetime(1970, 1, 1, tzinfo=UTC), ""
        else:
            since, after_id = self._newest - self.lookback, ""
        while True:
            page = db.session.execute(
                select(Alert.id, Alert.updated_at)
                .where(_after(since, after_id))
                .order_by(Alert.updated_at, Alert.id)
                .limit(PAGE)
            ).all()
            yield from ((alert_id, updated_at) for alert_id, updated_at in page)
            if len(page) < PAGE:
                return
            since, after_id = page[-1].updated_at, page[-1].id

    def _remember(self, alert_id: str, updated_at: datetime) -> None:
        self._seen[alert_id] = updated_at
        if self._newest is None or updated_at > self._newest:
            self._newest = updated_at

    def _forget_old(self) -> None:
        if self._newest is None:
            return
        horizon = self._newest - self.lookback
        self._seen = {key: at for key, at in self._seen.items() if at >= horizon}


def _after(since: datetime, after_id: str) -> ColumnElement[bool]:
    """Rows after ``(since, after_id)`` in (updated_at, id) order; a plain range on the first
    page."""
    if not after_id:
        return Alert.updated_at > since
    return or_(Alert.updated_at > since, and_(Alert.updated_at == since, Alert.id > after_id))


def changes_of(alerts: Iterable[Alert]) -> list[AlertChange]:
    """Console payloads of these alert states, with why each changed (from their history)."""
    alerts = list(alerts)
    if not alerts:
        return []
    steps = db.session.execute(
        select(AlertHistory.alert_id, AlertHistory.at, AlertHistory.action).where(
            AlertHistory.alert_id.in_([a.id for a in alerts]),
            AlertHistory.at >= min(a.updated_at for a in alerts),
        )
    ).all()
    actions = {(alert_id, at): action for alert_id, at, action in steps}
    changes = []
    for alert in alerts:
        # A step written with the change carries its time; an update has no step.
        reason = actions.get((alert.id, alert.updated_at), DeliveryReason.UPDATED.value)
        changes.append(
            AlertChange(
                alert.id, alert.community_id, alert.updated_at, alert_payload(alert, reason)
            )
        )
    return changes


def broadcaster(app: Flask | None = None) -> AlertBroadcaster:
    """This process's broadcaster (made on first use; its thread starts with a stream)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    existing = app.extensions.get(_EXTENSION)
    if existing is None:
        existing = app.extensions.setdefault(_EXTENSION, AlertBroadcaster(app))
    return existing


def stop_broadcaster(app: Flask) -> None:
    """Stop this app's poller, if it ever started one (tests, before they wipe the data)."""
    existing = app.extensions.get(_EXTENSION)
    if existing is not None:
        existing.stop()


def resume_changes(visible: ColumnElement[bool], since: datetime) -> list[AlertChange]:
    """What a reconnecting client missed: the current state of alerts changed after ``since``."""
    rows = db.session.scalars(
        select(Alert)
        .where(visible, Alert.updated_at > since)
        .order_by(Alert.updated_at, Alert.id)
        .limit(RESUME_LIMIT)
    ).all()
    return changes_of(rows)


def event_stream(
    hub: AlertBroadcaster,
    subscriber: Subscriber,
    resume: list[AlertChange],
    *,
    heartbeat_s: float = HEARTBEAT_S,
    max_s: float = STREAM_MAX_S,
) -> Iterator[bytes]:
    """The body of one SSE response; unsubscribes when it ends or the client goes away."""
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
        sent: dict[str, datetime] = {}
        for change in resume:
            sent[change.alert_id] = change.updated_at
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
            if change.alert_id in sent and sent[change.alert_id] >= change.updated_at:
                continue  # already sent while resuming
            yield change.frame()
    finally:
        hub.unsubscribe(subscriber)
