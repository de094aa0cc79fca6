"""The watchlist: wanted and missing persons (officers of the community only; multipart)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request
from flask_babel import lazy_gettext as _l
from marshmallow import fields, validate

from server.alerts import watchlist
from server.api import authenticated_blueprint, multipart_body, scope
from server.core.errors import Invalid
from server.extensions import db
from server.models import WatchlistEntry

blp = authenticated_blueprint(
    "watchlist", "Wanted and missing persons checked at every face capture", uploads=True
)

_TRUE, _FALSE = {"true", "1"}, {"false", "0"}


class WatchlistFormSchema(ma.Schema):
    name = fields.Str(required=True, validate=validate.Length(min=1, max=80))
    category = fields.Str(required=True, validate=validate.OneOf(watchlist.CATEGORIES))
    note = fields.Str(validate=validate.Length(max=500))
    door_opens = fields.Boolean(
        load_default=True,
        truthy=_TRUE,
        falsy=_FALSE,
        metadata={"description": "false: the door denies with reason watchlist"},
    )


class WatchlistFilesSchema(ma.Schema):
    image = fields.Raw(
        required=True,
        metadata={
            "type": "string",
            "format": "binary",
            "description": "a photo of the face, held to the enrolment checks",
        },
    )


class WatchlistEntrySchema(ma.Schema):
    id = fields.Str()
    community_id = fields.Str()
    name = fields.Str()
    category = fields.Str()
    note = fields.Str(allow_none=True)
    door_opens = fields.Bool()
    created_by_user_id = fields.Str(allow_none=True)
    created_at = fields.AwareDateTime()


@blp.post("/communities/<cid>/watchlist")
@blp.arguments(WatchlistFormSchema, location="form")
@blp.arguments(WatchlistFilesSchema, location="files")
@blp.doc(requestBody=multipart_body("WatchlistUpload", WatchlistFormSchema, WatchlistFilesSchema))
@blp.response(201, WatchlistEntrySchema)
def enrol(form: dict[str, Any], _files: dict[str, Any], cid: str) -> WatchlistEntry:
    """Enrol a face: exactly one face, big and sharp enough, else 422 with ``reason``
    (``no_face``, ``multiple_faces``, ``face_too_small``, ``too_blurry``) and nothing
    stored. Officers of the community only (others: 404)."""
    upload = request.files.get("image")
    if upload is None:
        raise Invalid(_l("Upload the photo as 'image'."), errors={"image": [_l("Missing file.")]})
    entry = watchlist.enrol(scope(), cid, upload.read(), **form)
    db.session.commit()
    return entry


@blp.get("/communities/<cid>/watchlist")
@blp.response(200, WatchlistEntrySchema(many=True))
def list_entries(cid: str) -> list[WatchlistEntry]:
    """The community's watchlist, newest first (templates never leave the server)."""
    return watchlist.entries(scope(), cid)


@blp.delete("/watchlist/<entry_id>")
@blp.response(204)
def delete_entry(entry_id: str) -> None:
    """Remove an entry and its face; the alerts it raised stay."""
    watchlist.remove(scope(), entry_id)
    db.session.commit()
