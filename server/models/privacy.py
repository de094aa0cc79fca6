"""Reads of personal data: who looked at whose data, what, why and when (PIPL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, IdMixin, utcnow


class DataRead(IdMixin, Base):
    """One read of one person's data by a staff member, an officer or an administrator.

    Written by ``server.core.audit.record_read``; shown to supervisors (the audit viewer)
    and in the person's own export. ``person_id`` is not a foreign key: the record of who
    saw a person's data outlives the person's row (erasure keeps it, pseudonymised).
    """

    __tablename__ = "data_reads"
    __table_args__ = (
        Index("ix_data_reads_community_id_at", "community_id", "at"),
        Index("ix_data_reads_person_id_at", "person_id", "at"),
    )
    ID_PREFIX = "drd"

    community_id: Mapped[str | None] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE")
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(80))
    actor_role: Mapped[str] = mapped_column(String(16))
    person_id: Mapped[str] = mapped_column(String(40))
    # What was read: ``person_page``, ``person_api``, ``welfare_view``, ``export`` ...
    what: Mapped[str] = mapped_column(String(40))
    # The purpose an officer stated (``welfare_check``, ``investigation``); null for staff.
    purpose: Mapped[str | None] = mapped_column(String(40))
    alert_id: Mapped[str | None] = mapped_column(String(40))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    # A list's read (``person_id`` ``*``, ``what`` ``person_list``): the ids of the people it
    # showed, one page (migration 0032).
    person_ids: Mapped[list[Any] | None]
