"""The one place that turns errors into answers.

Under ``/api`` every error is an RFC 9457 problem document
(``application/problem+json``: ``type``, ``title``, ``status``, ``detail``, plus
extension members such as ``errors``); pages get an HTML error page.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, json, render_template, request
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from flask_babel.speaklater import LazyString
from sqlalchemy.exc import (
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from werkzeug.exceptions import HTTPException, RequestURITooLarge

from server.core.errors import DomainError, Text

_LOGGER = logging.getLogger(__name__)

# The longest request target (path and query, as sent) the app reads; longer ones answer
# 414. It stays below gunicorn's request-line limit (``server.launcher.REQUEST_LINE_LIMIT``,
# which also counts the method and the HTTP version) so the app, not gunicorn, answers.
MAX_URL_BYTES = 8000

PROBLEM_MEDIA_TYPE = "application/problem+json"

# slug -> what it means; each is documented at /problems/<slug>.
PROBLEM_TYPES: dict[str, LazyString] = {
    "bad-request": _l(
        "The request could not be read: malformed JSON, a wrong content type, a "
        "missing or invalid CSRF token."
    ),
    "unauthorized": _l("No credentials, or credentials that are wrong, expired or revoked."),
    "forbidden": _l(
        "The caller is known but may not do this (a disabled device, a read-only role)."
    ),
    "not-found": _l(
        "No such resource, or one outside the caller's scope: the two answer alike so "
        "identifiers cannot be probed."
    ),
    "method-not-allowed": _l("The resource exists but does not support this HTTP method."),
    "conflict": _l(
        "The change collides with existing data (a duplicate name, a unit still in use)."
    ),
    "payload-too-large": _l("The body is larger than the server accepts."),
    "uri-too-long": _l(
        "The URL (path and query) is longer than the %(limit)s bytes the server reads; "
        "send long filters in a body where the endpoint takes one.",
        limit=MAX_URL_BYTES,
    ),
    "unsupported-media-type": _l("The body's content type is not one this endpoint reads."),
    "validation-error": _l(
        "Well-formed input that breaks a rule; `errors` maps each field to its "
        "messages. Unknown fields are errors: they are never silently stored."
    ),
    "rate-limited": _l("Too many requests; retry after the time given in `Retry-After`."),
    "service-unavailable": _l(
        "A part the server needs (the database) does not answer just now; "
        "nothing was applied. Retry after the time given in `Retry-After`."
    ),
    "internal-error": _l("The server failed. The incident is logged; the request was not applied."),
}

# What a page says for each status: the title, and the detail when no rule of ours wrote
# one (Werkzeug's own descriptions are English and speak of "the server").
_PAGE_TITLES = {
    400: _l("Bad request"),
    401: _l("Sign-in required"),
    403: _l("Not allowed"),
    404: _l("Not found"),
    405: _l("Not possible here"),
    409: _l("Conflict"),
    413: _l("Too large"),
    414: _l("Address too long"),
    415: _l("Unsupported file type"),
    422: _l("Invalid input"),
    429: _l("Too many attempts"),
    500: _l("Something went wrong"),
    503: _l("Temporarily unavailable"),
}
_PAGE_DETAILS = {
    400: _l("The request could not be read. Go back and try again."),
    403: _l("You may not do this."),
    404: _l("There is no such page, or it is not yours to see."),
    405: _l("This page cannot be used that way."),
    413: _l("What you sent is larger than the server accepts."),
    415: _l("This kind of file cannot be read here."),
    500: _l("The server failed; the incident is logged."),
}

# What Werkzeug and Flask-WTF say in English (an HTTP error's default description, why a
# CSRF check failed), in the caller's language; a text not listed here stays as it is.
_FOREIGN_DETAILS: dict[str, LazyString] = {
    "The browser (or proxy) sent a request that this server could not understand.": _l(
        "The browser (or proxy) sent a request that this server could not understand."
    ),
    "The requested URL was not found on the server. If you entered the URL manually please "
    "check your spelling and try again.": _l(
        "The requested URL was not found on the server. If you entered the URL manually "
        "please check your spelling and try again."
    ),
    "The method is not allowed for the requested URL.": _l(
        "The method is not allowed for the requested URL."
    ),
    "The data value transmitted exceeds the capacity limit.": _l(
        "The data value transmitted exceeds the capacity limit."
    ),
    "The server does not support the media type transmitted in the request.": _l(
        "The server does not support the media type transmitted in the request."
    ),
    "The CSRF token is missing.": _l("The CSRF token is missing."),
    "The CSRF session token is missing.": _l("The CSRF session token is missing."),
    "The CSRF token has expired.": _l("The CSRF token has expired."),
    "The CSRF token is invalid.": _l("The CSRF token is invalid."),
    "The CSRF tokens do not match.": _l("The CSRF tokens do not match."),
    "The referrer header is missing.": _l("The referrer header is missing."),
    "The referrer does not match the host.": _l("The referrer does not match the host."),
}

_SLUG_BY_STATUS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    414: "uri-too-long",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "rate-limited",
    500: "internal-error",
    503: "service-unavailable",
}


def plain(value: Any) -> Any:
    """``value`` with every lazy text in it made a plain string in the request's language:
    a problem's ``detail``, and the messages anywhere in its extensions (``errors`` maps
    fields to lists of messages, nested for nested fields; keys may be lazy too)."""
    if isinstance(value, LazyString):
        return str(value)
    if isinstance(value, Mapping):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    return value


def problem(
    status: int,
    detail: Text,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """A problem-document response; lazy texts in ``detail`` and ``extensions`` are rendered
    in the caller's language here (``title`` stays English, ``type`` stable)."""
    slug = slug or _SLUG_BY_STATUS.get(status)
    body: dict[str, Any] = {
        "type": f"/problems/{slug}" if slug else "about:blank",
        "title": str(title or _default_title(status)),
        "status": status,
        "detail": str(detail),
        "instance": request.path,
        **plain(extensions),
    }
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def wants_problem() -> bool:
    """API callers get problem documents; browsers on pages get HTML."""
    return request.path.startswith("/api/")


