"""One-time courier codes for keypad doors (``server.couriers.service``).

Residents issue single-use codes for a keypad door they use (their building's, a shared
perimeter gate); staff issue codes for any keypad point of a community they run, with more
uses (a courier company's code for a day). The digits come back once, in ``pin`` of the
``201``; afterwards a code shows only ``masked`` (its last two digits) and its ``status``.
A resident's code of another unit does not exist for them (404); officers see none.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from gatekeeper.pincodes import CodeStatus, masked
from server.api import authenticated_blueprint, scope
from server.api.events import event_answers
from server.api.pagination import paginated
from server.api.schemas import AccessEventSchema
from server.core import ratelimits
from server.couriers import service as couriers
from server.extensions import db
from server.models import AccessPoint, CourierCode, utcnow

blp = authenticated_blueprint("couriers", "One-time courier codes for keypad doors")


class CourierCodeInputSchema(ma.Schema):
    access_point_id = fields.Str(
        metadata={"description": "a keypad point; residents may leave it out when they have one"}
    )
    label = fields.Str(
        validate=validate.Length(max=80),
        metadata={"description": "who it is for (a courier company, an order)"},
    )
    minutes = fields.Int(
        validate=validate.Range(min=5, max=7 * 24 * 60),
        metadata={
            "description": "how long it lasts from now: default the community's "
            "courier_code_minutes (30), at most courier_code_max_minutes (1440)"
        },
    )
    max_uses = fields.Int(
        validate=validate.Range(min=1, max=couriers.STAFF_MAX_USES),
        load_default=1,
        metadata={"description": "residents: 1 only"},
    )


class CourierCodeQuerySchema(ma.Schema):
    status = fields.Str(validate=validate.OneOf([s.value for s in CodeStatus]))
    access_point_id = fields.Str()


class CourierCodeSchema(ma.Schema):
    id = fields.Str()
    community_id = fields.Str()
    access_point_id = fields.Str()
    access_point_name = fields.Str()
    unit_id = fields.Str(allow_none=True)
    building_id = fields.Str(allow_none=True)
    label = fields.Str()
    masked = fields.Str(metadata={"description": "the code's last two digits: ••••17"})
    status = fields.Str(metadata={"description": "unused, used, expired or revoked"})
    valid_from = fields.AwareDateTime()
    valid_until = fields.AwareDateTime()
    max_uses = fields.Int()
    uses = fields.Int()
    used_at = fields.AwareDateTime(allow_none=True)
    revoked_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()
    issued_by_user_id = fields.Str(allow_none=True)
    pin = fields.Str(metadata={"description": "the six digits: in the answer to POST only"})


def code_answer(code: CourierCode, pin: str | None = None) -> dict[str, Any]:
    """The code as its issuer sees it; the digits only when just issued."""
    point = db.session.get(AccessPoint, code.access_point_id)
    answer = {
        name: getattr(code, name)
        for name in (
            "id",
            "community_id",
            "access_point_id",
            "unit_id",
            "building_id",
            "label",
            "valid_from",
            "valid_until",
            "max_uses",
            "uses",
            "used_at",
            "revoked_at",
            "created_at",
            "issued_by_user_id",
        )
    }
    answer["access_point_name"] = point.name if point else ""
    answer["masked"] = masked(code.hint)
    answer["status"] = couriers.status_of(code).value
    if pin is not None:
        answer["pin"] = pin
    return answer


@blp.post("/courier-codes")
@ratelimits.issuing_passes
@blp.arguments(CourierCodeInputSchema)
@blp.response(201, CourierCodeSchema)
def create_courier_code(data: dict[str, Any]) -> Any:
    """Issue a code (one budget with visitor passes, per account). The answer's ``pin`` is
    the only time the digits are shown."""
    code, pin = couriers.issue(scope(), data)
    db.session.commit()
    return code_answer(code, pin)


@blp.get("/courier-codes")
@blp.arguments(CourierCodeQuerySchema, location="query")
@blp.response(200, CourierCodeSchema(many=True))
@blp.paginate()
def list_courier_codes(query: dict[str, Any], pagination_parameters: Any) -> Any:
    """Codes you may see (residents: your unit's), newest first, masked."""
    caller = scope()
    caller.require_read(CourierCode)
    statement = caller.query(CourierCode)
    if "access_point_id" in query:
        statement = statement.where(CourierCode.access_point_id == query["access_point_id"])
    if "status" in query:
        statement = statement.where(
            couriers.status_condition(CodeStatus(query["status"]), utcnow())
        )
    statement = statement.order_by(CourierCode.created_at.desc(), CourierCode.id.desc())
    return [code_answer(code) for code in paginated(statement, pagination_parameters)]


@blp.get("/courier-codes/<code_id>")
@blp.response(200, CourierCodeSchema)
def get_courier_code(code_id: str) -> Any:
    return code_answer(scope().get(CourierCode, code_id))


@blp.delete("/courier-codes/<code_id>")
@blp.response(200, CourierCodeSchema)
def revoke_courier_code(code_id: str) -> Any:
    """Revoke a code: it opens nothing from now on. The code and its history stay."""
    code = couriers.revoke(scope(), code_id)
    db.session.commit()
    return code_answer(code)


@blp.get("/courier-codes/<code_id>/uses")
@blp.response(200, AccessEventSchema(many=True))
def courier_code_uses(code_id: str) -> Any:
    """Where and when the code was typed, granted or denied, newest first."""
    return event_answers(couriers.uses_of(scope().get(CourierCode, code_id)))
