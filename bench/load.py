"""Benchmark: the real stack under a closed-loop load of doors, against the 2-core ceiling.

It starts what ``make run`` starts for a door's request: a throwaway Mosquitto and Redis
(``server.launcher.local_broker`` and ``local_redis``, as the launcher does) and gunicorn as
``server.launcher.web_command`` starts it (the project's config, hooks and options), on a
loopback port, over SQLite in a temporary folder. The database holds the face benchmark's
community (``bench.verify_face.build_site``: a door asking for depth, Obama enrolled, a
gallery of ``--gallery`` templates) and a card for Obama.

Then, for each gunicorn configuration in ``--configs`` (``2x8`` is 2 processes of 8 gthread
threads, ``2x2c2`` the same with ``--worker-connections 2``, ``2s`` 2 sync processes; the
default is the launcher's own), N clients (1, 2, 4)
each POST ``--requests`` face frames (720p JPEG with a live depth map) one after the other
to ``/api/v1/verify/face``, and one client ``--requests`` card UIDs to ``/api/v1/verify/card``.
Each series prints requests/s, P50/P99 and the CPU seconds per request of every process of
the stack (gunicorn's master and each worker, Mosquitto, Redis, and this driver), read
from ``/proc/<pid>/stat`` before and after.

The ceiling comes from the same run: the bare face engine (decode, ``faces.probe_face``,
depth liveness, gallery search; no HTTP, no database) single-threaded in this process,
before and after the HTTP series, and again right before each configuration's series; its
rate times the cores is what the machine could serve. Printed at the end, per configuration,
against the engine measured right before it (the machine's speed drifts by 10-20 % within an
hour on a shared host, so a row and its baseline are taken together; with several rows, their
median), and against the run's mean engine (the issue's targets in brackets):

- end to end P50 (1 client) / bare engine P50                    [<= 1.15x]
- server CPU per request (4 clients) / engine CPU per request    [<= 1.1x]
- throughput with 4 clients / ceiling                            [>= 90 %]

``--profile DIR`` samples every gunicorn worker with py-spy during the 4-client face series
(``DIR/<config>-<pid>.txt``, collapsed stacks) and the card series (``DIR/card/...``, which
then runs ten times as long, for samples enough), and prints the top functions by own samples.

    .venv/bin/python -m bench.load [--configs 2x8,2x1,2x2,2x4,3x2,4x1,2s] [--requests 40]
        [--gallery 20000] [--profile /tmp/gk-profile] [--force]
"""

from __future__ import annotations

import os

# As the server does (server/__init__.py), before numpy loads OpenBLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import contextlib
import http.client
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flask import Flask
from sqlalchemy import select

from bench.harness import (
    add_load_flag,
    bench_settings,
    check_load,
    checkpointing,
    line,
    load_average,
    multipart,
)
from bench.stats import percentile
from bench.verify_face import PROBES, build_site, door_frame
from gatekeeper import faces, liveness
from server import create_app, launcher
from server.extensions import db
from server.models import Card, Person
from server.people.galleries import galleries
from tests.support import depthmaps

