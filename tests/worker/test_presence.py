"""A device's online state stays right whatever order two workers apply its messages in.

Several workers share device traffic, so a heartbeat held up in one worker may be applied
after the goodbye another worker stored. These tests hand ``DeviceIngest`` the messages in
the wrong order (with the times the workers would have received them) and compare the row
with the one the right order gives. The last test runs two consumers at once on the same
duplicated messages: each event is stored once.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import func, select

from gatekeeper.vocabulary import AlertType
from hardware.messages import OFFLINE_WILL, EventMessage, StatusMessage
from hardware.protocol import EventType
from hardware.topics import device_topic
from server.extensions import db
from server.models import Alert, Device, DeviceEvent, utcnow
from server.worker.ingest import CLOCK_TOLERANCE, DeviceIngest, detect_offline, sent_at
from tests import factories

T0 = utcnow().replace(microsecond=0) - timedelta(minutes=30)


def _devices(app: Flask, count: int) -> list[tuple[str, str]]:
    with app.app_context():
        world = factories.world()
        point = db.session.get(Device, world.device_a.id).access_point
        devices = [(world.a.id, world.device_a.id)]
        for _ in range(count - 1):
            device, _secret = factories.device(point)
            devices.append((world.a.id, device.id))
        db.session.commit()
        return devices


def _state(app: Flask, device_id: str) -> tuple[bool, datetime | None, datetime | None, str | None]:
    with app.app_context():
        device = db.session.get(Device, device_id)
        state = (device.online, device.last_seen_at, device.last_status_at, device.firmware)
        db.session.remove()
        return state


def _evt(seq: int, ts: datetime, kind: EventType = EventType.HEARTBEAT) -> bytes:
    return EventMessage(type=kind, seq=seq, ts=ts).encode()


def _status(online: bool, ts: datetime | None = None, fw: str | None = None) -> bytes:
    return StatusMessage(online=online, ts=ts, fw=fw).encode() if online else OFFLINE_WILL


def _apply(ingest: DeviceIngest, device: tuple[str, str], messages: list) -> None:
    community_id, device_id = device
    for suffix, payload, received_at in messages:
        ingest.handle(device_topic(community_id, device_id, suffix), payload, received_at)


def test_a_heartbeat_applied_after_the_goodbye_leaves_the_device_offline(app: Flask) -> None:
    """The heartbeat (sent at T0, received 100 ms later) is applied after the last will the
    broker published a minute later: the device stays offline, and was last seen at the
    heartbeat."""
    in_order, out_of_order = _devices(app, 2)
    heartbeat = ("evt", _evt(1, T0), T0 + timedelta(milliseconds=100))
    will = ("status", _status(False), T0 + timedelta(seconds=60))
    ingest = DeviceIngest(app)
    _apply(ingest, in_order, [heartbeat, will])
    _apply(ingest, out_of_order, [will, heartbeat])
    expected = (False, T0 + timedelta(milliseconds=100), T0 + timedelta(seconds=60), None)
    assert _state(app, in_order[1]) == expected
    assert _state(app, out_of_order[1]) == expected


def test_a_reconnect_applied_before_the_old_will_keeps_the_device_online(app: Flask) -> None:
    """The door lost its connection (its will reached a worker at T0+60 s) and came back at
    T0+61 s; the worker that got the will applies it last: the newer online status wins,
    with its firmware."""
    in_order, out_of_order = _devices(app, 2)
    will = ("status", _status(False), T0 + timedelta(seconds=60))
    back = (
        "status",
        _status(True, T0 + timedelta(seconds=61), "2.0.1"),
        T0 + timedelta(seconds=61),
    )
    ingest = DeviceIngest(app)
    _apply(ingest, in_order, [will, back])
    _apply(ingest, out_of_order, [back, will])
    expected = (True, T0 + timedelta(seconds=61), T0 + timedelta(seconds=61), "2.0.1")
    assert _state(app, in_order[1]) == expected
    assert _state(app, out_of_order[1]) == expected


def test_a_quick_reconnect_through_a_busy_worker_stays_online(app: Flask) -> None:
    """One worker, in the broker's order: the will of the replaced connection, then the new
    connection's status, stamped by the door 2 ms after the will was published but handled
    20 ms later (the worker was busy). Status messages count when received: online."""
    (device,) = _devices(app, 1)
    ingest = DeviceIngest(app)
    will = ("status", _status(False), T0 + timedelta(milliseconds=20))
    back = (
        "status",
        _status(True, T0 + timedelta(milliseconds=2)),
        T0 + timedelta(milliseconds=21),
    )
    _apply(ingest, device, [will, back])
    assert _state(app, device[1])[:3] == (True, back[2], back[2])


def test_an_older_online_status_does_not_change_the_firmware(app: Flask) -> None:
    (device,) = _devices(app, 1)
    ingest = DeviceIngest(app)
    newer = ("status", _status(True, T0 + timedelta(seconds=10), "2.0"), T0 + timedelta(seconds=10))
    older = ("status", _status(True, T0, "1.9"), T0 + timedelta(seconds=9))  # applied late
    _apply(ingest, device, [newer, older])
    online, last_seen, last_status, firmware = _state(app, device[1])
    assert (online, last_status, firmware) == (True, T0 + timedelta(seconds=10), "2.0")
    assert last_seen == T0 + timedelta(seconds=10)  # the latest receive time


def test_the_silence_job_and_a_late_message_agree(app: Flask) -> None:
    """``detect_offline`` marks a silent device offline as of the start of its silence: a
    heartbeat sent before then and applied after the job changes nothing; one sent after it
    brings the device back."""
    (device,) = _devices(app, 1)
    ingest = DeviceIngest(app)
    _apply(ingest, device, [("evt", _evt(1, T0), T0)])
    now = T0 + timedelta(minutes=4)  # three 60 s heartbeats missed: silent since T0 + 3 min
    with app.app_context():
        assert detect_offline(60, 3, now=now) == 1
        db.session.commit()
    assert _state(app, device[1])[:3] == (False, T0, T0 + timedelta(minutes=1))
    late = T0 + timedelta(seconds=30)  # sent before the silence began, held up in a worker
    _apply(ingest, device, [("evt", _evt(2, late), late)])
    assert _state(app, device[1])[:3] == (False, late, T0 + timedelta(minutes=1))
    back = now + timedelta(seconds=1)
    _apply(ingest, device, [("evt", _evt(3, back), back)])
    assert _state(app, device[1])[:3] == (True, back, back)
    with app.app_context():  # one alert for the one absence
        alerts = db.session.scalars(
            select(Alert).where(
                Alert.device_id == device[1], Alert.type == AlertType.DEVICE_OFFLINE
            )
        ).all()
        assert len(alerts) == 1
        db.session.remove()


def test_a_device_clock_is_believed_within_the_tolerance_only() -> None:
    received = T0 + timedelta(hours=1)
    assert sent_at(received - timedelta(seconds=2), received) == received - timedelta(seconds=2)
    assert sent_at(received + timedelta(minutes=5), received) == received  # a fast clock
    assert sent_at(received - timedelta(hours=1), received) == received - CLOCK_TOLERANCE


def test_two_consumers_store_each_duplicated_event_once(app: Flask) -> None:
    """Two ingests (as two workers would) handle the same 40 events at the same time, each
    event twice, panic presses among them: one row per seq and one panic alert."""
    (device,) = _devices(app, 1)
    community_id, device_id = device
    topic = device_topic(community_id, device_id, "evt")
    now = utcnow()
    payloads = [
        _evt(seq, now, EventType.PANIC if seq % 10 == 0 else EventType.EXIT_REQUEST)
        for seq in range(1, 41)
    ]
    start = threading.Barrier(2)

    def consume() -> None:
        ingest = DeviceIngest(app)
        start.wait()
        for payload in payloads:
            ingest.handle(topic, payload)

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with app.app_context():
        seqs = db.session.scalars(
            select(DeviceEvent.seq).where(DeviceEvent.device_id == device_id)
        ).all()
        panics = db.session.scalar(
            select(func.count()).where(Alert.device_id == device_id, Alert.type == AlertType.PANIC)
        )
        db.session.remove()
    assert sorted(seqs) == list(range(1, 41))
    assert panics == 1
