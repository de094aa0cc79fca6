"""Device endpoints of docs/protocol.md section 3 (``/api/v1/verify/...``).

A device authenticates with ``Authorization: Bearer <device_id>.<secret>`` and acts
only for its own access point, taken from the credential, never from the body: the
request's ``Door`` (device, access point, community, read once, on ``g.door``). The views
parse and bound the input and hand it to the credential's side in ``server.access``
(``card``, ``face``, ``qr``, ``plate``); they hold no SQL. Every well-formed request
answers 200 with a decision (the ``Verdict``'s body), denials included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import marshmallow as ma
from flask import g, request
from flask_babel import lazy_gettext as _l
from marshmallow import fields, validate
from werkzeug.exceptions import BadRequest

from gatekeeper import faces, passtokens, qrcodes
from server.access import card, face, pin, plate, qr
from server.access.decision import DoorReader
from server.api import multipart_body, public_blueprint, require_body
from server.api.schemas import HEX_8_TO_32
from server.core import metrics, ratelimits
from server.core.auth import authenticate_device
from server.core.errors import Forbidden, Invalid
from server.extensions import db
from server.people.faces import image_problem

T = TypeVar("T")

blp = public_blueprint(
    "verify", "Device verification (docs/protocol.md section 3)", json_only=False
)


class CardRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # the protocol: unknown fields are ignored

    uid = fields.Str(
        required=True,
        validate=validate.Regexp(r"^[0-9A-Fa-f]{8,32}$", error=HEX_8_TO_32),
    )


class DecisionSchema(ma.Schema):
    decision = fields.Str(metadata={"description": "grant or deny"})
    reason = fields.Str(metadata={"description": "stable reason code (docs/policy.md)"})
    event_id = fields.Str()
    subject = fields.Dict(metadata={"description": "kind and masked display_name"})
    open_ms = fields.Int()
    liveness = fields.Dict()
    parking = fields.Dict(
        metadata={"description": "temporary cars: ticket_id, entered_at, duration_s, fee_fen"}
    )


# The body each endpoint reads (docs/protocol.md section 3).
_BODIES = {
    "verify.verify_card": ("application/json",),
    "verify.verify_face": ("multipart/form-data",),
    "verify.verify_qr": ("application/json", "multipart/form-data"),
    "verify.verify_plate": ("application/json", "multipart/form-data"),
    "verify.verify_pin": ("application/json",),
}


@blp.before_request
def _authenticate_device() -> None:
    """Who is calling and what they send, before any body is parsed (401/403, then 415);
    then the caller's ``Door`` on ``g.door``, for the view."""
    # The device, its access point and community: one statement.
    reader = DoorReader(face=request.endpoint == "verify.verify_face")
    device = authenticate_device(request.headers.get("Authorization"), find=reader.device)
    if device.access_point_id is None:
        raise Forbidden(_l("This device serves no access point: it cannot verify credentials."))
    if request.endpoint in _BODIES:
        require_body(*_BODIES[request.endpoint])
    g.door = reader.door()


@blp.post("/verify/card")
@blp.arguments(CardRequestSchema)
@blp.response(200, DecisionSchema)
@blp.doc(security=[{"deviceAuth": []}])
@metrics.timed_verify("card")
def verify_card(data: dict[str, Any]) -> Any:
    """An IC card presented at the device's door; an ``open`` command follows a grant."""
    verdict = card.verify(g.door, data["uid"])
    db.session.commit()  # the open command is published after this
    return verdict.body


class FaceFormSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    direction = fields.Str(validate=validate.OneOf(["in", "out"]))


class FaceFilesSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    image = fields.Raw(
        required=True,
        metadata={"type": "string", "format": "binary", "description": "JPEG or PNG, colour"},
    )
    depth = fields.Raw(
        metadata={
            "type": "string",
            "format": "binary",
            "description": "16-bit PNG, millimetres, 0 = no reading",
        }
    )


def _upload(name: str) -> bytes | None:
    upload = request.files.get(name)
    return upload.read() if upload is not None else None


def _read_frame(read: Callable[[bytes], T]) -> T:
    """The required camera frame ``image``, read by ``read``; missing or unusable is a 4xx."""
    image_bytes = _upload("image")
    if image_bytes is None:
        raise Invalid(_l("Upload the frame as 'image'."), errors={"image": [_l("Missing file.")]})
    try:
        return read(image_bytes)
    except faces.ImageError as error:
        raise image_problem(error, "image") from error


@blp.post("/verify/face")
@blp.arguments(FaceFormSchema, location="form")
@blp.arguments(FaceFilesSchema, location="files")
@blp.response(200, DecisionSchema)
@blp.doc(
    security=[{"deviceAuth": []}],
    requestBody=multipart_body("FaceVerify", FaceFormSchema, FaceFilesSchema),
)
@metrics.timed_verify("face")
def verify_face(form: dict[str, Any], _files: dict[str, Any]) -> Any:
    """A face at the device's door (multipart ``image``, optional ``depth`` and ``direction``).

    The answer carries ``liveness``; an ``open`` command follows a grant.
    """
    image = _read_frame(faces.load_image)
    verdict = face.verify(g.door, image, _upload("depth"), form.get("direction"))
    db.session.commit()
    return verdict.body


class QrTokenSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    token = fields.Str(
        required=True,
        validate=validate.Length(min=1, max=passtokens.MAX_TOKEN_CHARS),
        metadata={"description": "the text of the QR code, as the terminal decoded it"},
    )
    direction = fields.Str(validate=validate.OneOf(["in", "out"]))


_QR_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": QrTokenSchema},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {
                    "image": {
                        "type": "string",
                        "format": "binary",
                        "description": "a camera frame (JPEG or PNG) holding the code",
                    },
                    "direction": {"type": "string", "enum": ["in", "out"]},
                },
            }
        },
    },
}


@blp.post("/verify/qr")
@blp.response(200, DecisionSchema)
@blp.doc(security=[{"deviceAuth": []}], requestBody=_QR_BODY)
@metrics.timed_verify("qr")
def verify_qr() -> Any:
    """A QR code at the device's door: a visitor pass or a resident's rotating code.

    JSON ``{"token": ...}`` when the terminal decoded the code itself, or a multipart
    camera frame ``image`` (several codes in a frame: the one that verifies is used). A
    frame without a readable code is a ``pass_invalid`` denial with a detail.
    """
    if request.mimetype == "application/json":
        data = _load(QrTokenSchema(), _json_body())
        verdict = qr.verify(g.door, [data["token"]], direction=data.get("direction"))
    else:
        form = _load(FaceFormSchema(), request.form.to_dict())
        texts = _read_frame(qrcodes.decode_frame)
        verdict = qr.verify(g.door, texts, direction=form.get("direction"), source="frame")
    db.session.commit()
    return verdict.body


def _json_body() -> Any:
    try:
        return request.get_json()
    except RecursionError as error:  # werkzeug turns ValueError into 400 itself
        raise BadRequest(_l("The JSON body nests too deeply.")) from error


def _load(schema: ma.Schema, payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise Invalid(_l("The body must be a JSON object."))
    try:
        return schema.load(payload)
    except ma.ValidationError as error:
        raise Invalid(_l("The request has invalid fields."), errors=error.messages) from error


class PlateRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    plate = fields.Str(
        required=True,
        validate=validate.Length(max=2000),
        metadata={"description": "as the camera read it; normalised and checked (GA 36-2018)"},
    )
    confidence = fields.Float(validate=validate.Range(min=0.0, max=1.0), allow_none=True)
    color = fields.Str(validate=validate.Length(max=16), allow_none=True)
    direction = fields.Str(validate=validate.OneOf(["in", "out"]), allow_none=True)


_PLATE_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": PlateRequestSchema},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["plate"],
                "properties": {
                    "plate": {"type": "string"},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "color": {"type": "string"},
                    "direction": {"type": "string", "enum": ["in", "out"]},
                    "snapshot": {
                        "type": "string",
                        "format": "binary",
                        "description": "the camera's picture (JPEG), kept with denials",
                    },
                },
            }
        },
    },
}


@blp.post("/verify/plate")
@blp.response(200, DecisionSchema)
@blp.doc(security=[{"deviceAuth": []}], requestBody=_PLATE_BODY)
@metrics.timed_verify("plate")
def verify_plate() -> Any:
    """A plate read by the device's barrier camera; ``open`` follows a grant.

    JSON, or multipart with the same fields and a ``snapshot`` image. A string that is not a
    plate answers 422 with the ``reason`` (``docs/plates.md``).
    """
    if request.mimetype == "application/json":
        data = _load(PlateRequestSchema(), _json_body())
        snapshot = None
    else:
        data = _load(PlateRequestSchema(), request.form.to_dict())
        snapshot = _upload("snapshot")
        if snapshot is not None:
            try:
                faces.check_image(snapshot)  # a picture within the limits; stored, not decoded
            except faces.ImageError as error:
                raise image_problem(error, "snapshot") from error
    read = plate.PlateRead(
        plate=data["plate"],
        confidence=data.get("confidence"),
        color=data.get("color"),
        direction=data.get("direction"),
        snapshot=snapshot,
    )
    verdict = plate.verify(g.door, read)
    db.session.commit()
    return verdict.body


class PinRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    pin = fields.Str(
        required=True,
        validate=validate.Regexp(r"^[0-9]{6}$", error=_l("Six digits.")),
        metadata={"description": "the six digits typed on the keypad", "example": "042917"},
    )


@blp.post("/verify/pin")
@blp.arguments(PinRequestSchema)
@blp.response(200, DecisionSchema)
@blp.doc(security=[{"deviceAuth": []}])
@metrics.timed_verify("pin")
def verify_pin(data: dict[str, Any]) -> Any:
    """A one-time courier code typed on the keypad of the device's door (rate-limited per
    device); ``open`` follows a grant. Wrong codes lock the keypad for a while
    (``keypad_locked``, docs/protocol.md)."""
    if not g.door.point.has_keypad:
        raise Forbidden(_l("This device's access point has no keypad."))
    ratelimits.spend_pin_entry()
    verdict = pin.verify(g.door, data["pin"])
    db.session.commit()
    return verdict.body