CARD_UID = "0A1B2C3D"
CLIENT_COUNTS = (1, 2, 4)
# The bare engine's gallery search, as bench/verify_face.py runs it.
TOLERANCE, MARGIN = 0.5, 0.06
REQUEST_TIMEOUT_S = 60.0
START_TIMEOUT_S = 120.0
WARMUP_ROUNDS = 8
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CORES = len(os.sched_getaffinity(0))  # what this run may use (taskset -c 0,1 gives 2)
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class WebConfig:
    """How gunicorn runs: ``workers`` processes, ``threads`` each (gthread), or sync."""

    workers: int
    threads: int
    worker_class: str
    worker_connections: int | None = None

    @classmethod
    def parse(cls, text: str) -> WebConfig:
        """``2x8`` (2 gthread processes of 8 threads), ``2x2c2`` (and ``--worker-connections
        2``) or ``2s`` (2 sync processes)."""
        if text.endswith("s") and text[:-1].isdigit():
            return cls(int(text[:-1]), 1, "sync")
        shape, _, connections = text.partition("c")
        workers, sep, threads = shape.partition("x")
        if not (sep and workers.isdigit() and threads.isdigit()) or not (
            connections.isdigit() or connections == ""
        ):
            raise argparse.ArgumentTypeError(f"expected WxT, WxTcN or Ns, not {text!r}")
        return cls(int(workers), int(threads), "gthread", int(connections) if connections else None)

    @classmethod
    def deployed(cls) -> WebConfig:
        """The launcher's own configuration (``server.launcher.web_command``)."""
        command = launcher.web_command("127.0.0.1", 8000)

        def value(flag: str, default: str) -> str:
            return command[command.index(flag) + 1] if flag in command else default

        connections = value("--worker-connections", "")
        return cls(
            int(value("--workers", "1")),
            int(value("--threads", "1")),
            value("--worker-class", "sync"),
            int(connections) if connections else None,
        )

    @property
    def name(self) -> str:
        if self.worker_class == "sync":
            return f"{self.workers}s"
        connections = f"c{self.worker_connections}" if self.worker_connections else ""
        return f"{self.workers}x{self.threads}{connections}"

    def command(self, host: str, port: int) -> list[str]:
        """The launcher's web command with this configuration's workers, threads and class."""
        command = launcher.web_command(host, port)
        for flag in ("--workers", "--threads", "--worker-class", "--worker-connections"):
            if flag in command:
                del command[command.index(flag) : command.index(flag) + 2]
        options = ["--workers", str(self.workers), "--worker-class", self.worker_class]
        if self.worker_class != "sync":
            options += ["--threads", str(self.threads)]
        if self.worker_connections:
            options += ["--worker-connections", str(self.worker_connections)]
        at = command.index("--bind") + 2
        return command[:at] + options + command[at:]


# --- processes and their CPU ------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` so far (0 when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = (entry / "stat").read_text()
            if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def threads_of(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("Threads:"):
            return int(row.split()[1])
    return 0


def memory_mb(pid: int) -> str:
    """``RSS/PSS`` in MB: PSS counts pages shared with other processes (the master's models
    in its workers) as a share each."""
    values = {}
    with contextlib.suppress(OSError):
        for row in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = row.partition(":")
            if key in ("Rss", "Pss"):
                values[key] = int(rest.split()[0]) / 1024
    return f"{values.get('Rss', 0):.0f}/{values.get('Pss', 0):.0f}"


@dataclass
class Stack:
    """The processes serving a request, by name."""

    pids: dict[str, int]

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}


# --- the driver ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request a client sends: path, body, headers, and what a right answer contains."""

    path: str
    body: bytes
    headers: dict[str, str]
    expect: bytes


@dataclass
class Series:
    """What one closed-loop series measured."""

    name: str
    clients: int
    latencies_ms: list[float]
    wall_s: float
    cpu_s: dict[str, float]

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.wall_s

    def busiest_worker_share(self) -> float:
        """The busiest gunicorn worker's share of the workers' CPU (1 / workers is even)."""
        workers = [s for name, s in self.cpu_s.items() if name.startswith("gunicorn worker")]
        return max(workers) / sum(workers) if sum(workers) else 0.0

    def server_cpu_per_request_ms(self) -> float:
        server = sum(s for name, s in self.cpu_s.items() if name.startswith("gunicorn"))
        return server * 1000 / len(self.latencies_ms)


