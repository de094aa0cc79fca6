"""Soak: the whole stack as ``make run`` starts it, under mixed traffic for minutes.

    .venv/bin/python -m bench.soak [--minutes 10] [--load 0.8]

A fresh instance is migrated and seeded with the demo community, and the launcher starts
Mosquitto, Redis, gunicorn (two workers) and the worker. First the HTTP mix (card, plate,
QR and face verifications at the doors) runs as fast as eight clients can send it: that is
the capacity. Then the same mix runs at ``--load`` of it for ``--minutes``, while a door
sends events over MQTT and a panic button raises an alert every few seconds that three
officers' consoles (SSE) receive. Each minute prints the requests, errors and P50/P99 per
kind, the alerts' arrival P99 and the RSS of every process; the end compares the last minute
with the first (P99 and RSS ratios) and the device events sent with those stored.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.harness import add_load_flag, check_load, load_average
from bench.stats import percentile
from hardware.protocol import EventType
from hardware.simulate.actuators import Door
from hardware.simulate.device import DeviceIdentity
from hardware.simulate.sensors import PanicButton
from tests.fetch_test_data import test_image
from tests.support.net import free_port
from tests.support.sse import SseClient

MIX = [("card", 4), ("plate", 3), ("qr", 2), ("face", 1)]  # weights of the HTTP mix
CONSOLES = 3
PANIC_EVERY_S = 5.0
DOOR_EVENTS_PER_S = 20


class Client:
    """One keep-alive HTTP connection to the server (reopened after an error)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Any:
        """(status, body); 0 when no answer came, even on a fresh connection. A keep-alive
        connection the server closed while idle is reopened and the request sent again."""
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=body, headers=headers)
                answer = self.connection.getresponse()
                return answer.status, answer.read()
            except (OSError, http.client.HTTPException):
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt == 2:
                    return 0, b""
        return 0, b""


def _require(condition: object, what: object) -> None:
    """Stop the benchmark with a message when the stack does not do what it must."""
    if not condition:
        raise SystemExit(f"soak: {what}")


def _json(client: Client, method: str, path: str, body: Any, token: str = "") -> Any:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    payload = None if body is None else json.dumps(body).encode()
    status, data = client.call(method, path, payload, headers)
    _require(200 <= status < 300, (method, path, status, data[:300]))
    return json.loads(data) if data else None


