"""Start everything ``make run`` needs, and stop it all again on Ctrl-C or SIGTERM.

``python -m server.launcher`` starts, as child processes:

- a local Mosquitto broker, when ``MQTT_URL`` is unset or empty (its config,
  persistence, password file and ACL live in ``<INSTANCE_DIR>/mosquitto/``). It admits
  only the accounts in those files: the provisioned devices, officers with MQTT
  credentials, and the server itself as ``gatekeeper-server`` with a password generated
  once into ``server_password``. Devices and officers connect on 127.0.0.1:1883 (or a
  free port), the server's processes on a second loopback listener of their own
  (``hardware.broker.mosquitto_config``: client ids bound to accounts). The web server
  and worker get ``MQTT_URL`` (the server listener), ``MQTT_BROKER_DIR`` and
  ``MQTT_BROKER_PIDFILE`` for it, so device changes reach the broker at once
  (``server.devices.broker_sync``), and the simulated devices ``MQTT_DEVICE_URL``;
- a local Redis on a free loopback port, when ``RATELIMIT_STORAGE_URI`` is unset or
  empty, so the web processes count rate limits into one budget
  (``server.core.ratelimits``);
- the web server: gunicorn with ``server:create_app()`` on ``GK_BIND``, its hooks in
  ``server.gunicorn_config``, and its processes' metrics in ``<INSTANCE_DIR>/metrics``
  (``PROMETHEUS_MULTIPROC_DIR``, emptied when gunicorn starts; ``/metrics`` adds them up);
- the stream process: gunicorn with gevent's worker class and ``server.streams:create_app()``
  on the web server's host and ``STREAM_PORT`` (default: the web port + 1, else a free one),
  serving the officers' consoles and the live pages, a greenlet each; the web server gets
  ``STREAM_PORT`` so its pages open their streams there (``server.streams``), and its
  metrics go to ``<INSTANCE_DIR>/metrics-streams``;
- the worker: ``flask --app server worker``; ``WORKERS=N`` starts N of them, numbered by
  ``WORKER_ID`` 1 to N, with ``MQTT_SHARED_SUBSCRIPTIONS=1`` (unless set): they share the
  device traffic, and one of them leads the scheduled jobs (``server.worker``).

It waits for ``/healthz``, prints where to log in and the demo accounts, and then
watches the children: if one exits, the others are stopped and the launcher exits
non-zero. Each child runs in its own process group, so a Ctrl-C in the terminal
reaches only the launcher, which then stops the children in order (web and worker
first, the broker last) and kills whatever is left after ``STOP_TIMEOUT_S``.

The launcher reads four variables of its own (they configure processes, not the
server, so they are not in ``server.settings.VARIABLES``): ``GK_BIND`` (gunicorn's
bind address), ``PORT`` (the port when ``GK_BIND`` is unset), ``MQTT_URL``
(whether to start a broker) and ``WORKERS`` (how many workers, 1 by default); and whether
the server's ``RATELIMIT_STORAGE_URI`` is set (whether to start Redis), and its
``STREAM_PORT`` (the stream process's port). Everything else is validated by ``Settings``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from hardware.broker import mosquitto_config

_LOGGER = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# gunicorn's longest request line (method, target, version), its maximum: above the app's
# own URL limit (``server.core.problems.MAX_URL_BYTES``) so that a long URL reaches the
# app and gets its 414 problem document, not gunicorn's HTML page (default 4094).
REQUEST_LINE_LIMIT = 8190
MQTT_HOST = "127.0.0.1"
MQTT_PORT = 1883
# The server's account on the local broker (its password: <INSTANCE_DIR>/mosquitto/server_password).
MQTT_SERVER_USERNAME = "gatekeeper-server"
HEALTH_TIMEOUT_S = 30.0
BROKER_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.25
DEMO_SEED = Path(__file__).resolve().parent.parent / "seeds" / "demo.json"

# Linux prctl(2) option: signal the child when the parent dies.
_PR_SET_PDEATHSIG = 1


class LaunchError(Exception):
    """Something the launcher needs is missing or did not start."""


@dataclass(frozen=True)
class Child:
    """A started child process and the name used in log messages."""

    name: str
    process: subprocess.Popen[bytes]


@dataclass(frozen=True)
class LocalBroker:
    """A Mosquitto started by the launcher: the URL clients use, and its process.

    ``environment`` is what the web server and worker need to use and manage it:
    ``MQTT_URL`` (the server listener, with the server's password), ``MQTT_BROKER_DIR``,
    ``MQTT_BROKER_PIDFILE``; and ``MQTT_DEVICE_URL``, where devices connect.
    """

    url: str
    child: Child
    config_path: Path
    environment: dict[str, str]


def web_bind(environ: Mapping[str, str]) -> tuple[str, int]:
    """Gunicorn's ``host:port`` from ``GK_BIND``, else ``127.0.0.1:$PORT`` (default 8000)."""
    bind = environ.get("GK_BIND", "").strip()
    if not bind:
        port = environ.get("PORT", "").strip() or str(DEFAULT_PORT)
        bind = f"{DEFAULT_HOST}:{port}"
    host, sep, port_text = bind.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise LaunchError(f"GK_BIND/PORT must give host:port, got {bind!r}")
    return host.strip("[]") or "0.0.0.0", int(port_text)  # noqa: S104 (gunicorn's own default)


def local_url(host: str, port: int) -> str:
    """The URL to reach a server bound to ``host:port`` from this machine."""
    if host in ("0.0.0.0", "::"):  # noqa: S104 (a wildcard bind is reached on loopback)
        host = DEFAULT_HOST
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (connections in TIME_WAIT do not count)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    """A port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def mosquitto_executable() -> str:
    """Path of the ``mosquitto`` program (Debian puts it in /usr/sbin, often not on PATH)."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise LaunchError(
            "mosquitto is not installed: run 'make run' (it installs the Debian "
            "package mosquitto) or set MQTT_URL to an existing broker"
        )
    return found


