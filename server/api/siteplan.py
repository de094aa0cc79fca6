"""The community's site plan: upload (multipart ``image``), read, remove.

Where access points and devices are on it is their ``plan_x``/``plan_y`` (the structure and
devices endpoints); ``server.community.siteplan`` holds the rules.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, request
from flask_babel import lazy_gettext as _l
from marshmallow import fields

from server.api import authenticated_blueprint, scope
from server.community import siteplan
from server.core.errors import Invalid
from server.extensions import db

blp = authenticated_blueprint("siteplan", "The community's site plan", uploads=True)


class SitePlanUploadSchema(ma.Schema):
    image = fields.Raw(
        required=True,
        metadata={"type": "string", "format": "binary", "description": "PNG or JPEG"},
    )


class SitePlanSchema(ma.Schema):
    community_id = fields.Str()
    content_type = fields.Str(metadata={"description": "image/png or image/jpeg"})
    width = fields.Int()
    height = fields.Int()
    sha256 = fields.Str(metadata={"description": "of the picture; the ETag of its GET"})
    updated_at = fields.AwareDateTime()


def _image() -> bytes:
    upload = request.files.get("image")
    if upload is None:
        raise Invalid(
            _l("Upload the %(name)s file.", name="image"), errors={"image": [_l("Missing file.")]}
        )
    return upload.read(siteplan.MAX_BYTES + 1)


@blp.put("/communities/<cid>/site-plan")
@blp.arguments(SitePlanUploadSchema, location="files")
@blp.response(200, SitePlanSchema)
def upload_site_plan(_files: dict[str, Any], cid: str) -> Any:
    """Upload or replace the community's site plan: a PNG or JPEG picture of at most 5 MB and
    8000 pixels a side (413 beyond), at least 16 pixels a side; anything else answers 422
    with ``reason``. Staff and admins of the community; audited. Access points and devices
    keep their positions (fractions of the picture)."""
    plan = siteplan.store(scope(), cid, _image())
    db.session.commit()
    return plan


@blp.get("/communities/<cid>/site-plan")
@blp.response(200, content_type="image/png")
@blp.alt_response(304, description="Not modified (If-None-Match named its ETag)")
def get_site_plan(cid: str) -> Response:
    """The picture (``image/png`` or ``image/jpeg``), its ETag the SHA-256 of its bytes.
    Officers, staff and admins of the community; 404 when it has none."""
    plan = siteplan.readable(scope(), cid)
    answer = Response(plan.image, mimetype=plan.content_type)
    answer.set_etag(plan.sha256)
    answer.headers["Cache-Control"] = "private, no-cache"
    return answer.make_conditional(request)


@blp.delete("/communities/<cid>/site-plan")
@blp.response(204)
def delete_site_plan(cid: str) -> None:
    """Remove the site plan (the positions stay for the next one); audited."""
    siteplan.remove(scope(), cid)
    db.session.commit()
