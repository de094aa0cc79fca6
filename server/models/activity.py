"""What happens: visitor passes, access and device events, commands, alerts, the audit log."""

from __future__ import annotations

import re
from datetime import datetime
from secrets import token_hex
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from gatekeeper.plates import skeleton
from gatekeeper.vocabulary import (
    AlertStatus,
    AlertType,
    CredentialType,
    Decision,
    Severity,
)
from hardware.protocol import Command, CommandStatus
from server.models.base import (
    Base,
    CommunityOwned,
    IdMixin,
    TimestampMixin,
    enum_column,
    utcnow,
)

pass_access_points = Table(
    "pass_access_points",
    Base.metadata,
    Column("pass_id", ForeignKey("visitor_passes.id", ondelete="CASCADE"), primary_key=True),
    Column("access_point_id", ForeignKey("access_points.id", ondelete="CASCADE"), primary_key=True),
)


class VisitorPass(IdMixin, CommunityOwned, TimestampMixin, Base):
    """A guest's pass for one unit: a time window, a use count and the doors it opens."""

    __tablename__ = "visitor_passes"
    ID_PREFIX = "pas"

    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    issued_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    issued_by_person_id: Mapped[str | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL"), index=True
    )
    # The token's serial (16 hex digits, random): what a QR code names instead of this row.
    serial: Mapped[str] = mapped_column(String(16), unique=True, default=lambda: token_hex(8))
    guest_name: Mapped[str] = mapped_column(String(80))
    plate: Mapped[str | None] = mapped_column(String(16))
    plate_skeleton: Mapped[str | None] = mapped_column(String(16), index=True)
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    max_uses: Mapped[int] = mapped_column(default=1)
    uses: Mapped[int] = mapped_column(default=0)
    revoked_at: Mapped[datetime | None]
    # SHA-256 of the share link's secret (an HMAC of the pass, so the link can be shown again).
    share_secret_hash: Mapped[str | None] = mapped_column(String(64), unique=True)

    access_points: Mapped[list[Any]] = relationship("AccessPoint", secondary=pass_access_points)

    @validates("plate")
    def _keep_skeleton(self, _key: str, plate: str | None) -> str | None:
        self.plate_skeleton = skeleton(plate) if plate else None
        return plate


class BlockedPlate(IdMixin, CommunityOwned, TimestampMixin, Base):
    """A plate barriers refuse (``plate_blocked``), with an alert to the officer."""

    __tablename__ = "blocked_plates"
    __table_args__ = (UniqueConstraint("community_id", "plate"),)
    ID_PREFIX = "blk"

    plate: Mapped[str] = mapped_column(String(16))
    skeleton: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(200))
    created_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )

    @validates("plate")
    def _keep_skeleton(self, _key: str, plate: str) -> str:
        self.skeleton = skeleton(plate)
        return plate


class VehiclePresence(IdMixin, CommunityOwned, Base):
    """A car inside the community: from its granted entry until its exit.

    ``exited_at`` null means inside. A second entry of the same plate closes the first
    (``closed_reason`` ``reentered``: its exit was not seen).
    """

    __tablename__ = "vehicle_presences"
    __table_args__ = (
        Index("ix_vehicle_presences_community_id_plate", "community_id", "plate"),
        Index("ix_vehicle_presences_community_id_exited_at", "community_id", "exited_at"),
        # The cars feed of live pages reads entries and exits by time (server.core.live).
        Index("ix_vehicle_presences_entered_at", "entered_at"),
        Index("ix_vehicle_presences_exited_at", "exited_at"),
    )
    ID_PREFIX = "vpr"

    plate: Mapped[str] = mapped_column(String(16))
    vehicle_id: Mapped[str | None] = mapped_column(ForeignKey("vehicles.id", ondelete="SET NULL"))
    pass_id: Mapped[str | None] = mapped_column(
        ForeignKey("visitor_passes.id", ondelete="SET NULL"), index=True
    )
    entered_at: Mapped[datetime]
    # No foreign keys to access_events (partitioned by month on PostgreSQL, whose key is then
    # (id, occurred_at)): server.access.retention clears these ids before an event goes.
    entry_event_id: Mapped[str | None] = mapped_column(String(40), index=True)
    exited_at: Mapped[datetime | None]
    exit_event_id: Mapped[str | None] = mapped_column(String(40), index=True)
    closed_reason: Mapped[str | None] = mapped_column(String(20))
    overstay_alerted_at: Mapped[datetime | None]


