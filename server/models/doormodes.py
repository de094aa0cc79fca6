"""Door modes: a lockdown or an emergency release, stored until lifted (gatekeeper.doormodes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gatekeeper.doormodes import DoorModeKind, ModeScope
from server.models.base import Base, CommunityOwned, IdMixin, enum_column, utcnow

# The access points a mode of scope ``access_point`` covers (one or several, chosen).
door_mode_access_points = Table(
    "door_mode_access_points",
    Base.metadata,
    Column("door_mode_id", ForeignKey("door_modes.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "access_point_id",
        ForeignKey("access_points.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)


class DoorMode(IdMixin, CommunityOwned, Base):
    """A lockdown or an emergency release of chosen access points, a building or a community.

    It holds from ``started_at`` until ``lifted_at`` (null: it holds now). Doors read it on
    every decision, so it survives restarts; a device coming back online is sent ``lock`` or
    ``unlock_hold`` again while it holds.
    """

    __tablename__ = "door_modes"
    __table_args__ = (Index("ix_door_modes_community_id_lifted_at", "community_id", "lifted_at"),)
    ID_PREFIX = "dmd"

    kind: Mapped[DoorModeKind] = enum_column(DoorModeKind)
    scope: Mapped[ModeScope] = enum_column(ModeScope)
    building_id: Mapped[str | None] = mapped_column(
        ForeignKey("buildings.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(String(200))
    # Lockdowns: the roles that still pass (person roles, ``staff``, ``officer``).
    exempt_roles: Mapped[list[Any]] = mapped_column(default=list)
    started_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    lifted_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    lifted_at: Mapped[datetime | None]

    # Scope ``access_point``: the chosen points (by name); empty for the other scopes.
    access_points: Mapped[list[Any]] = relationship(
        "AccessPoint", secondary=door_mode_access_points, order_by="AccessPoint.name"
    )

    @property
    def access_point_ids(self) -> list[str]:
        """The ids of the chosen access points (scope ``access_point``), by name."""
        return [point.id for point in self.access_points]

    @property
    def target_id(self) -> str | None:
        """The building's id (scope ``building``); ``None`` for the others (the chosen points
        are ``access_point_ids``)."""
        if self.scope is ModeScope.BUILDING:
            return self.building_id
        return None

    @property
    def active(self) -> bool:
        return self.lifted_at is None