def _multipart(fields: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, (filename, data) in fields.items()
    ]
    return b"".join(
        parts
    ) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Stack:
    """The instance folder, the launcher and what the traffic needs to know."""

    def __init__(self, database_url: str | None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="gk-soak-"))
        self.port = free_port()
        self.env = {
            **os.environ,
            "INSTANCE_DIR": str(self.folder),
            "DATABASE_URL": database_url or f"sqlite:///{self.folder / 'soak.db'}",
            "PORT": str(self.port),
            "GK_SIMULATORS": "0",
            "LOG_LEVEL": "WARNING",
            "FLASK_APP": "server",
        }
        for command in (["db", "upgrade"], ["seed"]):
            self._flask(*command)
        fleet_file = self.folder / "fleet.json"
        self._flask("demo-fleet", "--out", str(fleet_file))
        self.fleet = {d["name"]: d for d in json.loads(fleet_file.read_text())}
        self.launcher = subprocess.Popen(
            [sys.executable, "-m", "server.launcher"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.devices_url = self._wait_running()

    def _flask(self, *args: str) -> None:
        subprocess.run(  # noqa: S603 (our own interpreter and arguments)
            [sys.executable, "-m", "flask", *args], env=self.env, check=True, capture_output=True
        )

    def _wait_running(self) -> str:
        stdout = self.launcher.stdout
        _require(stdout is not None, "the launcher has no output to read")
        broker = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = stdout.readline()
            found = re.search(r"Broker:\s+(mqtt://\S+)", line)
            broker = found.group(1) if found else broker
            if "Press Ctrl-C to stop" in line and broker:
                threading.Thread(target=self._drain, daemon=True).start()
                return broker
        raise RuntimeError("the launcher did not start within 120 s")

    def _drain(self) -> None:
        for _line in self.launcher.stdout or ():
            pass

    def processes(self) -> dict[str, int]:
        """Name -> pid of the launcher and every process below it."""
        children: dict[int, list[int]] = defaultdict(list)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                children[int(fields[1])].append(int(entry.name))
        found, todo = {}, [self.launcher.pid]
        while todo:
            pid = todo.pop()
            try:
                name = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            label = next(
                (k for k in ("mosquitto", "redis", "gunicorn", "worker", "launcher") if k in name),
                "other",
            )
            found[f"{label}-{pid}"] = pid
            todo += children.get(pid, [])
        return found

    def stop(self) -> None:
        self.launcher.terminate()
        self.launcher.wait(timeout=60)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Results:
    """(ok, milliseconds) per kind of request, taken minute by minute."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[str, list[tuple[bool, float]]] = defaultdict(list)

    def add(self, result: tuple[str, bool, float]) -> None:
        kind, ok, ms = result
        with self.lock:
            self.rows[kind].append((ok, ms))

    def take(self) -> dict[str, list[tuple[bool, float]]]:
        with self.lock:
            rows, self.rows = self.rows, defaultdict(list)
        return rows


class Traffic:
    """The HTTP mix: each call returns (kind, ok, milliseconds)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        setup = Client(stack.port)
        self.staff = _json(setup, "POST", "/api/v1/auth/token", _login("staff"))["token"]
        self.officer = _json(setup, "POST", "/api/v1/auth/token", _login("officer"))["token"]
        self.resident = _json(setup, "POST", "/api/v1/auth/token", _login("resident"))["token"]
        gate, barrier = stack.fleet["南门人脸门禁"], stack.fleet["车辆道闸相机"]
        self.gate = {"Authorization": f"Bearer {gate['device_id']}.{gate['secret']}"}
        self.barrier = {"Authorization": f"Bearer {barrier['device_id']}.{barrier['secret']}"}
        community = gate["community_id"]
        people = _json(
            setup,
            "GET",
            f"/api/v1/communities/{community}/people?q={quote('王小明')}",
            None,
            self.staff,
        )
        person = people[0]["id"]
        consent = {"purpose": "face_recognition"}
        _json(setup, "POST", f"/api/v1/people/{person}/consents", consent, self.staff)
        body, kind = _multipart({"image": ("obama.jpg", test_image("obama.jpg").read_bytes())})
        headers = {"Content-Type": kind, "Authorization": f"Bearer {self.staff}"}
        status, data = setup.call("POST", f"/api/v1/people/{person}/faces", body, headers)
        _require(status == 201, data[:300])
        self.frame = test_image("obama2.jpg").read_bytes()
        self.code_lock = threading.Lock()
        self.code, self.code_until = "", 0.0
        self.local = threading.local()
        self.failures: dict[str, int] = defaultdict(int)  # "kind status" -> how many

    def _client(self) -> Client:
        if not hasattr(self.local, "client"):
            self.local.client = Client(self.stack.port)
        return self.local.client

    def _qr_token(self) -> str:
        with self.code_lock:
            if time.monotonic() > self.code_until:
                code = _json(self._client(), "GET", "/api/v1/me/code", None, self.resident)
                self.code, self.code_until = code["token"], time.monotonic() + 20
            return self.code

    def call(self, kind: str, n: int) -> tuple[str, bool, float]:
        client, started = self._client(), time.perf_counter()
        json_headers = {"Content-Type": "application/json"}
        if kind == "card":
            status, _ = client.call(
                "POST", "/api/v1/verify/card", b'{"uid": "04A1B2C3"}', {**self.gate, **json_headers}
            )
        elif kind == "plate":
            body = json.dumps({"plate": "浙A12345", "direction": "in" if n % 2 else "out"})
            status, _ = client.call(
                "POST", "/api/v1/verify/plate", body.encode(), {**self.barrier, **json_headers}
            )
        elif kind == "qr":
            body = json.dumps({"token": self._qr_token()}).encode()
            status, _ = client.call(
                "POST", "/api/v1/verify/qr", body, {**self.gate, **json_headers}
            )
        else:
            body, content = _multipart({"image": ("frame.jpg", self.frame)})
            status, _ = client.call(
                "POST", "/api/v1/verify/face", body, {**self.gate, "Content-Type": content}
            )
        if status != 200:
            self.failures[f"{kind} {status}"] += 1
        return kind, status == 200, (time.perf_counter() - started) * 1000


def _identity(device: dict[str, str]) -> DeviceIdentity:
    return DeviceIdentity(device["device_id"], device["secret"], device["community_id"])


def _login(role: str) -> dict[str, str]:
    return {"username": role, "password": f"demo-{role}-2026"}


def _kinds() -> list[str]:
    return [kind for kind, weight in MIX for _ in range(weight)]


def capacity(traffic: Traffic, seconds: float, clients: int = 8) -> float:
    """Requests per second of the mix, sent by ``clients`` as fast as they can."""
    stop, counts = time.monotonic() + seconds, [0] * clients
    kinds = _kinds()

    def run(index: int) -> None:
        n = index
        while time.monotonic() < stop:
            traffic.call(kinds[n % len(kinds)], n)
            counts[index] += 1
            n += clients

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


class Consoles:
    """Officers' SSE streams; how long each panic press took to reach each console."""

    def __init__(self, stack: Stack, token: str, button_id: str) -> None:
        self.button_id = button_id
        self.presses: list[float] = []
        self.arrivals: list[float] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.reconnects = 0
        self.base, self.headers = (
            f"http://127.0.0.1:{stack.port}",
            {"Authorization": f"Bearer {token}"},
        )
        for _ in range(CONSOLES):
            threading.Thread(target=self._read, daemon=True).start()

    def press(self, button: PanicButton) -> None:
        with self.lock:
            self.presses.append(time.monotonic())
        button.press()

    def _read(self) -> None:
        """One console: reads the stream, and connects again when it ends (as a browser's
        EventSource does). The k-th press is the alert whose evidence lists k panic events
        (a press while the alert is open updates it)."""
        heard: set[int] = set()
        client = SseClient(self.base, self.headers)
        while not self.stop.is_set():
            try:
                event = client.read_event()
            except TimeoutError:
                continue  # a quiet stream between heartbeats
            except (OSError, EOFError, http.client.HTTPException):
                self.reconnects += 1
                time.sleep(1)
                client = SseClient(self.base, self.headers)
                continue
            if event.event != "alert" or event.alert.get("device_id") != self.button_id:
                continue
            press = len(event.alert.get("evidence", {}).get("device_event_ids", [])) - 1
            with self.lock:
                if 0 <= press < len(self.presses) and press not in heard:
                    heard.add(press)
                    self.arrivals.append((time.monotonic() - self.presses[press]) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--load", type=float, default=0.8, help="share of measured capacity")
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a fresh SQLite file)")
    add_load_flag(parser)
    args = parser.parse_args()
    check_load("capacity, then the soak (its own load is printed each minute)", args.force)

    stack = Stack(args.database_url)
    try:
        traffic = Traffic(stack)
        measured = capacity(traffic, 20)
        rate = measured * args.load
        print(
            f"capacity {measured:.1f} req/s (mix {dict(MIX)}); soak at {rate:.1f} req/s "
            f"for {args.minutes:g} min; load average {load_average()}",
            flush=True,
        )
        soak(stack, traffic, rate, args.minutes)
    finally:
        stack.stop()


def soak(stack: Stack, traffic: Traffic, rate: float, minutes: float) -> None:
    door_info, button_info = stack.fleet["1号楼人脸门禁"], stack.fleet["一键报警柱"]
    door = Door(_identity(door_info), stack.devices_url)
    button = PanicButton(_identity(button_info), stack.devices_url)
    for device in (door, button):
        device.start()
        _require(device.wait_ready(30), "a simulated device did not reach the broker")
    consoles = Consoles(stack, traffic.officer, button_info["device_id"])
    kinds, sent_events, results = _kinds(), [], Results()
    minute_rows, first, last = [], None, None
    pool = ThreadPoolExecutor(max_workers=16)
    started = time.monotonic()
    n, next_press, next_event = 0, started, started
    minute_end = started + 60
    while time.monotonic() - started < minutes * 60:
        now = time.monotonic()
        due = int((now - started) * rate) - n
        for _ in range(max(0, due)):
            future = pool.submit(traffic.call, kinds[n % len(kinds)], n)
            future.add_done_callback(lambda done: results.add(done.result()))
            n += 1
        while next_event <= now:
            sent_events.append(door.emit(EventType.EXIT_REQUEST).seq)
            next_event += 1 / DOOR_EVENTS_PER_S
        if next_press <= now:
            consoles.press(button)
            next_press += PANIC_EVERY_S
        if now >= minute_end:
            row = report(stack, results.take(), consoles, len(minute_rows) + 1)
            first = first or row
            last = row
            minute_rows.append(row)
            minute_end += 60
        time.sleep(0.005)
    pool.shutdown(wait=True)
    door.stop()
    button.stop()
    consoles.stop.set()
    summarize(stack, first, last, sent_events, door_info["device_id"], traffic.failures)


def report(stack: Stack, results: dict, consoles: Consoles, minute: int) -> dict[str, Any]:
    errors = sum(1 for rows in results.values() for ok, _ in rows if not ok)
    total = sum(len(rows) for rows in results.values())
    figures = {
        kind: (percentile([ms for _, ms in rows], 50), percentile([ms for _, ms in rows], 99))
        for kind, rows in results.items()
        if rows
    }
    with consoles.lock:
        arrivals, consoles.arrivals = consoles.arrivals, []
    rss = {name: rss_mib(pid) for name, pid in stack.processes().items()}
    text = " ".join(
        f"{k} P50 {p50:.0f} P99 {p99:.0f} ms;" for k, (p50, p99) in sorted(figures.items())
    )
    alerts = (
        f"alerts P99 {percentile(arrivals, 99):.0f} ms ({len(arrivals)})"
        if arrivals
        else "alerts -"
    )
    memory = " ".join(f"{name} {mib:.0f}" for name, mib in sorted(rss.items()))
    print(
        f"minute {minute}: {total} requests, {errors} errors; {text} {alerts}; RSS MiB {memory}; "
        f"load average {load_average()}",
        flush=True,
    )
    return {"figures": figures, "rss": rss, "errors": errors, "total": total}


def summarize(
    stack: Stack, first: Any, last: Any, sent: list[int], device_id: str, failures: dict[str, int]
) -> None:
    time.sleep(5)  # the worker stores what is still in flight
    database = Path(stack.env["DATABASE_URL"].removeprefix("sqlite:///"))
    stored = None
    if database.exists():
        with sqlite3.connect(database) as connection:
            stored = connection.execute(
                "SELECT COUNT(*) FROM device_events WHERE device_id = ? AND type = 'exit_request'",
                (device_id,),
            ).fetchone()[0]
    print(f"device events: {len(sent)} sent, {stored if stored is not None else '?'} stored")
    print(f"failed requests by kind and status: {dict(failures) or 'none'}")
    if first and last:
        for kind, (_, p99) in sorted(last["figures"].items()):
            base = first["figures"].get(kind, (0, 0))[1] or 1
            print(f"P99 {kind}: last minute / first minute = {p99 / base:.2f}")
        for name, mib in sorted(last["rss"].items()):
            base = first["rss"].get(name) or 1
            print(f"RSS {name}: last minute / first minute = {mib / base:.2f}")


if __name__ == "__main__":
    main()
