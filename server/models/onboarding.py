"""Onboarding without the command line: a resident's one-time activation link, the lobby's
invitation link, and the registration requests that wait for staff."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from gatekeeper.vocabulary import PersonRole
from server.models.base import Base, CommunityOwned, IdMixin, TimestampMixin, enum_column, utcnow


class AccountActivation(IdMixin, CommunityOwned, Base):
    """A one-time link that lets a new resident account set its password.

    Only the SHA-256 of the link's secret is stored; the link is shown once to staff (or
    on the registrant's own status page) and works until it is used or expires.
    """

    __tablename__ = "account_activations"
    ID_PREFIX = "act"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class RegistrationLink(IdMixin, CommunityOwned, TimestampMixin, Base):
    """The invitation staff print in the lobby: whoever scans it may ask to be registered.

    Its code is public by design (it hangs on a wall): it grants nothing, it only opens the
    form; every request waits for staff. Scoped to a building when ``building_id`` is set.
    """

    __tablename__ = "registration_links"
    ID_PREFIX = "rgl"

    code: Mapped[str] = mapped_column(String(32), unique=True)
    building_id: Mapped[str | None] = mapped_column(
        ForeignKey("buildings.id", ondelete="CASCADE"), index=True
    )
    created_by_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    disabled_at: Mapped[datetime | None]


class RegistrationStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class RegistrationRequest(IdMixin, CommunityOwned, TimestampMixin, Base):
    """What someone asked for through a registration link, until staff approve or reject it.

    Nothing here grants access: approval creates the person, their membership (and lease),
    their face template and their account. The selfie is kept only as its encrypted template
    (never the photo), the ID number only encrypted and masked. One pending request per phone
    and community (a partial unique index).
    """

    __tablename__ = "registration_requests"
    __table_args__ = (
        Index(
            "uq_registration_requests_pending_phone",
            "community_id",
            "phone",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )
    ID_PREFIX = "reg"

    link_id: Mapped[str | None] = mapped_column(
        ForeignKey("registration_links.id", ondelete="SET NULL")
    )
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    phone: Mapped[str] = mapped_column(String(32))
    role: Mapped[PersonRole] = enum_column(PersonRole)
    lease_starts_at: Mapped[datetime | None]
    lease_ends_at: Mapped[datetime | None]
    # Consent to face recognition, given separately from the request itself.
    face_consent_at: Mapped[datetime | None]
    template_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    template_quality: Mapped[dict[str, Any] | None]
    id_document_type: Mapped[str | None] = mapped_column(String(32))
    id_document_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_document_masked: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[RegistrationStatus] = enum_column(
        RegistrationStatus, default=RegistrationStatus.PENDING
    )
    # The registrant's own page (its URL holds the secret; only its SHA-256 is stored).
    status_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reviewed_by_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None]
    rejection_reason: Mapped[str | None] = mapped_column(String(200))
    person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
