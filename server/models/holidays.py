"""The holiday calendar of a community: days on which listed access points close or keep
other hours (``gatekeeper.holidays``; docs/policy.md, "The holiday calendar")."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gatekeeper.holidays import HolidayEffect
from server.models.base import Base, CommunityOwned, IdMixin, TimestampMixin, enum_column

holiday_access_points = Table(
    "holiday_access_points",
    Base.metadata,
    Column("holiday_id", ForeignKey("holidays.id", ondelete="CASCADE"), primary_key=True),
    Column("access_point_id", ForeignKey("access_points.id", ondelete="CASCADE"), primary_key=True),
)


class Holiday(IdMixin, CommunityOwned, TimestampMixin, Base):
    """A holiday: local days ``[first_day, last_day]`` in the community's zone, both included.

    ``effect`` ``closed`` closes the listed points; ``hours`` gives them ``hours`` (weekly
    windows) instead of their weekly schedule. ``all_points`` applies the holiday to every
    access point of the community (only with other hours: a holiday never closes every door).
    """

    __tablename__ = "holidays"
    __table_args__ = (Index("ix_holidays_community_id_last_day", "community_id", "last_day"),)
    ID_PREFIX = "hol"

    name: Mapped[str] = mapped_column(String(80))
    first_day: Mapped[date]
    last_day: Mapped[date]
    effect: Mapped[HolidayEffect] = enum_column(HolidayEffect, default=HolidayEffect.CLOSED)
    hours: Mapped[list[Any] | None]
    all_points: Mapped[bool] = mapped_column(default=False)

    access_points: Mapped[list[Any]] = relationship(
        "AccessPoint", secondary=holiday_access_points, order_by="AccessPoint.name"
    )

    @property
    def access_point_ids(self) -> list[str]:
        """The ids of the listed access points (empty with ``all_points``)."""
        return [point.id for point in self.access_points]
