"""Benchmark: how many officers' consoles one stream process holds, alerts still on time.

    .venv/bin/python -m bench.consoles [--consoles 10,100,500,1000] [--rate 2] [--seconds 10]

Starts a throwaway PostgreSQL 15 cluster (``tests.support.postgres``, with
``pg_stat_statements`` loaded), migrates it (the ``gk_live`` triggers included) and makes a
community and an officer. Then, for each N of ``--consoles``, a fresh stream process as the
launcher starts it (``server.streams``: gunicorn, one gevent process,
``launcher.stream_command``) with N SSE consoles open on ``/api/v1/alerts/stream``, read by
one client thread (non-blocking sockets and ``selectors``: the client side is not the
limit), while this process raises alerts through the service layer at ``--rate`` per second
for ``--seconds``. Each console's arrival is timed from the alert's commit (wall clock, one
machine). Per N it prints the arrival latency P50/P99 over every (alert, console), the
stream process's RSS and thread count with the consoles open, and the load average; then
the first N whose P99 passed 500 ms (if any).

The baseline is the thread-per-stream web server (``launcher.web_command``: gunicorn gthread,
2 processes of 8 threads), capped at its budget (``ALERT_STREAMS_PER_PROCESS``, 4 per
process): the same figures with that many consoles, and how many more were refused (503).

Idle database work: with the largest N's consoles open and nothing changing, the statements
the stream process sends in ``--idle-seconds`` (pg_stat_statements), beside the same count
for a broadcaster that polls every 200 ms (the SQLite fallback, and what every web process
did before the notifications), run in this process with one console.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import text

from bench.harness import (
    NullPublisher,
    add_load_flag,
    bench_community,
    bench_settings,
    check_load,
)
from bench.stats import percentile
from gatekeeper.vocabulary import AlertType, Severity
from server import create_app, launcher
from server.alerts.service import raise_alert
from server.core import live
from server.core.auth import hash_password
from server.extensions import db
from server.models import User, UserRole
from tests.support.net import free_port, wait_for_port
from tests.support.postgres import PostgresCluster

TARGET_P99_MS = 500.0
PASSWORD = "bench-officer-password"  # noqa: S105 (a throwaway account)
OPEN_BATCH = 50  # consoles opened at once (each signs in on the stream process)
WAIT_S = 60.0
STREAM = "/api/v1/alerts/stream"
BASELINE_WORKERS = 2
BASELINE_BUDGET = 4  # ALERT_STREAMS_PER_PROCESS's default


# The consoles ----------------------------------------------------------------------------------


@dataclass
class Console:
    sock: socket.socket
    buffer: bytes = b""
    status: int | None = None
    connected: bool = False
    closed: bool = False


@dataclass
class Consoles:
    """N SSE consoles on raw sockets, read by one thread; arrivals of ``raised`` alerts."""

    host: str
    port: int
    token: str
    consoles: list[Console] = field(default_factory=list)
    arrivals: queue.Queue[tuple[str, float]] = field(default_factory=queue.Queue)
    selector: selectors.DefaultSelector = field(default_factory=selectors.DefaultSelector)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    refusals: dict[int | None, int] = field(default_factory=dict)  # status -> count

    def start(self) -> None:
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def open(self, count: int) -> tuple[int, int]:
        """Open ``count`` more consoles, ``OPEN_BATCH`` at a time; (connected, refused)."""
        refused = 0
        while count > 0:
            batch = []
            for _ in range(min(OPEN_BATCH, count)):
                sock = socket.create_connection((self.host, self.port), timeout=30)
                request = (
                    f"GET {STREAM} HTTP/1.0\r\nHost: {self.host}:{self.port}\r\n"
                    f"Authorization: Bearer {self.token}\r\nAccept: text/event-stream\r\n\r\n"
                )
                sock.sendall(request.encode())
                sock.setblocking(False)
                console = Console(sock)
                batch.append(console)
                with self.lock:
                    self.consoles.append(console)
                    self.selector.register(sock, selectors.EVENT_READ, console)
            count -= len(batch)
            deadline = time.monotonic() + WAIT_S
            while not all(c.connected or c.closed for c in batch):
                if time.monotonic() > deadline:
                    raise SystemExit("consoles did not connect within a minute")
                time.sleep(0.02)
            refused += sum(1 for c in batch if c.status != 200)
            for c in batch:
                if c.status != 200:
                    self.refusals[c.status] = self.refusals.get(c.status, 0) + 1
        with self.lock:
            return sum(1 for c in self.consoles if c.connected), refused

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
        for console in self.consoles:
            console.sock.close()
        self.selector.close()

    def _read(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                ready = self.selector.select(timeout=0) if self.consoles else []
            if not ready:
                time.sleep(0.002)
                continue
            for key, _mask in ready:
                console: Console = key.data
                try:
                    data = console.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                at = time.time()
                if not data:
                    console.closed = True
                    with self.lock:
                        self.selector.unregister(console.sock)
                    continue
                self._lines(console, data, at)

    def _lines(self, console: Console, data: bytes, at: float) -> None:
        console.buffer += data
        if console.status is None:
            head, found, rest = console.buffer.partition(b"\r\n\r\n")
            if not found:
                return
            console.status = int(head.split(b" ", 2)[1])
            console.buffer = rest
        *lines, console.buffer = console.buffer.split(b"\n")
        for line in lines:
            if line == b": connected":
                console.connected = True
            elif line.startswith(b"data: "):
                payload = json.loads(line[6:])
                if payload.get("reason") == "raised":
                    self.arrivals.put((payload["alert_id"], at))


# Processes -------------------------------------------------------------------------------------


def process_figures(master: int) -> tuple[float, int]:
    """(RSS in MiB, threads) of a gunicorn master's workers together."""
    rss, threads = 0.0, 0
    for child in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                threads += int(line.split()[1])
    return rss, threads


