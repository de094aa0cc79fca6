"""Log lines: readable text or JSON (``LOG_FORMAT``), and the request id that joins them.

Every HTTP request gets a request id: the caller's ``X-Request-ID`` when it is a plausible id
(1-64 of ``A-Z a-z 0-9 _ . : -``, the protocol's id rule), else a new one. The response
echoes it in ``X-Request-ID``; every line logged while the request is served carries it
(``request_id``); and a command the request causes carries it to the device in its payload
(``server.devices.commands``, docs/protocol.md), so the web server's, the worker's and the
door's logs of one verify can be joined. One line per request (``request``) says what was
served: the route's pattern, never the path itself (paths hold activation and pass
tokens) nor the query (searches hold names and plates).

The request id lives in a context variable, so it follows the request's thread and nothing
else; code outside a request (the worker) passes one explicitly with ``extra``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from flask import Flask, Response, g, request

REQUEST_ID_HEADER = "X-Request-ID"
# The protocol's rule for ids (docs/protocol.md, ``cmd_id``): safe in a topic, a log, a header.
REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s"

_LOGGER = logging.getLogger(__name__)
_request_id: ContextVar[str | None] = ContextVar("gatekeeper_request_id", default=None)
# What a LogRecord holds by itself; anything else on a record came from ``extra``.
_RECORD_FIELDS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "request_id", "request_tag"}
)


def current_request_id() -> str | None:
    """The id of the HTTP request this thread serves, if any."""
    return _request_id.get()


def request_id_from(header: str | None) -> str:
    """The caller's id when it is one we can pass on safely, else a new one."""
    if header is not None and REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Gives every record ``request_id`` (from ``extra``, else the current request's, else
    None) and ``request_tag`` (`` [id]`` or nothing) for the text format."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = getattr(record, "request_id", None) or _request_id.get()
        record.request_id = request_id
        record.request_tag = f" [{request_id}]" if request_id else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC), ``level``, ``logger``, ``message``, ``pid``,
    ``request_id`` when there is one, ``exception`` with a traceback, and the ``extra``
    fields a call passed."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None) or _request_id.get()
        if request_id:
            line["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``LOG_FORMAT``."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def handler(log_format: str, stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing ``log_format`` lines to ``stream`` (default: standard error)."""
    result = logging.StreamHandler(stream or sys.stderr)
    result.setFormatter(formatter(log_format))
    result.addFilter(RequestIdFilter())
    return result


def configure(level: str, log_format: str) -> None:
    """Log to standard error in ``log_format`` at ``level``, like ``logging.basicConfig``:
    only when nobody configured the root logger before (a test runner, an embedding program),
    except for our own handler, which a second app in the process updates."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "gatekeeper", False)]
    if root.handlers and not ours:
        return
    if ours:
        ours[0].setFormatter(formatter(log_format))
    else:
        new = handler(log_format)
        new.gatekeeper = True  # type: ignore[attr-defined]
        root.addHandler(new)
    root.setLevel(level)


def _start_request() -> None:
    g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    g.request_token = _request_id.set(g.request_id)
    g.request_started = time.perf_counter()


def _finish_request(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id is None:  # a hook before ours answered (none does today): still an id
        request_id = g.request_id = request_id_from(None)
    response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started")
    _LOGGER.info(
        "request %s %s %s %.1f ms",
        request.method,
        request.url_rule.rule if request.url_rule is not None else "(no route)",
        response.status_code,
        (time.perf_counter() - started) * 1000 if started is not None else -1.0,
        extra={"request_id": request_id},
    )
    return response


def _end_request(_error: BaseException | None) -> None:
    token = g.pop("request_token", None)
    if token is not None:
        try:
            _request_id.reset(token)
        except ValueError:  # torn down in another context than it started in
            _request_id.set(None)


def init_app(app: Flask) -> None:
    """Give every request an id (register first: every later hook's lines carry it)."""
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.teardown_request(_end_request)
