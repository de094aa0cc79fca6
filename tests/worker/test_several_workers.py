"""Several real worker processes: shared subscriptions, one scheduler leader, a takeover.

Workers are started like an operator starts them (``flask worker`` with ``WORKER_ID``) and
talk to a real Mosquitto and the test database (SQLite or PostgreSQL). Heartbeats are 1 s,
so a takeover is due within 2 s; the time each took is printed (``-s`` shows it).
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from flask import Flask
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

from gatekeeper.vocabulary import AlertType, PersonRole, Severity
from hardware.protocol import EventType
from hardware.simulate.actuators import Door
from hardware.simulate.device import DeviceIdentity
from hardware.topics import DEFAULT_SHARE_GROUP, SERVER_SUBSCRIPTIONS, alerts_topic, shared
from server import create_app
from server.alerts.service import raise_alert
from server.devices.broker_sync import sync_broker
from server.extensions import db
from server.models import (
    Alert,
    AlertDelivery,
    AlertHistory,
    AuditEntry,
    Card,
    Community,
    DeviceEvent,
    Lease,
    utcnow,
)
from server.worker.identity import host_name
from tests import factories
from tests.conftest import app_environment
from tests.support.e2e import SERVER_PASSWORD, SERVER_USER, WAIT_S, eventually, managing_app, query
from tests.support.mosquitto import Broker
from tests.support.mqtt_listener import Listener, stop_client
from tests.worker.processes import LogLine, WorkerProcess

HEARTBEAT_S = 1
EVENTS = 60
# What a worker logs (at DEBUG) when it finds the scheduler lock held, and when a job starts.
FOUND_HELD = "tried the scheduler lock: another worker holds it"
JOB_START = re.compile(r"job \w+ starts")


def _leads(worker: WorkerProcess) -> str:
    """The line a worker logs when it takes the lead."""
    return f"worker {host_name()}-{worker.worker_id} leads the scheduled jobs"


def _ingest_counts(log: str) -> dict[str, int]:
    """What a worker said it ingested, from its last log line."""
    found = re.search(r"stopped; ingest counts: (\{.*\})", log)
    assert found, log
    return ast.literal_eval(found.group(1))


def _own_database(workdir: Path, new_database, name: str) -> tuple[Flask, str]:
    """An app on a database of its own: workers are killed in the middle of their writes."""
    from flask_migrate import upgrade

    database_url = new_database(f"{name}_{os.getpid()}_{time.monotonic_ns()}")
    app = create_app(app_environment(workdir, database_url))
    with app.app_context():
        upgrade()
    return app, database_url


@dataclass
class SharedSite:
    """Two workers sharing device traffic on the authenticated broker, a door, and a second
    device whose secret an intruder has."""

    manager: Flask
    broker: Broker
    workers: list[WorkerProcess]
    door: Door
    intruder_id: str
    intruder_secret: str

    def stored(self) -> list[int]:
        rows = query(
            self.manager,
            select(DeviceEvent.seq).where(DeviceEvent.device_id == self.door.device_id),
        )
        return sorted(row[0] for row in rows)

    def both_subscribed(self) -> bool:
        """Both fresh and subscribed, and one of them leads (what ``/healthz`` says)."""
        ids = {f"{host_name()}-{w.worker_id}" for w in self.workers}
        checks = self.manager.test_client().get("/healthz").json["checks"]["worker"]
        subscribed = {
            w["id"] for w in checks.get("workers", []) if w["fresh"] and w["mqtt_connected"]
        }
        return ids <= subscribed and checks["leader"] in ids


@pytest.fixture
def shared_site(
    app: Flask, workdir: Path, database_url: str, authenticated_broker: Broker
) -> Iterator[SharedSite]:
    broker = authenticated_broker
    with managing_app(workdir, database_url, broker, "gatekeeper-worker") as manager:
        with manager.app_context():
            world = factories.world(door_secret="door-secret-for-shared-tests")
            intruder, intruder_secret = factories.device(world.door_a)
            db.session.commit()
            identity = DeviceIdentity(world.device_a.id, "door-secret-for-shared-tests", world.a.id)
            intruder_id = intruder.id
            assert sync_broker(manager)  # the server's account and both devices
            db.session.remove()
        url = broker.server_url(SERVER_USER, SERVER_PASSWORD)
        workers = [
            WorkerProcess(
                workdir,
                database_url,
                url,
                name,
                log_level="DEBUG",  # each job's start, for "never twice"
                MQTT_SHARED_SUBSCRIPTIONS="1",
            )
            for name in ("a", "b")
        ]
        door = Door(identity, broker.url)
        site = SharedSite(manager, broker, workers, door, intruder_id, intruder_secret)
        try:
            assert eventually(site.both_subscribed, 60), [w.output for w in workers]
            door.start()
            assert door.wait_ready(WAIT_S)
            yield site
        finally:
            door.stop()
            for worker in workers:
                worker.stop()


def test_two_workers_split_device_events_and_store_each_once(shared_site: SharedSite) -> None:
    """A door sends 60 events over the authenticated broker, 14 of them twice (as a
    redelivery would); two workers share them through the shared subscriptions. Every seq
    is stored exactly once, both workers stored some, each copy was seen as one, and a
    device that subscribes to the same shared subscription under the default group name
    takes nothing away."""
    site, door = shared_site, shared_site.door
    thief = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=site.intruder_id, protocol=mqtt.MQTTv5
    )
    stolen: list[bytes] = []
    thief.on_message = lambda _c, _u, message: stolen.append(message.payload)
    thief.username_pw_set(site.intruder_id, site.intruder_secret)
    thief.connect("127.0.0.1", site.broker.port)
    thief.loop_start()
    try:
        thief.subscribe(shared(DEFAULT_SHARE_GROUP, SERVER_SUBSCRIPTIONS[1]), qos=1)
        messages = [door.emit(EventType.EXIT_REQUEST) for _ in range(EVENTS - 20)]
        for message in messages[::3]:  # a third of them again, as a redelivery would
            door.bus.publish(door.topics["evt"], message.encode(), qos=1)
        # Last, new ones for both workers: once they are stored, so are the copies before.
        messages += [door.emit(EventType.EXIT_REQUEST) for _ in range(20)]
        sent = [message.seq for message in messages]
        assert eventually(lambda: site.stored() == sorted(sent), 30), len(site.stored())
    finally:
        stop_client(thief)
    # Only the leader ran jobs (the delivery job alone runs every second). Looked at while
    # both still run: once the first stops, the other may take over, as it should.
    assert eventually(lambda: any(_job_starts(w) for w in site.workers), 30)
    running_jobs = [w.worker_id for w in site.workers if _job_starts(w)]
    assert len(running_jobs) == 1, [w.output for w in site.workers]
    counts = [_ingest_counts(worker.stop()) for worker in site.workers]
    stored_by = [c.get("event", 0) for c in counts]
    print(f"\nevents stored per worker: {stored_by} of {EVENTS}")
    assert all(n > 0 for n in stored_by), counts  # the broker split them
    assert sum(stored_by) == EVENTS, counts
    assert sum(c.get("duplicate_event", 0) for c in counts) == len(range(0, EVENTS - 20, 3))
    assert stolen == []


def test_the_share_of_a_worker_that_died_reaches_the_other(shared_site: SharedSite) -> None:
    """One of two workers is killed (SIGKILL) and stays dead. Mosquitto keeps handing every
    second event to its session; once its heartbeat is stale the leader takes that session
    over, applies what was queued there and ends it, so the broker gives everything to the
    living worker. Every event is stored, none twice."""
    site, door = shared_site, shared_site.door
    dead, living = site.workers[1], site.workers[0]
    killed_at = dead.kill()
    sent = [door.emit(EventType.EXIT_REQUEST).seq for _ in range(30)]
    assert eventually(lambda: site.stored() == sorted(sent), 60), (
        len(site.stored()),
        living.output,
    )
    print(
        f"\nevery event stored {time.monotonic() - killed_at:.1f} s after the kill (heartbeat 1 s)"
    )
    took_over = living.wait_for(f"took over the broker session of {host_name()}-b", 15)
    assert took_over, living.output
    assert query(
        site.manager,
        select(func.count()).where(DeviceEvent.device_id == door.device_id),
    )[0][0] == len(sent)


@contextlib.contextmanager
def _writes_held(database_url: str, *rows: tuple[str, str]) -> Iterator[None]:
    """Hold up writers: on SQLite the write lock (``BEGIN IMMEDIATE``), on PostgreSQL the row
    locks of ``rows`` (table, id). A worker's job then waits in the middle of its work."""
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection, connection.begin() as transaction:
            for table, row_id in rows:
                connection.execute(
                    text(f"SELECT id FROM {table} WHERE id = :id FOR UPDATE"),  # noqa: S608
                    {"id": row_id},
                )
            yield
            transaction.rollback()
    finally:
        engine.dispose()