def start(
    command: list[str], environ: dict[str, str], port: int, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 (our own command line)
            command, env=environ, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
    try:
        wait_for_port(port, timeout=60)
        deadline = time.monotonic() + WAIT_S
        while True:  # the master listens first; wait for its workers' first answer
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
                    probe.sendall(b"GET /livez HTTP/1.0\r\n\r\n")
                    if b" 200 " in probe.recv(64).split(b"\r\n", 1)[0]:
                        return process
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{command[-1]} did not answer within a minute: see {log}")
            time.sleep(0.2)
    except BaseException:
        stop(process)
        raise


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGQUIT)  # at once: open streams would hold SIGTERM up
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# Rounds ----------------------------------------------------------------------------------------


@dataclass
class Round:
    name: str
    consoles: int
    refused: int
    latencies_ms: list[float]
    rss_mib: float
    threads: int
    missing: int
    load: tuple[float, float, float]


def raise_alerts(app: Flask, community_id: str, rate: float, seconds: float) -> dict[str, float]:
    """Alerts through the service layer at ``rate`` per second; id -> its commit's wall time."""
    committed: dict[str, float] = {}
    interval = 1.0 / rate
    next_at = time.monotonic()
    end = next_at + seconds
    while next_at < end:
        time.sleep(max(0.0, next_at - time.monotonic()))
        with app.app_context():
            alert = raise_alert(
                community_id=community_id,
                type=AlertType.DOOR_FORCED,
                severity=Severity.HIGH,
                summary="Door forced open: bench",
            )
            db.session.commit()
            committed[alert.id] = time.time()
            db.session.remove()
        next_at += interval
    return committed