def closed_loop(
    port: int, calls: Sequence[Call], clients: int, per_client: int
) -> tuple[list[float], float]:
    """``clients`` threads, each sending ``per_client`` requests one after the other on its
    own keep-alive connection: every latency in ms, and the wall time of the whole series."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        mine = []
        try:
            start.wait()
            for i in range(per_client):
                call = calls[(offset + i) % len(calls)]
                began = time.perf_counter()
                connection.request("POST", call.path, body=call.body, headers=call.headers)
                answer = connection.getresponse()
                body = answer.read()
                mine.append((time.perf_counter() - began) * 1000)
                if call.expect not in body:
                    raise RuntimeError(f"{call.path}: {answer.status} {body[:300]!r}")
        except Exception as error:  # reported by the main thread
            with lock:
                failures.append(repr(error))
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait(timeout=REQUEST_TIMEOUT_S)
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S * per_client)
    wall = time.perf_counter() - began
    if failures or any(t.is_alive() for t in threads):
        raise SystemExit(f"the load driver failed: {failures[:3] or 'a client hung'}")
    return latencies, wall


def measured(
    name: str, stack: Stack, port: int, calls: Sequence[Call], clients: int, per_client: int
) -> Series:
    before = stack.cpu()
    latencies, wall = closed_loop(port, calls, clients, per_client)
    after = stack.cpu()
    return Series(name, clients, latencies, wall, {k: after[k] - before[k] for k in before})


def print_series(series: Series) -> None:
    print(line(series.name, series.latencies_ms))
    per_process = "  ".join(
        f"{name} {seconds * 1000 / len(series.latencies_ms):.1f}"
        for name, seconds in series.cpu_s.items()
    )
    print(
        f"   {series.rate:6.2f} requests/s; CPU ms per request: server "
        f"{series.server_cpu_per_request_ms():.1f} (= {per_process}); busiest worker "
        f"{series.busiest_worker_share() * 100:.0f} % of the workers' CPU",
        flush=True,
    )


# --- the stack ----------------------------------------------------------------------------------


@contextlib.contextmanager
def web_server(
    config: WebConfig, environ: dict[str, str], log: Path
) -> Iterator[tuple[int, Stack]]:
    """gunicorn in ``config`` on a free loopback port, until the block ends (then stopped);
    its output goes to ``log``."""
    port = launcher.free_port(launcher.DEFAULT_HOST)
    with quiet_children(log):
        child = launcher.start_child("web", config.command(launcher.DEFAULT_HOST, port), environ)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not answers(port) and child.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = children_of(child.process.pid)
        while len(workers) < config.workers and time.monotonic() < deadline:
            time.sleep(0.2)
            workers = children_of(child.process.pid)
        if child.process.poll() is not None or len(workers) != config.workers:
            raise SystemExit(f"gunicorn {config.name} did not start its workers: see {log}")
        pids = {"gunicorn master": child.process.pid}
        pids |= {f"gunicorn worker {i + 1}": pid for i, pid in enumerate(workers)}
        yield port, Stack(pids)
    finally:
        launcher.stop_children([child])


@contextlib.contextmanager
def deployed_stack(workdir: Path, settings: dict[str, str]) -> Iterator[str]:
    """What ``make run`` starts for a door's request, over the benchmark's database: Mosquitto,
    Redis and gunicorn in the launcher's own configuration; the web server's base URL until
    the block ends (then everything is stopped)."""
    environ = {**os.environ, **settings, "LOG_LEVEL": "WARNING"}
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = workdir / "stack.log"
    with contextlib.ExitStack() as stack:
        with quiet_children(log):
            broker = stack.enter_context(launcher.local_broker(workdir, environ))
            environ.update(broker.environment)
            environ.update(stack.enter_context(launcher.local_redis(workdir, environ)))
        environ.update(launcher.metrics_environment(workdir))
        port, _web = stack.enter_context(web_server(WebConfig.deployed(), environ, log))
        yield f"http://127.0.0.1:{port}"


def answers(port: int) -> bool:
    """True once the server answers ``/healthz`` at all (without a worker process it says 503:
    its heartbeat check; the web server is up)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        connection.getresponse().read()
    except OSError:
        return False
    finally:
        connection.close()
    return True


