"""Anti-passback: gate pairs and each person's state in them (``docs/policy.md``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gatekeeper.antipassback import PassbackMode
from server.models.base import Base, CommunityOwned, IdMixin, TimestampMixin, enum_column, utcnow


class AntiPassbackPair(IdMixin, CommunityOwned, TimestampMixin, Base):
    """An entry point and an exit point (or one point used both ways, ``directional``) where
    a person who entered may not enter again before leaving (``mode`` soft or hard), until
    ``forgive_minutes`` after the entry (null: never)."""

    __tablename__ = "anti_passback_pairs"
    ID_PREFIX = "apb"

    name: Mapped[str] = mapped_column(String(80))
    entry_point_id: Mapped[str] = mapped_column(
        ForeignKey("access_points.id", ondelete="CASCADE"), index=True
    )
    exit_point_id: Mapped[str] = mapped_column(
        ForeignKey("access_points.id", ondelete="CASCADE"), index=True
    )
    mode: Mapped[PassbackMode] = enum_column(PassbackMode, default=PassbackMode.HARD)
    forgive_minutes: Mapped[int | None]


class AntiPassbackState(IdMixin, CommunityOwned, Base):
    """A person's last passage through a pair: inside since ``entered_at``, or outside; and
    the soft-mode violations counted since the last reset."""

    __tablename__ = "anti_passback_states"
    __table_args__ = (UniqueConstraint("pair_id", "person_id"),)
    ID_PREFIX = "aps"

    pair_id: Mapped[str] = mapped_column(ForeignKey("anti_passback_pairs.id", ondelete="CASCADE"))
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    inside: Mapped[bool] = mapped_column(default=False)
    entered_at: Mapped[datetime | None]
    exited_at: Mapped[datetime | None]
    violations: Mapped[int] = mapped_column(default=0)
    last_violation_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
