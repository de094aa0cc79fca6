"""The stream process: officers' consoles and live pages, a greenlet each, not a thread each.

``gunicorn --worker-class gevent ... "server.streams:create_app()"`` (started by
``server.launcher``, or the ``gatekeeper-streams`` unit of ``docs/deploy.md``) runs the web
server's own app, with its settings, sign-ins and scopes, but serves only the two streams,
``/api/v1/alerts/stream`` and ``/live`` (``server.core.live``), and ``/livez``, ``/healthz``
and ``/metrics``; anything else answers 404. A stream spends its life waiting on its queue,
which costs a gunicorn thread in the web server and a few KiB as a greenlet here. What must
never run here is the rest of the app: a face verify is CPU-bound (dlib) and would stall
every greenlet of the process while it computes, so gevent is for this process only.

In production the proxy sends those two paths here and everything else to the web server
(``docs/deploy/nginx-gatekeeper.conf``): one origin for the browser. Without a proxy (``make
run``) the pages open their streams on this process's port of their own host
(``STREAM_PORT``); the browser then sends ``Origin``, and this process answers a page of the
same scheme and host (any port) with ``Access-Control-Allow-Origin`` and
``Access-Control-Allow-Credentials``, so ``EventSource(url, {withCredentials: true})`` may
read the stream with the page's session cookie. Cookies belong to a host, not a port, so
such a page's cookie reaches this process whether or not it answers; a page of any other
site gets no such headers, and its browser keeps the answer from it (and, the cookie being
``SameSite=Lax``, never sent the session along in the first place).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from urllib.parse import urlsplit

import psycopg.waiting
from flask import Flask, abort, request
from werkzeug.wrappers import Response

from server import create_app as create_web_app

# What the stream process serves: the streams, and what a process manager or Prometheus asks.
STREAM_ENDPOINTS = frozenset({"alerts.stream_alerts", "web.live_stream"})
SERVED_ENDPOINTS = STREAM_ENDPOINTS | {"web.livez", "web.healthz", "metrics"}
# A browser asks before an EventSource that resumes (it sends Last-Event-ID): this long.
PREFLIGHT_MAX_AGE_S = 600


def create_app(overrides: Mapping[str, str] | None = None) -> Flask:
    """The web server's app, serving only the streams (and health and metrics);
    ``overrides`` replace environment variables (``server.create_app``'s)."""
    if gevent_patched() and not psycopg_cooperates():
        raise RuntimeError(
            "psycopg was imported before gevent patched select: its waits for the database "
            "would stop every stream of this process. Import nothing from the server in "
            "gunicorn's master (its config, preload_app)."
        )
    app = create_web_app(overrides)
    # First of all hooks: nothing else of the web server (sign-in pages, CSRF) answers here.
    app.before_request_funcs.setdefault(None, []).insert(0, _streams_only)
    app.after_request(_allow_same_host)
    return app


def gevent_patched() -> bool:
    """Whether gevent has patched ``select`` in this process (gunicorn's gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("select"))


def psycopg_cooperates() -> bool:
    """Whether psycopg waits for the database through the (patched) ``select`` module, so
    that a greenlet waiting on a query lets the others run. psycopg picks its wait function
    when first imported: its C one (``wait_c``) blocks the whole process, and it avoids it
    only when gevent had patched ``select`` already."""
    return psycopg.waiting.wait is not getattr(psycopg.waiting, "wait_c", None)


def _streams_only() -> Response | None:
    if request.endpoint not in SERVED_ENDPOINTS:
        abort(404)
    if request.method == "OPTIONS" and request.endpoint in STREAM_ENDPOINTS:
        return Response(status=204)  # a preflight: _allow_same_host says what is allowed
    return None


def same_host(origin: str | None) -> bool:
    """Whether ``origin`` is this request's scheme and host (its port may differ)."""
    if not origin:
        return False
    parts = urlsplit(origin)
    here = urlsplit(f"//{request.host}")
    return (
        parts.scheme == request.scheme
        and parts.hostname is not None
        and parts.hostname == here.hostname
        and not parts.path
        and not parts.query
    )


def _allow_same_host(response: Response) -> Response:
    if request.endpoint not in STREAM_ENDPOINTS:
        return response
    response.vary.add("Origin")
    origin = request.headers.get("Origin")
    if same_host(origin):
        response.headers["Access-Control-Allow-Origin"] = origin or ""
        response.headers["Access-Control-Allow-Credentials"] = "true"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET"
            response.headers["Access-Control-Allow-Headers"] = "Last-Event-ID, Cache-Control"
            response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
    return response
