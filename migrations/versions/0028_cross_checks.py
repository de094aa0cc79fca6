"""cross-checks: alerts for a known car with a stranger's face, an elder's tag out with no
face, one card at two gates too far apart in the time

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07 12:30:00.000000

Alerts gain the types ``plate_face_mismatch``, ``tag_exit_without_face`` and
``impossible_travel`` (``server.alerts.cross_checks``): their CHECK constraint is widened.
"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None

ALERTS_BEFORE = (
    'stranger', 'watchlist_hit', 'elder_wandering', 'child_wandering', 'elder_inactive',
    'panic', 'door_forced', 'door_held_open', 'tamper', 'device_offline', 'spoof_attempt',
    'plate_blocked', 'overstay', 'patrol_missed', 'emergency_release', 'keypad_locked',
)
ALERTS_AFTER = (*ALERTS_BEFORE, 'plate_face_mismatch', 'tag_exit_without_face', 'impossible_travel')


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
    _widen('alerts', 'type', 'alerttype', ALERTS_BEFORE, ALERTS_AFTER)


def downgrade():
    op.execute(
        "DELETE FROM alerts WHERE type IN "
        "('plate_face_mismatch', 'tag_exit_without_face', 'impossible_travel')"
    )
    _widen('alerts', 'type', 'alerttype', ALERTS_AFTER, ALERTS_BEFORE)
