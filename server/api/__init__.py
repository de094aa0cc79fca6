"""The JSON API under ``/api/v1``, documented by OpenAPI at ``/api/v1/openapi.json``."""

from __future__ import annotations

import json
from copy import deepcopy
from http import HTTPStatus
from typing import Any

import marshmallow as ma
import swagger_ui_bundle
from apispec import BasePlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from flask import Flask, g, request, send_from_directory
from flask_babel import lazy_gettext as _l
from flask_smorest import Api, Blueprint
from flask_smorest.utils import prepare_response
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import UnsupportedMediaType

from server.api.pagination import pagination_metadata
from server.api.schemas import ProblemSchema
from server.core import bodies
from server.core.auth import authenticate_api_request
from server.core.problems import PROBLEM_MEDIA_TYPE
from server.core.scope import Scope
from server.extensions import csrf

API_PREFIX = "/api/v1"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

# flask-smorest sends its pagination metadata as JSON text in one header: a string on the wire.
PAGINATION_HEADER = {
    "description": "Pagination metadata, as JSON text: `total`, `total_pages`, `first_page`, "
    "`last_page` and `page`, with `previous_page` and `next_page` when there is one. `total` "
    "is counted up to 1,000 rows past the page: beyond, `total_capped` is true, `total` a "
    "lower bound, and there is no `last_page` nor `total_pages`. Lists that take `after` "
    "(alerts, events) add `next_after`, the cursor of the next page, while more rows follow; "
    "a page asked for with `after` has only `page_size` and `next_after`.",
    "schema": {"type": "string"},
    "example": '{"total": 25, "total_pages": 3, "first_page": 1, "last_page": 3, "page": 2, '
    '"previous_page": 1, "next_page": 3}',
}


class SchemaRules(BasePlugin):
    """Rules of a whole body that its fields cannot state (``minProperties``, ...): a schema
    class's ``OPENAPI`` mapping joins its component in the document."""

    def schema_helper(self, name: str, definition: dict, **kwargs: Any) -> dict | None:
        schema = kwargs.get("schema")
        if schema is None:
            return None
        return deepcopy(getattr(resolve_schema_cls(schema), "OPENAPI", None))


def multipart_body(name: str, *parts: type[ma.Schema]) -> dict[str, Any]:
    """The request body of an upload read as form fields and as files, one ``@blp.arguments``
    schema each: flask-smorest documents only one of them, this documents all their fields
    (give it to ``@blp.doc(requestBody=...)``)."""
    whole = type(f"{name}Schema", parts, {"__doc__": f"The multipart body: {name}."})
    return {"required": True, "content": {"multipart/form-data": {"schema": whole}}}


class GatekeeperApi(Api):
    """flask-smorest's Api; errors are left to ``server.core.problems`` (RFC 9457)."""

    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self) -> None:
        """``server.core.problems`` registers the handlers for the whole app."""

    def _register_responses(self) -> None:
        """flask-smorest's response components (one per HTTP status, and ``DEFAULT_ERROR``),
        documented as what ``server.core.problems`` sends: ``application/problem+json``."""
        for status in HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 200 and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MEDIA_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        default = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(default, self.spec, PROBLEM_MEDIA_TYPE)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, default, lazy=True)

    def _register_pagination_header(self) -> None:
        """The ``X-Pagination`` header component, as it is sent: JSON text."""
        self.spec.components.header("PAGINATION", PAGINATION_HEADER, lazy=True)


api = GatekeeperApi(
    spec_kwargs={
        "extra_plugins": [SchemaRules()],
        "info": {
            "description": "Management API of the Gatekeeper access-control server. "
            "Device endpoints follow docs/protocol.md. Text anywhere in a request (body, "
            "query, form field) must be valid Unicode without NUL characters: a lone UTF-16 "
            "surrogate or a NUL is refused with a 422 naming the field, and a path segment "
            "holding a NUL names no resource (404)."
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

    def _set_pagination_metadata(self, page_params: Any, result: Any, headers: Any) -> Any:
        """``X-Pagination`` with a bounded total and keyset cursors (``server.api.pagination``)."""
        headers = {} if headers is None else headers
        headers[self.PAGINATION_HEADER_NAME] = json.dumps(pagination_metadata(page_params))
        return result, headers


def public_blueprint(name: str, description: str, *, json_only: bool = True) -> Blueprint:
    """A blueprint of routes open without signing in (JSON bodies unless told otherwise)."""
    blueprint = _Blueprint(name, __name__, url_prefix=API_PREFIX, description=description)
    if json_only:
        blueprint.before_request(_require_json_body)
    return blueprint


def require_body(*mimetypes: str) -> None:
    """415 unless the request body has one of ``mimetypes`` (for mixed blueprints)."""
    if request.mimetype not in mimetypes:
        raise UnsupportedMediaType(_send_the_body_as(*mimetypes))


def _send_the_body_as(*mimetypes: str) -> Any:
    if len(mimetypes) == 1:
        return _l("Send the body as %(media_type)s.", media_type=mimetypes[0])
    return _l(
        "Send the body as %(media_types)s or %(last)s.",
        media_types=", ".join(mimetypes[:-1]),
        last=mimetypes[-1],
    )


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
        raise UnsupportedMediaType(_send_the_body_as("application/json"))


def _require_multipart_body() -> None:
    if request.method in _BODY_METHODS and request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(_l("Send the files as multipart/form-data."))


def init_app(app: Flask) -> None:
    from server.api import (
        accounts,
        alerts,
        allowlists,
        antipassback,
        auth,
        commands,
        couriers,
        devices,
        dispatch,
        doormodes,
        events,
        faces,
        holidays,
        intercom,
        notifications,
        parking,
        passes,
        patrols,
        people,
        privacy,
        siteplan,
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
        holidays,
        antipassback,
        couriers,
        notifications,
        doormodes,
        parking,
        privacy,
        dispatch,
        siteplan,
        allowlists,
    ):
        csrf.exempt(module.blp)  # session callers are CSRF-checked in authenticate_api_request
        api.register_blueprint(module.blp)
    from server.api import needtoknow  # need to know: identities behind alerts, audit log

    csrf.exempt(needtoknow.blp)
    api.register_blueprint(needtoknow.blp)
    for blueprint in (intercom.blp, intercom.answers):  # the door intercom: doors, answers
        csrf.exempt(blueprint)
        api.register_blueprint(blueprint)
    _serve_docs_assets(app)


def _serve_docs_assets(app: Flask) -> None:
    """Swagger UI's files from the installed package: the docs page needs no CDN."""

    @app.get(f"{API_PREFIX}/docs/assets/<path:filename>")
    def docs_assets(filename: str) -> Any:
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)
