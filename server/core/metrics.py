"""Prometheus metrics: what the server counts, and who may read them.

The metrics are defined here, once per process, and the rooms count into them with a line
each: the verify views (``timed_verify``), the decision path, the worker's ingest
(``IngestCounts``), device commands, the MQTT outbox (``server.core.messaging``), the live
streams, alert deliveries, the face galleries (``gallery_size``). Labels hold only bounded
words of the code (credential types, decisions, reason codes, outcomes) and community ids:
never a person, a plate, a card or a token.

Where they are read:

- the web server answers ``GET /metrics``. Under gunicorn every worker process counts into
  files of its own in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode; the
  launcher sets it to ``<INSTANCE_DIR>/metrics``), and whichever process answers adds them
  all up. gunicorn's hooks (``server.gunicorn_config``) empty the folder when the server
  starts and drop a dead worker's gauges. Without the variable (tests, one process) the
  process's own registry is served.
- ``flask worker`` serves its own at ``/metrics`` on ``METRICS_PORT``, when set (one scrape
  target per worker; it is not in multiprocess mode).

Who may read them (``allowed``): with ``METRICS_TOKEN`` set, whoever sends it as a bearer
token; without it, only this machine: a loopback peer whose request did not come through a
proxy (no ``X-Forwarded-For``, ``Forwarded`` or ``X-Real-IP``). Anyone else gets 404, as if
there were no such page.
"""

from __future__ import annotations

import collections
import functools
import hmac
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flask import Flask, Response, abort, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import ThreadingWSGIServer

from server.settings import Settings

_LOGGER = logging.getLogger(__name__)
P = ParamSpec("P")

# prometheus-client reads this variable itself, when it is imported.
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
PATH = "/metrics"
_FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")

# A card or plate is answered in milliseconds, a face in a few hundred.
_VERIFY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A console should see an alert within a second; a webhook retried for hours is late.
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)

VERIFY_SECONDS = Histogram(
    "gk_verify_seconds",
    "Time a door's verify request spent in the server's view (read, identify, decide, store, "
    "commit), by credential type and decision; decision 'error' for a refused request.",
    ["credential", "decision"],
    buckets=_VERIFY_BUCKETS,
)
ACCESS_DECISIONS = Counter(
    "gk_access_decisions",
    "Access events decided, by credential type, decision and reason code.",
    ["credential", "decision", "reason"],
)
INGESTED = Counter(
    "gk_ingest_messages",
    "Device messages the worker applied, by kind: event (stored), status, ack, heartbeat.",
    ["kind"],
)
DROPPED = Counter(
    "gk_ingest_dropped",
    "Device messages the worker dropped, by reason.",
    ["reason"],
)
OFFLINE_PASS_USES = Counter(
    "gk_offline_pass_uses",
    "Visitor pass uses doors admitted offline and uploaded (pass_used), by the server's "
    "own decision.",
    ["decision"],
)
COMMANDS = Counter("gk_device_commands", "Commands issued to devices, by command.", ["command"])
COMMAND_OUTCOMES = Counter(
    "gk_device_command_outcomes",
    "What became of device commands: sent (the broker took it), acked, failed, expired (the "
    "device dropped it late), no_answer (expired unanswered), duplicate (a redelivery's ack).",
    ["outcome"],
)
MQTT_CONNECTED = Gauge(
    "gk_mqtt_connected",
    "1 while this process's MQTT client (worker, or a web process's publisher) is connected.",
    ["client"],
    multiprocess_mode="liveall",
)
MQTT_UNACKNOWLEDGED = Gauge(
    "gk_mqtt_unacknowledged",
    "Messages this process handed to its MQTT client that the broker has not acknowledged "
    "yet: the outbox waiting for the broker (it grows while the broker is away).",
    ["client"],
    multiprocess_mode="liveall",
)
LIVE_STREAMS = Gauge(
    "gk_live_streams",
    "Open Server-Sent Event streams of this process, by kind (alerts: officers' consoles; "
    "pages: live pages), each against its budget per process.",
    ["kind"],
    multiprocess_mode="liveall",
)
ALERT_DELIVERY_LAG = Histogram(
    "gk_alert_delivery_lag_seconds",
    "From an alert being raised to its delivery, by channel (mqtt: the broker took it; "
    "webhook: the receiver answered 2xx).",
    ["channel"],
    buckets=_LAG_BUCKETS,
)
GALLERY_TEMPLATES = Gauge(
    "gk_face_gallery_templates",
    "Face templates of a community's gallery held in memory (the largest copy among the "
    "processes; 0 when none holds it).",
    ["community_id"],
    multiprocess_mode="livemax",
)
GALLERY_TEMPLATES_IN_PROCESS = Gauge(
    "gk_face_gallery_templates_in_process",
    "Face templates this process holds in memory, all communities together.",
    multiprocess_mode="liveall",
)

