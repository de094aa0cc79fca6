"""User accounts, their communities, API tokens, page sessions, and the worker's heartbeat."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, String, Table, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.models.base import Base, IdMixin, TimestampMixin, enum_column, utcnow
from server.models.community import Community, Unit


class UserRole(StrEnum):
    ADMIN = "admin"  # the whole server
    STAFF = "staff"  # property staff of some communities
    RESIDENT = "resident"  # one person in one unit
    OFFICER = "officer"  # community police covering some communities


user_communities = Table(
    "user_communities",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "community_id",
        ForeignKey("communities.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)


class User(IdMixin, TimestampMixin, Base):
    """Someone who signs in: to pages with a session, to the API with a bearer token."""

    __tablename__ = "users"
    ID_PREFIX = "usr"

    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # False for an invited resident until the activation link sets the first password.
    password_set: Mapped[bool] = mapped_column(default=True, server_default=true())
    role: Mapped[UserRole] = enum_column(UserRole)
    display_name: Mapped[str | None] = mapped_column(String(80))
    # Residents: the person they are and the unit they act for.
    person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    unit_id: Mapped[str | None] = mapped_column(
        ForeignKey("units.id", ondelete="SET NULL"), index=True
    )
    disabled_at: Mapped[datetime | None]
    # The language the user chose for the pages (``zh_CN`` or ``en``); none: the browser's.
    locale: Mapped[str | None] = mapped_column(String(8))
    last_login_at: Mapped[datetime | None]
    # Officers: their MQTT password in the broker's password-file format (devices.broker_sync).
    mqtt_password_hash: Mapped[str | None] = mapped_column(String(255))
    # Staff: a supervisor, who reads the audit log (changes and reads of personal data) of
    # their communities.
    supervisor: Mapped[bool] = mapped_column(default=False, server_default=false())

    # Staff: the communities they run; officers: the communities they cover.
    communities: Mapped[list[Community]] = relationship(
        secondary=user_communities, order_by=Community.name
    )
    unit: Mapped[Unit | None] = relationship()

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    # Flask-Login's user protocol.
    @property
    def is_active(self) -> bool:
        return not self.disabled

    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return self.id


class ApiToken(IdMixin, Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    ID_PREFIX = "tok"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class WebSession(IdMixin, Base):
    """A signed-in browser. The session cookie holds a random key and only its SHA-256 is
    stored, so the sign-in ends when this row says so: on sign-out, a new password, a
    disabled account or "sign out everywhere", even for a copied cookie."""

    __tablename__ = "web_sessions"
    ID_PREFIX = "wss"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class ServiceHeartbeat(Base):
    """A worker's last sign of life (one row each, ``worker:<id>``), shown on the admin home
    and ``/healthz``; ``leader`` marks the one that runs the scheduled jobs."""

    __tablename__ = "service_heartbeats"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    host: Mapped[str] = mapped_column(String(120))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    beat_at: Mapped[datetime]
    mqtt_connected: Mapped[bool] = mapped_column(default=False)
    mqtt_client_id: Mapped[str | None] = mapped_column(String(200))
    leader: Mapped[bool] = mapped_column(default=False, server_default=false())
    leader_since: Mapped[datetime | None]
