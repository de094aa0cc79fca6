"""MQTT publishing from the server: messages leave only after the database commit.

Services queue messages on the SQLAlchemy session (``queue_message``); when the
session commits, they are handed to the process's MQTT client; when it rolls back
they are dropped. So a door never opens for an event that was not stored.

Each process has one lazily started client (``publisher``): web workers start it on
their first publish; the worker process installs its own bus (``use_bus``). Either way the
client's connection and the messages the broker has not acknowledged yet are counted for
``/metrics`` (``gk_mqtt_connected``, ``gk_mqtt_unacknowledged``, client ``web`` or ``worker``).

What a PUBACK records (``when_acked``: a command ``sent``, an alert delivery taken by the
broker) is written by one thread per process, all that came within ``ACK_FLUSH_S`` in one
transaction, the records of one kind in one ``executemany``: a door's grant costs one write
transaction, not two, and a busy door's PUBACKs one statement each ``ACK_FLUSH_S``.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Executable, event
from sqlalchemy.orm import Session

from hardware.bus import BrokerAddress, MqttBus
from server.core import metrics
from server.models import utcnow

_LOGGER = logging.getLogger(__name__)
# Web processes' MQTT client ids start so (no broker account may be named so: broker_sync).
WEB_CLIENT_PREFIX = "gatekeeper-web-"
_OUTBOX = "mqtt_outbox"
_ACK_WRITER = "mqtt_ack_writer"
# A PUBACK's record waits at most this long for others to share its transaction.
ACK_FLUSH_S = 0.2
_lock = threading.Lock()
# A PUBACK's record: the UPDATE and its parameters.
_Record = tuple[Executable, dict[str, Any]]


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to publish (QoS 1); ``on_acked`` runs once the broker acknowledged it
    (PUBACK), on the client's network thread."""

    topic: str
    payload: bytes
    expiry_s: int | None = None
    retain: bool = False
    on_acked: Callable[[], None] | None = field(default=None, compare=False, repr=False)


class Publisher:
    """Owns one MQTT client for this process and publishes outgoing messages (QoS 1)."""

    def __init__(self, bus: MqttBus, *, owned: bool, client: str = "web"):
        self.bus = bus
        self._owned = owned
        self.client = client
        _watch(bus, client)

    def publish(self, message: OutgoingMessage) -> None:
        self.bus.publish(
            message.topic,
            message.payload,
            qos=1,
            retain=message.retain,
            expiry_s=message.expiry_s,
            on_acked=metrics.after(message.on_acked, self._count_unacknowledged),
        )
        self._count_unacknowledged()

    def _count_unacknowledged(self) -> None:
        metrics.mqtt_state(self.client, unacknowledged=self.bus.unacknowledged)

    def stop(self) -> None:
        if self._owned:
            self.bus.stop()


