"""Heartbeats without a transaction each: devices' last-seen kept in memory, written once a second.

A heartbeat only says "still here". When the worker knows its device is online (it wrote
the device's row itself, or took one of its heartbeats, within the last ``fresh``), the
heartbeat changes nothing anyone must see at once: ``PresenceBuffer.offer`` keeps its
receive time and ``ts`` in memory, and ``flush`` writes every device's in ONE statement
(``UPDATE ... FROM unnest(...)`` on PostgreSQL, one ``executemany`` on SQLite), with the
same conditions as ``server.worker.ingest.record_presence``: ``last_seen_at`` only moves
forward and ``online`` changes only for a newer message, so a late write is still right
whatever another worker stored meanwhile. The worker's pump flushes at most a second after
the oldest pending heartbeat, and on stop.

Everything else keeps its immediate path: a device this worker does not know, or knows as
offline, or last saw longer than ``fresh`` ago, has its heartbeat applied in the batch's
transaction, so a device coming back is online at once. ``fresh`` is the silence after which
``detect_offline`` marks a device offline, less ``PRESENCE_LAG``: the silence job looks at
``now - PRESENCE_LAG`` (``Worker.detect_offline_devices``), so a last-seen written up to that
late never makes a device that kept beating look silent.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import (
    ColumnElement,
    bindparam,
    case,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from server.extensions import db
from server.models import Device, utcnow

_LOGGER = logging.getLogger(__name__)

# Pending last-seen are written at most this long after the oldest of them was taken.
PRESENCE_FLUSH_S = 1.0
# How late the silence job may find a last-seen (the flush, plus a batch before it, plus
# headroom for a slow database): it judges silence as of this long ago.
PRESENCE_LAG = timedelta(seconds=5)


@dataclass
class _Known:
    """What this worker last knew of a device: its community, whether it was online, and
    the latest receive time it applied (written, or pending)."""

    community_id: str
    online: bool
    seen_at: datetime


@dataclass
class Seen:
    """What some messages of one device say: online as of ``at``, seen at ``seen_at``."""

    community_id: str
    at: datetime  # the latest ``sent_at`` of its heartbeats
    seen_at: datetime  # the latest receive time
    heartbeats: int


class PresenceBuffer:
    """The worker's in-memory heartbeats; used by one thread (the pump's)."""

    def __init__(self, app: Flask, fresh: timedelta):
        self.app = app
        self.fresh = fresh
        self.stats: Counter[str] = Counter()  # what flushes wrote, for the ingest's counts
        self.kept = 0  # heartbeats taken into memory, in all
        self._known: dict[str, _Known] = {}
        self._pending: dict[str, Seen] = {}

    @property
    def pending(self) -> int:
        """Devices whose last-seen waits for the next flush."""
        return len(self._pending)

    def learn(
        self, device_id: str, community_id: str, *, online: bool | None, seen_at: datetime | None
    ) -> None:
        """The device's row as this worker just committed it (``online`` None: no row)."""
        if online is None:
            self._known.pop(device_id, None)
            return
        known = self._known.get(device_id)
        if seen_at is None:  # a goodbye: not seen, only the state
            seen_at = known.seen_at if known is not None else None
        if seen_at is None:
            self._known.pop(device_id, None)
            return
        self._known[device_id] = _Known(community_id, online, seen_at)

    def forget(self, device_id: str) -> None:
        """What this worker knew of the device may be stale: its next heartbeat is written."""
        self._known.pop(device_id, None)

    def offer(self, device_id: str, community_id: str, at: datetime, received_at: datetime) -> bool:
        """Take a heartbeat into memory if its device is known online and was seen within
        ``fresh``; False: apply it now."""
        known = self._known.get(device_id)
        if (
            known is None
            or not known.online
            or known.community_id != community_id
            or received_at - known.seen_at >= self.fresh
        ):
            return False
        known.seen_at = max(known.seen_at, received_at)
        self.kept += 1
        pending = self._pending.get(device_id)
        if pending is None:
            self._pending[device_id] = Seen(community_id, at, received_at, 1)
        else:
            pending.at = max(pending.at, at)
            pending.seen_at = max(pending.seen_at, received_at)
            pending.heartbeats += 1
        return True

    def flush(self) -> int:
        """Write every pending last-seen in one statement; the number of devices written.

        A device that is gone, disabled or moved since is left alone (counted as
        ``unknown_device``) and forgotten. If the database fails, the pending stay for the
        next flush and nothing is known any more (every next heartbeat goes the long way).
        """
        if not self._pending:
            return 0
        pending, self._pending = self._pending, {}
        try:
            with self.app.app_context():
                try:
                    written = write_seen(pending)
                    db.session.commit()
                finally:
                    db.session.remove()
        except SQLAlchemyError as error:
            _LOGGER.warning(
                "last-seen of %d device(s) not written (%s); tried again at the next flush",
                len(pending),
                error.__class__.__name__,
            )
            for device_id, entry in pending.items():
                later = self._pending.get(device_id)
                if later is not None:
                    entry.at = max(entry.at, later.at)
                    entry.seen_at = max(entry.seen_at, later.seen_at)
                    entry.heartbeats += later.heartbeats
                self._pending[device_id] = entry
            self._known.clear()
            return 0
        for device_id, entry in pending.items():
            if device_id not in written:
                self._known.pop(device_id, None)
                self.stats["unknown_device"] += entry.heartbeats
                continue
            self.stats["heartbeat"] += entry.heartbeats
            online = written[device_id]
            known = self._known.get(device_id)
            if known is not None and online is not None:
                known.online = online
        return len(written)


