"""The JSON API under ``/api/v1``, documented by OpenAPI at ``/api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

import swagger_ui_bundle
from flask import Flask, g, request, send_from_directory
from flask_smorest import Api, Blueprint
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import UnsupportedMediaType

from server.api.schemas import ProblemSchema
from server.core import bodies
from server.core.auth import authenticate_api_request
from server.core.scope import Scope
from server.extensions import csrf

API_PREFIX = "/api/v1"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class GatekeeperApi(Api):
    """flask-smorest's Api; errors are left to ``server.core.problems`` (RFC 9457)."""

    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self) -> None:
        """``server.core.problems`` registers the handlers for the whole app."""


api = GatekeeperApi(
    spec_kwargs={
        "info": {
            "description": "Management API of the Gatekeeper access-control server. "
            "Device endpoints follow docs/protocol.md."
        },
    }
)


def scope() -> Scope:
    """The caller's scope, built once per request."""
    if "scope" not in g:
        g.scope = Scope(g.principal)
    return g.scope


class _JsonParser(FlaskParser):
    """webargs' parser; a body that Python's ``json`` cannot load answers 400, not 500, and
    one with a lone surrogate 422 (``server.core.bodies``).

    ``json.loads`` raises ``RecursionError`` on deeply nested arrays and ``ValueError`` on
    integers longer than ``sys.get_int_max_str_digits()``; webargs catches neither.
    """

    def load_json(self, req: Any, schema: Any) -> Any:
        try:
            data = super().load_json(req, schema)
        except (ValueError, RecursionError) as error:
            return self._handle_invalid_json_error(error, req)  # type: ignore[arg-type]
        return bodies.checked(data)  # 422 for text that cannot be stored


class _Blueprint(Blueprint):
    ARGUMENTS_PARSER = _JsonParser()


def public_blueprint(name: str, description: str, *, json_only: bool = True) -> Blueprint:
    """A blueprint of routes open without signing in (JSON bodies unless told otherwise)."""
    blueprint = _Blueprint(name, __name__, url_prefix=API_PREFIX, description=description)
    if json_only:
        blueprint.before_request(_require_json_body)
    return blueprint


def require_body(*mimetypes: str) -> None:
    """415 unless the request body has one of ``mimetypes`` (for mixed blueprints)."""
    if request.mimetype not in mimetypes:
        raise UnsupportedMediaType(f"Send the body as {' or '.join(mimetypes)}.")


def authenticated_blueprint(name: str, description: str, *, uploads: bool = False) -> Blueprint:
    """A blueprint whose every route needs a signed-in user (token or session).

    Bodies are JSON, or ``multipart/form-data`` for a blueprint of ``uploads``.
    """
    blueprint = _Blueprint(name, __name__, url_prefix=API_PREFIX, description=description)
    blueprint.before_request(_require_user)
    blueprint.before_request(_require_multipart_body if uploads else _require_json_body)
    return blueprint


def _require_user() -> None:
    authenticate_api_request()  # a before_request hook must return None to go on


def _require_json_body() -> None:
    if request.method in _BODY_METHODS and request.content_length and not request.is_json:
        raise UnsupportedMediaType("Send the body as application/json.")


def _require_multipart_body() -> None:
    if request.method in _BODY_METHODS and request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType("Send the files as multipart/form-data.")


def init_app(app: Flask) -> None:
    from server.api import (
        accounts,
        alerts,
        auth,
        commands,
        devices,
        events,
        faces,
        passes,
        patrols,
        people,
        strangers,
        structure,
        vehicles,
        verify,
        watchlist,
    )

    api.init_app(app)
    api.spec.components.security_scheme(
        "bearerAuth",
        {"type": "http", "scheme": "bearer", "description": "Token from POST /api/v1/auth/token"},
    )
    api.spec.components.security_scheme(
        "deviceAuth",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "Devices: <device_id>.<secret> (docs/protocol.md section 2)",
        },
    )
    api.spec.options["security"] = [{"bearerAuth": []}]
    for module in (
        auth,
        verify,
        structure,
        devices,
        commands,
        people,
        faces,
        accounts,
        passes,
        events,
        vehicles,
        strangers,
        watchlist,
        patrols,
        alerts,
    ):
        csrf.exempt(module.blp)  # session callers are CSRF-checked in authenticate_api_request
        api.register_blueprint(module.blp)
    _serve_docs_assets(app)


def _serve_docs_assets(app: Flask) -> None:
    """Swagger UI's files from the installed package: the docs page needs no CDN."""

    @app.get(f"{API_PREFIX}/docs/assets/<path:filename>")
    def docs_assets(filename: str) -> Any:
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)