def local_broker_config(folder: Path, port: int, server_port: int) -> str:
    """Text of a Mosquitto config for a loopback-only broker that admits only known accounts:
    devices on ``port``, the server's processes on ``server_port``."""
    # Run as whoever started us, so the broker can write its persistence and pid files in
    # our folder (as root, Mosquitto would otherwise switch to the 'mosquitto' user).
    user = pwd.getpwuid(os.geteuid()).pw_name
    return mosquitto_config(
        MQTT_HOST,
        port,
        folder,
        folder,
        server_port=server_port,
        server_host=MQTT_HOST,
        pid_file=folder / "mosquitto.pid",
        user=user,
    )


def server_password(folder: Path) -> str:
    """The server's password on the local broker, generated once into ``server_password``."""
    path = folder / "server_password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


def flask_command(environ: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``flask --app server ARGS`` in this interpreter's environment; capture its output."""
    return subprocess.run(  # noqa: S603 (the argv is built here)
        [sys.executable, "-m", "flask", "--app", "server", *args],
        env=dict(environ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return (result.stderr or result.stdout).strip()


def write_broker_files(environ: Mapping[str, str]) -> None:
    """Run ``flask broker-files`` so the broker's password file and ACL match the database."""
    result = flask_command(environ, "broker-files", "--no-reload")
    if result.returncode != 0:
        raise LaunchError(f"flask broker-files failed: {_output(result)}")
    _LOGGER.info("%s", result.stdout.strip())


def without_password(url: str) -> str:
    """``url`` with the password in its user part replaced by ``***`` (for the banner)."""
    scheme, sep, rest = url.partition("://")
    user_info, at, host = rest.rpartition("@")
    if not at or ":" not in user_info:
        return url
    return f"{scheme}{sep}{user_info.split(':', 1)[0]}:***@{host}"


def _prctl() -> Any:
    """libc's ``prctl``, looked up in the parent: the forked child must not ``dlopen`` (a
    thread of the parent may have held the loader's lock at the fork, and the child would wait
    for it forever; a test process has such threads)."""
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None, use_errno=True).prctl
    return None


def _die_with(prctl: Any) -> Callable[[], None]:
    """What the child runs before exec: SIGTERM when the launcher dies (Linux), calling only
    a function resolved before the fork."""

    def die_with_parent() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return die_with_parent


def start_child(name: str, command: Sequence[str], environ: Mapping[str, str]) -> Child:
    """Start ``command`` in its own process group; its output goes to ours."""
    _LOGGER.info("starting %s: %s", name, " ".join(command))
    # preexec_fn: the launcher starts no threads before its children, and the child calls
    # nothing but the prctl resolved here.
    process = subprocess.Popen(  # noqa: S603 (the argv is built by this module)
        list(command),
        env=dict(environ),
        stdin=subprocess.DEVNULL,
        process_group=0,
        preexec_fn=_die_with(_prctl()),
    )
    return Child(name, process)


def _signal_group(child: Child, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.process.pid, signum)


def stop_children(children: Sequence[Child], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every running child's process group, wait up to ``timeout``, then SIGKILL."""
    running = [c for c in children if c.process.poll() is None]
    for child in running:
        _LOGGER.info("stopping %s (pid %s)", child.name, child.process.pid)
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in running:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _LOGGER.warning("%s did not stop within %.0f s; killing it", child.name, timeout)
            _signal_group(child, signal.SIGKILL)
            child.process.wait()
    for child in children:  # a group may outlive its leader (a gunicorn worker, say)
        _signal_group(child, signal.SIGKILL)


def _wait_for_port(host: str, port: int, child: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise LaunchError(f"{child.name} exited with status {child.process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(POLL_INTERVAL_S)
    raise LaunchError(f"{child.name} did not open {host}:{port} within {timeout:.0f} s")


@contextlib.contextmanager
def local_broker(
    instance_dir: Path, environ: Mapping[str, str] | None = None, timeout: float = BROKER_TIMEOUT_S
) -> Iterator[LocalBroker]:
    """Run Mosquitto on 127.0.0.1 (port 1883, else a free one) for the ``with`` block.

    The broker's password file and ACL are written from the database before it starts.
    """
    environ = environ if environ is not None else os.environ
    folder = instance_dir / "mosquitto"
    folder.mkdir(parents=True, exist_ok=True)
    port = MQTT_PORT
    if not port_is_free(MQTT_HOST, port):
        port = free_port(MQTT_HOST)
        _LOGGER.warning(
            "%s:%s is taken (a system Mosquitto?); the local broker uses port %s",
            MQTT_HOST,
            MQTT_PORT,
            port,
        )
    server_port = free_port(MQTT_HOST)
    url = f"mqtt://{MQTT_SERVER_USERNAME}:{server_password(folder)}@{MQTT_HOST}:{server_port}"
    environment = {
        "MQTT_URL": url,
        "MQTT_DEVICE_URL": f"mqtt://{MQTT_HOST}:{port}",
        "MQTT_BROKER_DIR": str(folder),
        "MQTT_BROKER_PIDFILE": str(folder / "mosquitto.pid"),
    }
    write_broker_files({**environ, **environment})
    config_path = folder / "mosquitto.conf"
    config_path.write_text(local_broker_config(folder, port, server_port))
    child = start_child("mosquitto", [mosquitto_executable(), "-c", str(config_path)], environ)
    try:
        _wait_for_port(MQTT_HOST, port, child, timeout)
        _wait_for_port(MQTT_HOST, server_port, child, timeout)
        yield LocalBroker(url, child, config_path, environment)
    finally:
        stop_children([child])


def redis_executable() -> str:
    """Path of ``redis-server`` (Debian's package ``redis-server``)."""
    found = shutil.which("redis-server") or shutil.which(
        "redis-server", path="/usr/bin:/usr/sbin:/usr/local/bin"
    )
    if found is None:
        raise LaunchError(
            "redis-server is not installed: run 'make run' (it installs the Debian package "
            "redis-server) or set RATELIMIT_STORAGE_URI to an existing Redis"
        )
    return found


@contextlib.contextmanager
def local_redis(
    instance_dir: Path, environ: Mapping[str, str], timeout: float = BROKER_TIMEOUT_S
) -> Iterator[dict[str, str]]:
    """Run Redis on a free loopback port for the ``with`` block; the environment that points
    the web processes' rate limits at it (``RATELIMIT_STORAGE_URI``).

    It keeps nothing on disk: rate-limit counters live a minute or an hour, and a restart
    forgetting them is harmless."""
    folder = instance_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port(MQTT_HOST)
    command = [
        redis_executable(),
        "--bind", MQTT_HOST,
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(folder),
        "--protected-mode", "yes",
        "--loglevel", "warning",
    ]  # fmt: skip
    child = start_child("redis", command, environ)
    try:
        _wait_for_port(MQTT_HOST, port, child, timeout)
        yield {"RATELIMIT_STORAGE_URI": f"redis://{MQTT_HOST}:{port}/0"}
    finally:
        stop_children([child])


def gunicorn_command(host: str, port: int, *options: str, app: str) -> list[str]:
    """Gunicorn from this interpreter's environment on ``host:port``, with the server's hooks
    (``server.gunicorn_config``: Prometheus' multiprocess folder, log format), serving
    ``app`` with ``options`` (its workers)."""
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:server.gunicorn_config",
        "--bind",
        bind,
        *options,
        "--limit-request-line",
        str(REQUEST_LINE_LIMIT),
        app,
    ]


# gunicorn's web processes, as measured on 2 cores (docs/deploy.md, "The web server"): one per
# core, two threads each, and at most as many connections as threads, so that a busy process
# leaves new connections to an idle one (gthread's default, 1,000, let one process take every
# door's connection while the other idled) and no connection is kept alive between requests.
WEB_WORKERS = 2
WEB_THREADS = 2


def web_command(host: str, port: int) -> list[str]:
    """The web server: ``WEB_WORKERS`` processes of ``WEB_THREADS`` threads, each holding at
    most ``WEB_THREADS`` connections, serving the app factory."""
    return gunicorn_command(
        host,
        port,
        *("--workers", str(WEB_WORKERS), "--worker-class", "gthread"),
        *("--threads", str(WEB_THREADS), "--worker-connections", str(WEB_THREADS)),
        app="server:create_app()",
    )


def metrics_environment(instance_dir: Path) -> dict[str, str]:
    """The environment of gunicorn's processes for ``/metrics``: each counts into files in
    ``<INSTANCE_DIR>/metrics`` (prometheus-client's multiprocess mode), which gunicorn's
    ``on_starting`` hook empties. The worker is not given it: it serves its own metrics
    (``METRICS_PORT``)."""
    folder = instance_dir / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    return {"PROMETHEUS_MULTIPROC_DIR": str(folder)}


# Streams one stream process holds at once, of each kind (its ALERT_STREAMS_PER_PROCESS and
# PAGE_STREAMS_PER_PROCESS): bench/consoles.py measured alerts within 500 ms at P99 there.
STREAM_PROCESS_STREAMS = 1000
# gevent's connections per process: the streams and the requests around them.
STREAM_WORKER_CONNECTIONS = 2 * STREAM_PROCESS_STREAMS + 100


def stream_command(host: str, port: int) -> list[str]:
    """The stream process (``server.streams``): gunicorn with one gevent process."""
    return gunicorn_command(
        host,
        port,
        *("--workers", "1", "--worker-class", "gevent"),
        *("--worker-connections", str(STREAM_WORKER_CONNECTIONS)),
        app="server.streams:create_app()",
    )


def stream_port(environ: Mapping[str, str], host: str, web_port: int) -> int:
    """``STREAM_PORT`` when set, else the web port + 1 when free, else a free port."""
    raw = environ.get("STREAM_PORT", "").strip()
    if raw:
        if not raw.isdigit() or not 0 < int(raw) < 65536 or int(raw) == web_port:
            raise LaunchError(f"STREAM_PORT must be a port other than the web one, got {raw!r}")
        return int(raw)
    if web_port < 65535 and port_is_free(host, web_port + 1):
        return web_port + 1
    return free_port(DEFAULT_HOST if host in ("0.0.0.0", "::") else host)  # noqa: S104


def stream_environment(environ: Mapping[str, str], instance_dir: Path) -> dict[str, str]:
    """The stream process's environment: its budgets, and a metrics folder of its own (its
    gunicorn empties it at start, as the web server's empties ``metrics``)."""
    folder = instance_dir / "metrics-streams"
    folder.mkdir(parents=True, exist_ok=True)
    return {
        **environ,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "ALERT_STREAMS_PER_PROCESS": str(STREAM_PROCESS_STREAMS),
        "PAGE_STREAMS_PER_PROCESS": str(STREAM_PROCESS_STREAMS),
    }


MAX_WORKERS = 16


def worker_count(environ: Mapping[str, str]) -> int:
    """``WORKERS``: how many workers to start (1 to ``MAX_WORKERS``, default 1)."""
    raw = environ.get("WORKERS", "").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_WORKERS:
        raise LaunchError(f"WORKERS must be a whole number from 1 to {MAX_WORKERS}, got {raw!r}")
    return int(raw)


def worker_environments(environ: Mapping[str, str], count: int) -> list[tuple[str, dict[str, str]]]:
    """Each worker's name and environment. One worker keeps ``environ`` as it is; several
    are ``WORKER_ID`` 1 to ``count`` and share device traffic (``MQTT_SHARED_SUBSCRIPTIONS``
    is 1 unless ``environ`` says otherwise); with ``METRICS_PORT`` set, worker N serves its
    metrics on that port + N - 1 (two cannot listen on one port)."""
    if count == 1:
        return [("worker", dict(environ))]
    shared = environ.get("MQTT_SHARED_SUBSCRIPTIONS", "").strip() or "1"
    metrics_port = environ.get("METRICS_PORT", "").strip()
    environments = []
    for number in range(1, count + 1):
        worker = {**environ, "WORKER_ID": str(number), "MQTT_SHARED_SUBSCRIPTIONS": shared}
        if metrics_port.isdigit():
            worker["METRICS_PORT"] = str(int(metrics_port) + number - 1)
        environments.append((f"worker-{number}", worker))
    return environments


def worker_command() -> list[str]:
    """The worker (MQTT consumer and scheduler) from this interpreter's environment."""
    return [sys.executable, "-m", "flask", "--app", "server", "worker"]


def simulators_command(
    environ: Mapping[str, str], instance_dir: Path, base_url: str
) -> list[str] | None:
    """One simulated device per seeded device, or None when GK_SIMULATORS=0 or none apply."""
    if environ.get("GK_SIMULATORS", "1").strip() == "0":
        return None
    fleet_file = instance_dir / "demo_fleet.json"
    result = flask_command(environ, "demo-fleet", "--out", str(fleet_file))
    if result.returncode != 0:
        _LOGGER.warning("no simulated devices: %s", _output(result))
        return None
    _LOGGER.info("%s", result.stdout.strip())
    # Devices sign in with their own accounts, on the device listener when there is one.
    broker = urlsplit(environ.get("MQTT_DEVICE_URL") or environ["MQTT_URL"])
    return [
        sys.executable,
        "-m",
        "hardware.simulate",
        "fleet",
        "--file",
        str(fleet_file),
        "--broker",
        f"mqtt://{broker.hostname}:{broker.port or 1883}",
        "--api",
        base_url,
    ]


def wait_until_healthy(
    base_url: str,
    children: Sequence[Child],
    stop: threading.Event,
    timeout: float = HEALTH_TIMEOUT_S,
) -> bool:
    """Poll ``/healthz`` until it answers 200 (True) or ``stop`` is set (False).

    Raise ``LaunchError`` when a child exits or ``timeout`` passes first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stop.is_set():
            return False
        for child in children:
            if child.process.poll() is not None:
                raise LaunchError(f"{child.name} exited with status {child.process.returncode}")
        if _answers(base_url + "/healthz"):
            return True
        time.sleep(POLL_INTERVAL_S)
    raise LaunchError(f"{base_url}/healthz did not answer within {timeout:.0f} s")


def _answers(url: str) -> bool:
    """True when ``url`` answers 200 within two seconds."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own http URL)
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def demo_accounts(seed_file: Path = DEMO_SEED) -> list[dict[str, str]]:
    """The seed file's users (username, password, role); empty when it cannot be read."""
    try:
        users = json.loads(seed_file.read_text(encoding="utf-8")).get("users", [])
    except (OSError, ValueError, AttributeError) as error:
        _LOGGER.warning("cannot read demo accounts from %s: %s", seed_file, error)
        return []
    return [
        {key: str(user.get(key, "")) for key in ("username", "password", "role")}
        for user in users
        if isinstance(user, dict)
    ]


def banner(base_url: str, mqtt_url: str, accounts: Sequence[Mapping[str, str]]) -> str:
    """The text shown once everything answers."""
    lines = [
        "",
        "Gatekeeper is running.",
        f"  Log in:    {base_url}/login",
        f"  API docs:  {base_url}/api/v1/docs  (spec: {base_url}/api/v1/openapi.json)",
        f"  Broker:    {mqtt_url}  (devices and officers)",
    ]
    if accounts:
        name_width = max(len(a["username"]) for a in accounts)
        password_width = max(len(a["password"]) for a in accounts)
        lines.append("  Demo accounts (from seeds/demo.json):")
        lines += [
            f"    {a['username']:<{name_width}}  {a['password']:<{password_width}}  {a['role']}"
            for a in accounts
        ]
    lines += ["Press Ctrl-C to stop.", ""]
    return "\n".join(lines)


def supervise(children: Sequence[Child], stop: threading.Event) -> int:
    """Wait for ``stop`` (exit 0) or for any child to exit (exit 1)."""
    while not stop.wait(POLL_INTERVAL_S):
        for child in children:
            if child.process.poll() is not None:
                _LOGGER.error(
                    "%s exited with status %s; stopping the rest",
                    child.name,
                    child.process.returncode,
                )
                return 1
    _LOGGER.info("stop requested")
    return 0


def _check_settings(environ: Mapping[str, str]) -> Path:
    """Validate the server's configuration once (and create dev keys before the workers do)."""
    from server.settings import Settings, SettingsError

    try:
        return Settings.from_env(environ).instance_dir
    except SettingsError as error:
        raise LaunchError(str(error)) from error


def run(environ: Mapping[str, str], stop: threading.Event) -> int:
    """Start broker (if needed), web server and workers; supervise until ``stop`` or a failure."""
    env = dict(environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # gunicorn's alone (metrics_environment)
    host, port = web_bind(env)
    base_url = local_url(host, port)
    if not port_is_free(host, port):
        raise LaunchError(f"{host}:{port} is taken; set GK_BIND or PORT to another address")
    streams_port = stream_port(env, host, port)
    if not port_is_free(host, streams_port):
        raise LaunchError(f"{host}:{streams_port} is taken; set STREAM_PORT to another port")
    env["STREAM_PORT"] = str(streams_port)  # the pages open their streams there
    workers = worker_count(env)
    instance_dir = _check_settings(env)
    with contextlib.ExitStack() as stack:
        if not env.get("MQTT_URL", "").strip():
            broker = stack.enter_context(local_broker(instance_dir, env))
            env.update(broker.environment)
            watched = [broker.child]
            _LOGGER.info(
                "local broker at %s (config %s)", without_password(broker.url), broker.config_path
            )
        else:
            watched = []
        if not env.get("RATELIMIT_STORAGE_URI", "").strip():
            env.update(stack.enter_context(local_redis(instance_dir, env)))
            _LOGGER.info("local Redis for rate limits at %s", env["RATELIMIT_STORAGE_URI"])
        children: list[Child] = []
        stack.callback(stop_children, children)  # runs before the broker stops
        streams = start_child(
            "streams", stream_command(host, streams_port), stream_environment(env, instance_dir)
        )
        children.append(streams)
        web_env = {**env, **metrics_environment(instance_dir)}
        children.append(start_child("web", web_command(host, port), web_env))
        for name, worker_env in worker_environments(env, workers):
            children.append(start_child(name, worker_command(), worker_env))
        if not wait_until_healthy(base_url, [*children, *watched], stop):
            _LOGGER.info("stop requested while starting")
            return 0
        _wait_for_port(host, streams_port, streams, HEALTH_TIMEOUT_S)
        _LOGGER.info("stream process at %s", local_url(host, streams_port))
        fleet = simulators_command(env, instance_dir, base_url)
        if fleet is not None:
            children.append(start_child("devices", fleet, env))
        devices_url = env.get("MQTT_DEVICE_URL") or env["MQTT_URL"]
        print(banner(base_url, without_password(devices_url), demo_accounts()), flush=True)
        return supervise([*children, *watched], stop)


def main() -> int:
    """Entry point of ``python -m server.launcher``."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s launcher: %(message)s"
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        _LOGGER.info("received %s", signal.Signals(signum).name)
        # From another thread: this handler runs on the main thread, which may be inside
        # ``stop.wait`` holding the event's lock, and ``set`` would wait for it forever.
        threading.Thread(target=stop.set, daemon=True).start()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        return run(os.environ, stop)
    except LaunchError as error:
        _LOGGER.error("%s", error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