# The worker's ingest counts (``DeviceIngest.stats``) that are drops, and those that detail
# another count (``pass_used_grant`` is also an ``event``).
_DROP_REASONS = frozenset(
    {"ignored", "unknown_device", "bad_payload", "duplicate_event", "ack_unknown_command"}
)
_OFFLINE_USE_PREFIX = "pass_used_"


# Counting -------------------------------------------------------------------------------------


def timed_verify(credential: str) -> Callable[[Callable[P, Any]], Callable[P, Any]]:
    """Time a verify view into ``VERIFY_SECONDS``, labelled with the ``decision`` of the body
    it returns (``error`` when it raises: a 4xx answered as a problem)."""

    def decorate(view: Callable[P, Any]) -> Callable[P, Any]:
        @functools.wraps(view)
        def timed(*args: P.args, **kwargs: P.kwargs) -> Any:
            started = time.perf_counter()
            decision = "error"
            try:
                body = view(*args, **kwargs)
                if isinstance(body, Mapping):
                    decision = str(body.get("decision", "error"))
                return body
            finally:
                VERIFY_SECONDS.labels(credential, decision).observe(time.perf_counter() - started)

        return timed

    return decorate


def access_decided(credential: str, decision: str, reason: str) -> None:
    ACCESS_DECISIONS.labels(credential, decision, reason).inc()


class IngestCounts(collections.Counter[str]):
    """The worker's ingest counts, mirrored into ``INGESTED``, ``DROPPED`` and
    ``OFFLINE_PASS_USES`` as they grow (``counts[name] += 1``)."""

    def __setitem__(self, key: str, value: int) -> None:
        grown = value - self.get(key, 0)
        super().__setitem__(key, value)
        if grown > 0:
            if key in _DROP_REASONS:
                DROPPED.labels(key).inc(grown)
            elif key.startswith(_OFFLINE_USE_PREFIX):
                OFFLINE_PASS_USES.labels(key.removeprefix(_OFFLINE_USE_PREFIX)).inc(grown)
            else:
                INGESTED.labels(key).inc(grown)


def command_issued(command: str) -> None:
    COMMANDS.labels(command).inc()


def command_outcome(outcome: str, count: int = 1) -> None:
    if count > 0:
        COMMAND_OUTCOMES.labels(outcome).inc(count)


def after(callback: Callable[[], None] | None, then: Callable[[], None]) -> Callable[[], None]:
    """``callback`` (if any), then ``then``: to count on a PUBACK callback."""

    def both() -> None:
        try:
            if callback is not None:
                callback()
        finally:
            then()

    return both


def alert_delivered(channel: str, lag_s: float) -> None:
    ALERT_DELIVERY_LAG.labels(channel).observe(max(0.0, lag_s))


def mqtt_state(
    client: str, *, connected: bool | None = None, unacknowledged: int | None = None
) -> None:
    """Record this process's MQTT client state (on every change: gauges of other processes
    are read from their files, not asked)."""
    if connected is not None:
        MQTT_CONNECTED.labels(client).set(1 if connected else 0)
    if unacknowledged is not None:
        MQTT_UNACKNOWLEDGED.labels(client).set(unacknowledged)


_stream_kinds: set[str] = set()


def live_streams(counts: Mapping[str, int], kinds: Iterable[str] = ()) -> None:
    """The open streams of this process per kind; a kind seen before, or named in ``kinds``,
    reads 0 when none is open."""
    _stream_kinds.update(kinds, counts)
    for kind in tuple(_stream_kinds):
        LIVE_STREAMS.labels(kind).set(counts.get(kind, 0))


