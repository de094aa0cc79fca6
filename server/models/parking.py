"""Temporary cars (临时车): the ticket by plate of an unknown car let in at a barrier, its fee
at the exit and the payment staff or the guard confirmed (``server.access.parking``).

Money is integer fen (分), CNY.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, CommunityOwned, IdMixin, TimestampMixin, enum_column

CURRENCY = "CNY"


class TicketStatus(StrEnum):
    """Where a ticket stands."""

    INSIDE = "inside"  # the car came in; no exit read yet
    DUE = "due"  # at the exit barrier with a fee to pay (payment_required)
    PAID = "paid"  # the fee was paid; the exit barrier was sent ``open``
    FREE = "free"  # it left with nothing to pay
    REENTERED = "reentered"  # the same plate came in again: this exit was never seen


# The tickets of cars still inside (the exit may still charge them).
OPEN_STATUSES = (TicketStatus.INSIDE, TicketStatus.DUE)


class PaymentMethod(StrEnum):
    """How a fee was paid at the booth (recorded, not processed: no payment provider)."""

    CASH = "cash"
    WECHAT = "wechat"
    ALIPAY = "alipay"


class ParkingTicket(IdMixin, CommunityOwned, TimestampMixin, Base):
    """One stay of a temporary car: its entry, its exit's fee, and the payment."""

    __tablename__ = "parking_tickets"
    __table_args__ = (
        Index("ix_parking_tickets_community_id_plate", "community_id", "plate"),
        Index("ix_parking_tickets_community_id_status", "community_id", "status"),
        # The parking feed of the cars page reads changes by time (server.core.live).
        Index("ix_parking_tickets_updated_at", "updated_at"),
    )
    ID_PREFIX = "pkt"

    plate: Mapped[str] = mapped_column(String(16))
    status: Mapped[TicketStatus] = enum_column(TicketStatus, default=TicketStatus.INSIDE)
    presence_id: Mapped[str | None] = mapped_column(
        ForeignKey("vehicle_presences.id", ondelete="SET NULL")
    )
    entered_at: Mapped[datetime]
    # Event ids without foreign keys, like vehicle_presences (access_events is partitioned).
    entry_event_id: Mapped[str | None] = mapped_column(String(40))
    entry_access_point_id: Mapped[str | None] = mapped_column(
        ForeignKey("access_points.id", ondelete="SET NULL")
    )
    # The latest exit read: when, where, and the fee it came to (with its breakdown).
    exit_read_at: Mapped[datetime | None]
    exit_event_id: Mapped[str | None] = mapped_column(String(40))
    exit_access_point_id: Mapped[str | None] = mapped_column(
        ForeignKey("access_points.id", ondelete="SET NULL")
    )
    exit_device_id: Mapped[str | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL")
    )
    fee_fen: Mapped[int | None]
    fee_breakdown: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # When it left (free, or paid and opened).
    exited_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    paid_fen: Mapped[int | None]
    payment_method: Mapped[PaymentMethod | None] = enum_column(PaymentMethod, nullable=True)
    paid_by_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
