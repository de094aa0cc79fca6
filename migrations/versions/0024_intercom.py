"""intercom: the door intercom's calls, followed live by residents' pages and the guard booth

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 11:00:00.000000

One row per call a visitor placed at a door (``server.models.intercom``). On PostgreSQL the
table notifies ``gk_live`` like the other live feeds' tables (migration 0015), so the pages
that ring hear of a call at its commit.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

STATUSES = ('ringing', 'rolled_over', 'answered', 'refused', 'timed_out')
# Access events gain the credential type 'intercom' (the CHECK of their credential_type).
CREDENTIALS = ('face', 'qr', 'plate', 'card', 'tag', 'remote', 'pin')
CREDENTIALS_AFTER = (*CREDENTIALS, 'intercom')


def _credentials(values):
    return sa.Enum(*values, name='credentialtype', native_enum=False, create_constraint=True, length=32)


def _change_credentials(old, new):
    """SQLite rebuilds the table with the new CHECK (batch mode); PostgreSQL swaps it on the
    partitioned table (its partitions follow)."""
    constraint = op.f('ck_access_events_credentialtype')
    if op.get_bind().dialect.name == 'sqlite':
        with op.batch_alter_table('access_events', schema=None) as batch_op:
            batch_op.drop_constraint(constraint, type_='check')
            batch_op.alter_column('credential_type', existing_type=_credentials(old), type_=_credentials(new))
        return
    op.drop_constraint(constraint, 'access_events', type_='check')
    listed = ', '.join(f"'{value}'" for value in new)
    op.create_check_constraint(constraint, 'access_events', sa.text(f'credential_type IN ({listed})'))


def upgrade():
    _change_credentials(CREDENTIALS, CREDENTIALS_AFTER)
    op.create_table('intercom_calls',
    sa.Column('access_point_id', sa.String(length=40), nullable=False),
    sa.Column('device_id', sa.String(length=40), nullable=True),
    sa.Column('unit_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.Enum(*STATUSES, name='intercomstatus', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('snapshot', sa.LargeBinary(), nullable=True),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('device_event_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ring_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('guard_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answered_by_user_id', sa.String(length=40), nullable=True),
    sa.Column('event_id', sa.String(length=40), nullable=True),
    sa.Column('snapshot_erased_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('community_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['access_point_id'], ['access_points.id'], name=op.f('fk_intercom_calls_access_point_id_access_points'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['answered_by_user_id'], ['users.id'], name=op.f('fk_intercom_calls_answered_by_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_intercom_calls_community_id_communities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_intercom_calls_device_id_devices'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_intercom_calls_unit_id_units'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intercom_calls'))
    )
    with op.batch_alter_table('intercom_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_intercom_calls_access_point_id'), ['access_point_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_intercom_calls_community_id'), ['community_id'], unique=False)
        batch_op.create_index('ix_intercom_calls_community_id_status', ['community_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_intercom_calls_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_intercom_calls_event_id'), ['event_id'], unique=False)
        batch_op.create_index('ix_intercom_calls_status_at', ['status_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_intercom_calls_unit_id'), ['unit_id'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        # The live feed's notifications (gk_live_notify() is migration 0015's).
        op.execute(
            "CREATE TRIGGER intercom_calls_live_insert AFTER INSERT ON intercom_calls "
            "FOR EACH ROW EXECUTE FUNCTION gk_live_notify('intercom')"
        )
        op.execute(
            "CREATE TRIGGER intercom_calls_live_update AFTER UPDATE ON intercom_calls "
            "FOR EACH ROW WHEN (NEW.status_at IS DISTINCT FROM OLD.status_at) "
            "EXECUTE FUNCTION gk_live_notify('intercom')"
        )


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS intercom_calls_live_update ON intercom_calls")
        op.execute("DROP TRIGGER IF EXISTS intercom_calls_live_insert ON intercom_calls")
    with op.batch_alter_table('intercom_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_intercom_calls_unit_id'))
        batch_op.drop_index('ix_intercom_calls_status_at')
        batch_op.drop_index(batch_op.f('ix_intercom_calls_event_id'))
        batch_op.drop_index(batch_op.f('ix_intercom_calls_device_id'))
        batch_op.drop_index('ix_intercom_calls_community_id_status')
        batch_op.drop_index(batch_op.f('ix_intercom_calls_community_id'))
        batch_op.drop_index(batch_op.f('ix_intercom_calls_access_point_id'))

    op.drop_table('intercom_calls')
    op.execute("DELETE FROM access_events WHERE credential_type = 'intercom'")
    _change_credentials(CREDENTIALS_AFTER, CREDENTIALS)
