"""temporary cars: parking tickets by plate, their fee at the exit and the payment

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 11:00:00.000000

An unknown plate let in at a barrier where the community allows temporary cars gets a
ticket (``server.access.parking``); its exit reads the fee from the community's tariff
(``gatekeeper.tariff``, in fen), and staff or the guard record the payment. The cars page
follows the tickets live (the ``parking`` feed: a ``gk_live`` trigger on PostgreSQL).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('parking_tickets',
    sa.Column('plate', sa.String(length=16), nullable=False),
    sa.Column('status', sa.Enum('inside', 'due', 'paid', 'free', 'reentered', name='ticketstatus', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('presence_id', sa.String(length=40), nullable=True),
    sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('entry_event_id', sa.String(length=40), nullable=True),
    sa.Column('entry_access_point_id', sa.String(length=40), nullable=True),
    sa.Column('exit_read_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('exit_event_id', sa.String(length=40), nullable=True),
    sa.Column('exit_access_point_id', sa.String(length=40), nullable=True),
    sa.Column('exit_device_id', sa.String(length=40), nullable=True),
    sa.Column('fee_fen', sa.Integer(), nullable=True),
    sa.Column('fee_breakdown', sa.JSON(), nullable=False),
    sa.Column('exited_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paid_fen', sa.Integer(), nullable=True),
    sa.Column('payment_method', sa.Enum('cash', 'wechat', 'alipay', name='paymentmethod', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('paid_by_user_id', sa.String(length=40), nullable=True),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('community_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_parking_tickets_community_id_communities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['presence_id'], ['vehicle_presences.id'], name=op.f('fk_parking_tickets_presence_id_vehicle_presences'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['entry_access_point_id'], ['access_points.id'], name=op.f('fk_parking_tickets_entry_access_point_id_access_points'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['exit_access_point_id'], ['access_points.id'], name=op.f('fk_parking_tickets_exit_access_point_id_access_points'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['exit_device_id'], ['devices.id'], name=op.f('fk_parking_tickets_exit_device_id_devices'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['paid_by_user_id'], ['users.id'], name=op.f('fk_parking_tickets_paid_by_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_tickets'))
    )
    with op.batch_alter_table('parking_tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parking_tickets_community_id'), ['community_id'], unique=False)
        batch_op.create_index('ix_parking_tickets_community_id_plate', ['community_id', 'plate'], unique=False)
        batch_op.create_index('ix_parking_tickets_community_id_status', ['community_id', 'status'], unique=False)
        batch_op.create_index('ix_parking_tickets_updated_at', ['updated_at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':  # the parking feed (0015's gk_live_notify)
        op.execute(
            "CREATE TRIGGER parking_tickets_live_insert AFTER INSERT ON parking_tickets "
            "FOR EACH ROW EXECUTE FUNCTION gk_live_notify('parking')"
        )
        op.execute(
            "CREATE TRIGGER parking_tickets_live_update AFTER UPDATE ON parking_tickets "
            "FOR EACH ROW WHEN (NEW.updated_at IS DISTINCT FROM OLD.updated_at) "
            "EXECUTE FUNCTION gk_live_notify('parking')"
        )


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS parking_tickets_live_update ON parking_tickets")
        op.execute("DROP TRIGGER IF EXISTS parking_tickets_live_insert ON parking_tickets")
    with op.batch_alter_table('parking_tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_parking_tickets_updated_at')
        batch_op.drop_index('ix_parking_tickets_community_id_status')
        batch_op.drop_index('ix_parking_tickets_community_id_plate')
        batch_op.drop_index(batch_op.f('ix_parking_tickets_community_id'))
    op.drop_table('parking_tickets')