@contextlib.contextmanager
def quiet_children(log: Path) -> Iterator[None]:
    """Children started in the block write their output to ``log``, not between the figures."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with log.open("ab") as target:
        os.dup2(target.fileno(), 1)
        os.dup2(target.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def warm_up(port: int, calls: Sequence[Call], config: WebConfig) -> None:
    """Requests from as many clients as the server has threads until no worker is still
    loading (models, the gallery): a round's slowest request within 3x its fastest."""
    clients = config.workers * config.threads
    for _ in range(WARMUP_ROUNDS):
        latencies, _wall = closed_loop(port, calls, clients, 2)
        if max(latencies) <= 3 * min(latencies):
            return
    print(f"   (warm-up: still uneven after {WARMUP_ROUNDS} rounds)")


def bare_engine(
    frames: dict[str, tuple[bytes, bytes]], gallery: object, count: int
) -> tuple[list[float], float, float]:
    """The engine's work for ``count`` requests in this thread: each one's ms, the rate
    (requests/s of wall time) and the CPU ms per request."""
    names = [PROBES[i % len(PROBES)] for i in range(count)]
    latencies = []
    cpu_began, wall_began = time.process_time(), time.perf_counter()
    for name in names:
        jpeg, depth = frames[name]
        began = time.perf_counter()
        rgb = faces.load_image(jpeg)
        probe = faces.probe_face(rgb)
        live = liveness.assess_depth(depth, rgb, probe.face.box)
        match = gallery.search(probe.template, tolerance=TOLERANCE, margin=MARGIN)  # type: ignore[attr-defined]
        latencies.append((time.perf_counter() - began) * 1000)
        if match.person_id is None or not live.live:
            raise SystemExit("the bare engine did not recognise the live probe")
    wall = time.perf_counter() - wall_began
    cpu_ms = (time.process_time() - cpu_began) * 1000 / count
    return latencies, count / wall, cpu_ms


def bare_engine_on_every_core(
    frames: dict[str, tuple[bytes, bytes]], gallery: object, count: int
) -> tuple[float, float]:
    """The bare engine in ``CORES`` forked processes at once, ``count`` requests each: their
    summed rate (requests/s) and their mean CPU ms per request. The issue's ceiling is the
    single thread's rate times the cores; this is what the cores give when all are busy (shared
    caches and memory bandwidth), so the server's share can be told from the machine's."""
    pipes, children = [], []
    for _ in range(CORES):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: measure, report, leave without running the parent's cleanup
            code = 0
            try:
                os.close(read_end)
                _ms, rate, cpu = bare_engine(frames, gallery, count)
                os.write(write_end, json.dumps([rate, cpu]).encode())
            except BaseException:  # the parent reports a child that said nothing
                code = 1
            finally:
                os._exit(code)
        os.close(write_end)
        pipes.append(read_end)
        children.append(pid)
    results = []
    for read_end, pid in zip(pipes, children, strict=True):
        with os.fdopen(read_end, "rb") as pipe:
            body = pipe.read()
        os.waitpid(pid, 0)
        if not body:
            raise SystemExit("a bare engine process failed")
        results.append(json.loads(body))
    return sum(rate for rate, _cpu in results), sum(cpu for _rate, cpu in results) / len(results)


def door_frames() -> dict[str, tuple[bytes, bytes]]:
    """Each probe's 720p JPEG and a live 640x360 depth PNG, as bench/verify_face.py makes them."""
    frames = {}
    for name in PROBES:
        jpeg, rgb = door_frame(name)
        probe = faces.probe_face(rgb)
        scene = depthmaps.Scene(
            liveness.face_landmarks(rgb, probe.face.box), (rgb.shape[1], rgb.shape[0]), (640, 360)
        )
        frames[name] = (
            jpeg,
            depthmaps.to_png16(depthmaps.live_face(scene, 500, np.random.default_rng(7))),
        )
    return frames