class SigningKey(Base):
    """An Ed25519 key that signs QR tokens; its public half is published to doors by id."""

    __tablename__ = "signing_keys"

    key_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    # Encrypted with DATA_KEY.
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # New tokens are signed with the newest key until this instant ...
    signs_until: Mapped[datetime]
    # ... and tokens it signed are accepted until this one (then it is deleted).
    verifies_until: Mapped[datetime]


# The monthly partitions of access_events on PostgreSQL (``access_events_2026_12``) and its
# default one: tables no model describes (migration 0017, server.access.retention).
EVENT_PARTITION = re.compile(
    r"access_events_(?P<year>\d{4})_(?P<month>\d{2})|access_events_default"
)


def is_event_partition(table_name: str) -> bool:
    """Whether a table is one of access_events' partitions (Alembic's comparisons skip them)."""
    return EVENT_PARTITION.fullmatch(table_name) is not None


class AccessEvent(IdMixin, CommunityOwned, Base):
    """One verification at an access point, granted or denied.

    On PostgreSQL the table is partitioned by month of ``occurred_at`` (migration 0017) and
    its primary key is (id, occurred_at); ids stay unique (ULIDs), and no table holds a
    foreign key to it. Whole months past every community's ``event_retention_days`` are
    dropped, younger rows deleted per community (``server.access.retention``); on SQLite it
    is one table and only the rows are deleted.
    """

    __tablename__ = "access_events"
    __table_args__ = (
        Index("ix_access_events_community_id_occurred_at", "community_id", "occurred_at"),
    )
    ID_PREFIX = "evt"

    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    access_point_id: Mapped[str | None] = mapped_column(
        ForeignKey("access_points.id", ondelete="SET NULL"), index=True
    )
    device_id: Mapped[str | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL"), index=True
    )
    credential_type: Mapped[CredentialType] = enum_column(CredentialType)
    direction: Mapped[str | None] = mapped_column(String(3))
    decision: Mapped[Decision] = enum_column(Decision)
    reason: Mapped[str] = mapped_column(String(40))
    rule: Mapped[str | None] = mapped_column(String(80))
    # Indexed with occurred_at (``server.models.indexes``): a person's events of a moment.
    person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    pass_id: Mapped[str | None] = mapped_column(
        ForeignKey("visitor_passes.id", ondelete="SET NULL"), index=True
    )
    # Distances, liveness, fuzzy-match flags ...: what explains the decision.
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Unknown faces keep their (encrypted) template so strangers can be clustered.
    template_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    snapshot_path: Mapped[str | None] = mapped_column(String(255))
    # The plate a car gate read, normalised (``details["plate"]``): what a search by plate
    # finds, through a partial index of the events that have one (migration 0018).
    plate: Mapped[str | None] = mapped_column(String(16))
    # Decided by the door from its allowlist while offline and uploaded later
    # (``offline_decision``, ``server.access.offline_decisions``; migration 0035).
    offline: Mapped[bool] = mapped_column(default=False, server_default=false())

    @validates("details")
    def _keep_plate(self, _key: str, details: dict[str, Any]) -> dict[str, Any]:
        plate = (details or {}).get("plate")
        self.plate = str(plate)[:16] if plate else None
        return details


