"""One-time courier codes for keypad doors, and the keypads' lockouts (``server.couriers``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, CommunityOwned, IdMixin, TimestampMixin


class CourierCode(IdMixin, CommunityOwned, TimestampMixin, Base):
    """A six-digit code for one keypad door: a window, a use count, revocable.

    Only the keyed hash of the digits is stored (``gatekeeper.pincodes.pin_hash``), and
    their last two as a hint for lists. A resident's code belongs to their unit; a code the
    property office issues for a building's deliveries has no unit.
    """

    __tablename__ = "courier_codes"
    # The verify path finds a door's codes by hash.
    __table_args__ = (
        Index("ix_courier_codes_access_point_id_code_hash", "access_point_id", "code_hash"),
    )
    ID_PREFIX = "pin"

    access_point_id: Mapped[str] = mapped_column(ForeignKey("access_points.id", ondelete="CASCADE"))
    unit_id: Mapped[str | None] = mapped_column(
        ForeignKey("units.id", ondelete="CASCADE"), index=True
    )
    building_id: Mapped[str | None] = mapped_column(
        ForeignKey("buildings.id", ondelete="SET NULL"), index=True
    )
    issued_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    issued_by_person_id: Mapped[str | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL"), index=True
    )
    label: Mapped[str] = mapped_column(String(80))  # who it is for: "顺丰", "Meituan order"
    code_hash: Mapped[str] = mapped_column(String(64))
    hint: Mapped[str] = mapped_column(String(2))  # the last two digits, for lists
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    max_uses: Mapped[int] = mapped_column(default=1)
    uses: Mapped[int] = mapped_column(default=0)
    revoked_at: Mapped[datetime | None]
    used_at: Mapped[datetime | None]  # the last grant


class KeypadLockout(IdMixin, CommunityOwned, Base):
    """A keypad refusing every code until ``locked_until``: too many wrong codes."""

    __tablename__ = "keypad_lockouts"
    __table_args__ = (
        Index("ix_keypad_lockouts_access_point_id_locked_until", "access_point_id", "locked_until"),
    )
    ID_PREFIX = "klk"

    access_point_id: Mapped[str] = mapped_column(ForeignKey("access_points.id", ondelete="CASCADE"))
    locked_at: Mapped[datetime]
    locked_until: Mapped[datetime]
    failures: Mapped[int]
    alert_id: Mapped[str | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