def write_seen(entries: dict[str, Seen], *, know_online: bool = False) -> dict[str, bool | None]:
    """Each device's presence as ``record_presence`` writes it (online as of ``at`` if newer,
    ``last_seen_at`` moved forward), all in one statement, in the session's transaction;
    only where the device is still enabled and of that community. Returns the devices
    written, with their ``online`` where the database says it at no cost (PostgreSQL), or
    ``know_online`` asks for it (one more query on SQLite); else None."""
    if not entries:
        return {}
    if db.engine.dialect.name == "postgresql":
        return _write_from_values(entries)
    written = _write_many(entries)
    if know_online and written:
        table = Device.__table__
        rows = db.session.execute(
            select(table.c.id, table.c.online).where(table.c.id.in_(list(written)))
        )
        for device_id, online in rows:
            written[device_id] = online
    return written


def _newer(stored: ColumnElement[datetime], at: ColumnElement[datetime]) -> ColumnElement[bool]:
    return or_(stored.is_(None), stored < at)


# PostgreSQL: every pending presence in one statement of constant text (prepared once), with
# the conditions of ``record_presence``; it says each written device's ``online``.
_UPDATE_FROM_ARRAYS = text(
    "UPDATE devices SET "
    "online = CASE WHEN devices.last_status_at IS NULL OR devices.last_status_at < seen.at "
    "THEN true ELSE devices.online END, "
    "last_status_at = CASE WHEN devices.last_status_at IS NULL "
    "OR devices.last_status_at < seen.at THEN seen.at ELSE devices.last_status_at END, "
    "last_seen_at = CASE WHEN devices.last_seen_at IS NULL "
    "OR devices.last_seen_at < seen.seen_at THEN seen.seen_at ELSE devices.last_seen_at END, "
    "updated_at = CAST(:now AS timestamptz) "
    "FROM unnest(CAST(:id AS varchar[]), CAST(:community_id AS varchar[]), "
    "CAST(:at AS timestamptz[]), CAST(:seen_at AS timestamptz[])) "
    "AS seen (id, community_id, at, seen_at) "
    "WHERE devices.id = seen.id AND devices.community_id = seen.community_id "
    "AND devices.disabled_at IS NULL "
    "RETURNING devices.id, devices.online"
)


def _write_from_values(pending: dict[str, Seen]) -> dict[str, bool | None]:
    """PostgreSQL: one ``UPDATE devices ... FROM unnest(...)``; each device's ``online``."""
    entries = list(pending.items())
    rows = db.session.execute(
        _UPDATE_FROM_ARRAYS,
        {
            "now": utcnow(),
            "id": [device_id for device_id, _seen in entries],
            "community_id": [seen.community_id for _id, seen in entries],
            "at": [seen.at.astimezone(UTC) for _id, seen in entries],
            "seen_at": [seen.seen_at.astimezone(UTC) for _id, seen in entries],
        },
    )
    return {device_id: online for device_id, online in rows}


def _write_many(pending: dict[str, Seen]) -> dict[str, bool | None]:
    """SQLite (and any other): one ``executemany`` of the conditional UPDATE; each device
    written, with ``online`` unknown (None). The rows it missed (rare: a device disabled or
    deleted meanwhile) are looked up only then."""
    table = Device.__table__
    time_type = Device.last_seen_at.type
    at = bindparam("p_at", type_=time_type)
    seen_at = bindparam("p_seen_at", type_=time_type)
    wins = _newer(table.c.last_status_at, at)
    statement = (
        update(table)
        .where(
            table.c.id == bindparam("p_id"),
            table.c.community_id == bindparam("p_community_id"),
            table.c.disabled_at.is_(None),
        )
        .values(
            online=case((wins, literal(True)), else_=table.c.online),
            last_status_at=case((wins, at), else_=table.c.last_status_at),
            last_seen_at=case(
                (_newer(table.c.last_seen_at, seen_at), seen_at), else_=table.c.last_seen_at
            ),
            updated_at=bindparam("p_updated_at", type_=time_type),
        )
    )
    now = utcnow()
    result = db.session.connection().execute(
        statement,
        [
            {
                "p_id": device_id,
                "p_community_id": p.community_id,
                "p_at": p.at,
                "p_seen_at": p.seen_at,
                "p_updated_at": now,
            }
            for device_id, p in pending.items()
        ],
    )
    if result.rowcount == len(pending):
        return dict.fromkeys(pending)
    matched = db.session.execute(
        select(table.c.id, table.c.online, table.c.community_id).where(
            table.c.id.in_(list(pending)), table.c.disabled_at.is_(None)
        )
    ).all()
    return {
        device_id: None
        for device_id, _online, community_id in matched
        if pending[device_id].community_id == community_id
    }