class DeviceEvent(IdMixin, CommunityOwned, Base):
    """An event a device published on ``evt``; ingested once per (device, seq)."""

    __tablename__ = "device_events"
    __table_args__ = (
        UniqueConstraint("device_id", "seq"),
        # The alert rules look for tag reads at a reader within a window.
        Index("ix_device_events_device_id_occurred_at", "device_id", "occurred_at"),
        Index(
            "ix_device_events_community_id_type_occurred_at", "community_id", "type", "occurred_at"
        ),
    )
    ID_PREFIX = "dve"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    # Devices may number events with a microsecond clock: 64 bits.
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


class DeviceCommand(IdMixin, CommunityOwned, Base):
    """A command published to a device, and what became of it.

    ``status_at`` is when the server recorded the status (its own clock, from the issue on):
    the live pages' commands feed reads changes by it.
    """

    __tablename__ = "device_commands"
    __table_args__ = (Index("ix_device_commands_status_at", "status_at"),)
    ID_PREFIX = "cmd"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    access_point_id: Mapped[str | None] = mapped_column(
        ForeignKey("access_points.id", ondelete="SET NULL")
    )
    # The access event that opened the door; no foreign key (see VehiclePresence).
    event_id: Mapped[str | None] = mapped_column(String(40), index=True)
    issued_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    command: Mapped[Command] = enum_column(Command)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    status: Mapped[CommandStatus] = enum_column(CommandStatus, default=CommandStatus.QUEUED)
    status_at: Mapped[datetime | None]
    detail: Mapped[str | None] = mapped_column(String(255))


class Alert(IdMixin, CommunityOwned, TimestampMixin, Base):
    """Something an officer must know about; moves open -> acknowledged -> resolved."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_community_id_status", "community_id", "status"),
        # Each web process's alert stream polls for changes since its cursor.
        Index("ix_alerts_updated_at", "updated_at"),
    )
    ID_PREFIX = "alr"

    type: Mapped[AlertType] = enum_column(AlertType)
    severity: Mapped[Severity] = enum_column(Severity)
    status: Mapped[AlertStatus] = enum_column(AlertStatus, default=AlertStatus.OPEN)
    access_point_id: Mapped[str | None] = mapped_column(
        ForeignKey("access_points.id", ondelete="SET NULL")
    )
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"))
    summary: Mapped[str] = mapped_column(String(255))
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Rules update the open alert with the same key instead of raising a duplicate.
    dedup_key: Mapped[str | None] = mapped_column(String(120), index=True)
    escalated_at: Mapped[datetime | None]

    history: Mapped[list[AlertHistory]] = relationship(
        back_populates="alert", order_by="AlertHistory.at", passive_deletes=True
    )
    # Dispatch (server.alerts.dispatch, migration 0031): the officer on duty it was assigned
    # to, when and by whom; when the officer acknowledged the assignment, and when it was
    # escalated to the station for want of that.
    assignee_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    assigned_at: Mapped[datetime | None]
    assigned_by_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    assignment_acknowledged_at: Mapped[datetime | None]
    dispatch_escalated_at: Mapped[datetime | None]


class AlertHistory(IdMixin, CommunityOwned, Base):
    """One step in an alert's life: who did what, when, with what note."""

    __tablename__ = "alert_history"
    ID_PREFIX = "alh"

    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    status: Mapped[AlertStatus] = enum_column(AlertStatus)
    by_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str | None] = mapped_column(String(500))

    alert: Mapped[Alert] = relationship(back_populates="history")


