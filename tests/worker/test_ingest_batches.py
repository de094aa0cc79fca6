"""The worker's ingest in batches: every event stored once and in its device's order, a bad
message costs its batch neighbours nothing, and heartbeats of devices known online wait in
memory for one statement a second without making anyone look offline.

The burst and the heartbeats go through a real Mosquitto and the worker's own consumer
(``IngestPump``); the batch's edge cases are handed to ``DeviceIngest.apply_batch`` directly,
so the batch is exactly the one the test means.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import event, select, update
from sqlalchemy.exc import DataError

from gatekeeper.vocabulary import AlertType
from hardware.bus import BrokerAddress, MqttBus
from hardware.messages import OFFLINE_WILL, EventMessage
from hardware.protocol import EventType
from hardware.topics import device_topic
from server.extensions import db
from server.models import Alert, Device, DeviceEvent, utcnow
from server.worker import Worker
from server.worker.ingest import DeviceIngest
from server.worker.presence import PRESENCE_LAG, PresenceBuffer
from server.worker.pump import IngestPump
from tests import factories
from tests.support.e2e import WAIT_S, eventually, mqtt_app, query, running_worker
from tests.support.mosquitto import Broker

# The devices' heartbeat as the live app is told: 3 s, offline after 3 misses (9 s), so the
# worker keeps a heartbeat in memory when it saw the device less than 9 - 5 = 4 s before.
HEARTBEAT_S, MISSES = 3, 3


@pytest.fixture
def live_app(app: Flask, workdir: Path, database_url: str, broker: Broker) -> Iterator[Flask]:
    with mqtt_app(
        workdir,
        database_url,
        broker,
        "gatekeeper-worker-batches",
        DEVICE_HEARTBEAT_SECONDS=str(HEARTBEAT_S),
        DEVICE_OFFLINE_AFTER_MISSES=str(MISSES),
    ) as live:
        yield live


def _devices(app: Flask, count: int) -> list[tuple[str, str]]:
    """(community id, device id) of ``count`` enabled devices of community A."""
    with app.app_context():
        world = factories.world()
        devices = [(world.a.id, world.device_a.id)]
        for _ in range(count - 1):
            device, _secret = factories.device(world.door_a)
            devices.append((world.a.id, device.id))
        db.session.commit()
        return devices


def _evt(kind: EventType, seq: int, ts: datetime | None = None, **fields: object) -> bytes:
    return EventMessage(type=kind, seq=seq, ts=ts or utcnow(), fields=fields).encode()


def _publish(broker: Broker, messages: list[tuple[str, bytes]]) -> None:
    """Publish at once (QoS 1), as doors would, and wait until the broker has them all."""
    publisher = MqttBus(BrokerAddress.from_url(broker.url), f"test-doors-{id(messages)}")
    publisher.start()
    try:
        assert publisher.wait_connected(WAIT_S)
        for topic, payload in messages:
            publisher.publish(topic, payload)
        assert publisher.flush(WAIT_S)
    finally:
        publisher.stop()


def _rows(app: Flask, device_id: str) -> list[tuple[int, datetime]]:
    """The device's stored events as (seq, received_at), in seq order."""
    return [
        (seq, received_at)
        for seq, received_at in query(
            app,
            select(DeviceEvent.seq, DeviceEvent.received_at)
            .where(DeviceEvent.device_id == device_id)
            .order_by(DeviceEvent.seq),
        )
    ]


def _state(app: Flask, device_id: str) -> tuple[bool, datetime | None]:
    ((online, last_seen),) = query(
        app, select(Device.online, Device.last_seen_at).where(Device.id == device_id)
    )
    return online, last_seen


def test_a_burst_from_several_devices_is_stored_once_in_each_devices_order(
    live_app: Flask, broker: Broker
) -> None:
    """Four doors send 40 events each at once, interleaved, a panic press among them, and
    the broker repeats 10 of each (a door's retry): 160 rows, each device's in the order it
    sent them, the repeats dropped, one panic alert per door, no batch applied twice."""
    devices = _devices(live_app, 4)
    messages = []
    for seq in range(1, 41):
        for community_id, device_id in devices:
            kind = EventType.PANIC if seq == 25 else EventType.DOOR_OPENED
            messages.append((device_topic(community_id, device_id, "evt"), _evt(kind, seq)))
    repeats = [message for message in messages if 10 <= EventMessage.decode(message[1]).seq < 20]
    with running_worker(live_app) as worker:
        _publish(broker, messages + repeats)
        stored = eventually(
            lambda: (
                len(query(live_app, select(DeviceEvent.id))) == 160
                and worker.ingest.stats["duplicate_event"] == 40
            )
        )
        assert stored, (len(query(live_app, select(DeviceEvent.id))), dict(worker.ingest.stats))
        assert worker.ingest.batches_retried == 0
    for _community_id, device_id in devices:
        rows = _rows(live_app, device_id)
        assert [seq for seq, _at in rows] == list(range(1, 41))
        received = [at for _seq, at in rows]
        assert received == sorted(received), "a device's events were stored out of order"
        alerts = query(
            live_app,
            select(Alert.evidence).where(
                Alert.device_id == device_id, Alert.type == AlertType.PANIC
            ),
        )
        assert len(alerts) == 1
        assert len(alerts[0][0]["device_event_ids"]) == 1  # the repeat added nothing


