"""Access events: monthly partitions on PostgreSQL, retention per community on both databases."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, select, text

from gatekeeper.vocabulary import CredentialType, Decision
from hardware.protocol import Command
from server import create_app
from server.access import retention, snapshots
from server.extensions import db
from server.models import (
    AccessEvent,
    Community,
    DeviceCommand,
    StrangerCluster,
    StrangerSighting,
    VehiclePresence,
    utcnow,
)
from tests import factories
from tests.conftest import app_environment
from tests.factories import Api

_names = itertools.count()


def _community(retention_days: int) -> Community:
    community = factories.community()
    community.settings = {"event_retention_days": retention_days}
    db.session.commit()
    return community


def _event(community: Community | str, at: datetime, **values: object) -> AccessEvent:
    event = AccessEvent(
        community_id=getattr(community, "id", community),
        occurred_at=at,
        credential_type=CredentialType.CARD,
        decision=Decision.DENY,
        reason="unknown_card",
        **values,
    )
    db.session.add(event)
    db.session.commit()
    return event


def _stored_before(community: str, ident: str, at: datetime | None = None) -> str:
    """An event stored by hand, in the columns every revision has."""
    db.session.execute(
        text(
            "INSERT INTO access_events (id, community_id, occurred_at, credential_type, "
            "decision, reason, details) VALUES (:id, :community, :at, 'card', 'deny', "
            "'unknown_card', '{}')"
        ),
        {"id": ident, "community": community, "at": at or utcnow()},
    )
    db.session.commit()
    return ident


def _partition_of(event_id: str) -> str:
    return db.session.scalar(
        text("SELECT tableoid::regclass::text FROM access_events WHERE id = :id"), {"id": event_id}
    )


def _month(now: datetime, offset: int) -> datetime:
    """The first instant of the month ``offset`` months after (before, when negative) now's."""
    month = retention.month_start(now)
    for _ in range(offset):
        month = retention.next_month(month)
    for _ in range(-offset):
        month = (month - timedelta(days=1)).replace(day=1)
    return month


def _referrers(community: Community, event: AccessEvent) -> tuple[str, str, str]:
    """A car that entered, a command and a stranger sighting, each naming ``event``."""
    point = factories.access_point(community)
    device, _secret = factories.device(point)
    cluster = StrangerCluster(
        community_id=community.id,
        centroid_encrypted=b"x",
        first_seen_at=event.occurred_at,
        last_seen_at=event.occurred_at,
    )
    db.session.add(cluster)
    db.session.flush()
    rows = (
        VehiclePresence(
            community_id=community.id,
            plate="浙B12345",
            entered_at=event.occurred_at,
            entry_event_id=event.id,
            exit_event_id=event.id,
        ),
        DeviceCommand(
            community_id=community.id,
            device_id=device.id,
            command=Command.OPEN,
            event_id=event.id,
            expires_at=event.occurred_at,
        ),
        StrangerSighting(
            community_id=community.id,
            cluster_id=cluster.id,
            event_id=event.id,
            seen_at=event.occurred_at,
        ),
    )
    db.session.add_all(rows)
    db.session.commit()
    return rows[0].id, rows[1].id, rows[2].id


def _assert_forgotten(referrers: tuple[str, str, str]) -> None:
    presence_id, command_id, sighting_id = referrers
    db.session.expire_all()
    presence = db.session.get(VehiclePresence, presence_id)
    assert presence.entry_event_id is None and presence.exit_event_id is None
    assert db.session.get(DeviceCommand, command_id).event_id is None
    assert db.session.get(StrangerSighting, sighting_id) is None


def _crop(event: AccessEvent) -> Path:
    """A (fake) kept face crop of ``event``."""
    snapshots.store(event, b"jpeg")
    db.session.commit()
    return snapshots._root() / event.snapshot_path


def test_each_community_keeps_its_events_for_its_retention(ctx) -> None:
    now = utcnow()
    short = _community(30)
    default = factories.community()
    old_short = _event(short, now - timedelta(days=31))
    crop = _crop(old_short)
    referrers = _referrers(short, old_short)
    kept = {
        _event(short, now - timedelta(days=29)).id,
        _event(default, now - timedelta(days=31)).id,
        _event(default, now - timedelta(days=179)).id,
    }
    _event(default, now - timedelta(days=181))
    assert retention.delete_expired_events(now, batch=1) == 2
    assert set(db.session.scalars(select(AccessEvent.id))) == kept
    assert not crop.exists()
    _assert_forgotten(referrers)
    assert retention.delete_expired_events(now) == 0


def test_a_retention_is_bounded(world, client) -> None:
    api = Api(client, "admin")
    for days, status in ((6, 422), (3651, 422), (7, 200), (3650, 200)):
        answer = api.patch(f"/communities/{world.a}", {"settings": {"event_retention_days": days}})
        assert answer.status_code == status, (days, answer.json)
    assert answer.json["settings"]["event_retention_days"] == 3650