def init_url_limit(app: Flask) -> None:
    """Refuse over-long URLs before any other hook runs (sessions, CSRF, authentication)."""
    app.before_request(_refuse_long_url)


def _refuse_long_url() -> None:
    length = request_target_bytes(request.environ)
    if length > MAX_URL_BYTES:
        raise RequestURITooLarge(
            _l(
                "The URL is %(length)s bytes; the limit is %(limit)s.",
                length=length,
                limit=MAX_URL_BYTES,
            )
        )


def request_target_bytes(environ: Mapping[str, Any]) -> int:
    """The length of the request target as the client sent it (percent-escapes included).

    gunicorn and Werkzeug keep it in ``RAW_URI``/``REQUEST_URI``; otherwise it is rebuilt
    from the decoded path (WSGI strings are bytes read as Latin-1) and the query string.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw is None:
        query = environ.get("QUERY_STRING", "")
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        path = quote(path.encode("latin-1", "replace"), safe="/")
        raw = path + ("?" + query if query else "")
    return len(raw.encode("latin-1", "replace"))


def init_app(app: Flask) -> None:
    app.register_error_handler(DomainError, _handle_domain_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(IntegrityError, _handle_integrity_error)
    app.register_error_handler(DataError, _handle_data_error)
    app.register_error_handler(OperationalError, _handle_database_down)
    app.register_error_handler(InterfaceError, _handle_database_down)
    app.register_error_handler(Exception, _handle_unexpected)


def _respond(
    status: int,
    detail: Text,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    if wants_problem():
        return problem(status, detail, slug=slug, title=title, headers=headers, **extensions)
    page_title = _PAGE_TITLES.get(status) or title or _default_title(status)
    # Plain strings: Jinja would take a lazy text for markup (it has ``__html__``) and not
    # escape it, and a detail may quote what the caller sent.
    html = render_template("error.html", status=status, title=str(page_title), detail=str(detail))
    return Response(html, status=status, headers=headers, mimetype="text/html")


def _handle_domain_error(error: DomainError) -> Response:
    # RFC 9110: a 401 names the scheme to use (bearer tokens, for users and devices alike).
    headers = {"WWW-Authenticate": 'Bearer realm="gatekeeper"'} if error.status == 401 else None
    return _respond(
        error.status,
        error.detail,
        slug=error.slug,
        title=error.title,
        headers=headers,
        **error.extensions,
    )


def _handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    extensions: dict[str, Any] = {}
    data = getattr(error, "data", None) or {}
    detail = data.get("message") or error.description or _default_title(status)
    if isinstance(detail, str):
        detail = _FOREIGN_DETAILS.get(detail, detail)
    headers.update(data.get("headers") or {})
    messages = data.get("errors") or data.get("messages")
    if messages:
        extensions["errors"] = _flatten_locations(messages)
        detail = (
            _l("The request body is not valid JSON.")
            if status == 400
            else _l("The request does not match the schema; see `errors`.")
        )
    if status >= 500:
        detail = _l("The server failed; the incident is logged.")
    if status == 429:
        detail = _l("Too many requests: the limit is %(limit)s.", limit=_rate_words(error))
    if not wants_problem() and not messages:
        detail = _PAGE_DETAILS.get(status, detail)
    return _respond(status, detail, headers=headers, **extensions)


# The units of a rate limit (``10 per 1 minute``), as Flask-Limiter's limits name them.
_RATE_UNITS: dict[str, LazyString] = {
    "second": _p("rate limit", "second"),
    "minute": _p("rate limit", "minute"),
    "hour": _p("rate limit", "hour"),
    "day": _p("rate limit", "day"),
    "month": _p("rate limit", "month"),
    "year": _p("rate limit", "year"),
}


def _rate_words(error: HTTPException) -> Text:
    """The limit a 429 ran into, ``10 per 1 minute``, in the caller's language (the
    exception's description as it is when it is not Flask-Limiter's own)."""
    item = getattr(getattr(error, "limit", None), "limit", None)
    unit = _RATE_UNITS.get(getattr(getattr(item, "GRANULARITY", None), "name", ""))
    if item is None or unit is None or error.description != repr(item):
        return error.description or ""
    return _l(
        "%(amount)s per %(multiples)s %(unit)s",
        amount=item.amount,
        multiples=item.multiples,
        unit=unit,
    )


def _handle_integrity_error(error: IntegrityError) -> Response:
    from server.extensions import db

    db.session.rollback()
    _LOGGER.info("integrity error on %s %s: %s", request.method, request.path, error.orig)
    return _respond(
        409,
        _l(
            "The change collides with existing data "
            "(a duplicate or a reference that does not hold)."
        ),
    )


def _handle_data_error(error: DataError) -> Response:
    # Input the schemas let through but the database refuses: a NUL character in a string
    # (PostgreSQL text cannot hold one), a number out of the column's range.
    from server.extensions import db

    db.session.rollback()
    _LOGGER.info("data error on %s %s: %s", request.method, request.path, error.orig)
    return _respond(
        422,
        _l(
            "A value in the request cannot be stored (for example a NUL "
            "character in a text or a number out of range)."
        ),
    )


# Seconds a client is told to wait when the database does not answer.
RETRY_AFTER_S = 5


def _handle_database_down(error: OperationalError | InterfaceError) -> Response:
    """The database does not answer (down, restarting, unreachable, locked): a 503 that
    tells the caller to retry, not a 500. SQLite names its programming errors
    OperationalError too (``no such table``): those stay 500s, they are bugs."""
    from server.extensions import db

    if "no such " in str(error.orig):
        return _handle_unexpected(error)
    with contextlib.suppress(SQLAlchemyError):  # the connection may be gone already
        db.session.rollback()
    _LOGGER.warning("database unavailable on %s %s: %s", request.method, request.path, error.orig)
    return _respond(
        503,
        _l("The database does not answer just now; nothing was applied. Retry shortly."),
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def _handle_unexpected(error: Exception) -> Response:
    from server.extensions import db

    db.session.rollback()
    _LOGGER.exception("unhandled error on %s %s", request.method, request.path)
    return _respond(500, _l("The server failed; the incident is logged."))


def _flatten_locations(messages: dict[str, Any]) -> dict[str, Any]:
    """webargs nests errors by location (``{"json": {...}}``); callers care about fields."""
    locations = {"json", "form", "query", "querystring", "files", "headers", "view_args"}
    if messages and set(messages) <= locations:
        flat: dict[str, Any] = {}
        for inner in messages.values():
            flat.update(inner if isinstance(inner, dict) else {"_body": inner})
        return flat
    return messages


def _default_title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_type_page(slug: str) -> tuple[str, str]:
    """The slug's title and description, for the /problems/<slug> page."""
    status = next(code for code, known in _SLUG_BY_STATUS.items() if known == slug)
    return str(_PAGE_TITLES[status]), str(PROBLEM_TYPES[slug])
