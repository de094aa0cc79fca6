"""What the benchmarks share: a throwaway app, a publisher that only counts, the community with
its device, the bare MQTT floor, timing."""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.fernet import Fernet
from flask import Flask

from bench.stats import percentile
from gatekeeper.vocabulary import AccessPointKind, DeviceKind, Zone
from hardware.bus import BrokerAddress, MqttBus
from server import create_app
from server.core.messaging import OutgoingMessage, Publisher
from server.devices.service import set_secret
from server.extensions import db
from server.models import AccessPoint, Community, Device
from server.worker import checkpoint_sqlite

# Figures taken on a busy machine say more about the neighbours than about the code: above this
# one-minute load average a series is not run unless ``--force`` says so.
LOAD_LIMIT = 1.5


def add_load_flag(parser: argparse.ArgumentParser) -> None:
    """The ``--force`` flag every benchmark takes: run and print even on a busy machine."""
    parser.add_argument(
        "--force",
        action="store_true",
        help=f"print figures even when the load average is above {LOAD_LIMIT}",
    )


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages, as printed beside every series."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def check_load(series: str, force: bool) -> None:
    """Before each series: wait for the machine to settle, print the load average, and stop the
    benchmark when it is still busier than ``LOAD_LIMIT`` (the figures would be someone else's),
    unless ``force``.

    The one-minute average remembers a benchmark's own last series (two cores busy leave it
    above 2 for half a minute), so the check first waits, at most ``SETTLE_S``, for it to fall
    below the limit; a machine busy with something else stays above it and is refused.
    """
    waited = 0.0
    if not force:
        while os.getloadavg()[0] > LOAD_LIMIT and waited < SETTLE_S:
            _sleep(SETTLE_STEP_S)
            waited += SETTLE_STEP_S
    one = os.getloadavg()[0]
    settled = f" (after {waited:.0f} s settling)" if waited else ""
    print(f"-- {series}: load average {load_average()}{settled}", flush=True)
    if one > LOAD_LIMIT and not force:
        raise SystemExit(
            f"load average {one:.2f} is above {LOAD_LIMIT}: the figures would not be this "
            "code's; wait for a quiet machine or pass --force (and say so beside the figures)"
        )
    if one > LOAD_LIMIT:
        print(f"   (forced: load above {LOAD_LIMIT}, figures are noisy)", flush=True)


# How long a series waits at most for the load average to fall below the limit, and how often
# it looks.
SETTLE_S = 120.0
SETTLE_STEP_S = 5.0
_sleep = time.sleep


class NullPublisher(Publisher):
    """Commands are counted, not sent: the broker is not what these benchmarks measure."""

    def __init__(self) -> None:
        self.count = 0

    def publish(self, message: OutgoingMessage) -> None:
        self.count += 1


@contextmanager
def checkpointing(app: Flask, every_s: float = 5.0) -> Iterator[None]:
    """SQLite's WAL checkpoints in a background thread, as the worker does in production."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            checkpoint_sqlite(app)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def bench_settings(workdir: Path, database_url: str | None = None, **more: str) -> dict[str, str]:
    """A benchmark app's settings: test mode, its files in ``workdir`` (and its database, unless
    ``database_url`` names one), new keys, quiet logs; ``more`` adds to them."""
    return {
        "GK_ENV": "test",
        "INSTANCE_DIR": str(workdir),
        "DATABASE_URL": database_url or f"sqlite:///{workdir / 'bench.db'}",
        "SECRET_KEY": "bench-" + "x" * 40,
        "DATA_KEY": Fernet.generate_key().decode(),
        "LOG_LEVEL": "WARNING",
        **more,
    }


def bench_app(prefix: str) -> tuple[Flask, NullPublisher]:
    """An app on a fresh SQLite file in a temporary folder, publishing nowhere."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix=f"gk-bench-{prefix}-"))
    settings = bench_settings(workdir)
    app = create_app(settings)
    # What a server process started beside this one needs to share its database and keys.
    app.extensions["bench_settings"] = settings
    publisher = app.extensions["mqtt_publisher"] = NullPublisher()
    return app, publisher


def line(name: str, ms: list[float], decimals: int = 1) -> str:
    """One printed figure: P50, P99 and mean in milliseconds."""
    width = 6 + decimals
    return (
        f"{name:<40} P50 {percentile(ms, 50):{width}.{decimals}f} ms"
        f"   P99 {percentile(ms, 99):{width}.{decimals}f} ms"
        f"   mean {statistics.fmean(ms):{width}.{decimals}f} ms   n={len(ms)}"
    )


def timed(call: Callable[[], bytes], expect: bytes) -> float:
    """Milliseconds ``call`` took; stops the benchmark if its answer lacks ``expect``."""
    started = time.perf_counter()
    body = call()
    elapsed = (time.perf_counter() - started) * 1000
    if expect not in body:
        raise SystemExit(f"expected {expect!r} in {body[:300]!r}")
    return elapsed


def multipart(fields: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body of files: name -> (filename, content, mimetype)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, (filename, content, mimetype) in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {mimetype}\r\n\r\n'.encode()
        )
        parts.append(content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def bench_community(**settings: object) -> Community:
    """Inside an app context on a migrated database: the benchmark's community (flushed)."""
    community = Community(name="Bench", timezone="Asia/Shanghai", settings=settings)
    db.session.add(community)
    db.session.flush()
    return community


def bench_point(
    community: Community, name: str, kind: AccessPointKind, zone: Zone, **values: object
) -> AccessPoint:
    """An access point of the benchmark's community (flushed: it has its id)."""
    point = AccessPoint(community_id=community.id, name=name, kind=kind, zone=zone, **values)
    db.session.add(point)
    db.session.flush()
    return point


def add_device(point: AccessPoint, name: str, kind: DeviceKind) -> tuple[Device, str]:
    """A device of ``kind`` at ``point`` (flushed), in its zone, with a new secret: the device
    (added to the session) and the secret."""
    device = Device(
        community_id=point.community_id,
        name=name,
        kind=kind,
        access_point_id=point.id,
        zone=point.zone,
    )
    secret = set_secret(device)
    db.session.add(device)
    return device, secret


def bare_mqtt_latency(broker_url: str, count: int, client_prefix: str) -> list[float]:
    """Publish -> subscriber callback with bare clients, one message at a time: the floor of
    the loopback MQTT path, in milliseconds."""
    address = BrokerAddress.from_url(broker_url)
    received: dict[bytes, float] = {}
    arrived = threading.Condition()

    def on_message(_topic: str, payload: bytes) -> None:
        with arrived:
            received[payload] = time.perf_counter()
            arrived.notify_all()

    subscriber = MqttBus(address, f"{client_prefix}-sub")
    subscriber.subscribe("bench/bare", on_message)
    subscriber.start()
    publisher = MqttBus(address, f"{client_prefix}-pub")
    publisher.start()
    if not (subscriber.wait_connected(10) and publisher.wait_connected(10)):
        raise SystemExit("cannot connect to the broker")
    subscriber.wait_subscribed(10)
    latencies = []
    for i in range(count):
        key = str(i).encode()
        start = time.perf_counter()
        publisher.publish("bench/bare", key)
        with arrived:
            arrived.wait_for(lambda key=key: key in received, timeout=5)
        latencies.append((received[key] - start) * 1000)
    publisher.stop()
    subscriber.stop()
    return latencies
