"""person events by time: a person's access events read by person and time, not all of them

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07 21:00:00.000000

The card-against-the-walk check (``server.alerts.cross_checks``) reads a person's card
grants of the last minutes on every card grant; with an index of ``person_id`` alone it read
the person's whole history to find them. ``(person_id, occurred_at)`` replaces it: every
read by person alone uses it as well. On PostgreSQL ``access_events`` is partitioned (0017):
an index made or dropped on the parent is made or dropped on every partition.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0036'
down_revision = '0035'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('access_events', schema=None) as batch_op:
        batch_op.create_index(
            'ix_access_events_person_id_occurred_at', ['person_id', 'occurred_at'], unique=False
        )
        batch_op.drop_index('ix_access_events_person_id')


def downgrade():
    with op.batch_alter_table('access_events', schema=None) as batch_op:
        batch_op.create_index('ix_access_events_person_id', ['person_id'], unique=False)
        batch_op.drop_index('ix_access_events_person_id_occurred_at')
