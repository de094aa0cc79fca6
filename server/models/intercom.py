"""The door intercom (楼宇对讲): one row per call a visitor placed at a door or gate.

The snapshot is the visitor's photo, personal data: it is kept only while the call is live
and for ``intercom_snapshot_minutes`` after it ended (``server.access.intercom``), then
erased; the call itself stays, like the access event of its outcome.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from gatekeeper.vocabulary import IntercomStatus
from server.models.base import Base, CommunityOwned, IdMixin, enum_column, utcnow


class IntercomCall(IdMixin, CommunityOwned, Base):
    """A visitor's call from a door to a unit: ringing, then answered, refused or timed out.

    ``status_at`` is when the status last changed (server time): the ``intercom`` live feed
    follows it. ``ring_until`` is when the unit's phones stop ringing, ``guard_until`` when
    a call rolled over to the guard booth stops waiting there.
    """

    __tablename__ = "intercom_calls"
    __table_args__ = (
        Index("ix_intercom_calls_status_at", "status_at"),
        Index("ix_intercom_calls_community_id_status", "community_id", "status"),
    )
    ID_PREFIX = "icl"

    access_point_id: Mapped[str] = mapped_column(
        ForeignKey("access_points.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[str | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL"), index=True
    )
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    status: Mapped[IntercomStatus] = enum_column(IntercomStatus, default=IntercomStatus.RINGING)
    # The door's photo of the visitor (JPEG), erased after the call (personal data).
    snapshot: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Where the call came from: "http" or "mqtt" (the device event's id then).
    source: Mapped[str] = mapped_column(String(8), default="http")
    device_event_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_at: Mapped[datetime] = mapped_column(default=utcnow)
    ring_until: Mapped[datetime]
    guard_until: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    answered_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # The access event of the outcome (no foreign key: events are partitioned by month).
    event_id: Mapped[str | None] = mapped_column(String(40), index=True)
    snapshot_erased_at: Mapped[datetime | None]

    @property
    def live(self) -> bool:
        return self.status in (IntercomStatus.RINGING, IntercomStatus.ROLLED_OVER)
