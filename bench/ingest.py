"""Benchmark: the worker's ingest of device traffic, before and after batching, in one run.

Against a real Mosquitto on loopback and a temporary SQLite database (``--postgres``: a
throwaway PostgreSQL 15 cluster started here), ``--devices`` devices of one community:

- ``one transaction per message``: a burst of ``--events`` events (``--devices`` devices,
  each numbering its own ``seq``) through ``DeviceIngest.handle`` subscribed on the bus, as
  the worker consumed before batching;
- then ``--rounds`` times in turn (drift between runs hits both alike; the median ratio is
  issue 19's figure, target >= 0.5):
  - ``bare subscriber``: a bare paho publisher to a bare subscriber, ``--events`` messages at
    once: the floor of the MQTT path, the denominator of the ratio;
  - ``worker (batches)``: the same burst through ``Worker``'s own consumer (``IngestPump``:
    batches, acknowledged after their commit), with the worker's bus and settings.
  Each series ends at its last message: the bare subscriber's last receipt, the consumer's
  last commit (its own count of committed events, read from memory; the database is counted
  once afterwards, so no poll competes with the consumer for the cores);
- heartbeats/s of the handler alone (no MQTT): ``--heartbeats`` heartbeats of
  ``--heartbeat-devices`` devices, received ``--per-second`` a second, through ``handle`` (a
  transaction each, as before), then through the worker's path (``apply_batch``, one
  heartbeat at a time, with the in-memory last-seen flushed every ``--per-second``), with
  the statements and commits each cost the database.

Every series prints the load average first and refuses to run above 1.5 unless ``--force``.

    .venv/bin/python -m bench.ingest [--events 3000] [--devices 20] [--rounds 3]
        [--heartbeats 5000] [--heartbeat-devices 500] [--per-second 83] [--postgres] [--force]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import event, func, select

from bench.harness import (
    add_device,
    add_load_flag,
    bench_community,
    bench_point,
    bench_settings,
    check_load,
)
from gatekeeper.vocabulary import AccessPointKind, DeviceKind, Zone
from hardware.bus import BrokerAddress, MqttBus
from hardware.messages import EventMessage
from hardware.protocol import EventType
from hardware.topics import device_topic
from server import create_app
from server.extensions import db
from server.models import Device, DeviceEvent, utcnow
from server.worker import Worker
from server.worker.ingest import DeviceIngest
from server.worker.presence import PRESENCE_LAG, PresenceBuffer
from tests.support.mosquitto import Broker


def make_app(workdir: Path, database_url: str | None, broker_url: str, devices: int) -> Flask:
    app = create_app(
        bench_settings(
            workdir,
            database_url,
            MQTT_URL=broker_url,
            MQTT_CLIENT_ID="bench-ingest-worker",
        )
    )
    with app.app_context():
        upgrade()
        community = bench_community()
        point = bench_point(community, "Door", AccessPointKind.DOOR, Zone.BUILDING)
        for number in range(devices):
            add_device(point, f"Door terminal {number}", DeviceKind.DOOR)
        db.session.commit()
        db.session.remove()
    return app


def device_topics(app: Flask, suffix: str) -> list[str]:
    with app.app_context():
        rows = db.session.execute(select(Device.community_id, Device.id).order_by(Device.id)).all()
        db.session.remove()
    return [device_topic(community_id, device_id, suffix) for community_id, device_id in rows]


def burst(topics: list[str], count: int, first_seq: int) -> list[tuple[str, bytes]]:
    """``count`` exit requests, spread over the devices in turn, each device's in seq order."""
    now = utcnow().replace(microsecond=0)
    return [
        (
            topics[i % len(topics)],
            EventMessage(type=EventType.EXIT_REQUEST, seq=first_seq + i, ts=now).encode(),
        )
        for i in range(count)
    ]


def stored_events(app: Flask) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(DeviceEvent)) or 0
        db.session.remove()
    return count


