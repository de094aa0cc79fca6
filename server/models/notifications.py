"""Telling residents: notifications, their deliveries, Web Push subscriptions, preferences
and the communities' SMS/WeChat gateways (``server.notifications``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, CommunityOwned, IdMixin, TimestampMixin, utcnow


class Notification(IdMixin, CommunityOwned, Base):
    """One thing told to one account: its kind and the values its text is made of.

    ``changed_at``: when it was made or read (the portal's live feed follows it).
    ``in_portal``: shown in the portal's list (the account's preference for its kind).
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_id_created_at", "user_id", "created_at"),
        # Retention deletes each community's old notifications (server.privacy.retention).
        Index("ix_notifications_community_id_created_at", "community_id", "created_at"),
    )
    ID_PREFIX = "ntf"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    in_portal: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]
    changed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class NotificationDelivery(IdMixin, CommunityOwned, Base):
    """One notification sent (or being retried) on one channel: the outbox and its log.

    As ``AlertDelivery``: one row per attempt; a failed attempt that will be retried is
    followed by a new ``pending`` row with ``attempts`` one higher."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index("ix_notification_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_notification_deliveries_community_id_created_at", "community_id", "created_at"),
    )
    ID_PREFIX = "ndl"

    notification_id: Mapped[str] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(16))  # push | sms
    target: Mapped[str] = mapped_column(String(1000))  # subscription id, gateway URL
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(default=1)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    response_status: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class PushSubscription(IdMixin, Base):
    """A browser's Web Push subscription of one account (RFC 8030 endpoint, RFC 8291 keys)."""

    __tablename__ = "push_subscriptions"
    ID_PREFIX = "psb"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(1000), unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationPreference(Base):
    """Whether one kind reaches one account on one channel (only choices made are stored;
    the rest are the defaults of ``server.notifications.kinds``)."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    enabled: Mapped[bool]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class NotificationGateway(IdMixin, CommunityOwned, TimestampMixin, Base):
    """Where a community's SMS (or WeChat) messages are POSTed, HMAC-signed as webhooks are."""

    __tablename__ = "notification_gateways"
    __table_args__ = (UniqueConstraint("community_id"),)
    ID_PREFIX = "ngw"

    url: Mapped[str] = mapped_column(String(500))
    # Encrypted with DATA_KEY; shown once when it is set.
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(default=True)
