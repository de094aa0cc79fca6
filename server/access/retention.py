"""How long access events are kept: whole months on PostgreSQL, rows per community.

Each community keeps its access events ``event_retention_days`` (its settings; 180 by
default). On PostgreSQL ``access_events`` is partitioned by month of ``occurred_at``
(migration 0017: ``access_events_2026_12`` ..., and ``access_events_default`` for the rest),
so the bulk of the history goes as whole tables: a month whose every row is older than the
longest retention of any community is dropped, which costs no table scan, no dead rows and
no vacuum. Younger rows of communities that keep less are deleted in batches, each batch its
own transaction, through the ``(community_id, occurred_at)`` index. The months ahead are
created in advance, so new events never land in the default partition. SQLite has one table:
only the rows are deleted.

No table holds a foreign key to an event (a partitioned table's ``id`` is not unique on its
own); what named an event is cleared first, as ON DELETE did: the cars' entry and exit
events and the commands' events become null, stranger sightings are deleted with their
event, and the events' face crops are erased.

Held evidence stays (``server.alerts.evidence.held_event_ids``: the events an open or
recently resolved alert names, and the sightings of a stranger an officer holds): those
rows are never deleted, and a month that holds one is not dropped but kept as a table;
its other rows go row by row (every one is past its community's retention), so the
partition is dropped by the first run after its last hold ends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, column, delete, select, table, text, update

from server.access import snapshots
from server.alerts.evidence import held_event_ids
from server.community import settings as community_settings
from server.extensions import db
from server.models import (
    AccessEvent,
    Community,
    DeviceCommand,
    ParkingTicket,
    StrangerSighting,
    VehiclePresence,
    utcnow,
)
from server.models.activity import EVENT_PARTITION

_LOGGER = logging.getLogger(__name__)

# Months created ahead of the current one.
MONTHS_AHEAD = 3
# Rows deleted per transaction.
BATCH = 2000

TABLE = AccessEvent.__tablename__
DEFAULT_PARTITION = f"{TABLE}_default"


@dataclass(frozen=True)
class RetentionRun:
    """What one run of ``enforce`` did."""

    partitions_created: tuple[str, ...] = ()
    partitions_dropped: tuple[str, ...] = ()
    events_deleted: int = 0


def month_start(moment: datetime) -> datetime:
    """The first instant (UTC) of the month ``moment`` is in."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month(month: datetime) -> datetime:
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    """``access_events_2026_12``: the partition of the month starting at ``month``."""
    return f"{TABLE}_{month:%Y_%m}"


def is_partitioned() -> bool:
    """Whether ``access_events`` is partitioned here (PostgreSQL after migration 0017)."""
    if db.session.get_bind().dialect.name != "postgresql":
        return False
    return bool(
        db.session.scalar(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table "
                "WHERE partrelid = to_regclass(:t))"
            ),
            {"t": TABLE},
        )
    )


def monthly_partitions() -> dict[str, datetime]:
    """The monthly partitions of ``access_events``, each with its month's first instant."""
    names = db.session.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": TABLE},
    )
    found = {}
    for name in names:
        match = EVENT_PARTITION.fullmatch(name)
        if match and match["year"]:
            found[name] = datetime(int(match["year"]), int(match["month"]), 1, tzinfo=UTC)
    return found


def longest_retention_days() -> int:
    """The most days any community keeps its events (the default's when there is none)."""
    stored = db.session.scalars(select(Community.settings)).all()
    return max(
        (community_settings.effective(s).event_retention_days for s in stored),
        default=community_settings.DEFAULTS.event_retention_days,
    )