def _waiting_on_locks(database_url: str) -> int:
    """How many PostgreSQL sessions of this database wait for a lock."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
    finally:
        engine.dispose()


def _tries_since(worker: WorkerProcess, since: float) -> int:
    """How many times ``worker`` found the scheduler lock held, in lines read after ``since``."""
    return sum(1 for line in worker.lines if line.at > since and FOUND_HELD in line.text)


def _job_starts(worker: WorkerProcess) -> list[LogLine]:
    return [line for line in worker.lines if JOB_START.search(line.text)]


def test_killing_the_leader_during_a_lease_end_and_an_escalation(
    workdir: Path, new_database, broker: Broker
) -> None:
    """Two workers; the leader's lease-end and escalation jobs are held in the middle of their
    transactions, and the leader is killed (SIGKILL). The other worker takes over within two
    heartbeat intervals (counted in its own tries of the lock, not in seconds) and does each
    exactly once: one ``lease.ended`` audit entry, one ``escalated`` step in the alert's
    history, one escalation delivery and one escalated alert on the officers' MQTT topic.
    No job ever started on the follower before the leader died."""
    app, database_url = _own_database(workdir, new_database, "leader_kill")
    now = utcnow()
    with app.app_context():
        world = factories.world()
        db.session.get(Community, world.a.id).settings = {"alert_ack_minutes": 1}
        tenant = factories.person(world.a)
        factories.membership(tenant, PersonRole.TENANT, unit_of=world.unit_a)
        lease = factories.lease(
            tenant,
            world.unit_a,
            starts_at=now - timedelta(days=30),
            ends_at=now - timedelta(minutes=1),
        )
        factories.card(tenant)
        alert = raise_alert(
            community_id=world.a.id,
            type=AlertType.PANIC,
            severity=Severity.HIGH,
            summary="Panic button pressed",
        )
        db.session.flush()
        alert.created_at = now - timedelta(minutes=2)  # unacknowledged for two periods of 1 min
        db.session.commit()
        lease_id, alert_id, tenant_id = lease.id, alert.id, tenant.id
        community_id = world.a.id
        db.session.remove()

    officers = Listener(broker.port)
    officers.listen(alerts_topic(community_id))
    workers: list[WorkerProcess] = []
    try:
        with _writes_held(database_url, ("leases", lease_id), ("alerts", alert_id)):
            workers = [
                WorkerProcess(
                    workdir,
                    database_url,
                    broker.url,
                    name,
                    log_level="DEBUG",
                    MQTT_SHARED_SUBSCRIPTIONS="1",
                )
                for name in ("a", "b")
            ]

            def leader() -> WorkerProcess | None:
                return next((w for w in workers if w.wait_for(_leads(w), 0)), None)

            leading = eventually(leader, 60)
            assert leading, [w.output for w in workers]
            follower = next(w for w in workers if w is not leading)
            for job in ("close_leases", "escalate_alerts"):
                assert leading.wait_for(f"job {job} starts"), leading.output
            if not database_url.startswith("sqlite"):  # both jobs wait for our row locks
                assert eventually(lambda: _waiting_on_locks(database_url) >= 2)
            assert follower.wait_for("another worker runs the scheduled jobs"), follower.output
            killed_at = leading.kill()
        took_over = follower.wait_for(_leads(follower), 30)
        assert took_over, follower.output
        # Tries are one heartbeat interval apart. Counted after the kill: perhaps one made
        # just before it (its line read after), perhaps one before PostgreSQL saw the dead
        # session; the next one takes the lock: within two intervals of the kill.
        tries = _tries_since(follower, killed_at)
        print(
            f"\nthe follower took over {took_over.at - killed_at:.2f} s after the kill, "
            f"{tries} failed tries of the lock after it (heartbeat {HEARTBEAT_S} s)"
        )
        assert tries <= 2, follower.output

        def done() -> bool:
            lease_closed = query(app, select(Lease.closed_at).where(Lease.id == lease_id))[0][0]
            escalated = query(app, select(Alert.escalated_at).where(Alert.id == alert_id))[0][0]
            return lease_closed is not None and escalated is not None

        assert eventually(done, 30), follower.output
        # Never twice: no job started on the follower while the leader lived.
        assert all(line.at > killed_at for line in _job_starts(follower)), follower.output
        topic, escalated, _qos = officers.next_alert()
        assert (topic, escalated["alert_id"], escalated["reason"]) == (
            alerts_topic(community_id),
            alert_id,
            "escalated",
        )
    finally:
        logs = [w.stop() for w in workers]
        officers.close()

    ended = query(
        app,
        select(func.count()).where(
            AuditEntry.action == "lease.ended", AuditEntry.target_id == lease_id
        ),
    )[0][0]
    escalations = query(
        app,
        select(func.count()).where(
            AlertHistory.alert_id == alert_id, AlertHistory.action == "escalated"
        ),
    )[0][0]
    deliveries = query(
        app,
        select(AlertDelivery.channel).where(
            AlertDelivery.alert_id == alert_id, AlertDelivery.reason == "escalated"
        ),
    )
    cards = query(app, select(Card.disabled_at).where(Card.person_id == tenant_id))
    assert (ended, escalations) == (1, 1), logs
    assert [row[0] for row in deliveries] == ["mqtt"], logs
    assert officers.messages.empty()  # the escalation reached the officers once
    assert all(row[0] is not None for row in cards)  # the cascade ran, once


@pytest.mark.e2e
def test_a_second_worker_with_the_same_id_refuses_to_start(
    app: Flask, workdir: Path, database_url: str
) -> None:
    """``WORKER_ID`` names a running worker: the second one exits 1 with a one-line error
    (rather than take the first one's MQTT session over); one without ``WORKER_ID`` takes the
    next free number and follows."""
    unreachable = "mqtt://127.0.0.1:1"
    first = WorkerProcess(workdir, database_url, unreachable, "same", seconds=30)
    try:
        assert first.wait_for(_leads(first)), first.output
        second = WorkerProcess(workdir, database_url, unreachable, "same", seconds=30)
        assert second.process.wait(timeout=60) == 1
        output = second.stop()
        assert f"another worker runs as {host_name()}-same" in output, output
        assert "Traceback" not in output
        third = WorkerProcess(workdir, database_url, unreachable, None, seconds=30)
        follows = third.wait_for("another worker runs the scheduled jobs")
        third.stop()
        assert follows and f"worker {host_name()}-1 consumes MQTT" in follows.text, third.output
    finally:
        first.stop()
