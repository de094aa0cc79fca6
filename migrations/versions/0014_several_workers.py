"""several workers: one heartbeat row each with its leadership, devices' status time

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-09 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    # The single worker's row ("worker") gives way to one row per worker ("worker:<id>").
    op.execute(sa.text("DELETE FROM service_heartbeats WHERE name = 'worker'"))
    with op.batch_alter_table('service_heartbeats', schema=None) as batch_op:
        batch_op.alter_column(
            'name', existing_type=sa.String(length=40), type_=sa.String(length=120)
        )
        batch_op.add_column(sa.Column('mqtt_client_id', sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column('leader', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column('leader_since', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_status_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('last_status_at')

    op.execute(sa.text("DELETE FROM service_heartbeats"))
    with op.batch_alter_table('service_heartbeats', schema=None) as batch_op:
        batch_op.drop_column('leader_since')
        batch_op.drop_column('leader')
        batch_op.drop_column('mqtt_client_id')
        batch_op.alter_column(
            'name', existing_type=sa.String(length=120), type_=sa.String(length=40)
        )
