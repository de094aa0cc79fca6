"""Benchmark: command latency to a simulated door, and event ingest rate of the worker.

Runs in one process against a real Mosquitto on loopback and a temporary SQLite
database (or ``--database-url``):

- ``open`` latency: from the server committing (and so publishing) a command to the
  simulated door acting on it, over ``--commands`` commands, one at a time;
- the same path without the server or simulator (a bare paho publish to a bare
  subscriber) as the baseline, for the ratio;
- ingest: the door publishes ``--events`` events at once; events stored per second
  by the worker, against a bare subscriber's receive rate (``bench.ingest`` compares the
  worker with the one-transaction-per-message consumer, and on PostgreSQL too).

Each series prints the load average first and refuses to run above 1.5 unless ``--force``.

    .venv/bin/python -m bench.mqtt_commands [--commands 1000] [--events 2000] [--force]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from flask_migrate import upgrade
from sqlalchemy import func, select

from bench.harness import (
    add_device,
    add_load_flag,
    bare_mqtt_latency,
    bench_community,
    bench_point,
    bench_settings,
    check_load,
)
from bench.stats import percentile
from gatekeeper.vocabulary import AccessPointKind, DeviceKind, Zone
from hardware.bus import BrokerAddress, MqttBus
from hardware.messages import CommandMessage
from hardware.protocol import Command, EventType
from hardware.simulate.actuators import Door
from hardware.simulate.device import DeviceIdentity
from server import create_app
from server.core.messaging import OutgoingMessage, Publisher
from server.devices import commands
from server.extensions import db
from server.models import Device, DeviceEvent
from server.worker import Worker
from tests.support.mosquitto import Broker


def summary(name: str, latencies_ms: list[float]) -> str:
    return (
        f"{name:<34} n={len(latencies_ms):<5} P50 {percentile(latencies_ms, 50):7.2f} ms"
        f"   P99 {percentile(latencies_ms, 99):7.2f} ms"
        f"   mean {statistics.fmean(latencies_ms):7.2f} ms"
    )


def bare_receive_rate(broker_url: str, count: int) -> float:
    address = BrokerAddress.from_url(broker_url)
    done = threading.Event()
    seen = [0]

    def on_message(_topic: str, _payload: bytes) -> None:
        seen[0] += 1
        if seen[0] == count:
            done.set()

    subscriber = MqttBus(address, "bench-rate-sub")
    subscriber.subscribe("bench/rate", on_message)
    subscriber.start()
    publisher = MqttBus(address, "bench-rate-pub")
    publisher.start()
    if not (subscriber.wait_connected(10) and publisher.wait_connected(10)):
        raise SystemExit("cannot connect to the broker")
    time.sleep(0.3)
    start = time.perf_counter()
    for i in range(count):
        publisher.publish("bench/rate", str(i).encode())
    done.wait(60)
    elapsed = time.perf_counter() - start
    publisher.stop()
    subscriber.stop()
    return count / elapsed


class TimedPublisher(Publisher):
    """The server's publisher, noting when each command leaves for the broker."""

    def __init__(self, bus: MqttBus):
        super().__init__(bus, owned=False)
        self.published_at: dict[str, datetime] = {}

    def publish(self, message: OutgoingMessage) -> None:
        cmd_id = CommandMessage.decode(message.payload).cmd_id
        self.published_at[cmd_id] = datetime.now(UTC)
        super().publish(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    add_load_flag(parser)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="gk-bench-"))
    broker = Broker()
    broker.start()
    app = create_app(
        bench_settings(
            workdir, args.database_url, MQTT_URL=broker.url, MQTT_CLIENT_ID="bench-worker"
        )
    )
    with app.app_context():
        upgrade()
        community = bench_community()
        point = bench_point(community, "Door", AccessPointKind.DOOR, Zone.BUILDING)
        device, secret = add_device(point, "Door terminal", DeviceKind.DOOR)
        db.session.commit()
        identity = DeviceIdentity(device.id, secret, community.id)
        device_id = device.id

    worker = Worker(app)
    worker_thread = threading.Thread(target=worker.run, daemon=True)
    worker_thread.start()
    door = Door(identity, broker.url)
    door.start()
    if not (worker.bus.wait_connected(10) and door.wait_ready(10)):
        raise SystemExit("worker or door did not connect")

    print(
        f"Mosquitto on loopback, {args.commands} commands, {args.events} events, "
        f"database {app.config['SETTINGS'].database_url.split(':')[0]}"
    )
    check_load("command latency (bare, then through the server)", args.force)
    baseline = bare_mqtt_latency(broker.url, args.commands, "bench-bare")
    # Like a web process: its own connection, not the worker's (busy with acks).
    web_bus = MqttBus(BrokerAddress.from_url(broker.url), "bench-web")
    web_bus.start()
    if not web_bus.wait_connected(10):
        raise SystemExit("web publisher did not connect")
    timed = TimedPublisher(web_bus)
    app.extensions["mqtt_publisher"] = timed
    latencies, from_publish = [], []
    with app.app_context():
        device = db.session.get(Device, device_id)
        for _ in range(args.commands):
            row = commands.issue(device, Command.OPEN, open_ms=1)
            start = datetime.now(UTC)
            db.session.commit()  # the outbox publishes on commit
            action = door.wait_for_action(Command.OPEN, 5, cmd_id=row.id)
            if action is None:
                raise SystemExit("the door did not act on a command within 5 s")
            latencies.append((action.at - start).total_seconds() * 1000)
            from_publish.append((action.at - timed.published_at[row.id]).total_seconds() * 1000)
            device = db.session.get(Device, device_id)
    print(summary("bare publish -> subscriber", baseline))
    print(summary("server publishes -> door acts", from_publish))
    print(summary("server commit -> door acts", latencies))
    print(
        f"{'ratio (publish P50 / bare P50)':<34} "
        f"{percentile(from_publish, 50) / percentile(baseline, 50):.2f}x"
    )

    check_load("ingest rate (bare subscriber, then the worker)", args.force)
    bare_rate = bare_receive_rate(broker.url, args.events)
    start = time.perf_counter()
    for _ in range(args.events):
        door.emit(EventType.EXIT_REQUEST)
    stored = 0
    deadline = time.monotonic() + 120
    with app.app_context():
        while stored < args.events and time.monotonic() < deadline:
            stored = db.session.scalar(select(func.count()).select_from(DeviceEvent))
            db.session.rollback()
            time.sleep(0.02)
    elapsed = time.perf_counter() - start
    print(f"{'bare subscriber receive rate':<34} {bare_rate:9.0f} messages/s")
    print(
        f"{'worker ingest (stored events)':<34} {stored / elapsed:9.0f} events/s "
        f"({stored}/{args.events} in {elapsed:.2f} s)"
    )
    print(f"{'ratio (ingest / bare)':<34} {stored / elapsed / bare_rate:.3f}")

    door.stop()
    web_bus.stop()
    worker.stop()
    worker_thread.join(timeout=30)
    broker.stop()


if __name__ == "__main__":
    main()