def publish_and_wait(
    broker_url: str,
    messages: list[tuple[str, bytes]],
    done: threading.Event | None,
    app: Flask | None = None,
    ingest: DeviceIngest | None = None,
) -> float:
    """Publish ``messages`` at once (QoS 1) and wait until ``done`` is set or, with ``app``
    and ``ingest``, until ``ingest`` has committed that many more events (its own count,
    read from memory: a ``count(*)`` every few ms would take the cores and the GIL from the
    consumer it measures), then check once that the database holds them; messages per second
    from the first publish to the last commit."""
    publisher = MqttBus(BrokerAddress.from_url(broker_url), f"bench-ingest-pub-{time.time_ns()}")
    publisher.start()
    if not publisher.wait_connected(10):
        raise SystemExit("cannot connect to the broker")
    before = stored_events(app) if app is not None else 0
    committed = ingest.stats["event"] if ingest is not None else 0
    start = time.perf_counter()
    for topic, payload in messages:
        publisher.publish(topic, payload)
    deadline = time.monotonic() + 300
    if done is not None:
        done.wait(300)
    elif ingest is not None:
        while ingest.stats["event"] - committed < len(messages) and time.monotonic() < deadline:
            time.sleep(0.001)
    elapsed = time.perf_counter() - start
    publisher.stop()
    if app is not None:
        stored = stored_events(app) - before
        if stored != len(messages):
            raise SystemExit(f"only {stored} of {len(messages)} events stored")
    return len(messages) / elapsed


def bare_rate(broker_url: str, count: int) -> float:
    address = BrokerAddress.from_url(broker_url)
    done = threading.Event()
    seen = [0]

    def on_message(_topic: str, _payload: bytes) -> None:
        seen[0] += 1
        if seen[0] == count:
            done.set()

    subscriber = MqttBus(address, "bench-ingest-bare")
    subscriber.subscribe("bench/ingest/#", on_message)
    subscriber.start()
    if not subscriber.wait_subscribed(10):
        raise SystemExit("cannot subscribe")
    messages = [(f"bench/ingest/{i % 20}", b'{"n": %d}' % i) for i in range(count)]
    rate = publish_and_wait(broker_url, messages, done)
    subscriber.stop()
    if seen[0] != count:
        raise SystemExit(f"bare subscriber got {seen[0]} of {count}")
    return rate


def per_message_rate(app: Flask, broker_url: str, messages: list[tuple[str, bytes]]) -> float:
    """As the worker consumed before: ``DeviceIngest.handle`` on paho's thread, a message each."""
    ingest = DeviceIngest(app)
    subscriber = MqttBus(BrokerAddress.from_url(broker_url), "bench-ingest-per-message")
    subscriber.subscribe("gk/v1/+/+/evt", ingest.handle)
    subscriber.start()
    if not subscriber.wait_subscribed(10):
        raise SystemExit("cannot subscribe")
    rate = publish_and_wait(broker_url, messages, None, app, ingest)
    subscriber.stop()
    return rate


def worker_rate(app: Flask, messages: list[tuple[str, bytes]], broker_url: str) -> float:
    worker = Worker(app)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    if not worker.bus.wait_subscribed(20):
        raise SystemExit("the worker did not subscribe")
    time.sleep(2)  # the new leader's first run of every scheduled job is not ingest
    rate = publish_and_wait(broker_url, messages, None, app, worker.ingest)
    worker.stop()
    thread.join(timeout=60)
    print(f"   (worker: {worker.pump.batches} batches, counts {dict(worker.ingest.stats)})")
    return rate


class StatementCounter:
    """Counts the statements (and commits) the app's engine sends while active."""

    def __init__(self, app: Flask):
        with app.app_context():
            self.engine = db.engine
        self.statements = 0
        self.commits = 0

    def _statement(self, *_args: object, **_kwargs: object) -> None:
        self.statements += 1

    def _commit(self, *_args: object) -> None:
        self.commits += 1

    def __enter__(self) -> StatementCounter:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)