@pytest.mark.postgresql
def test_events_land_in_their_month_and_the_job_makes_and_drops_months(ctx) -> None:
    now = utcnow()
    assert db.session.scalar(
        text(
            "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'access_events'::regclass"
        )
    )
    assert retention.is_partitioned()
    community = _community(30)
    _community(60)  # the longest retention: 60 days
    # The migration made this month and three ahead.
    current = _event(community, now).id
    ahead = _event(community, _month(now, 2) + timedelta(days=3)).id
    assert _partition_of(current) == retention.partition_name(_month(now, 0))
    assert _partition_of(ahead) == retention.partition_name(_month(now, 2))

    # An event of a month before this one with no partition (written late: an upload, an
    # import) waits in the default partition; the job gives that month its partition too.
    late_month = _month(now, -2)
    db.session.execute(text(f"DROP TABLE IF EXISTS {retention.partition_name(late_month)}"))
    db.session.commit()
    late = _event(community, late_month + timedelta(days=5)).id
    assert _partition_of(late) == retention.DEFAULT_PARTITION
    created = retention.create_partitions_ahead(now)
    db.session.commit()
    assert retention.partition_name(late_month) in created
    assert _partition_of(late) == retention.partition_name(late_month)
    db.session.execute(text("DELETE FROM access_events WHERE id = :id"), {"id": late})
    db.session.commit()

    # A month far ahead is not there yet: its events wait in the default partition until the
    # job makes the month, which takes them.
    far = _month(now, 14)
    early = _event(community, far + timedelta(hours=5)).id
    assert _partition_of(early) == retention.DEFAULT_PARTITION
    created = retention.create_partitions_ahead(far, months_ahead=1)
    db.session.commit()
    assert created == [retention.partition_name(far), retention.partition_name(_month(now, 15))]
    assert _partition_of(early) == retention.partition_name(far)
    assert retention.create_partitions_ahead(far, months_ahead=1) == []
    db.session.execute(text("DELETE FROM access_events WHERE id = :id"), {"id": early})
    db.session.commit()

    # Old months: one past the longest retention goes whole, one within it stays.
    gone_month, kept_month = _month(now, -4), _month(now, -1)
    for month in (gone_month, kept_month):
        retention.ensure_partition(month)  # kept_month's may be there already (the late one)
    db.session.commit()
    gone_event = _event(community, gone_month + timedelta(days=2))
    crop = _crop(gone_event)
    referrers = _referrers(community, gone_event)
    gone = gone_event.id
    within_at = kept_month + timedelta(days=20)
    within = _event(community, within_at).id
    assert _partition_of(gone) == retention.partition_name(gone_month)

    run = retention.enforce(now)
    assert retention.partition_name(gone_month) in run.partitions_dropped
    assert retention.partition_name(kept_month) not in run.partitions_dropped
    partitions = retention.monthly_partitions()
    assert retention.partition_name(gone_month) not in partitions
    assert retention.partition_name(kept_month) in partitions
    assert retention.partition_name(_month(now, 3)) in partitions
    remaining = set(db.session.scalars(select(AccessEvent.id)))
    assert gone not in remaining and {current, ahead} <= remaining
    # Within the longest retention but past its community's 30 days: deleted row by row.
    assert (within in remaining) == (within_at >= now - timedelta(days=30))
    assert not crop.exists()
    _assert_forgotten(referrers)


def test_the_migration_keeps_the_rows_and_partitions_from_the_oldest(
    workdir: Path, new_database
) -> None:
    app = create_app(app_environment(workdir, new_database(f"partitions_{next(_names)}")))
    old = datetime(2025, 3, 14, 9, 26, tzinfo=UTC)
    with app.app_context():
        upgrade(revision="0016")
        community = factories.community().id
        # Rows of that schema (the model has columns of later migrations): by hand.
        ids = {_stored_before(community, "evt_old", old), _stored_before(community, "evt_now")}
        db.session.remove()
        upgrade()
        assert set(db.session.scalars(select(AccessEvent.id))) == ids
        if db.engine.dialect.name == "postgresql":
            partitions = retention.monthly_partitions()
            assert min(partitions.values()) == datetime(2025, 3, 1, tzinfo=UTC)
            assert retention.partition_name(retention.month_start(utcnow())) in partitions
            assert {_partition_of(i) for i in ids} <= set(partitions)
            schema = inspect(db.engine)
            assert schema.get_pk_constraint("access_events")["constrained_columns"] == [
                "id",
                "occurred_at",
            ]
            assert {
                fk["constrained_columns"][0] for fk in schema.get_foreign_keys("access_events")
            } == {"community_id", "access_point_id", "device_id", "person_id", "pass_id"}
        _event(community, utcnow())
        db.session.remove()
        downgrade(revision="0016")
        assert len(db.session.scalars(select(AccessEvent.id)).all()) == 3
        if db.engine.dialect.name == "postgresql":
            assert not db.session.scalar(text("SELECT count(*) FROM pg_partitioned_table"))
        db.session.remove()
        db.engine.dispose()