def publisher(app: Flask | None = None) -> Publisher:
    """This process's publisher, started on first use (never at import or app creation)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    existing = app.extensions.get("mqtt_publisher")
    if existing is not None:
        return existing
    with _lock:
        existing = app.extensions.get("mqtt_publisher")
        if existing is None:
            settings = app.config["SETTINGS"]
            client_id = f"{WEB_CLIENT_PREFIX}{socket.gethostname()}-{os.getpid()}"
            bus = MqttBus(BrokerAddress.from_url(settings.mqtt_url), client_id=client_id)
            existing = app.extensions["mqtt_publisher"] = Publisher(bus, owned=True)
            bus.start()  # after Publisher watches it: no connection goes uncounted
        return existing


def use_bus(app: Flask, bus: MqttBus) -> None:
    """Publish through ``bus`` (the worker's own connection) instead of a client of our own."""
    app.extensions["mqtt_publisher"] = Publisher(bus, owned=False, client="worker")


def _watch(bus: MqttBus, client: str) -> None:
    """Keep ``gk_mqtt_connected`` and ``gk_mqtt_unacknowledged`` of ``client`` in step."""

    def connected() -> None:
        metrics.mqtt_state(client, connected=True, unacknowledged=bus.unacknowledged)

    def disconnected() -> None:
        metrics.mqtt_state(client, connected=False, unacknowledged=bus.unacknowledged)

    bus.add_connect_hook(connected)
    bus.add_disconnect_hook(disconnected)
    metrics.mqtt_state(client, connected=bus.connected, unacknowledged=bus.unacknowledged)


def when_acked(statement: Executable, **params: Any) -> Callable[[], None]:
    """An ``on_acked`` callback that records that the broker took the message: ``statement``
    (a Core UPDATE with bind parameters, built once) is run with ``params`` and ``acked_at``,
    the time the PUBACK came, by this process's ack writer within ``ACK_FLUSH_S``, in one
    transaction with the others then, and in one ``executemany`` with the others of the same
    statement.

    Write the statement so that it changes only rows still waiting for the broker: the
    PUBACK may come after the row moved on (a device answered, a job expired it)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def record() -> None:
        _ack_writer(app).add(statement, {**params, "acked_at": utcnow()})

    return record


def flush_acks(app: Flask) -> int:
    """Write the PUBACK records waiting now (tests, and a process on its way out); how many."""
    writer = app.extensions.get(_ACK_WRITER)
    return writer.flush() if writer is not None else 0


def _flush_at_exit(writer: weakref.ref[_AckWriter]) -> None:
    alive = writer()
    if alive is not None:
        alive.flush()


def _ack_writer(app: Flask) -> _AckWriter:
    writer = app.extensions.get(_ACK_WRITER)
    if writer is None:
        with _lock:
            writer = app.extensions.get(_ACK_WRITER)
            if writer is None:
                writer = app.extensions[_ACK_WRITER] = _AckWriter(app)
    return writer


class _AckWriter:
    """PUBACK records of one app, written together by a thread of their own.

    The thread sleeps while nothing waits; the first record wakes it, it lets the records of
    the next ``ACK_FLUSH_S`` join, and writes them in one transaction (each alone when that
    transaction fails, so one bad statement loses no other). After ``_IDLE_S`` without a
    record the thread ends (the next record starts another). Records still waiting when the
    process exits are written then."""

    _IDLE_S = 60.0

    def __init__(self, app: Flask) -> None:
        self._app = app
        self._pending: list[_Record] = []
        self._ready = threading.Condition()
        self._writing = threading.Lock()  # one flush at a time: records stay in order
        self._pid: int | None = None
        self._thread: threading.Thread | None = None

    def add(self, statement: Executable, params: dict[str, Any]) -> None:
        with self._ready:
            if self._pid != os.getpid():  # first use in this process (or a forked child)
                self._pending.clear()
                self._pid, self._thread = os.getpid(), None
                atexit.register(_flush_at_exit, weakref.ref(self))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="mqtt-ack-writer", daemon=True
                )
                self._thread.start()
            self._pending.append((statement, params))
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                if not self._ready.wait_for(lambda: bool(self._pending), timeout=self._IDLE_S):
                    self._thread = None  # idle: ends; add() starts another
                    return
            time.sleep(ACK_FLUSH_S)  # the records of the next moment share the transaction
            self.flush()

    def flush(self) -> int:
        with self._writing:
            with self._ready:
                batch, self._pending = self._pending, []
            if batch:
                with self._app.app_context():
                    self._write(batch)
            return len(batch)

    def _write(self, batch: list[_Record]) -> None:
        from server.extensions import db

        try:
            # Runs of one statement: one executemany each, in the order the PUBACKs came.
            for statement, records in groupby(batch, key=lambda record: record[0]):
                db.session.execute(statement, [params for _statement, params in records])
            db.session.commit()
        except Exception:
            db.session.rollback()
            _LOGGER.warning("%d PUBACK records failed together; writing each alone", len(batch))
            for statement, params in batch:
                try:
                    db.session.execute(statement, params)
                    db.session.commit()
                except Exception:
                    db.session.rollback()
                    _LOGGER.exception("a PUBACK record could not be written")
        finally:
            db.session.remove()


def queue_message(session: Session, message: OutgoingMessage) -> None:
    """Publish ``message`` once ``session`` commits; forget it if it rolls back."""
    session.info.setdefault(_OUTBOX, []).append(message)


def _flush_outbox(session: Session) -> None:
    messages = session.info.pop(_OUTBOX, None)
    if not messages:
        return
    sender = publisher()
    for message in messages:
        sender.publish(message)


def _drop_outbox(session: Session) -> None:
    session.info.pop(_OUTBOX, None)


def init_app(app: Flask) -> None:
    """Hook the outbox to every session's commit and rollback (once per process)."""
    if not event.contains(Session, "after_commit", _flush_outbox):
        event.listen(Session, "after_commit", _flush_outbox)
        event.listen(Session, "after_rollback", _drop_outbox)
