"""The door intercom's endpoints (docs/protocol.md, "The door intercom").

Doors (device credentials, like ``server.api.verify``) place a call and read what became of
it: ``POST /intercom/calls`` and ``GET /intercom/calls/{id}`` (only the calling device's
calls). Residents and staff answer: ``POST /intercom/calls/{id}/answer`` (a resident their
own unit's calls, staff their community's; anyone else 404). The rules are
``server.access.intercom``'s.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import marshmallow as ma
from flask import g, request
from flask_babel import lazy_gettext as _l
from marshmallow import fields, validate

from gatekeeper import faces
from server.access import intercom
from server.access.decision import Door
from server.api import authenticated_blueprint, public_blueprint, scope
from server.core.auth import authenticate_device
from server.core.errors import Forbidden, Invalid
from server.extensions import db
from server.people.faces import image_problem

blp = public_blueprint("intercom", "Door intercom calls (docs/protocol.md)")
answers = authenticated_blueprint("intercom_answers", "Answering door intercom calls")

# The text of a snapshot is bounded loosely (twice the bytes): a picture over the limit is
# answered 413 by the image check, with its ``reason``, rather than as a long string.
_MAX_SNAPSHOT_CHARS = 2 * intercom.MAX_SNAPSHOT_BYTES


@blp.before_request
def _authenticate_device() -> None:
    """The calling door (401/403 before the body is read), on ``g.door``."""
    device = authenticate_device(request.headers.get("Authorization"))
    if device.access_point_id is None:
        raise Forbidden(_l("This device serves no access point: it cannot place calls."))
    g.door = Door.of(device)


class CallRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # the protocol: unknown fields are ignored

    unit = fields.Str(
        required=True,
        validate=validate.Length(min=1, max=40),
        metadata={"description": "the unit's number, as the visitor keyed it"},
    )
    building = fields.Str(
        validate=validate.Length(min=1, max=80),
        metadata={"description": "the building's name; required at a door of no building"},
    )
    snapshot = fields.Str(
        validate=validate.Length(max=_MAX_SNAPSHOT_CHARS),
        metadata={"description": "base64 of a JPEG of the visitor, at most 256 KiB"},
    )


class CallSchema(ma.Schema):
    id = fields.Str()
    status = fields.Str(
        metadata={"description": "ringing, rolled_over, answered, refused or timed_out"}
    )
    created_at = fields.Str()
    ring_until = fields.Str()
    guard_until = fields.Str()
    ended_at = fields.Str()
    event_id = fields.Str(metadata={"description": "the access event of the outcome"})
    decision = fields.Str()
    reason = fields.Str()


def _snapshot(text: str | None) -> bytes | None:
    if not text:
        return None
    try:
        data = base64.b64decode(text.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError) as error:
        raise Invalid(
            _l("The request has invalid fields."),
            errors={"snapshot": [_l("Not base64.")]},
        ) from error
    try:
        return intercom.check_snapshot(data)
    except faces.ImageError as error:
        raise image_problem(error, "snapshot") from error


@blp.post("/intercom/calls")
@blp.arguments(CallRequestSchema)
@blp.response(201, CallSchema)
@blp.doc(security=[{"deviceAuth": []}])
def place_call(data: dict[str, Any]) -> Any:
    """A visitor at the device's door calls a unit: the unit's phones ring.

    ``unit`` is the unit's number; ``building`` names its building at a gate (a building's
    door implies its own). Poll the answer with ``GET /intercom/calls/{id}``; an ``open``
    command comes over MQTT when someone opens.
    """
    snapshot = _snapshot(data.get("snapshot"))
    call = intercom.place_call(g.door, data["unit"], data.get("building"), snapshot)
    db.session.commit()
    return intercom.door_body(call)


@blp.get("/intercom/calls/<call_id>")
@blp.response(200, CallSchema)
@blp.doc(security=[{"deviceAuth": []}])
def get_call(call_id: str) -> Any:
    """What became of a call this device placed (another device's: 404)."""
    call = intercom.device_call(g.door.device, call_id)
    intercom.settle(call)
    db.session.commit()
    return intercom.door_body(call)


class AnswerSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    action = fields.Str(
        required=True,
        validate=validate.OneOf(["open", "refuse"]),
        metadata={"description": "open the door for the visitor, or refuse"},
    )


class AnswerResultSchema(ma.Schema):
    id = fields.Str()
    status = fields.Str()
    opened = fields.Bool(metadata={"description": "whether the door was sent open"})
    event_id = fields.Str()
    reason = fields.Str()


@answers.post("/intercom/calls/<call_id>/answer")
@answers.arguments(AnswerSchema)
@answers.response(200, AnswerResultSchema)
def answer_call(data: dict[str, Any], call_id: str) -> Any:
    """Answer a call ringing for the caller's unit (staff: at their community's doors).

    The first answer wins; a later one, or one after the call ended, answers 409.
    """
    result = intercom.answer(scope(), call_id, open_door=data["action"] == "open")
    db.session.commit()
    return {
        "id": result.call.id,
        "status": result.call.status.value,
        "opened": result.opened,
        "event_id": result.verdict.event.id,
        "reason": result.verdict.decision.reason.value,
    }
