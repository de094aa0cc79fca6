"""Security headers on every response: pages, API, static files and errors alike.

One ``after_request`` hook rather than Flask-Talisman: the policy is a handful of fixed
directives, the cookies' flags are already set from the settings (``server/__init__.py``)
and redirecting to HTTPS is the TLS proxy's job, so a library would add only defaults to
switch off. Here it is plain what the browser is told, and why:

- ``Content-Security-Policy``: scripts, styles and everything else only from this site,
  so text that slipped past escaping cannot run as script. The pages keep their script
  in ``server/static/*.js``; a template that must inline one (the API docs' start-up
  script) marks it with ``nonce="{{ csp_nonce() }}"``, and only then does ``script-src``
  name that request's nonce. ``img-src`` adds ``data:`` for the stylesheets' small icons
  (Swagger UI's); ``connect-src`` adds the stream process's origin where pages open their
  live streams on another port of their host (``STREAM_PORT``, ``make run``:
  ``server.core.live.stream_origin``); ``frame-ancestors 'none'`` keeps the portal's
  remote open and the officer's console out of other sites' frames (clickjacking).
- ``X-Frame-Options: DENY``: the same for browsers that predate ``frame-ancestors``.
- ``X-Content-Type-Options: nosniff``: a file is read as the type it is sent with (an
  uploaded picture is never run as script).
- ``Referrer-Policy: same-origin``: links to other sites do not learn our URLs. A view
  may set a stricter one itself (the guest's pass page, whose URL is the pass's secret,
  sends ``no-referrer``); it is kept.
- ``Strict-Transport-Security``: in production only (``Settings.is_production``), where
  TLS is terminated in front of us; a development server on plain HTTP must not pin
  browsers to HTTPS for ``localhost``.
"""

from __future__ import annotations

import secrets

from flask import Flask, current_app, g
from werkzeug.wrappers import Response

from server.core.live import stream_origin

# The directives before script-src's nonce is added, in the order they are sent.
POLICY: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "object-src": "'none'",
}
FIXED_HEADERS: dict[str, str] = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains"


def csp_nonce() -> str:
    """This request's script nonce, made on first use (templates call it as ``csp_nonce()``).

    Unguessable and new on every response, so an injected ``<script>`` cannot carry it.
    """
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def content_security_policy(nonce: str | None = None, stream_origin: str | None = None) -> str:
    """The policy text; ``nonce`` (when a template inlined a script) joins ``script-src``,
    ``stream_origin`` (where the page's live streams are) ``connect-src``."""
    directives = dict(POLICY)
    if nonce is not None:
        directives["script-src"] += f" 'nonce-{nonce}'"
    if stream_origin is not None:
        directives["connect-src"] += f" {stream_origin}"
    return "; ".join(f"{name} {sources}" for name, sources in directives.items())


def _add_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = content_security_policy(
        g.get("csp_nonce"), stream_origin()
    )
    for name, value in FIXED_HEADERS.items():
        response.headers.setdefault(name, value)  # a view's stricter choice stays
    if current_app.config["SETTINGS"].is_production:
        response.headers["Strict-Transport-Security"] = HSTS
    return response


def init_app(app: Flask) -> None:
    """Send the headers on every response and give templates ``csp_nonce()``."""
    app.after_request(_add_headers)
    app.add_template_global(csp_nonce)
