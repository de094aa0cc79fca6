"""Offline allowlists: each access point's published list state, and the communities whose
lists must be rebuilt (server.access.allowlists; docs/protocol.md section 6, "Allowlists")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, utcnow


class AllowlistState(Base):
    """What the server last published for one access point: its version and its entries.

    ``entries`` holds each entry by ``pid`` as published but without faces: in their place
    ``face_refs``, the ids and update times of the templates, so a changed face is seen
    without decrypting anything. ``devices``: the
    devices that hold this version. ``refresh_at``: the next instant at which the list changes
    by itself (a card or face template starts or ends, the closures' horizon moves on).
    """

    __tablename__ = "allowlist_states"

    access_point_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("access_points.id", ondelete="CASCADE"), primary_key=True
    )
    community_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("communities.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(default=0)
    header: Mapped[dict[str, Any]] = mapped_column(default=dict)
    entries: Mapped[dict[str, Any]] = mapped_column(default=dict)
    published_at: Mapped[datetime | None]
    # The devices that were sent this version's full list: a device new at the point gets it
    # at the next rebuild even when nothing in the list changed.
    devices: Mapped[list[Any]] = mapped_column(default=list)
    refresh_at: Mapped[datetime | None] = mapped_column(index=True)


class AllowlistDirty(Base):
    """A community whose lists may have changed: a flush touched its people, credentials,
    door modes, holidays, access points or devices; the worker's leader rebuilds them."""

    __tablename__ = "allowlist_dirty"

    community_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True
    )
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)
