"""The offline allowlist of a device (docs/protocol.md section 6, "Allowlists").

``GET /api/v1/devices/me/allowlist``: the device's current full list (``ETag`` its version;
``?since=N`` answers ``304`` when ``N`` is current). ``PUT /api/v1/devices/me/allowlist-key``:
a face terminal registers the X25519 key its lists' faces are encrypted to (``204``); its
full list is published again. Device authentication as for ``/verify`` (section 2); a
device that serves no access point has no list (``403``).
"""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from flask import Response, g, request
from flask_babel import lazy_gettext as _l
from marshmallow import fields, validate

from gatekeeper.allowlist import AllowlistError, unb64
from server.access import allowlists
from server.api import public_blueprint
from server.core.auth import authenticate_device
from server.core.errors import Forbidden, Invalid
from server.extensions import db

blp = public_blueprint("allowlists", "Offline allowlists of devices (docs/protocol.md section 6)")

KEY_BYTES = 32


@blp.before_request
def _authenticate_device() -> None:
    device = authenticate_device(request.headers.get("Authorization"))
    if device.access_point_id is None:
        raise Forbidden(_l("This device serves no access point: it has no allowlist."))
    g.device = device


class SinceSchema(ma.Schema):
    since = fields.Int(
        validate=validate.Range(min=0),
        metadata={"description": "the version the device holds: 304 when it is current"},
    )


class AllowlistSchema(ma.Schema):
    """The signed full list, the same JSON as the retained message."""

    class Meta:
        ordered = True

    v = fields.Int()
    kind = fields.Str()
    community_id = fields.Str()
    access_point_id = fields.Str()
    device_id = fields.Str()
    version = fields.Int()
    issued_at = fields.Str()
    timezone = fields.Str()
    schedule = fields.Raw(allow_none=True)
    open_ms = fields.Int()
    closures = fields.Raw()
    mode = fields.Raw(allow_none=True)
    enc = fields.Raw(allow_none=True)
    entries = fields.Raw()
    kid = fields.Int()
    sig = fields.Str()


class AllowlistKeySchema(ma.Schema):
    public_key = fields.Str(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "the raw 32-byte X25519 public key, base64url, no padding"},
    )


@blp.get("/devices/me/allowlist")
@blp.arguments(SinceSchema, location="query")
@blp.response(200, AllowlistSchema)
@blp.alt_response(304, description="Not modified: `since` is the current version")
@blp.doc(security=[{"deviceAuth": []}])
def get_allowlist(query: dict[str, Any]) -> Any:
    """The device's current full allowlist, signed; its ``ETag`` is the list's version."""
    device = g.device
    version = allowlists.current_version(device)
    if version is not None and query.get("since") == version:
        answer = Response(status=304)
        answer.set_etag(str(version))
        return answer
    body = allowlists.current_list(device)
    db.session.commit()  # a list built just now is kept (and published)
    answer = Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        mimetype="application/json",
    )
    answer.set_etag(str(body["version"]))
    answer.headers["Cache-Control"] = "no-store"
    return answer


@blp.put("/devices/me/allowlist-key")
@blp.arguments(AllowlistKeySchema)
@blp.response(204)
@blp.doc(security=[{"deviceAuth": []}])
def put_allowlist_key(data: dict[str, Any]) -> None:
    """Register the X25519 public key the faces of this device's lists are encrypted to; a
    new key replaces the old one and the full list is published again."""
    try:
        raw = unb64(data["public_key"])
    except AllowlistError:
        raw = b""
    if len(raw) != KEY_BYTES:
        message = _l("The key is 32 bytes in base64url without padding.")
        raise Invalid(message, {"public_key": [str(message)]})
    device = g.device
    allowlists.ensure_signing_key()
    device.allowlist_public_key = raw
    db.session.flush()
    allowlists.republish(device)
    db.session.commit()