def heartbeat_rates(app: Flask, count: int, devices: int, per_second: int, force: bool) -> None:
    """Heartbeats of ``devices`` devices arriving at ``per_second`` (their receive times so
    spaced), handled as fast as the handler goes: a transaction each, then in memory with
    one flush per ``per_second`` heartbeats (the worker flushes once a second)."""
    with app.app_context():
        point_id = db.session.scalar(select(Device.access_point_id))
        from server.models import AccessPoint

        point = db.session.get(AccessPoint, point_id)
        for number in range(devices):
            add_device(point, f"Heartbeat terminal {number}", DeviceKind.DOOR)
        db.session.commit()
        rows = db.session.execute(
            select(Device.community_id, Device.id).where(Device.name.like("Heartbeat %"))
        ).all()
        db.session.remove()
    topics = [device_topic(community_id, device_id, "evt") for community_id, device_id in rows]
    start_at = utcnow()

    def heartbeats(offset: timedelta, total: int) -> list[tuple[str, bytes, datetime]]:
        messages = []
        for i in range(total):
            at = start_at + offset + timedelta(seconds=i / per_second)
            payload = EventMessage(type=EventType.HEARTBEAT, seq=i, ts=at).encode()
            messages.append((topics[i % len(topics)], payload, at))
        return messages

    check_load("heartbeats: a transaction each (DeviceIngest.handle, as before)", force)
    ingest = DeviceIngest(app)
    with StatementCounter(app) as counted:
        started = time.perf_counter()
        for topic, payload, at in heartbeats(timedelta(0), count):
            ingest.handle(topic, payload, at)
        elapsed = time.perf_counter() - started
    old_rate = count / elapsed
    print(
        f"{'handler, a transaction each':<40} {old_rate:9.0f} heartbeats/s   "
        f"{counted.statements / count:.2f} statements, {counted.commits / count:.2f} "
        "commits per heartbeat"
    )

    check_load("heartbeats: last-seen in memory, one statement a second", force)
    presences = PresenceBuffer(app, fresh=timedelta(minutes=3) - PRESENCE_LAG)
    batched = DeviceIngest(app, presences)
    # Steady state: the worker has seen each device once (its first message is written).
    offset = timedelta(seconds=count / per_second + 1)
    batched.apply_batch(heartbeats(offset, len(topics)))
    presences.flush()
    offset += timedelta(seconds=len(topics) / per_second + 1)
    messages = heartbeats(offset, count)
    with StatementCounter(app) as counted:
        started = time.perf_counter()
        for i, message in enumerate(messages, 1):
            batched.apply_batch([message])  # a quiet worker: each its own batch
            if i % per_second == 0:
                presences.flush()
        presences.flush()
        elapsed = time.perf_counter() - started
    new_rate = count / elapsed
    print(
        f"{'handler, last-seen in memory':<40} {new_rate:9.0f} heartbeats/s   "
        f"{counted.statements / count:.3f} statements, {counted.commits / count:.3f} "
        f"commits per heartbeat (a flush every {per_second})"
    )
    print(f"{'ratio (in memory / a transaction each)':<40} {new_rate / old_rate:9.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="events per burst")
    parser.add_argument("--devices", type=int, default=20, help="devices sending them")
    parser.add_argument(
        "--rounds", type=int, default=3, help="bare subscriber and worker, in turn, this often"
    )
    parser.add_argument("--heartbeats", type=int, default=5000, help="heartbeats handled")
    parser.add_argument(
        "--heartbeat-devices", type=int, default=500, help="devices sending the heartbeats"
    )
    parser.add_argument(
        "--per-second",
        type=int,
        default=83,
        help="heartbeats arriving a second (83: 5,000 devices beating every 60 s)",
    )
    parser.add_argument(
        "--postgres", action="store_true", help="a throwaway PostgreSQL cluster, not SQLite"
    )
    add_load_flag(parser)
    args = parser.parse_args()
    logging.getLogger("alembic").setLevel(logging.WARNING)

    workdir = Path(tempfile.mkdtemp(prefix="gk-bench-ingest-"))
    cluster = None
    database_url = None
    if args.postgres:
        from tests.support.postgres import PostgresCluster

        cluster = PostgresCluster()
        cluster.start()
        database_url = cluster.create_database("bench_ingest")
    broker = Broker()
    broker.start()
    try:
        app = make_app(workdir, database_url, broker.url, args.devices)
        topics = device_topics(app, "evt")
        print(
            f"Mosquitto on loopback, {args.events} events from {args.devices} devices, "
            f"database {app.config['SETTINGS'].database_url.split(':')[0]}"
        )
        check_load("one transaction per message (DeviceIngest.handle on the bus)", args.force)
        old = per_message_rate(app, broker.url, burst(topics, args.events, 1))
        print(f"{'one transaction per message':<40} {old:9.0f} events/s")
        ratios, news = [], []
        for round_ in range(1, args.rounds + 1):  # interleaved: drift hits both alike
            check_load(f"round {round_}: bare subscriber", args.force)
            bare = bare_rate(broker.url, args.events)
            print(f"{'bare subscriber receive rate':<40} {bare:9.0f} messages/s")
            check_load(
                f"round {round_}: worker (IngestPump: batches acknowledged after commit)",
                args.force,
            )
            first_seq = 10_000_000 * round_
            new = worker_rate(app, burst(topics, args.events, first_seq), broker.url)
            print(f"{'worker (batches)':<40} {new:9.0f} events/s   {new / bare:.3f} of bare")
            ratios.append(new / bare)
            news.append(new)
        print(
            f"{'worker / bare subscriber, median':<40} {statistics.median(ratios):9.3f}"
            f"   (rounds: {', '.join(f'{r:.3f}' for r in ratios)}; target >= 0.5)"
        )
        print(f"{'ratio (batches / a transaction each)':<40} {statistics.median(news) / old:9.1f}x")

        heartbeat_rates(app, args.heartbeats, args.heartbeat_devices, args.per_second, args.force)
    finally:
        broker.stop()
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