def create_partitions_ahead(now: datetime, months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create the partitions of this month and the next ``months_ahead`` that are missing,
    and of any earlier month the default partition holds rows of.

    Rows of such a month already in the default partition move into the new one, in the
    same transaction (PostgreSQL refuses a partition whose rows the default holds).
    """
    existing = monthly_partitions()
    created = []
    last = month_start(now)
    for _ in range(months_ahead):
        last = next_month(last)
    # Months before this one whose events sit in the default partition (rows written late:
    # uploads, imports, a month created too late) get their own partition as well.
    oldest = db.session.scalar(text(f"SELECT min(occurred_at) FROM {DEFAULT_PARTITION}"))  # noqa: S608
    month = min(month_start(now), month_start(oldest)) if oldest else month_start(now)
    while month <= last:
        if partition_name(month) not in existing and ensure_partition(month):
            created.append(partition_name(month))
        month = next_month(month)
    if created:
        _LOGGER.info("access events: partitions created: %s", ", ".join(created))
    return created


def ensure_partition(month: datetime) -> bool:
    """Make the partition of the month that starts at ``month`` unless it exists; whether
    it was made. Rows of that month in the default partition move into it."""
    name, start, end = partition_name(month), month_start(month), next_month(month_start(month))
    if db.session.scalar(text("SELECT to_regclass(:name)"), {"name": name}) is not None:
        return False
    # DDL takes no parameters: the bounds are our own datetimes, the name our own format.
    bounds = f"FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    db.session.execute(
        text(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    )
    db.session.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "  # noqa: S608 - our names
            "WHERE occurred_at >= :start AND occurred_at < :end RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved"
        ),
        {"start": start, "end": end},
    )
    # Attaching builds the partition's indexes and keys from the parent's.
    db.session.execute(text(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES {bounds}"))
    return True


def drop_expired_partitions(now: datetime) -> list[str]:
    """Drop each monthly partition whose every row is older than the longest retention.

    Each in its own transaction (what named its events is cleared in it), then its crops.
    """
    cutoff = now - timedelta(days=longest_retention_days())
    held = held_event_ids(now)
    dropped = []
    for name, month in sorted(monthly_partitions().items(), key=lambda item: item[1]):
        if next_month(month) > cutoff:
            continue
        events = table(name, column("id"), column("snapshot_path"))
        if held and db.session.scalar(select(events.c.id).where(events.c.id.in_(held)).limit(1)):
            # Kept: its unheld rows are deleted row by row (``delete_expired_events``).
            continue
        paths = _forget_events(
            select(events.c.id),
            select(events.c.snapshot_path).where(events.c.snapshot_path.is_not(None)),
        )
        db.session.execute(text(f"DROP TABLE {name}"))
        db.session.commit()
        for path in paths:
            snapshots.discard(path)
        dropped.append(name)
    if dropped:
        _LOGGER.info(
            "access events: partitions older than %s dropped: %s",
            cutoff.isoformat(),
            ", ".join(dropped),
        )
    return dropped


def delete_expired_events(now: datetime, batch: int = BATCH) -> int:
    """Delete each community's events older than its ``event_retention_days``, held
    evidence excepted; how many.

    In batches of ``batch`` rows, each committed (then their crops erased), so no long
    transaction holds the rows.
    """
    deleted = 0
    held = held_event_ids(now)
    communities = db.session.execute(select(Community.id, Community.settings)).all()
    for community_id, stored in communities:
        days = community_settings.effective(stored).event_retention_days
        cutoff = now - timedelta(days=days)
        old = (
            (AccessEvent.community_id == community_id)
            & (AccessEvent.occurred_at < cutoff)
            & AccessEvent.id.not_in(held)
        )
        while True:
            ids = db.session.scalars(select(AccessEvent.id).where(old).limit(batch)).all()
            if not ids:
                break
            paths = _forget_events(
                ids, select(AccessEvent.snapshot_path).where(AccessEvent.id.in_(ids), old)
            )
            # ``old`` again: PostgreSQL then reads only the partitions before the cutoff.
            db.session.execute(
                delete(AccessEvent).where(AccessEvent.id.in_(ids), old),
                execution_options={"synchronize_session": False},
            )
            db.session.commit()
            for path in paths:
                snapshots.discard(path)
            deleted += len(ids)
            if len(ids) < batch:
                break
    if deleted:
        _LOGGER.info("access events: %d past their community's retention deleted", deleted)
    return deleted


def _forget_events(ids: Sequence[str] | Select[Any], crops: Select[Any]) -> list[str]:
    """Clear what names these events, as ON DELETE did; the paths of their crops (which the
    caller erases once the events are gone)."""
    quick = {"synchronize_session": False}
    for model, name in (
        (VehiclePresence, "entry_event_id"),
        (VehiclePresence, "exit_event_id"),
        (DeviceCommand, "event_id"),
        (ParkingTicket, "entry_event_id"),
        (ParkingTicket, "exit_event_id"),
    ):
        reference = getattr(model, name)
        db.session.execute(
            update(model).where(reference.in_(ids)).values({name: None}), execution_options=quick
        )
    db.session.execute(
        delete(StrangerSighting).where(StrangerSighting.event_id.in_(ids)), execution_options=quick
    )
    return [p for p in db.session.scalars(crops) if p]


def enforce(now: datetime | None = None) -> RetentionRun:
    """The daily retention of access events: months ahead, months dropped, rows deleted."""
    now = now or utcnow()
    created: list[str] = []
    dropped: list[str] = []
    if is_partitioned():
        created = create_partitions_ahead(now)
        dropped = drop_expired_partitions(now)
        db.session.commit()
    return RetentionRun(tuple(created), tuple(dropped), delete_expired_events(now))
