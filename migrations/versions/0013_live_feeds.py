"""live feeds: commands' status time always set, indexes for the pages' change feeds

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    # A command's status_at is set from its issue on (the commands feed reads by it).
    op.execute(sa.text("UPDATE device_commands SET status_at = issued_at WHERE status_at IS NULL"))
    with op.batch_alter_table('device_commands', schema=None) as batch_op:
        batch_op.create_index('ix_device_commands_status_at', ['status_at'], unique=False)

    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.create_index('ix_devices_updated_at', ['updated_at'], unique=False)

    with op.batch_alter_table('vehicle_presences', schema=None) as batch_op:
        batch_op.create_index('ix_vehicle_presences_entered_at', ['entered_at'], unique=False)
        batch_op.create_index('ix_vehicle_presences_exited_at', ['exited_at'], unique=False)


def downgrade():
    with op.batch_alter_table('vehicle_presences', schema=None) as batch_op:
        batch_op.drop_index('ix_vehicle_presences_exited_at')
        batch_op.drop_index('ix_vehicle_presences_entered_at')

    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index('ix_devices_updated_at')

    with op.batch_alter_table('device_commands', schema=None) as batch_op:
        batch_op.drop_index('ix_device_commands_status_at')
