"""Temporary cars: their parking tickets and the payment that opens the exit barrier.

Staff and admins list a community's tickets (officers read them) and record a payment for a
car waiting at the exit (``payment_required``): who, how much (fen, CNY) and how (cash,
WeChat, Alipay: a recorded choice, nothing is charged here). The payment is audited and the
exit barrier gets ``open`` (docs/protocol.md). Residents find no tickets (404).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from gatekeeper.tariff import MAX_FEN
from server.access import parking
from server.api import authenticated_blueprint, scope
from server.extensions import db
from server.models import ParkingTicket, PaymentMethod, TicketStatus
from server.models.parking import CURRENCY

blp = authenticated_blueprint("parking", "Temporary cars: parking tickets and payments")


class ParkingTicketSchema(ma.Schema):
    id = fields.Str()
    community_id = fields.Str()
    plate = fields.Str()
    status = fields.Enum(TicketStatus, by_value=True)
    entered_at = fields.AwareDateTime()
    entry_event_id = fields.Str(allow_none=True)
    entry_access_point_id = fields.Str(allow_none=True)
    exit_read_at = fields.AwareDateTime(allow_none=True)
    exit_event_id = fields.Str(allow_none=True)
    exit_access_point_id = fields.Str(allow_none=True)
    fee_fen = fields.Int(
        allow_none=True, metadata={"description": "the fee at the latest exit read, in fen"}
    )
    currency = fields.Constant(CURRENCY)
    fee_breakdown = fields.Dict(metadata={"description": "by local day: gatekeeper.tariff"})
    exited_at = fields.AwareDateTime(allow_none=True)
    paid_at = fields.AwareDateTime(allow_none=True)
    paid_fen = fields.Int(allow_none=True)
    payment_method = fields.Enum(PaymentMethod, by_value=True, allow_none=True)
    paid_by_user_id = fields.Str(allow_none=True)


class ParkingTicketQuerySchema(ma.Schema):
    status = fields.Enum(TicketStatus, by_value=True)


class PaymentInputSchema(ma.Schema):
    method = fields.Enum(PaymentMethod, by_value=True, required=True)
    amount_fen = fields.Int(
        strict=True,
        validate=validate.Range(min=0, max=MAX_FEN),
        metadata={"description": "what was taken, in fen; when given, it must be the fee due"},
    )


@blp.get("/communities/<cid>/parking-tickets")
@blp.arguments(ParkingTicketQuerySchema, location="query")
@blp.response(200, ParkingTicketSchema(many=True))
def list_parking_tickets(query: dict[str, Any], cid: str) -> Any:
    """The community's parking tickets, newest entry first (the latest 100); ``status=due``:
    the cars at an exit waiting to pay."""
    return parking.tickets(scope(), cid, query.get("status"))


@blp.post("/parking-tickets/<ticket_id>/payments")
@blp.arguments(PaymentInputSchema)
@blp.response(201, ParkingTicketSchema)
def pay_parking_ticket(data: dict[str, Any], ticket_id: str) -> Any:
    """Record the payment of a ticket waiting at the exit (``due``) and open the exit barrier.
    A ticket not waiting to pay, or an ``amount_fen`` other than the fee due, is a 409."""
    parking.pay(scope(), ticket_id, data["method"], data.get("amount_fen"))
    db.session.commit()
    return scope().get(ParkingTicket, ticket_id)