def test_a_poisoned_message_in_a_batch_loses_none_of_the_others(
    live_app: Flask, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tag read whose handling fails in the database (a value it cannot hold) among 30
    good events: the worker stores the 30, drops the bad one (counted), and the panic in
    the same burst raises its alert once."""
    from server.alerts import rules

    real = rules.on_tag_read

    def poisoned(device: Device, row: DeviceEvent) -> None:
        if row.payload.get("tag") == "BAD0":
            raise DataError("INSERT ...", {}, ValueError("value out of range"))
        real(device, row)

    monkeypatch.setattr(rules, "on_tag_read", poisoned)
    (device,) = _devices(live_app, 1)
    topic = device_topic(*device, "evt")
    messages = [(topic, _evt(EventType.EXIT_REQUEST, seq)) for seq in range(1, 16)]
    messages.append((topic, _evt(EventType.TAG_READ, 16, tag="BAD0")))
    messages.append((topic, _evt(EventType.PANIC, 17)))
    messages += [(topic, _evt(EventType.EXIT_REQUEST, seq)) for seq in range(18, 32)]
    with running_worker(live_app) as worker:
        _publish(broker, messages)
        assert eventually(lambda: worker.ingest.stats["bad_payload"] == 1)
        assert eventually(lambda: len(_rows(live_app, device[1])) == 30)
    seqs = [seq for seq, _at in _rows(live_app, device[1])]
    assert seqs == [seq for seq in range(1, 32) if seq != 16]
    panics = query(live_app, select(Alert.id).where(Alert.type == AlertType.PANIC))
    assert len(panics) == 1


def test_one_bad_message_in_a_batch_is_retried_alone(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, one batch exactly: the transaction fails, the batch is applied one by one,
    and everything but the bad message is stored once, the panic alerted once."""
    from server.alerts import rules

    def poisoned(_device: Device, _row: DeviceEvent) -> None:
        raise DataError("INSERT ...", {}, ValueError("value out of range"))

    monkeypatch.setattr(rules, "on_tag_read", poisoned)
    (first, second) = _devices(app, 2)
    now = utcnow()
    batch = [
        (device_topic(*first, "evt"), _evt(EventType.DOOR_OPENED, 1), now),
        (device_topic(*second, "evt"), _evt(EventType.PANIC, 1), now),
        (device_topic(*first, "evt"), _evt(EventType.TAG_READ, 2, tag="AB12"), now),
        (device_topic(*first, "evt"), _evt(EventType.DOOR_OPENED, 1), now),  # a repeat
        (device_topic(*second, "evt"), _evt(EventType.DOOR_CLOSED, 2), now),
        (device_topic(*first, "evt"), b"{not json", now),
    ]
    ingest = DeviceIngest(app)
    ingest.apply_batch(batch)
    assert ingest.batches_retried == 1
    assert [seq for seq, _at in _rows(app, first[1])] == [1]
    assert [seq for seq, _at in _rows(app, second[1])] == [1, 2]
    assert len(query(app, select(Alert.id).where(Alert.type == AlertType.PANIC))) == 1
    assert dict(ingest.stats) == {"event": 3, "duplicate_event": 1, "bad_payload": 2}


def test_a_batch_stores_its_events_once_and_writes_each_device_once(app: Flask) -> None:
    """A batch of two devices' events, one repeated within the batch and one stored before:
    one transaction, each event once, each device's presence in one statement."""
    (first, second) = _devices(app, 2)
    DeviceIngest(app).handle(device_topic(*first, "evt"), _evt(EventType.DOOR_OPENED, 1))
    now = utcnow()
    batch = [
        (device_topic(*first, "evt"), _evt(EventType.DOOR_OPENED, 1), now),  # stored before
        (device_topic(*first, "evt"), _evt(EventType.DOOR_CLOSED, 2), now),
        (device_topic(*second, "evt"), _evt(EventType.EXIT_REQUEST, 7), now),
        (device_topic(*first, "evt"), _evt(EventType.DOOR_CLOSED, 2), now),  # within the batch
        (device_topic(*second, "evt"), _evt(EventType.DOOR_OPENED, 8), now + timedelta(seconds=1)),
    ]
    ingest = DeviceIngest(app)
    with _statements(app) as statements:
        ingest.apply_batch(batch)
    assert ingest.batches_retried == 0
    assert dict(ingest.stats) == {"event": 3, "duplicate_event": 2}
    assert [seq for seq, _at in _rows(app, first[1])] == [1, 2]
    assert [seq for seq, _at in _rows(app, second[1])] == [7, 8]
    updates = [s for s in statements if s.startswith("UPDATE devices")]
    assert len(updates) == 1, statements
    assert _state(app, second[1]) == (True, now + timedelta(seconds=1))


class _Recorded(list[str]):
    pass


class _statements:  # noqa: N801 - used as a context manager, like a function
    """The SQL statements the app's engine sends meanwhile (an executemany counts once)."""

    def __init__(self, app: Flask):
        with app.app_context():
            self.engine = db.engine
        self.seen = _Recorded()

    def _record(self, _conn, _cursor, statement: str, *_args: object) -> None:
        self.seen.append(" ".join(statement.split()))

    def __enter__(self) -> _Recorded:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self.seen

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


def test_heartbeats_of_a_known_device_cost_no_statement_until_the_flush(app: Flask) -> None:
    """The first heartbeat of a device is written at once (the worker learns it is online);
    the next ones send nothing to the database; the flush writes them all in ONE statement,
    with the latest receive time, and counts them."""
    devices = _devices(app, 3)
    presences = PresenceBuffer(app, fresh=timedelta(minutes=3) - PRESENCE_LAG)
    ingest = DeviceIngest(app, presences)
    start = utcnow().replace(microsecond=0)
    ingest.apply_batch(
        [(device_topic(*d, "evt"), _evt(EventType.HEARTBEAT, 1, start), start) for d in devices]
    )
    assert all(_state(app, device_id) == (True, start) for _c, device_id in devices)
    with _statements(app) as statements:
        for second in range(1, 4):
            at = start + timedelta(seconds=second)
            for device in devices:
                ingest.apply_batch(
                    [(device_topic(*device, "evt"), _evt(EventType.HEARTBEAT, second, at), at)]
                )
    assert statements == []
    assert _state(app, devices[0][1]) == (True, start)  # not written yet
    assert presences.pending == 3
    with _statements(app) as statements:
        assert presences.flush() == 3
    assert len(statements) == 1 and statements[0].startswith("UPDATE devices"), statements
    latest = start + timedelta(seconds=3)
    assert all(_state(app, device_id) == (True, latest) for _c, device_id in devices)
    assert presences.stats["heartbeat"] == 9
    assert presences.pending == 0


def test_a_heartbeat_goes_the_long_way_when_the_worker_does_not_know_it_online(
    app: Flask,
) -> None:
    """Known offline (a goodbye), long unseen, or of another community: written at once."""
    (device,) = _devices(app, 1)
    presences = PresenceBuffer(app, fresh=timedelta(seconds=10))
    ingest = DeviceIngest(app, presences)
    topic = device_topic(*device, "evt")
    start = utcnow().replace(microsecond=0)
    ingest.apply_batch([(topic, _evt(EventType.HEARTBEAT, 1, start), start)])
    at = start + timedelta(seconds=1)
    ingest.apply_batch([(device_topic(*device, "status"), OFFLINE_WILL, at)])
    assert _state(app, device[1]) == (False, start)
    back = start + timedelta(seconds=2)
    ingest.apply_batch([(topic, _evt(EventType.HEARTBEAT, 2, back), back)])
    assert _state(app, device[1]) == (True, back)  # back online at once, not a second later
    late = back + timedelta(seconds=10)  # unseen for ``fresh``: the silence job may have run
    ingest.apply_batch([(topic, _evt(EventType.HEARTBEAT, 3, late), late)])
    assert _state(app, device[1]) == (True, late)
    assert not presences.offer(device[1], "com_other", late, late + timedelta(seconds=1))
    assert presences.offer(device[1], device[0], late, late + timedelta(seconds=1))


def test_the_pump_acknowledges_after_applying_and_flushes_on_stop(app: Flask) -> None:
    """Through the worker's consumer: each message acknowledged once applied, in order; the
    heartbeats kept in memory (no flush due for an hour) are written when it stops."""
    (device,) = _devices(app, 1)
    presences = PresenceBuffer(app, fresh=timedelta(minutes=3))
    ingest = DeviceIngest(app, presences)
    pump = IngestPump(ingest, presences, flush_after_s=3600)
    acked: list[int] = []
    applied = {1: threading.Event(), 5: threading.Event()}
    pump.start()
    topic = device_topic(*device, "evt")
    for seq in range(1, 6):
        payload = _evt(EventType.HEARTBEAT if seq > 1 else EventType.DOOR_OPENED, seq)

        def ack(seq: int = seq) -> None:
            acked.append(seq)
            if seq in applied:
                applied[seq].set()

        pump.submit(topic, payload, ack)
        if seq == 1:  # the worker learns the device online from its first message
            assert applied[1].wait(WAIT_S)
    assert applied[5].wait(WAIT_S)
    assert acked == [1, 2, 3, 4, 5]
    _online, seen_before = _state(app, device[1])
    assert presences.pending == 1
    pump.stop()
    _online, seen_after = _state(app, device[1])
    assert seen_after > seen_before
    assert dict(ingest.stats) == {"event": 1, "heartbeat": 4}
    pump.submit(topic, _evt(EventType.DOOR_OPENED, 9), lambda: acked.append(9))
    assert acked == [1, 2, 3, 4, 5]  # stopped: neither taken nor acknowledged


def test_heartbeats_over_mqtt_reach_last_seen_within_a_second_and_offline_still_fires(
    live_app: Flask, broker: Broker
) -> None:
    """A door beats every 0.5 s through the worker: its last-seen follows within about a
    second (the flush); once it falls silent, the silence job, which judges silence as of
    ``PRESENCE_LAG`` ago, marks it offline and raises one alert."""
    (device,) = _devices(live_app, 1)
    topic = device_topic(*device, "evt")
    publisher = MqttBus(BrokerAddress.from_url(broker.url), "test-heartbeating-door")
    publisher.start()
    assert publisher.wait_connected(WAIT_S)
    try:
        with running_worker(live_app) as worker:
            publisher.publish(topic, _evt(EventType.HEARTBEAT, 1))
            assert eventually(lambda: _state(live_app, device[1])[1] is not None)
            _online, first_seen = _state(live_app, device[1])
            for seq in range(2, 5):  # known online now: kept in memory
                publisher.publish(topic, _evt(EventType.HEARTBEAT, seq))
            assert eventually(lambda: worker.presences.kept == 3)
            assert eventually(lambda: worker.ingest.stats["heartbeat"] == 4, timeout=5)
            online, last_seen = _state(live_app, device[1])
            assert online and last_seen > first_seen
            assert not (worker.ingest.stats["unknown_device"] or worker.ingest.batches_retried)
    finally:
        publisher.stop()
    worker = Worker(live_app)  # not run: its silence job alone, as the leader runs it

    def silent_for(seconds: timedelta) -> None:
        """As if the door's last message had come ``seconds`` ago."""
        with live_app.app_context():
            since = utcnow() - seconds
            db.session.execute(
                update(Device)
                .where(Device.id == device[1])
                .values(last_seen_at=since, last_status_at=since)
            )
            db.session.commit()
            db.session.remove()

    allowed = timedelta(seconds=HEARTBEAT_S * MISSES)
    silent_for(allowed + timedelta(seconds=2))  # a little longer than allowed, but a late
    worker.detect_offline_devices()  # flush of its last heartbeat could still come: not yet
    assert _state(live_app, device[1])[0] is True
    silent_for(allowed + PRESENCE_LAG + timedelta(seconds=2))
    worker.detect_offline_devices()
    worker.detect_offline_devices()
    assert _state(live_app, device[1])[0] is False
    alerts = query(
        live_app,
        select(Alert.id).where(
            Alert.device_id == device[1], Alert.type == AlertType.DEVICE_OFFLINE
        ),
    )
    assert len(alerts) == 1


def test_a_message_the_handler_did_not_acknowledge_comes_again(broker: Broker) -> None:
    """``deferred_acks``: the broker gives a message again, after a reconnect, until the
    handler acknowledges it (what keeps a batch that never committed from being lost)."""
    address = BrokerAddress.from_url(broker.url)
    got: list[bytes] = []

    def consume(acknowledge: bool, publish: bytes | None, expected: list[bytes]) -> None:
        def handler(_topic: str, payload: bytes, ack: Callable[[], None]) -> None:
            got.append(payload)
            if acknowledge:
                ack()

        consumer = MqttBus(address, "test-deferred-acks", deferred_acks=True)
        consumer.subscribe_deferred("test/deferred", handler)
        consumer.start()
        try:
            assert consumer.wait_subscribed(WAIT_S)
            if publish is not None:
                _publish(broker, [("test/deferred", publish)])
            assert eventually(lambda: got == expected), got
        finally:
            consumer.stop()

    consume(False, b"one", [b"one"])  # taken, never acknowledged (a worker killed meanwhile)
    consume(True, None, [b"one", b"one"])  # given again, acknowledged this time
    consume(True, b"two", [b"one", b"one", b"two"])  # and not again