_gallery_lock = threading.Lock()
_gallery_sizes: dict[str, int] = {}
_gallery_total = 0


def gallery_size(community_id: str, templates: int) -> None:
    """A community's gallery in this process now holds ``templates`` (0: evicted). Cheap
    when nothing changed: call it on every search if that is simplest."""
    global _gallery_total
    with _gallery_lock:
        before = _gallery_sizes.get(community_id)
        if before == templates:
            return
        _gallery_sizes[community_id] = templates
        _gallery_total += templates - (before or 0)
        GALLERY_TEMPLATES.labels(community_id).set(templates)
        GALLERY_TEMPLATES_IN_PROCESS.set(_gallery_total)


# Reading --------------------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    """Where gunicorn's processes keep their counts, when in multiprocess mode."""
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


def exposition() -> bytes:
    """Every metric in Prometheus' text format: all processes' in multiprocess mode."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry)


def _loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def allowed(
    remote_addr: str | None, forwarded: bool, authorization: str | None, token: str | None
) -> bool:
    """With a token: whoever sends it (``Authorization: Bearer ...``). Without: a loopback
    peer whose request no proxy forwarded."""
    if token is not None:
        scheme, _, given = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        )
    return not forwarded and _loopback(remote_addr)


def process_exited(pid: int) -> None:
    """Forget the live gauges of a process that ended (gunicorn's ``child_exit``)."""
    directory = multiprocess_dir()
    if directory is not None:
        multiprocess.mark_process_dead(pid, directory)


def clear_multiprocess_dir() -> None:
    """Remove the counts of an earlier run (the server is starting; no worker runs yet).

    Only prometheus-client's own files go: a mistaken path loses nothing else."""
    directory = multiprocess_dir()
    if directory is None:
        return
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db") and name.split("_", 1)[0] in (
            "counter",
            "gauge",
            "histogram",
            "summary",
        ):
            os.remove(os.path.join(directory, name))


# The web server's page --------------------------------------------------------------------------


def _metrics_page() -> Response:
    settings: Settings = current_app.config["SETTINGS"]
    forwarded = any(name in request.headers for name in _FORWARDING_HEADERS)
    if not allowed(
        request.remote_addr, forwarded, request.headers.get("Authorization"), settings.metrics_token
    ):
        abort(404)
    response = Response(exposition(), content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Serve ``/metrics`` (for Prometheus, never a page for people)."""
    disable_created_metrics()  # no ``_created`` series beside every counter
    app.add_url_rule(PATH, "metrics", _metrics_page, methods=["GET"])


# The worker's own server ------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a line each."""


def _worker_page(token: str | None) -> Callable[..., Iterable[bytes]]:
    def page(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        forwarded = any(
            "HTTP_" + name.upper().replace("-", "_") in environ for name in _FORWARDING_HEADERS
        )
        if environ.get("PATH_INFO") != PATH or not allowed(
            environ.get("REMOTE_ADDR"), forwarded, environ.get("HTTP_AUTHORIZATION"), token
        ):
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Not Found\n"]
        body = exposition()
        start_response(
            "200 OK",
            [
                ("Content-Type", CONTENT_TYPE_LATEST),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body]

    return page


def serve_worker_metrics(settings: Settings) -> WSGIServer | None:
    """The worker's ``/metrics`` on ``METRICS_PORT`` in a thread of its own (None: unset, or
    the port is taken: the worker then runs without, and says so)."""
    if settings.metrics_port is None:
        return None
    disable_created_metrics()
    if multiprocess_dir() is not None:
        _LOGGER.warning(
            "%s is set for the worker: its counts also reach the web server's /metrics; "
            "set it for gunicorn only",
            MULTIPROC_DIR_VARIABLE,
        )
    host = "0.0.0.0" if settings.metrics_token else "127.0.0.1"  # noqa: S104 (token required)
    try:
        server = make_server(
            host,
            settings.metrics_port,
            _worker_page(settings.metrics_token),
            ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
    except OSError as error:
        _LOGGER.warning("no metrics server on %s:%s: %s", host, settings.metrics_port, error)
        return None
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    _LOGGER.info("metrics at http://%s:%s%s", host, settings.metrics_port, PATH)
    return server
