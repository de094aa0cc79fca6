"""city indexes: open alerts first from a partial index, keyset pages of alerts and events

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 07:30:00.000000

The alert list reads its unresolved half from a partial index (``status <> 'resolved'``) and
its resolved half from alerts by time; an officer's search of every community they cover
reads access events by time. ``server.models.indexes`` declares them.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

UNRESOLVED = "status <> 'resolved'"


def upgrade():
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(
            'ix_alerts_unresolved_created_at',
            ['created_at', 'id'],
            unique=False,
            postgresql_where=sa.text(UNRESOLVED),
            sqlite_where=sa.text(UNRESOLVED),
        )
        batch_op.create_index(
            'ix_alerts_unresolved_community_id_created_at',
            ['community_id', 'created_at', 'id'],
            unique=False,
            postgresql_where=sa.text(UNRESOLVED),
            sqlite_where=sa.text(UNRESOLVED),
        )
        batch_op.create_index('ix_alerts_created_at_id', ['created_at', 'id'], unique=False)
        batch_op.create_index(
            'ix_alerts_community_id_created_at_id', ['community_id', 'created_at', 'id'], unique=False
        )

    with op.batch_alter_table('access_events', schema=None) as batch_op:
        batch_op.create_index('ix_access_events_occurred_at_id', ['occurred_at', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('access_events', schema=None) as batch_op:
        batch_op.drop_index('ix_access_events_occurred_at_id')

    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_community_id_created_at_id')
        batch_op.drop_index('ix_alerts_created_at_id')
        batch_op.drop_index('ix_alerts_unresolved_community_id_created_at')
        batch_op.drop_index('ix_alerts_unresolved_created_at')