def measure(
    name: str,
    app: Flask,
    community_id: str,
    token: str,
    port: int,
    process: subprocess.Popen[bytes],
    count: int,
    rate: float,
    seconds: float,
) -> tuple[Round, Consoles]:
    consoles = Consoles("127.0.0.1", port, token)
    consoles.start()
    connected, refused = consoles.open(count)
    time.sleep(1.0)  # every console subscribed and idle
    rss, threads = process_figures(process.pid)
    committed = raise_alerts(app, community_id, rate, seconds)
    expected = len(committed) * connected
    latencies: list[float] = []
    deadline = time.monotonic() + 10.0
    while len(latencies) < expected and time.monotonic() < deadline:
        try:
            alert_id, at = consoles.arrivals.get(timeout=0.5)
        except queue.Empty:
            continue
        if alert_id in committed:
            latencies.append((at - committed[alert_id]) * 1000)
    figures = Round(
        name,
        connected,
        refused,
        latencies,
        rss,
        threads,
        expected - len(latencies),
        os.getloadavg(),
    )
    return figures, consoles


def report(round_: Round) -> None:
    ms = round_.latencies_ms or [float("nan")]
    load = " ".join(f"{value:.2f}" for value in round_.load)
    print(
        f"{round_.name:<22} consoles {round_.consoles:>5} (refused {round_.refused:>4})"
        f"   P50 {percentile(ms, 50):7.1f} ms   P99 {percentile(ms, 99):7.1f} ms"
        f"   missing {round_.missing:>4}   RSS {round_.rss_mib:7.1f} MiB"
        f"   threads {round_.threads:>4}   load {load}",
        flush=True,
    )


# Idle statements -------------------------------------------------------------------------------


def statements(app: Flask) -> int:
    """Statements recorded in this database by pg_stat_statements (ours excluded)."""
    with app.app_context():
        count = db.session.scalar(
            text(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND query NOT ILIKE '%pg_stat_statements%'"
            )
        )
        db.session.remove()
    return int(count)


def reset_statements(app: Flask) -> None:
    with app.app_context():
        db.session.execute(text("SELECT pg_stat_statements_reset()"))
        db.session.commit()
        db.session.remove()


def idle_statements(app: Flask, seconds: float) -> int:
    reset_statements(app)
    time.sleep(seconds)
    return statements(app)


def polling_statements(app: Flask, community_id: str, seconds: float) -> int:
    """A broadcaster that polls (``listen=False``), one console, ``seconds`` of nothing."""
    hub = live.Broadcaster(app, listen=False)
    hub.subscribe(live.Subscriber(frozenset({"alerts"}), frozenset({community_id})), 10)
    try:
        time.sleep(1.0)
        return idle_statements(app, seconds)
    finally:
        hub.stop()


