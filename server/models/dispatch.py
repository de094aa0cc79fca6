"""Officers on duty, and where each one is (dispatch: server.alerts.dispatch)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, utcnow


class OfficerDuty(Base):
    """An officer's duty: on or off, and their position (one row per officer, made when they
    first go on duty).

    The position is an access point: the one they last said they are at, or the place of
    the last alert they acknowledged or resolved (its access point, or its device's).
    On the site plan it is that access point's ``plan_x``/``plan_y``.
    """

    __tablename__ = "officer_duties"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    on_duty: Mapped[bool] = mapped_column(default=False)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    access_point_id: Mapped[str | None] = mapped_column(
        ForeignKey("access_points.id", ondelete="SET NULL")
    )
    position_at: Mapped[datetime | None]