class AuditEntry(IdMixin, Base):
    """A staff or officer action. ``community_id`` is empty for server-wide actions."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_community_id_at", "community_id", "at"),)
    ID_PREFIX = "aud"

    community_id: Mapped[str | None] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE")
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(60))
    target_type: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(40))
    # Never secrets, ID numbers or templates: the audit log is read widely.
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    remote_addr: Mapped[str | None] = mapped_column(String(64))


class StrangerCluster(IdMixin, CommunityOwned, TimestampMixin, Base):
    """One unknown person: unknown faces at doors closer than a tolerance to each other.

    ``status``: ``watching`` (sightings count towards a ``stranger`` alert), ``known``
    (an officer said who it is, e.g. a relative: no more alerts) or ``watchlisted``
    (promoted to the watchlist). The centroid is encrypted like every template.
    """

    __tablename__ = "stranger_clusters"
    ID_PREFIX = "stc"

    centroid_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    sightings: Mapped[int] = mapped_column(default=0)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="watching")
    alert_id: Mapped[str | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(String(500))
    marked_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # An officer's hold (server.alerts.evidence): while set, retention keeps the events and
    # crops of this stranger's sightings. Who put it and released it is in the audit log.
    held_at: Mapped[datetime | None]


class StrangerSighting(IdMixin, CommunityOwned, Base):
    """One unknown face at a door, in its cluster (the access event holds the template)."""

    __tablename__ = "stranger_sightings"
    __table_args__ = (Index("ix_stranger_sightings_cluster_id_seen_at", "cluster_id", "seen_at"),)
    ID_PREFIX = "sts"

    cluster_id: Mapped[str] = mapped_column(ForeignKey("stranger_clusters.id", ondelete="CASCADE"))
    # No foreign key (see VehiclePresence): retention deletes a sighting with its event.
    event_id: Mapped[str] = mapped_column(String(40), index=True)
    access_point_id: Mapped[str | None] = mapped_column(
        ForeignKey("access_points.id", ondelete="SET NULL")
    )
    seen_at: Mapped[datetime]


class WatchlistEntry(IdMixin, CommunityOwned, TimestampMixin, Base):
    """A wanted or missing person an officer enrolled for one community they cover."""

    __tablename__ = "watchlist_entries"
    ID_PREFIX = "wle"

    name: Mapped[str] = mapped_column(String(80))
    category: Mapped[str] = mapped_column(String(16))  # wanted | missing
    note: Mapped[str | None] = mapped_column(String(500))
    # Encrypted with DATA_KEY, like residents' templates.
    template_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    # Whether the door still opens for a hit (default: yes, so as not to tip the person off).
    door_opens: Mapped[bool] = mapped_column(default=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class PatrolRoute(IdMixin, CommunityOwned, TimestampMixin, Base):
    """Checkpoints a guard visits every round: RFID readers in the patrol_checkpoint zone.

    A round is due every ``round_minutes`` inside the weekly ``schedule`` (community time;
    null: always); a round in which a checkpoint saw no tag raises ``patrol_missed``.
    """

    __tablename__ = "patrol_routes"
    ID_PREFIX = "ptr"

    name: Mapped[str] = mapped_column(String(80))
    checkpoint_device_ids: Mapped[list[Any]] = mapped_column(default=list)
    round_minutes: Mapped[int] = mapped_column(default=60)
    schedule: Mapped[list[Any] | None]
    # The end of the last round checked, so each round is judged once.
    checked_until: Mapped[datetime | None]
    # True: a read counts only at the next checkpoint in route order (docs/alert_rules.md).
    ordered: Mapped[bool] = mapped_column(default=False, server_default=false())


class Webhook(IdMixin, CommunityOwned, TimestampMixin, Base):
    """Where a community's alerts are POSTed, signed with HMAC-SHA256 over the raw body."""

    __tablename__ = "webhooks"
    ID_PREFIX = "whk"

    url: Mapped[str] = mapped_column(String(500))
    # Encrypted with DATA_KEY; shown once when the webhook is made.
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(default=True)


class AlertDelivery(IdMixin, CommunityOwned, Base):
    """One alert sent (or being retried) on one channel: the delivery log."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        Index("ix_alert_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_alert_deliveries_community_id_created_at", "community_id", "created_at"),
    )
    ID_PREFIX = "dlv"

    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))  # mqtt | webhook | ...
    target: Mapped[str] = mapped_column(String(500))  # topic, URL ...
    # Why it was sent: raised, updated, escalated, acknowledged, resolved; dispatched,
    # dispatch_accepted, dispatch_escalated (32 characters since migration 0031).
    reason: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    response_status: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
