"""offline events: access events a door decided from its allowlist while offline

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-07 15:00:00.000000

Access events gain ``offline`` (false for every event so far): the door decided from its
allowlist and uploaded the decision later (``offline_decision``, docs/protocol.md section
6). On PostgreSQL ``access_events`` is partitioned (0017): the column added to the parent
reaches every partition. Uploads are stored once per device and ``seq`` by the unique
``(device_id, seq)`` of ``device_events``, as ``pass_used``; the access event keeps the
device event's id in its details. Alerts gain the type ``offline_grant_refused``: their
CHECK constraint is widened.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0035'
down_revision = '0034'
branch_labels = None
depends_on = None

ALERTS_BEFORE = (
    'stranger', 'watchlist_hit', 'elder_wandering', 'child_wandering', 'elder_inactive',
    'panic', 'door_forced', 'door_held_open', 'tamper', 'device_offline', 'spoof_attempt',
    'plate_blocked', 'overstay', 'patrol_missed', 'emergency_release', 'keypad_locked',
    'plate_face_mismatch', 'tag_exit_without_face', 'impossible_travel',
)
ALERTS_AFTER = (*ALERTS_BEFORE, 'offline_grant_refused')


def _enum(values, name):
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def _widen(table, column, name, old, new):
    """SQLite rebuilds the table with the new CHECK (batch mode); PostgreSQL swaps it."""
    constraint = op.f(f'ck_{table}_{name}')
    if op.get_bind().dialect.name == 'sqlite':
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(constraint, type_='check')
            batch_op.alter_column(column, existing_type=_enum(old, name), type_=_enum(new, name))
        return
    op.drop_constraint(constraint, table, type_='check')
    listed = ', '.join(f"'{value}'" for value in new)
    op.create_check_constraint(constraint, table, sa.text(f'{column} IN ({listed})'))


def upgrade():
    with op.batch_alter_table('access_events', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('offline', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    _widen('alerts', 'type', 'alerttype', ALERTS_BEFORE, ALERTS_AFTER)


def downgrade():
    op.execute("DELETE FROM alerts WHERE type = 'offline_grant_refused'")
    _widen('alerts', 'type', 'alerttype', ALERTS_AFTER, ALERTS_BEFORE)
    with op.batch_alter_table('access_events', schema=None) as batch_op:
        batch_op.drop_column('offline')