# --- profile ------------------------------------------------------------------------------------


@contextlib.contextmanager
def profiled(folder: Path | None, config: WebConfig, stack: Stack) -> Iterator[None]:
    """py-spy sampling every worker for the block (nothing when ``folder`` is None)."""
    if folder is None:
        yield
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    folder.mkdir(parents=True, exist_ok=True)
    samplers = []
    for name, pid in stack.pids.items():
        if "worker" not in name:
            continue
        output = folder / f"{config.name}-{pid}.txt"
        samplers.append(
            subprocess.Popen(  # noqa: S603 (the argv is built here)
                [py_spy, "record", "--pid", str(pid), "--rate", "50", "--format", "raw",
                 "--threads", "--full-filenames", "--output", str(output), "--nonblocking"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )  # fmt: skip
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        for sampler in samplers:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        for sampler in samplers:
            try:
                sampler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sampler.kill()
                sampler.wait()
        print_profile(sorted(folder.glob(f"{config.name}-*.txt")))


def print_profile(files: Sequence[Path], top: int = 25) -> None:
    """The functions with the most own samples across ``files`` (py-spy's collapsed stacks),
    and the share of samples in each top-level area of the code."""
    own: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for path in files:
        for row in path.read_text().splitlines():
            stack, _, count_text = row.rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            if frames and frames[0].startswith("thread"):
                frames = frames[1:]
            if not frames:
                continue
            total += count
            own[frames[-1]] += count
            areas[area(frames)] += count
    if not total:
        print("   (profile: no samples)")
        return
    print(f"   profile of the workers: {total} samples; by area (innermost project frame):")
    for name, count in areas.most_common(12):
        print(f"     {count * 100 / total:5.1f} %  {name}")
    print("   top functions by own samples:")
    for name, count in own.most_common(top):
        print(f"     {count * 100 / total:5.1f} %  {name}")


def area(frames: Sequence[str]) -> str:
    """Where the innermost project frame is (``gatekeeper/faces.py``, ``server/core/auth.py``),
    else the library the innermost frame is in."""
    for frame in reversed(frames):
        path = frame.rpartition("(")[2].rpartition(":")[0]
        if path.startswith(f"{ROOT}/") and "/.venv/" not in path:
            return path.removeprefix(f"{ROOT}/")
    path = frames[-1].rpartition("(")[2].rpartition(":")[0]
    return "library: " + path.rpartition("site-packages/")[2].split("/", 1)[0]


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs", default="", help="e.g. 2x8,2x2,4x1,2s (default: the launcher's)"
    )
    parser.add_argument("--requests", type=int, default=40, help="requests per client per series")
    parser.add_argument("--gallery", type=int, default=20_000)
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the workers into DIR")
    add_load_flag(parser)
    args = parser.parse_args()
    # A SIGTERM ends the run as Ctrl-C does: every process it started is stopped.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    configs = [WebConfig.parse(c) for c in args.configs.split(",") if c] or [WebConfig.deployed()]

    workdir = Path(tempfile.mkdtemp(prefix="gk-bench-load-"))
    settings = bench_settings(workdir)
    app = create_app(settings)
    try:
        run(args, configs, workdir, settings, app)
    except BaseException:
        log = workdir / "stack.log"
        if log.exists():  # what the servers said, before their folder goes
            print("".join(log.read_text(errors="replace").splitlines(True)[-40:]), file=sys.stderr)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(
    args: argparse.Namespace,
    configs: Sequence[WebConfig],
    workdir: Path,
    settings: dict[str, str],
    app: Flask,
) -> None:
    """Seed the site, then measure the bare engine and every configuration."""
    device_id, secret, community_id, _known = build_site(app, args.gallery)
    with app.app_context():
        obama = db.session.scalar(select(Person).where(Person.name == "Obama"))
        db.session.add(Card(community_id=community_id, person_id=obama.id, uid=CARD_UID))
        db.session.commit()
        gallery = galleries(app).gallery(community_id)
    frames = door_frames()
    auth = {"Authorization": f"Bearer {device_id}.{secret}"}
    face_calls = []
    for name in PROBES:
        jpeg, depth = frames[name]
        body, content_type = multipart(
            {"image": ("frame.jpg", jpeg, "image/jpeg"), "depth": ("depth.png", depth, "image/png")}
        )
        face_calls.append(
            Call("/api/v1/verify/face", body, {**auth, "Content-Type": content_type}, b'"grant"')
        )
    card_calls = [
        Call(
            "/api/v1/verify/card",
            json.dumps({"uid": CARD_UID}).encode(),
            {**auth, "Content-Type": "application/json"},
            b'"grant"',
        )
    ]
    bare_count = max(10, args.requests)
    print(
        f"gunicorn {', '.join(c.name for c in configs)}; {args.requests} requests per client "
        f"per series; 720p JPEG + 640x360 depth; gallery {len(gallery)}; {CORES} cores; "
        f"load {load_average()}",
        flush=True,
    )
    check_load("bare engine (before)", args.force)
    bare_ms, bare_rate, bare_cpu = bare_engine(frames, gallery, bare_count)

    environ = {**os.environ, **settings, "LOG_LEVEL": "WARNING"}
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    results: dict[str, dict[int, Series]] = {}
    paired: dict[str, tuple[list[float], float, float]] = {}
    with contextlib.ExitStack() as stack, checkpointing(app):
        log = workdir / "stack.log"
        with quiet_children(log):
            broker = stack.enter_context(launcher.local_broker(workdir, environ))
            environ.update(broker.environment)
            environ.update(stack.enter_context(launcher.local_redis(workdir, environ)))
        environ.update(launcher.metrics_environment(workdir))
        redis_pid = mosquitto_pid = None
        with contextlib.suppress(OSError, ValueError):
            mosquitto_pid = int((workdir / "mosquitto" / "mosquitto.pid").read_text())
        for pid in children_of(os.getpid()):
            if "redis" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                redis_pid = pid
        for config in configs:
            print(f"\n== gunicorn {config.name} ({config.worker_class})", flush=True)
            with web_server(config, environ, log) as (port, web):
                extra = {"mosquitto": mosquitto_pid, "redis": redis_pid, "driver": os.getpid()}
                web.pids |= {k: v for k, v in extra.items() if v}
                warm_up(port, face_calls, config)
                gunicorn = {n: p for n, p in web.pids.items() if n.startswith("gunicorn")}
                print(
                    "   after warm-up, threads and RSS/PSS MB: "
                    + ", ".join(
                        f"{n.removeprefix('gunicorn ')} {threads_of(p)}, {memory_mb(p)}"
                        for n, p in gunicorn.items()
                    )
                )
                key = config.name
                while key in results:  # a configuration measured again later in the run
                    key += "'"
                results[key] = {}
                # The engine again right before this configuration's series (its processes
                # idle): the row's ratios are taken against it, so that the machine's drift
                # over the run (its speed moves by 10-20 % within an hour on a shared host)
                # hits a row and its baseline alike.
                check_load(f"bare engine, before {config.name}", args.force)
                paired[key] = bare_engine(frames, gallery, bare_count)
                for clients in CLIENT_COUNTS:
                    check_load(f"{config.name} face, {clients} client(s)", args.force)
                    folder = args.profile if clients == max(CLIENT_COUNTS) else None
                    with profiled(folder, config, web):
                        series = measured(
                            f"face verify, {clients} client(s)",
                            web, port, face_calls, clients, args.requests,
                        )  # fmt: skip
                    results[key][clients] = series
                    print_series(series)
                check_load(f"{config.name} card, 1 client", args.force)
                closed_loop(port, card_calls, 1, 5)  # the card path's first queries
                folder = args.profile / "card" if args.profile else None
                count = args.requests * (10 if folder else 1)
                with profiled(folder, config, web):
                    series = measured("card verify, 1 client", web, port, card_calls, 1, count)
                print_series(series)
    check_load("bare engine (after)", args.force)
    after_ms, after_rate, after_cpu = bare_engine(frames, gallery, bare_count)
    check_load(f"bare engine on {CORES} cores at once", args.force)
    parallel_rate, parallel_cpu = bare_engine_on_every_core(frames, gallery, bare_count)
    bare_ms += after_ms
    bare_rate, bare_cpu = (bare_rate + after_rate) / 2, (bare_cpu + after_cpu) / 2
    ceiling = bare_rate * CORES

    print()
    print(line("bare engine (decode+probe+3D+search)", bare_ms))
    print(
        f"   {bare_rate:.2f} requests/s single-threaded, {bare_cpu:.1f} ms CPU per request; "
        f"ceiling {CORES} cores x {bare_rate:.2f} = {ceiling:.2f} requests/s"
    )
    print(
        f"   on {CORES} cores at once: {parallel_rate:.2f} requests/s, {parallel_cpu:.1f} ms CPU "
        f"per request ({parallel_rate * 100 / ceiling:.0f} % of the ceiling: the machine's own "
        "scaling, no server in it)"
    )
    print(
        f"\n{'config':<8}{'req/s (4 cl.)':>14}{'P50 1 cl.':>11}{'P99 4 cl.':>11}"
        f"{'CPU/req':>9}{'busiest':>9}{'engine':>8}  e2e/engine P50 [<=1.15]  CPU/engine [<=1.1]"
        "  tput/ceiling [>=90%]"
    )
    rows = []
    for name, by_clients in results.items():
        one, many = by_clients[1], by_clients[max(CLIENT_COUNTS)]
        engine_ms, engine_rate, engine_cpu = paired[name]  # measured right before the row
        row = (
            percentile(one.latencies_ms, 50) / percentile(engine_ms, 50),
            many.server_cpu_per_request_ms() / engine_cpu,
            many.rate * 100 / (engine_rate * CORES),
        )
        rows.append(row)
        print(
            f"{name:<8}{many.rate:>14.2f}{percentile(one.latencies_ms, 50):>9.0f}ms"
            f"{percentile(many.latencies_ms, 99):>9.0f}ms{many.server_cpu_per_request_ms():>7.0f}ms"
            f"{many.busiest_worker_share() * 100:>8.0f}%{percentile(engine_ms, 50):>6.0f}ms"
            f"  {row[0]:>14.2f}x  {row[1]:>17.2f}x  {row[2]:>18.0f} %"
        )
    if len(rows) > 1:
        e2e, cpu, tput = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"{'median':<8}{'':>62}  {e2e:>14.2f}x  {cpu:>17.2f}x  {tput:>18.0f} %")
    print(
        "(each row against the bare engine measured right before it, column 'engine' its P50; "
        "against the run's mean engine:"
    )
    engine_p50 = percentile(bare_ms, 50)
    for name, by_clients in results.items():
        one, many = by_clients[1], by_clients[max(CLIENT_COUNTS)]
        print(
            f" {name} {percentile(one.latencies_ms, 50) / engine_p50:.2f}x,"
            f" {many.server_cpu_per_request_ms() / bare_cpu:.2f}x,"
            f" {many.rate * 100 / ceiling:.0f} %"
        )
    print(")")
    print(f"\nagainst the engine on {CORES} cores at once (the same machine, every core busy):")
    for name, by_clients in results.items():
        many = by_clients[max(CLIENT_COUNTS)]
        print(
            f"{name:<8} CPU per request {many.server_cpu_per_request_ms() / parallel_cpu:.2f}x"
            f" the engine's, throughput {many.rate * 100 / parallel_rate:.0f} % of the engine's"
        )
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
