"""People, their roles and units, leases, consent and credentials."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship, validates

from gatekeeper.plates import skeleton
from gatekeeper.vocabulary import PersonRole, PersonStatus
from server.models.base import Base, CommunityOwned, IdMixin, TimestampMixin, enum_column, utcnow

guardianships = Table(
    "guardianships",
    Base.metadata,
    Column("person_id", ForeignKey("people.id", ondelete="CASCADE"), primary_key=True),
    Column("guardian_id", ForeignKey("people.id", ondelete="CASCADE"), primary_key=True),
)


class Person(IdMixin, CommunityOwned, TimestampMixin, Base):
    """Someone the community knows: a resident, tenant, worker, elder or child."""

    __tablename__ = "people"
    ID_PREFIX = "per"

    name: Mapped[str] = mapped_column(String(80))
    phone: Mapped[str | None] = mapped_column(String(32))
    id_document_type: Mapped[str | None] = mapped_column(String(32))
    # Encrypted with DATA_KEY; only the masked form is ever shown.
    id_document_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_document_masked: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[PersonStatus] = enum_column(PersonStatus, default=PersonStatus.ACTIVE)
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    lives_alone: Mapped[bool] = mapped_column(default=False)
    wander_risk: Mapped[bool] = mapped_column(default=False)
    moved_out_at: Mapped[datetime | None]
    # Serial of the person's rotating "scan to open" code (16 hex digits), made on first use.
    code_serial: Mapped[str | None] = mapped_column(String(16), unique=True)
    # When their data was erased on request (server.privacy.erasure): name a pseudonym since.
    erased_at: Mapped[datetime | None]

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="person", passive_deletes=True
    )
    guardians: Mapped[list[Person]] = relationship(
        secondary=guardianships,
        primaryjoin=lambda: Person.id == guardianships.c.person_id,
        secondaryjoin=lambda: Person.id == guardianships.c.guardian_id,
    )


class Membership(IdMixin, CommunityOwned, TimestampMixin, Base):
    """A person's role in the community, and the unit it attaches to (none for workers)."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("person_id", "unit_id", "role"),)
    ID_PREFIX = "mem"

    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[str | None] = mapped_column(
        ForeignKey("units.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[PersonRole] = enum_column(PersonRole)
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]

    person: Mapped[Person] = relationship(back_populates="memberships")


class Lease(IdMixin, CommunityOwned, TimestampMixin, Base):
    """A tenant's lease: their access exists only between ``starts_at`` and ``ends_at``."""

    __tablename__ = "leases"
    ID_PREFIX = "lse"

    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    ended_early_at: Mapped[datetime | None]
    # Set when the lease-end job has carried out the cascade, so it runs once.
    closed_at: Mapped[datetime | None]
    # Set when the tenant was told the lease ends soon (server.notifications), so once.
    ending_notified_at: Mapped[datetime | None]


class Consent(IdMixin, CommunityOwned, Base):
    """A person's consent to a use of their data (e.g. face recognition), with who recorded it."""

    __tablename__ = "consents"
    ID_PREFIX = "cns"

    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(40))
    recorded_by_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    granted_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]


class CredentialMixin(IdMixin, CommunityOwned, TimestampMixin):
    """What every credential has: an owner, a validity window and an on/off switch."""

    @declared_attr
    def person_id(cls) -> Mapped[str]:  # noqa: N805 - declared_attr receives the class
        return mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)

    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]


class FaceTemplate(CredentialMixin, Base):
    """A 128-d face descriptor, encrypted at rest; never the photo unless a setting says so."""

    __tablename__ = "face_templates"
    ID_PREFIX = "fce"

    template_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    model: Mapped[str] = mapped_column(String(40))
    quality: Mapped[dict[str, Any] | None]
    consent_id: Mapped[str | None] = mapped_column(ForeignKey("consents.id", ondelete="SET NULL"))
    # The enrolment photo (encrypted), kept only when the community's setting says so.
    photo_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)


