"""Device endpoints of PROTOCOL.md section 2 (``/api/v1/verify/...``).

A device authenticates with ``Authorization: Bearer <device_id>.<secret>`` and acts
only for its own access point, taken from the credential, never from the body.
Every well-formed request answers 200 with a decision, denials included.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate
from sqlalchemy import select

from gatekeeper import policy
from gatekeeper.vocabulary import CredentialType, Reason
from server.api import public_blueprint
from server.auth import authenticate_device
from server.errors import Forbidden
from server.extensions import db
from server.models import Card, Device, Person
from server.verification import Presented, decide

blp = public_blueprint("verify", "Device verification (PROTOCOL.md section 2)")


class CardRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # the protocol: unknown fields are ignored

    uid = fields.Str(
        required=True,
        validate=validate.Regexp(r"^[0-9A-Fa-f]{8,32}$", error="Hex, 8 to 32 digits."),
    )


class DecisionSchema(ma.Schema):
    decision = fields.Str(metadata={"description": "grant or deny"})
    reason = fields.Str(metadata={"description": "stable reason code (docs/policy.md)"})
    event_id = fields.Str()
    subject = fields.Dict(metadata={"description": "kind and masked display_name"})
    open_ms = fields.Int()
    liveness = fields.Dict()


def _device() -> Device:
    from flask import request

    device = authenticate_device(request.headers.get("Authorization"))
    if device.access_point_id is None:
        raise Forbidden("This device serves no access point: it cannot verify credentials.")
    return device


@blp.post("/verify/card")
@blp.arguments(CardRequestSchema)
@blp.response(200, DecisionSchema)
@blp.doc(security=[{"deviceAuth": []}])
def verify_card(data: dict[str, Any]) -> Any:
    """An IC card presented at the device's door; an ``open`` command follows a grant."""
    device = _device()
    uid = data["uid"].upper()
    card = db.session.scalar(
        select(Card).where(Card.community_id == device.community_id, Card.uid == uid)
    )
    if card is None:
        presented = Presented(
            CredentialType.CARD, unknown_reason=Reason.UNKNOWN_CARD, details={"uid": uid}
        )
    else:
        presented = Presented(
            CredentialType.CARD,
            person=db.session.get(Person, card.person_id),
            credential=policy.CredentialView(
                kind=CredentialType.CARD,
                disabled=card.disabled_at is not None,
                valid_from=card.valid_from,
                valid_until=card.valid_until,
            ),
            details={"card_id": card.id},
        )
    answer = decide(device, presented)
    db.session.commit()  # the open command is published after this
    return answer
