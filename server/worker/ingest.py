"""The worker's MQTT consumer: device events, status and acks into the database.

Events are stored once per device and ``seq``; some do more: alarm events raise alerts,
``tag_read`` goes to the wandering rule (``server.alerts.rules``), and ``pass_used`` (a
visitor pass a door admitted offline) becomes an access event that counts a use of the
pass (``server.passes.offline``), and ``offline_decision`` (a door's decision from its
allowlist) an ``offline`` access event that the server judges again
(``server.access.offline_decisions``).

``handle`` applies one message in its own transaction. The worker applies what the broker
hands it in batches instead (``apply_batch``, fed by ``server.worker.pump``): one transaction
for what came meanwhile, in the order it came, each device's presence written once per batch;
if anything in a batch fails, the batch is rolled back and its messages applied again one by
one, each in its own transaction as ``handle`` does, so a bad message costs its neighbours
nothing. A heartbeat from a device this worker knows to be online costs no transaction at
all: its last-seen waits in memory (``server.worker.presence``) and is written with every
other device's in one statement a second. A bad payload is logged and counted, never
raised: one broken device must not stop the consumer.

Several workers share the device traffic (the broker hands each message to one of them), so
one device's messages may be applied out of order: a worker still busy with a heartbeat may
commit it after another worker stored the device's goodbye. So nothing here is "last
written wins" (``record_presence``): ``last_seen_at`` only ever moves forward, and ``online``
changes only for a message sent after the one that set it last (``devices.last_status_at``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import ColumnElement, case, insert, literal, or_, select, text, update
from sqlalchemy.exc import DataError, IntegrityError

from gatekeeper.vocabulary import AlertType, Severity
from hardware.messages import AckMessage, EventMessage, PayloadError, StatusMessage
from hardware.protocol import EventType
from hardware.topics import DeviceTopic, parse_device_topic
from server.access import doormodes as door_modes
from server.access import intercom, offline_decisions
from server.alerts import rules as alert_rules
from server.alerts import summaries
from server.alerts.service import raise_alert
from server.core import metrics
from server.devices import commands
from server.extensions import db
from server.models import Alert, Device, DeviceEvent, utcnow
from server.models.ids import new_id
from server.passes import offline as offline_passes
from server.worker.presence import PresenceBuffer, Seen, write_seen

_LOGGER = logging.getLogger(__name__)

# Device events that are alerts in themselves, with their severity.
EVENT_ALERTS: dict[EventType, tuple[AlertType, Severity, str]] = {
    EventType.PANIC: (AlertType.PANIC, Severity.CRITICAL, "Panic button pressed"),
    EventType.DOOR_FORCED: (AlertType.DOOR_FORCED, Severity.HIGH, "Door forced open"),
    EventType.TAMPER: (AlertType.TAMPER, Severity.HIGH, "Device tampered with"),
    EventType.DOOR_HELD_OPEN: (AlertType.DOOR_HELD_OPEN, Severity.MEDIUM, "Door held open"),
}

# Events that are only stored: in a batch they are inserted together, at the commit.
_PLAIN_EVENTS = frozenset(EventType) - {
    EventType.HEARTBEAT,
    EventType.TAG_READ,
    EventType.PASS_USED,
    EventType.OFFLINE_DECISION,
    EventType.INTERCOM_CALL,
    *EVENT_ALERTS,
}

# PostgreSQL: a batch's plain events in one statement of constant text (prepared once), the
# rows as one JSON document: one parameter, dumped by ``json`` in C (an array a column was
# dumped element by element in Python: 13 % of the ingest thread's samples in bench.ingest).
_INSERT_FROM_JSON = text(
    "INSERT INTO device_events "
    "(id, community_id, device_id, seq, type, occurred_at, received_at, payload) "
    "SELECT r.id, r.community_id, r.device_id, r.seq, r.type, r.occurred_at, "
    "CAST(:received_at AS timestamptz), r.payload "
    "FROM json_to_recordset(CAST(:rows AS json)) AS r(id varchar, community_id varchar, "
    "device_id varchar, seq bigint, type varchar, occurred_at timestamptz, payload json)"
)

# How far a device's clock may lag the server's before an event's ``ts`` is not believed for
# the order of its messages (docs/devices.md, "Online state"). It also bounds how late an
# event held up in a busy worker may be applied and still count as older than a goodbye.
CLOCK_TOLERANCE = timedelta(seconds=10)


def sent_at(device_ts: datetime, received_at: datetime) -> datetime:
    """When an event or ack counts as sent, for the order of a device's status changes: its
    ``ts``, never later than the server received it and never more than ``CLOCK_TOLERANCE``
    earlier. (Status messages count at their receive time: ``DeviceIngest._on_status``.)"""
    return min(max(device_ts, received_at - CLOCK_TOLERANCE), received_at)


def _newer(column: ColumnElement[datetime | None], at: datetime) -> ColumnElement[bool]:
    return or_(column.is_(None), column < literal(at, Device.last_status_at.type))


def record_presence(
    device_id: str,
    *,
    online: bool,
    at: datetime,
    seen_at: datetime | None = None,
    firmware: str | None = None,
) -> bool | None:
    """One conditional UPDATE of a device's presence, right in whatever order it comes.

    ``online`` (and ``firmware``) change only when ``at`` (``sent_at``) is later than the
    ``last_status_at`` of the message that set them; ``last_seen_at`` becomes ``seen_at``
    only when that is later. Two messages give the same row applied either way round.
    Returns the device's ``online`` after it (None: no such row).
    """
    wins = _newer(Device.last_status_at, at)
    values: dict[str, object] = {
        "online": case((wins, literal(online)), else_=Device.online),
        "last_status_at": case(
            (wins, literal(at, Device.last_status_at.type)), else_=Device.last_status_at
        ),
    }
    if firmware is not None:
        values["firmware"] = case((wins, literal(firmware)), else_=Device.firmware)
    if seen_at is not None:
        values["last_seen_at"] = case(
            (_newer(Device.last_seen_at, seen_at), literal(seen_at, Device.last_seen_at.type)),
            else_=Device.last_seen_at,
        )
    return db.session.execute(
        update(Device).where(Device.id == device_id).values(values).returning(Device.online),
        execution_options={"synchronize_session": False},
    ).scalar()


@dataclass(frozen=True)
class Presence:
    """What one message says about its device: ``online`` as of ``at`` (``sent_at``), seen
    (any message but a goodbye), and the firmware an online status names."""

    online: bool
    at: datetime
    seen: bool = True
    firmware: str | None = None


Decoded = StatusMessage | AckMessage | EventMessage


class DeviceIngest:
    """Handles ``(topic, payload)`` from the bus; ``stats`` counts what happened.

    With ``presences`` (the worker's), ``apply_batch`` keeps the heartbeats of devices known
    to be online in memory; without it every message is written when applied."""

    def __init__(self, app: Flask, presences: PresenceBuffer | None = None):
        self.app = app
        self.presences = presences
        self.stats: Counter[str] = metrics.IngestCounts()  # also counted for /metrics
        self._uncommitted: list[str] = []  # this message's counts, until it commits
        # What each topic suffix a device publishes on becomes (``cmd`` is ours: ignored):
        # its payload's decoder, and what the decoded message does.
        self._handlers: dict[
            str, tuple[Callable[[bytes], Decoded], Callable[[Device, Any, datetime], Presence]]
        ] = {
            "status": (StatusMessage.decode, self._on_status),
            "ack": (AckMessage.decode, self._on_ack),
            "evt": (EventMessage.decode, self._on_evt),
        }
        # In a batch: the (device, seq) already stored among the batch's events, and the
        # rows of plain events not inserted yet.
        self._stored: set[tuple[str, int]] | None = None
        self._plain: list[dict[str, object]] = []
        self.batches_retried = 0  # batches that failed and were applied one by one

    def handle(self, topic: str, payload: bytes, received_at: datetime | None = None) -> None:
        """Apply one message in its own transaction; ``received_at`` defaults to now."""
        received_at = received_at or utcnow()
        self._uncommitted = []
        parsed = parse_device_topic(topic)
        handler = None if parsed is None else self._handlers.get(parsed.suffix)
        if parsed is None or handler is None:
            self.stats["ignored"] += 1
            return
        decode, apply = handler
        with self.app.app_context():
            try:
                device = self._device(parsed)
                if device is None:
                    self.stats["unknown_device"] += 1
                    _LOGGER.warning("message on %s from an unknown or disabled device", topic)
                    return
                presence = apply(device, decode(payload), received_at)
                # Last, so the device's row is locked for as short a time as can be.
                record_presence(
                    device.id,
                    online=presence.online,
                    at=presence.at,
                    seen_at=received_at if presence.seen else None,
                    firmware=presence.firmware,
                )
                db.session.commit()
                for name in self._uncommitted:  # counted once the message is stored
                    self.stats[name] += 1
                if self.presences is not None:  # what this worker knew of it may be stale
                    self.presences.forget(device.id)
            except PayloadError as error:
                db.session.rollback()
                self.stats["bad_payload"] += 1
                _LOGGER.warning("bad payload on %s: %s", topic, error.reason)
            except IntegrityError:
                db.session.rollback()  # a concurrent consumer stored the same (device, seq)
                self.stats["duplicate_event"] += 1
            except DataError as error:  # valid JSON the database cannot hold
                db.session.rollback()
                self.stats["bad_payload"] += 1
                _LOGGER.warning("unstorable payload on %s: %s", topic, error.orig)
            finally:
                db.session.remove()

    def apply_batch(self, messages: Sequence[tuple[str, bytes, datetime]]) -> None:
        """Apply ``(topic, payload, received_at)`` messages in their order: heartbeats of
        devices known online into memory, the rest in one transaction, each device's
        presence written once. If that transaction fails, every message of it is applied
        again alone (``handle``): a poisoned message loses no neighbour, and nothing is
        counted, published or alerted twice (the failed attempt's outbox and rows are gone)."""
        batch: list[tuple[str, DeviceTopic, bytes, datetime, Decoded | PayloadError]] = []
        for topic, payload, received_at in messages:
            parsed = parse_device_topic(topic)
            handler = None if parsed is None else self._handlers.get(parsed.suffix)
            if parsed is None or handler is None:
                self.stats["ignored"] += 1
                continue
            try:
                decoded: Decoded | PayloadError = handler[0](payload)
            except PayloadError as error:
                decoded = error
            if (
                self.presences is not None
                and isinstance(decoded, EventMessage)
                and decoded.type is EventType.HEARTBEAT
                and self.presences.offer(
                    parsed.device_id,
                    parsed.community_id,
                    sent_at(decoded.ts, received_at),
                    received_at,
                )
            ):
                continue  # written with the next flush, counted then
            batch.append((topic, parsed, payload, received_at, decoded))
        if not batch:
            return
        failed: Exception | None = None
        with self.app.app_context():
            try:
                counts, learnt = self._apply_together(batch)
                db.session.commit()
            except Exception as error:  # whatever it was, each message alone says so
                db.session.rollback()
                failed = error
            finally:
                self._stored = None
                self._plain = []
                db.session.remove()
        if failed is not None:
            self.batches_retried += 1
            _LOGGER.warning(
                "a batch of %d message(s) failed (%s): applied one by one",
                len(batch),
                failed.__class__.__name__,
            )
            for topic, parsed, payload, received_at, _decoded in batch:
                if self.presences is not None:
                    self.presences.forget(parsed.device_id)
                self.handle(topic, payload, received_at)
            return
        for name, count in counts.items():  # one by one: the metrics follow each count
            self.stats[name] += count
        if self.presences is not None:
            for device_id, (community_id, online, seen_at) in learnt.items():
                self.presences.learn(device_id, community_id, online=online, seen_at=seen_at)

    def _apply_together(
        self, batch: list[tuple[str, DeviceTopic, bytes, datetime, Decoded | PayloadError]]
    ) -> tuple[Counter[str], dict[str, tuple[str, bool | None, datetime | None]]]:
        """The batch's work in the session's transaction (not committed): its counts, and
        per device its community, ``online`` once written, and the latest receipt."""
        counts: Counter[str] = Counter()
        device_ids = {parsed.device_id for _t, parsed, _p, _r, _d in batch}
        devices = {
            device.id: device
            for device in db.session.scalars(select(Device).where(Device.id.in_(device_ids)))
        }
        events = [
            (parsed.device_id, decoded.seq)
            for _t, parsed, _p, _r, decoded in batch
            if isinstance(decoded, EventMessage) and decoded.type is not EventType.HEARTBEAT
        ]
        self._stored = set()
        if events:
            seqs = {seq for _d, seq in events}
            self._stored = {
                (device_id, seq)
                for device_id, seq in db.session.execute(
                    select(DeviceEvent.device_id, DeviceEvent.seq).where(
                        DeviceEvent.device_id.in_({device_id for device_id, _s in events}),
                        DeviceEvent.seq.in_(seqs),
                    )
                )
            } & set(events)
        self._plain = []
        merged: dict[str, Seen] = {}
        learnt: dict[str, tuple[str, bool | None, datetime | None]] = {}
        for topic, parsed, _payload, received_at, decoded in batch:
            device = devices.get(parsed.device_id)
            if device is None or device.community_id != parsed.community_id or device.disabled:
                counts["unknown_device"] += 1
                _LOGGER.warning("message on %s from an unknown or disabled device", topic)
                continue
            if isinstance(decoded, PayloadError):
                counts["bad_payload"] += 1
                _LOGGER.warning("bad payload on %s: %s", topic, decoded.reason)
                continue
            self._uncommitted = []
            presence = self._handlers[parsed.suffix][1](device, decoded, received_at)
            counts.update(self._uncommitted)
            seen_at = received_at if presence.seen else None
            if parsed.suffix == "status":  # a change of state: written now, in its order
                online = record_presence(
                    device.id,
                    online=presence.online,
                    at=presence.at,
                    seen_at=seen_at,
                    firmware=presence.firmware,
                )
                learnt[device.id] = (
                    device.community_id,
                    online,
                    seen_at,
                )
                continue
            earlier = merged.get(device.id)
            if earlier is None:
                merged[device.id] = Seen(device.community_id, presence.at, received_at, 0)
            else:  # the first of equal times wins, as applied one by one
                earlier.at = max(earlier.at, presence.at)
                earlier.seen_at = max(earlier.seen_at, received_at)
        self._insert_plain()
        # Last, so the devices' rows are locked for as short a time as can be: one statement.
        written = write_seen(merged, know_online=self.presences is not None)
        for device_id, seen in merged.items():
            learnt[device_id] = (seen.community_id, written.get(device_id), seen.seen_at)
        return counts, learnt

    def _insert_plain(self) -> None:
        """The batch's events that do nothing more than be stored, so far: one INSERT (from
        one JSON document on PostgreSQL, a statement it prepares once; an executemany
        elsewhere)."""
        if not self._plain:
            return
        connection = db.session.connection()
        if connection.dialect.name == "postgresql":
            rows = [
                {
                    "id": new_id(DeviceEvent.ID_PREFIX),
                    "community_id": row["community_id"],
                    "device_id": row["device_id"],
                    "seq": row["seq"],
                    "type": row["type"],
                    "occurred_at": row["occurred_at"].astimezone(UTC).isoformat(),
                    "payload": row["payload"],
                }
                for row in self._plain
            ]
            connection.execute(
                _INSERT_FROM_JSON, {"rows": json.dumps(rows), "received_at": utcnow()}
            )
        else:
            connection.execute(insert(DeviceEvent.__table__), self._plain)
        self._plain = []

    def _count(self, name: str) -> None:
        """Count ``name`` for this message once its transaction commits."""
        self._uncommitted.append(name)

    def _device(self, parsed: DeviceTopic) -> Device | None:
        device = db.session.get(Device, parsed.device_id)
        if device is None or device.community_id != parsed.community_id or device.disabled:
            return None
        return device

    def _on_status(self, device: Device, status: StatusMessage, received_at: datetime) -> Presence:
        self._count("status")
        # Connects and goodbyes (the last will has no ts) count when the worker got them:
        # one worker gets them in the broker's order, so a quick reconnect's "online" always
        # outranks the will the broker published for the connection it replaced.
        if status.online:
            # A lockdown or release holding over its door: ``lock`` / ``unlock_hold`` again.
            door_modes.on_device_online(device)
            return Presence(online=True, at=received_at, firmware=status.fw or None)
        _LOGGER.info("device %s reports offline", device.id)
        return Presence(online=False, at=received_at, seen=False)

    def _on_ack(self, device: Device, ack: AckMessage, received_at: datetime) -> Presence:
        if commands.record_ack(device, ack) is None:
            self._count("ack_unknown_command")
            _LOGGER.warning("ack from %s for unknown command %s", device.id, ack.cmd_id)
        else:
            self._count("ack")
        return Presence(online=True, at=sent_at(ack.ts, received_at))

    def _on_evt(self, device: Device, message: EventMessage, received_at: datetime) -> Presence:
        presence = Presence(online=True, at=sent_at(message.ts, received_at))
        if message.type is EventType.HEARTBEAT:  # liveness only: not worth a row a minute
            self._count("heartbeat")
            return presence
        if self._stored is None:  # one message alone: ask
            duplicate = db.session.scalar(
                select(DeviceEvent.id).where(
                    DeviceEvent.device_id == device.id, DeviceEvent.seq == message.seq
                )
            )
            if duplicate is not None:
                self._count("duplicate_event")
                return presence
        elif (device.id, message.seq) in self._stored:  # in a batch: asked once for all
            self._count("duplicate_event")
            return presence
        else:
            self._stored.add((device.id, message.seq))
        values = {
            "community_id": device.community_id,
            "device_id": device.id,
            "seq": message.seq,
            "type": message.type.value,
            "occurred_at": message.ts,
            # An intercom call's snapshot is the call's, kept only briefly (server.access.intercom).
            "payload": {k: v for k, v in message.fields.items() if k != "snapshot"},
        }
        self._count("event")
        if self._stored is not None and message.type in _PLAIN_EVENTS:
            self._plain.append(values)  # nothing reads it now: inserted with the others
            return presence
        self._insert_plain()  # what came before it is stored before it, as one by one
        row = DeviceEvent(**values)
        db.session.add(row)
        db.session.flush()
        if message.type is EventType.TAG_READ:  # an elder or child at an exit (wandering)
            alert_rules.on_tag_read(device, row)
        if message.type is EventType.PASS_USED:  # a pass the door admitted offline
            access = offline_passes.record_offline_use(device, row)
            self._count(f"pass_used_{access.decision.value}")
        if message.type is EventType.OFFLINE_DECISION:  # a door decided from its allowlist
            offline_decisions.record_offline_decision(device, row)
            self._count("offline_decision")
        if message.type is EventType.INTERCOM_CALL:  # a visitor calls a unit
            self._count(intercom.call_from_event(device, row, message.fields.get("snapshot")))
        if message.type in EVENT_ALERTS:
            alert_type, severity, _english = EVENT_ALERTS[message.type]
            raise_alert(
                community_id=device.community_id,
                type=alert_type,
                severity=severity,
                summary=summaries.device_event(alert_type, device.name),
                access_point_id=device.access_point_id,
                device_id=device.id,
                evidence={"device_event_ids": [row.id]},
                dedup_key=f"{alert_type.value}:{device.id}",
            )
        return presence


def detect_offline(heartbeat_s: int, misses: int, now: datetime | None = None) -> int:
    """Mark devices silent for ``misses`` heartbeats offline; one alert per absence.

    The device is offline as of the start of its silence (``limit``): a message a busy
    worker applies after this job counts only if it was sent after that.
    """
    now = now or utcnow()
    limit = now - timedelta(seconds=heartbeat_s * misses)
    silent = db.session.scalars(
        select(Device).where(
            Device.disabled_at.is_(None),
            Device.last_seen_at.is_not(None),
            Device.last_seen_at < limit,
        )
    ).all()
    if not silent:
        return 0
    db.session.execute(
        update(Device)
        .where(
            Device.id.in_([device.id for device in silent]),
            Device.last_seen_at < limit,  # again, in the same statement: not seen since
            _newer(Device.last_status_at, limit),
        )
        .values(online=False, last_status_at=limit),
        execution_options={"synchronize_session": False},
    )
    raised = 0
    for device in silent:
        key = f"device_offline:{device.id}:{device.last_seen_at.isoformat()}"
        if (
            db.session.scalar(
                select(Alert.id).where(
                    Alert.community_id == device.community_id, Alert.dedup_key == key
                )
            )
            is not None
        ):
            continue  # this absence already has its alert, even if it was resolved since
        raise_alert(
            community_id=device.community_id,
            type=AlertType.DEVICE_OFFLINE,
            severity=Severity.MEDIUM,
            summary=summaries.device_offline(device.name, misses),
            access_point_id=device.access_point_id,
            device_id=device.id,
            evidence={"last_seen_at": device.last_seen_at.isoformat()},
            dedup_key=key,
        )
        raised += 1
    return raised
