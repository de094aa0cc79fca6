"""event partitions: access_events partitioned by month on PostgreSQL, no foreign keys to it

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 08:00:00.000000

On PostgreSQL ``access_events`` becomes a table partitioned by RANGE (occurred_at), one
partition per month (``access_events_YYYY_MM``) from the oldest row's month to three months
ahead, and ``access_events_default`` for anything outside them; the rows are copied. Its
primary key becomes (id, occurred_at), as PostgreSQL requires the partition key in every
unique constraint. ``server.access.retention`` creates the months ahead and drops those past
every community's retention.

A foreign key cannot reference a partitioned table's ``id`` alone, and retention removes
events, so the columns that named an event (``vehicle_presences.entry_event_id`` and
``exit_event_id``, ``device_commands.event_id``, ``stranger_sightings.event_id``) lose their
foreign keys, on both databases (one schema, one model), and gain an index: retention
clears them (or deletes the sighting) before the event goes, as ON DELETE did.

Columns, check constraints, foreign keys and indexes of the partitioned table are copied
from the table as it is (whatever earlier migrations made), not spelled here.
"""
import re
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

TABLE = 'access_events'
MOVED = 'access_events_unpartitioned'
MONTHS_AHEAD = 3

# (table, column, ON DELETE of the foreign key it had)
REFERENCES = (
    ('vehicle_presences', 'entry_event_id', 'SET NULL'),
    ('vehicle_presences', 'exit_event_id', 'SET NULL'),
    ('device_commands', 'event_id', 'SET NULL'),
    ('stranger_sightings', 'event_id', 'CASCADE'),
)


def _fk_name(table, column):
    return f'fk_{table}_{column}_{TABLE}'


def upgrade():
    for table, column, _ondelete in REFERENCES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(_fk_name(table, column), type_='foreignkey')
            batch_op.create_index(f'ix_{table}_{column}', [column], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        _partition()


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        _unpartition()
    # What retention removed may still be named: as ON DELETE would have done.
    for table, column, ondelete in REFERENCES:
        orphans = f'{column} IS NOT NULL AND {column} NOT IN (SELECT id FROM {TABLE})'
        if ondelete == 'CASCADE':
            op.execute(f'DELETE FROM {table} WHERE {orphans}')
        else:
            op.execute(f'UPDATE {table} SET {column} = NULL WHERE {orphans}')
    for table, column, ondelete in REFERENCES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f'ix_{table}_{column}')
            batch_op.create_foreign_key(
                _fk_name(table, column), TABLE, [column], ['id'], ondelete=ondelete
            )


def _month(moment):
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _next(month):
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def _rebuild(partitioned):
    """Move ``access_events`` aside, make it anew (partitioned by month or plain), copy the
    rows, drop the old one, then give the new one the old one's keys and indexes."""
    bind = op.get_bind()
    op.execute(f'ALTER TABLE {TABLE} RENAME TO {MOVED}')
    indexes = bind.execute(
        sa.text(
            'SELECT indexname, indexdef FROM pg_indexes '
            'WHERE schemaname = current_schema() AND tablename = :t AND indexname NOT IN '
            '(SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass))'
        ),
        {'t': MOVED},
    ).all()
    foreign_keys = bind.execute(
        sa.text(
            'SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint '
            "WHERE conrelid = CAST(:t AS regclass) AND contype = 'f' ORDER BY conname"
        ),
        {'t': MOVED},
    ).all()
    how = ' PARTITION BY RANGE (occurred_at)' if partitioned else ''
    op.execute(
        f'CREATE TABLE {TABLE} (LIKE {MOVED} INCLUDING DEFAULTS INCLUDING CONSTRAINTS){how}'
    )
    if partitioned:
        oldest = bind.scalar(sa.text(f'SELECT min(occurred_at) FROM {MOVED}'))
        now = datetime.now(UTC)
        month, last = _month(min(oldest or now, now)), _month(now)
        for _ in range(MONTHS_AHEAD):
            last = _next(last)
        while month <= last:
            op.execute(
                f'CREATE TABLE {TABLE}_{month:%Y_%m} PARTITION OF {TABLE} '
                f"FOR VALUES FROM ('{month.isoformat()}') TO ('{_next(month).isoformat()}')"
            )
            month = _next(month)
        op.execute(f'CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT')
    op.execute(f'INSERT INTO {TABLE} SELECT * FROM {MOVED}')
    op.execute(f'DROP TABLE {MOVED}')  # its partitions too, when it had some
    key = 'id, occurred_at' if partitioned else 'id'
    op.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT pk_{TABLE} PRIMARY KEY ({key})')
    for name, definition in foreign_keys:
        op.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT {name} {definition}')
    on_moved = re.compile(rf'\bON (ONLY )?(\S+\.)?{MOVED}\b')
    for _name, definition in indexes:
        op.execute(on_moved.sub(f'ON {TABLE}', definition, count=1))


def _partition():
    _rebuild(partitioned=True)


def _unpartition():
    _rebuild(partitioned=False)
