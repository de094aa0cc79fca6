"""event plates: the plate a car gate read, as a column of access events, to search by

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 09:30:00.000000

A plate event kept the plate only in ``details``; event search and exports find events by
plate (``plate``, normalised as the barrier's decision normalised it), through a partial
index of the events that have one: where has this car been, newest first. Existing events get
their plate from ``details``.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

HAS_PLATE = "plate IS NOT NULL"


def upgrade():
    with op.batch_alter_table('access_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plate', sa.String(length=16), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(
            "UPDATE access_events SET plate = left(details ->> 'plate', 16) "
            "WHERE details ->> 'plate' IS NOT NULL"
        )
    else:
        op.execute(
            "UPDATE access_events SET plate = substr(json_extract(details, '$.plate'), 1, 16) "
            "WHERE json_extract(details, '$.plate') IS NOT NULL"
        )
    with op.batch_alter_table('access_events', schema=None) as batch_op:
        batch_op.create_index(
            'ix_access_events_plate_occurred_at',
            ['plate', 'occurred_at'],
            unique=False,
            postgresql_where=sa.text(HAS_PLATE),
            sqlite_where=sa.text(HAS_PLATE),
        )


def downgrade():
    with op.batch_alter_table('access_events', schema=None) as batch_op:
        batch_op.drop_index('ix_access_events_plate_occurred_at')
        batch_op.drop_column('plate')