class Card(CredentialMixin, Base):
    """An IC card, by its UID (upper-case hex)."""

    __tablename__ = "cards"
    __table_args__ = (UniqueConstraint("community_id", "uid"),)
    ID_PREFIX = "crd"

    uid: Mapped[str] = mapped_column(String(32))


class Vehicle(CredentialMixin, Base):
    """A registered car, by its normalised plate."""

    __tablename__ = "vehicles"
    __table_args__ = (
        UniqueConstraint("community_id", "plate"),
        Index("ix_vehicles_community_id_skeleton", "community_id", "skeleton"),
    )
    ID_PREFIX = "veh"

    plate: Mapped[str] = mapped_column(String(16))
    # The plate's fuzzy-matching key (gatekeeper.plates.skeleton), kept with the plate.
    skeleton: Mapped[str] = mapped_column(String(16))
    color: Mapped[str | None] = mapped_column(String(16))

    @validates("plate")
    def _keep_skeleton(self, _key: str, plate: str) -> str:
        self.skeleton = skeleton(plate)
        return plate


class RfidTag(CredentialMixin, Base):
    """An RFID tag worn by an elder or a child (EPC in upper-case hex), or a guard's.

    ``guard``: staff set it on a guard's tag; only guards' tags count at patrol checkpoints
    (``server.alerts.patrol_rounds``).
    """

    __tablename__ = "rfid_tags"
    __table_args__ = (UniqueConstraint("community_id", "epc"),)
    ID_PREFIX = "tag"

    epc: Mapped[str] = mapped_column(String(64))
    guard: Mapped[bool] = mapped_column(default=False, server_default=false())


class WorkerTag(StrEnum):
    CLEANER = "cleaner"
    PLUMBER = "plumber"
    GARDENER = "gardener"
    REPAIR = "repair"
    DELIVERY = "delivery"
    OTHER = "other"


worker_permit_access_points = Table(
    "worker_permit_access_points",
    Base.metadata,
    Column("permit_id", ForeignKey("worker_permits.id", ondelete="CASCADE"), primary_key=True),
    Column("access_point_id", ForeignKey("access_points.id", ondelete="CASCADE"), primary_key=True),
)


class WorkerPermit(IdMixin, CommunityOwned, TimestampMixin, Base):
    """What a temporary worker may use: which access points, on which weekly schedule, when."""

    __tablename__ = "worker_permits"
    ID_PREFIX = "wkp"

    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), unique=True)
    tag: Mapped[WorkerTag] = enum_column(WorkerTag)
    # Who vouches for the worker: a staff account or a resident.
    sponsor_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    sponsor_person_id: Mapped[str | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL")
    )
    # Weekly windows in the community's zone, as on access points; null: any time.
    schedule: Mapped[list[Any] | None]
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]

    access_points: Mapped[list[Any]] = relationship(
        "AccessPoint", secondary=worker_permit_access_points
    )


class IdCheck(IdMixin, CommunityOwned, Base):
    """A person-ID match: the ID card's chip photo against a live photo, with its distance."""

    __tablename__ = "id_checks"
    ID_PREFIX = "idc"

    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    match: Mapped[bool]
    distance: Mapped[float | None]
    tolerance: Mapped[float]
    # Why no distance could be computed (e.g. no face on the ID photo).
    reason: Mapped[str | None] = mapped_column(String(40))
    checked_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)


class FaceGallery(Base):
    """A community's gallery version: bumped with every template added or removed."""

    __tablename__ = "face_galleries"

    community_id: Mapped[str] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(default=0)


class FaceGalleryChange(Base):
    """One change to a community's gallery, so every process can catch up without a reload."""

    __tablename__ = "face_gallery_changes"
    __table_args__ = (UniqueConstraint("community_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[str] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    version: Mapped[int]
    template_id: Mapped[str] = mapped_column(String(40))
    person_id: Mapped[str] = mapped_column(String(40))
    op: Mapped[str] = mapped_column(String(8))  # "add" or "remove"
    at: Mapped[datetime] = mapped_column(default=utcnow)
