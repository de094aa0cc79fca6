"""The physical community: buildings, units, access points and devices."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gatekeeper.vocabulary import AccessPointKind, DeviceKind, Zone
from server.models.base import Base, CommunityOwned, IdMixin, TimestampMixin, enum_column


class Community(IdMixin, TimestampMixin, Base):
    """A residential community: the unit of isolation and of staff and officer scope."""

    __tablename__ = "communities"
    ID_PREFIX = "com"

    name: Mapped[str] = mapped_column(String(120), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # Tunables (face tolerance, pass limits, retention ...); see server.community.settings.
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)

    buildings: Mapped[list[Building]] = relationship(
        back_populates="community", passive_deletes=True
    )


class SitePlan(TimestampMixin, Base):
    """The community's site plan: a picture staff upload, on which access points and
    devices are placed (their ``plan_x``/``plan_y``)."""

    __tablename__ = "site_plans"

    community_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True
    )
    content_type: Mapped[str] = mapped_column(String(40))
    image: Mapped[bytes] = mapped_column(LargeBinary)
    width: Mapped[int]
    height: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))


class Building(IdMixin, CommunityOwned, TimestampMixin, Base):
    __tablename__ = "buildings"
    __table_args__ = (UniqueConstraint("community_id", "name"),)
    ID_PREFIX = "bld"

    name: Mapped[str] = mapped_column(String(80))

    community: Mapped[Community] = relationship(back_populates="buildings")
    units: Mapped[list[Unit]] = relationship(back_populates="building", passive_deletes=True)


class Unit(IdMixin, CommunityOwned, TimestampMixin, Base):
    """A flat (户) in a building."""

    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("building_id", "number"),)
    ID_PREFIX = "unt"

    building_id: Mapped[str] = mapped_column(
        ForeignKey("buildings.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[str] = mapped_column(String(40))
    floor: Mapped[int | None]

    building: Mapped[Building] = relationship(back_populates="units")


class AccessPoint(IdMixin, CommunityOwned, TimestampMixin, Base):
    """A door, gate or barrier that something or someone passes through."""

    __tablename__ = "access_points"
    __table_args__ = (UniqueConstraint("community_id", "name"),)
    ID_PREFIX = "ap"

    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[AccessPointKind] = enum_column(AccessPointKind)
    zone: Mapped[Zone] = enum_column(Zone)
    building_id: Mapped[str | None] = mapped_column(
        ForeignKey("buildings.id", ondelete="SET NULL"), index=True
    )
    open_ms: Mapped[int] = mapped_column(default=5000)
    requires_depth: Mapped[bool] = mapped_column(default=False)
    # Weekly windows in the community's zone: [{"days": [1..7], "start": "HH:MM", "end": "HH:MM"}];
    # null means always open to whoever the policy admits.
    schedule: Mapped[list[Any] | None]
    # A keypad for one-time courier codes (POST /api/v1/verify/pin, server.access.pin).
    has_keypad: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Where it is on the community's site plan (SitePlan), as fractions of the picture's
    # width and height from the top left; null: not placed.
    plan_x: Mapped[float | None]
    plan_y: Mapped[float | None]

    building: Mapped[Building | None] = relationship()


class Device(IdMixin, CommunityOwned, TimestampMixin, Base):
    """A terminal, barrier camera, RFID reader or panic button; its id is its MQTT username."""

    __tablename__ = "devices"
    # The devices feed of live pages reads changes by time (server.core.live).
    __table_args__ = (Index("ix_devices_updated_at", "updated_at"),)
    ID_PREFIX = "dev"

    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[DeviceKind] = enum_column(DeviceKind)
    access_point_id: Mapped[str | None] = mapped_column(
        ForeignKey("access_points.id", ondelete="RESTRICT"), index=True
    )
    zone: Mapped[Zone | None] = enum_column(Zone, nullable=True)
    # SHA-256 of the secret for HTTP; the secret is 256 random bits, so a slow hash adds
    # nothing but latency on the verify path.
    secret_hash: Mapped[str] = mapped_column(String(64))
    # The same secret in Mosquitto's password-file format, so broker files can be rebuilt.
    mqtt_password_hash: Mapped[str] = mapped_column(String(255))
    secret_rotated_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    online: Mapped[bool] = mapped_column(default=False)
    # The server's receive time of the newest message from the device (a maximum, whatever
    # order the workers apply messages in).
    last_seen_at: Mapped[datetime | None]
    # When the newest message that decided ``online`` was sent (server.worker.ingest): an
    # older one applied later by another worker does not change it.
    last_status_at: Mapped[datetime | None]
    firmware: Mapped[str | None] = mapped_column(String(40))
    # Where it is on the site plan, as AccessPoint's; null: at its access point's spot.
    plan_x: Mapped[float | None]
    plan_y: Mapped[float | None]
    # The X25519 public key a face terminal registered for its allowlist's faces (32 bytes;
    # PUT /api/v1/devices/me/allowlist-key); null: its lists carry no faces.
    allowlist_public_key: Mapped[bytes | None] = mapped_column(LargeBinary)

    access_point: Mapped[AccessPoint | None] = relationship()

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None
