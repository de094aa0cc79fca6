"""The worker's MQTT consumer: device events, status and acks into the database.

Events are stored once per device and ``seq``; some do more: alarm events raise alerts,
``tag_read`` goes to the wandering rule (``server.alerts.rules``), and ``pass_used`` (a
visitor pass a door admitted offline) becomes an access event that counts a use of the
pass (``server.passes.offline``).

Every message is handled in its own transaction. A bad payload is logged and
counted, never raised: one broken device must not stop the consumer.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError

from gatekeeper.vocabulary import AlertType, Severity
from hardware.messages import AckMessage, EventMessage, PayloadError, StatusMessage
from hardware.protocol import EventType
from hardware.topics import DeviceTopic, parse_device_topic
from server.alerts import rules as alert_rules
from server.alerts import summaries
from server.alerts.service import raise_alert
from server.devices import commands
from server.extensions import db
from server.models import Alert, Device, DeviceEvent, utcnow
from server.passes import offline as offline_passes

_LOGGER = logging.getLogger(__name__)

# Device events that are alerts in themselves, with their severity.
EVENT_ALERTS: dict[EventType, tuple[AlertType, Severity, str]] = {
    EventType.PANIC: (AlertType.PANIC, Severity.CRITICAL, "Panic button pressed"),
    EventType.DOOR_FORCED: (AlertType.DOOR_FORCED, Severity.HIGH, "Door forced open"),
    EventType.TAMPER: (AlertType.TAMPER, Severity.HIGH, "Device tampered with"),
    EventType.DOOR_HELD_OPEN: (AlertType.DOOR_HELD_OPEN, Severity.MEDIUM, "Door held open"),
}


class DeviceIngest:
    """Handles ``(topic, payload)`` from the bus; ``stats`` counts what happened."""

    def __init__(self, app: Flask):
        self.app = app
        self.stats: Counter[str] = Counter()
        # What each topic suffix a device publishes on becomes (``cmd`` is ours: ignored).
        self._handlers: dict[str, Callable[[Device, bytes], None]] = {
            "status": self._on_status,
            "ack": self._on_ack,
            "evt": self._on_evt,
        }

    def handle(self, topic: str, payload: bytes) -> None:
        parsed = parse_device_topic(topic)
        handler = None if parsed is None else self._handlers.get(parsed.suffix)
        if parsed is None or handler is None:
            self.stats["ignored"] += 1
            return
        with self.app.app_context():
            try:
                device = self._device(parsed)
                if device is None:
                    self.stats["unknown_device"] += 1
                    _LOGGER.warning("message on %s from an unknown or disabled device", topic)
                    return
                handler(device, payload)
                db.session.commit()
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

    def _device(self, parsed: DeviceTopic) -> Device | None:
        device = db.session.get(Device, parsed.device_id)
        if device is None or device.community_id != parsed.community_id or device.disabled:
            return None
        return device

    @staticmethod
    def _seen(device: Device) -> None:
        device.online = True
        device.last_seen_at = utcnow()

    def _on_status(self, device: Device, payload: bytes) -> None:
        status = StatusMessage.decode(payload)
        self.stats["status"] += 1
        if status.online:
            self._seen(device)
            if status.fw:
                device.firmware = status.fw
        else:  # a clean goodbye or the broker's last will
            device.online = False
            _LOGGER.info("device %s reports offline", device.id)

    def _on_ack(self, device: Device, payload: bytes) -> None:
        ack = AckMessage.decode(payload)
        self._seen(device)
        if commands.record_ack(device, ack) is None:
            self.stats["ack_unknown_command"] += 1
            _LOGGER.warning("ack from %s for unknown command %s", device.id, ack.cmd_id)
        else:
            self.stats["ack"] += 1

    def _on_evt(self, device: Device, payload: bytes) -> None:
        message = EventMessage.decode(payload)
        self._seen(device)
        if message.type is EventType.HEARTBEAT:  # liveness only: not worth a row a minute
            self.stats["heartbeat"] += 1
            return
        duplicate = db.session.scalar(
            select(DeviceEvent.id).where(
                DeviceEvent.device_id == device.id, DeviceEvent.seq == message.seq
            )
        )
        if duplicate is not None:
            self.stats["duplicate_event"] += 1
            return
        row = DeviceEvent(
            community_id=device.community_id,
            device_id=device.id,
            seq=message.seq,
            type=message.type.value,
            occurred_at=message.ts,
            payload=message.fields,
        )
        db.session.add(row)
        db.session.flush()
        self.stats["event"] += 1
        if message.type is EventType.TAG_READ:  # an elder or child at an exit (wandering)
            alert_rules.on_tag_read(device, row)
        if message.type is EventType.PASS_USED:  # a pass the door admitted offline
            access = offline_passes.record_offline_use(device, row)
            self.stats[f"pass_used_{access.decision.value}"] += 1
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


def detect_offline(heartbeat_s: int, misses: int, now: datetime | None = None) -> int:
    """Mark devices silent for ``misses`` heartbeats offline; one alert per absence."""
    now = now or utcnow()
    limit = now - timedelta(seconds=heartbeat_s * misses)
    silent = db.session.scalars(
        select(Device).where(
            Device.disabled_at.is_(None),
            Device.last_seen_at.is_not(None),
            Device.last_seen_at < limit,
        )
    )
    raised = 0
    for device in silent:
        device.online = False
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