# Main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--consoles", default="10,100,500,1000")
    parser.add_argument("--rate", type=float, default=2.0, help="alerts per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="of alerts per N")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    add_load_flag(parser)
    args = parser.parse_args()
    check_load("set-up", args.force)
    counts = [int(n) for n in args.consoles.split(",")]

    cluster = PostgresCluster()
    cluster.start()
    cluster.pause()
    with (cluster.data / "postgresql.conf").open("a") as conf:
        conf.write("\nshared_preload_libraries = 'pg_stat_statements'\nmax_connections = 200\n")
    cluster.resume()
    workdir = Path(tempfile.mkdtemp(prefix="gk-bench-consoles-"))
    try:
        url = cluster.create_database("gatekeeper_consoles")
        environ = bench_settings(workdir, url, MQTT_URL="mqtt://127.0.0.1:1")
        app = create_app(environ)
        app.extensions["mqtt_publisher"] = NullPublisher()
        with app.app_context():
            upgrade()
            db.session.execute(text("CREATE EXTENSION pg_stat_statements"))
            community = bench_community()
            officer = User(
                username="officer", role=UserRole.OFFICER, password_hash=hash_password(PASSWORD)
            )
            officer.communities = [community]
            db.session.add(officer)
            db.session.commit()
            community_id = community.id
            db.session.remove()
        token = api_token(app)
        base_env = {**os.environ, **environ}
        base_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        print(
            f"PostgreSQL 15 (LISTEN/NOTIFY), {args.rate:g} alerts/s for {args.seconds:g} s per N,"
            f" {os.cpu_count()} CPUs; latency: commit -> arrival at each console",
            flush=True,
        )

        # The thread-per-stream baseline, at its budget and one past it.
        port = free_port()
        web_env = {**base_env, **launcher.metrics_environment(workdir)}
        web = start(launcher.web_command("127.0.0.1", port), web_env, port, workdir / "web.log")
        budget = BASELINE_WORKERS * BASELINE_BUDGET
        try:
            check_load("web (gthread) baseline", args.force)
            baseline, consoles = measure(
                "web (gthread) baseline",
                app,
                community_id,
                token,
                port,
                web,
                budget + 4,
                args.rate,
                args.seconds,
            )
            consoles.close()
        finally:
            stop(web)
        report(baseline)

        rounds: list[Round] = []
        idle = None
        for count in counts:
            port = free_port()
            stream_env = launcher.stream_environment(base_env, workdir)
            stream_env["ALERT_STREAMS_PER_PROCESS"] = str(max(count, 1))
            command = launcher.stream_command("127.0.0.1", port)
            at = command.index("--worker-connections") + 1  # past 1,000: room for them all
            command[at] = str(max(int(command[at]), 2 * count + 100))
            streams = start(
                command,
                stream_env,
                port,
                workdir / "streams.log",
            )
            try:
                check_load(f"stream process (gevent), {count} consoles", args.force)
                figures, consoles = measure(
                    "stream process (gevent)",
                    app,
                    community_id,
                    token,
                    port,
                    streams,
                    count,
                    args.rate,
                    args.seconds,
                )
                if count == counts[-1]:
                    time.sleep(1.0)  # the last arrivals' reads are done
                    idle = idle_statements(app, args.idle_seconds)
                consoles.close()
            finally:
                stop(streams)
            report(figures)
            rounds.append(figures)

        late = next(
            (
                r.consoles
                for r in rounds
                if r.latencies_ms and percentile(r.latencies_ms, 99) > TARGET_P99_MS
            ),
            None,
        )
        print(
            f"first N with P99 > {TARGET_P99_MS:.0f} ms: "
            + (str(late) if late is not None else f"none up to {counts[-1]}")
        )
        low, high = rounds[0], rounds[-1]
        if high.consoles > low.consoles:
            per_console = (high.rss_mib - low.rss_mib) * 1024 / (high.consoles - low.consoles)
            print(
                f"stream process: {per_console:.0f} KiB more RSS per console"
                f" (N={low.consoles} -> {high.consoles}: {low.rss_mib:.0f} -> {high.rss_mib:.0f}"
                f" MiB, {high.threads} thread(s)); baseline: {baseline.consoles} consoles in"
                f" {baseline.rss_mib:.0f} MiB and {baseline.threads} threads over"
                f" {BASELINE_WORKERS} processes, {baseline.refused} refused (503)"
            )
        if baseline.latencies_ms and high.latencies_ms:
            print(
                f"P99 ratio, stream process at N={high.consoles} / baseline at its budget:"
                f" {percentile(high.latencies_ms, 99) / percentile(baseline.latencies_ms, 99):.2f};"
                f" consoles one process holds: {high.consoles} / {BASELINE_BUDGET} (its budget)"
            )
        check_load("idle statements", args.force)
        polled = polling_statements(app, community_id, args.idle_seconds)
        print(
            f"idle database statements in {args.idle_seconds:g} s: stream process with"
            f" {counts[-1]} consoles (notified) {idle}; a polling broadcaster (200 ms, one"
            f" console) {polled}; ratio polled/notified {polled / max(idle or 0, 1):.0f}"
        )
        print("load average: " + " ".join(f"{value:.2f}" for value in os.getloadavg()))
    finally:
        cluster.stop()


def api_token(app: Flask) -> str:
    answer = app.test_client().post(
        "/api/v1/auth/token", json={"username": "officer", "password": PASSWORD}
    )
    if answer.status_code != 201:
        raise SystemExit(f"no token: {answer.status_code} {answer.text}")
    return answer.json["token"]


if __name__ == "__main__":
    sys.exit(main())
