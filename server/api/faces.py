"""Face photos and the person-ID match (multipart uploads)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request
from flask_babel import lazy_gettext as _l
from marshmallow import fields
from sqlalchemy import select

from server.api import authenticated_blueprint, scope
from server.core.errors import Invalid
from server.extensions import db
from server.models import FaceTemplate, Person
from server.people import faces

blp = authenticated_blueprint("faces", "Face enrolment and person-ID match", uploads=True)

_FILE = {"type": "string", "format": "binary"}


class FaceUploadSchema(ma.Schema):
    image = fields.Raw(required=True, metadata=_FILE)


class IdCheckUploadSchema(ma.Schema):
    id_photo = fields.Raw(required=True, metadata={**_FILE, "description": "from the card's chip"})
    live_photo = fields.Raw(required=True, metadata=_FILE)


class FaceSchema(ma.Schema):
    id = fields.Str()
    person_id = fields.Str()
    model = fields.Str()
    quality = fields.Dict(metadata={"description": "face size, eye distance, sharpness"})
    photo_kept = fields.Method("_photo_kept")
    created_at = fields.AwareDateTime()

    def _photo_kept(self, row: FaceTemplate) -> bool:
        return row.photo_encrypted is not None


class IdCheckSchema(ma.Schema):
    id = fields.Str()
    person_id = fields.Str()
    match = fields.Bool()
    distance = fields.Float(allow_none=True)
    tolerance = fields.Float()
    reason = fields.Str(allow_none=True, metadata={"description": "photo:reason when unusable"})
    checked_at = fields.AwareDateTime()
    person_status = fields.Str()


def _file(name: str) -> bytes:
    upload = request.files.get(name)
    if upload is None:
        raise Invalid(
            _l("Upload the %(name)s file.", name=name), errors={name: [_l("Missing file.")]}
        )
    return upload.read()


@blp.post("/people/<pid>/faces")
@blp.arguments(FaceUploadSchema, location="files")
@blp.response(201, FaceSchema)
def enrol_face(_files: dict[str, Any], pid: str) -> Any:
    """An enrolment photo: one face, big and sharp enough, else 422 with ``reason``
    (``no_face``, ``multiple_faces``, ``face_too_small``, ``too_blurry``) and nothing stored.
    Needs the person's recorded consent to face recognition."""
    template = faces.enrol_face(scope(), pid, _file("image"))
    db.session.commit()
    return template


@blp.get("/people/<pid>/faces")
@blp.response(200, FaceSchema(many=True))
def list_faces(pid: str) -> Any:
    """A person's enrolled faces (quality only; templates never leave the server)."""
    person = scope().get(Person, pid)
    return db.session.scalars(select(FaceTemplate).where(FaceTemplate.person_id == person.id))


@blp.delete("/faces/<fid>")
@blp.response(204)
def delete_face(fid: str) -> None:
    faces.delete_face(scope(), fid)
    db.session.commit()


@blp.post("/people/<pid>/id-check")
@blp.arguments(IdCheckUploadSchema, location="files")
@blp.response(200, IdCheckSchema)
def id_check(_files: dict[str, Any], pid: str) -> Any:
    """Person-ID match: the ID card's chip photo against a live photo; recorded."""
    check = faces.id_check(scope(), pid, _file("id_photo"), _file("live_photo"))
    db.session.commit()
    return {
        **{
            c: getattr(check, c)
            for c in ("id", "person_id", "match", "distance", "tolerance", "reason", "checked_at")
        },
        "person_status": db.session.get(Person, pid).status.value,
    }
