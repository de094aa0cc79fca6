"""door modes: lockdowns and emergency releases, stored until lifted

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 10:50:00.000000

A lockdown (every credential denied ``lockdown`` but the roles it names, doors sent ``lock``)
or an emergency release (doors held open with ``unlock_hold``) of chosen access points
(``door_mode_access_points``), a building or a whole community, from ``started_at`` until
``lifted_at``. The active ones of a community
are read on every decision: an index on (community, lifted_at). Alerts gain the type
``emergency_release`` (the CHECK of ``alerts.type`` is replaced, as 0010 did for commands).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

ALERT_TYPES = (
    'stranger', 'watchlist_hit', 'elder_wandering', 'child_wandering', 'elder_inactive',
    'panic', 'door_forced', 'door_held_open', 'tamper', 'device_offline', 'spoof_attempt',
    'plate_blocked', 'overstay', 'patrol_missed',
)
WITH_RELEASE = (*ALERT_TYPES, 'emergency_release')


def _alert_types(values):
    return sa.Enum(*values, name='alerttype', native_enum=False, create_constraint=True, length=32)


def _change_alert_types(old, new):
    """SQLite rebuilds the table with the new CHECK (batch mode); PostgreSQL swaps it."""
    constraint = op.f('ck_alerts_alerttype')
    if op.get_bind().dialect.name == 'sqlite':
        with op.batch_alter_table('alerts', schema=None) as batch_op:
            batch_op.drop_constraint(constraint, type_='check')
            batch_op.alter_column('type', existing_type=_alert_types(old), type_=_alert_types(new))
        return
    op.drop_constraint(constraint, 'alerts', type_='check')
    listed = ', '.join(f"'{value}'" for value in new)
    op.create_check_constraint(constraint, 'alerts', sa.text(f'type IN ({listed})'))


def upgrade():
    op.create_table('door_modes',
    sa.Column('kind', sa.Enum('lockdown', 'emergency_release', name='doormodekind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('scope', sa.Enum('access_point', 'building', 'community', name='modescope', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('building_id', sa.String(length=40), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('exempt_roles', sa.JSON(), nullable=False),
    sa.Column('started_by_user_id', sa.String(length=40), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lifted_by_user_id', sa.String(length=40), nullable=True),
    sa.Column('lifted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('community_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], name=op.f('fk_door_modes_building_id_buildings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_door_modes_community_id_communities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lifted_by_user_id'], ['users.id'], name=op.f('fk_door_modes_lifted_by_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['started_by_user_id'], ['users.id'], name=op.f('fk_door_modes_started_by_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_door_modes'))
    )
    with op.batch_alter_table('door_modes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_door_modes_building_id'), ['building_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_door_modes_community_id'), ['community_id'], unique=False)
        batch_op.create_index('ix_door_modes_community_id_lifted_at', ['community_id', 'lifted_at'], unique=False)

    op.create_table('door_mode_access_points',
    sa.Column('door_mode_id', sa.String(length=40), nullable=False),
    sa.Column('access_point_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['access_point_id'], ['access_points.id'], name=op.f('fk_door_mode_access_points_access_point_id_access_points'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['door_mode_id'], ['door_modes.id'], name=op.f('fk_door_mode_access_points_door_mode_id_door_modes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('door_mode_id', 'access_point_id', name=op.f('pk_door_mode_access_points'))
    )
    with op.batch_alter_table('door_mode_access_points', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_door_mode_access_points_access_point_id'), ['access_point_id'], unique=False)

    _change_alert_types(ALERT_TYPES, WITH_RELEASE)


def downgrade():
    op.execute("DELETE FROM alerts WHERE type = 'emergency_release'")
    _change_alert_types(WITH_RELEASE, ALERT_TYPES)
    with op.batch_alter_table('door_mode_access_points', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_door_mode_access_points_access_point_id'))

    op.drop_table('door_mode_access_points')
    with op.batch_alter_table('door_modes', schema=None) as batch_op:
        batch_op.drop_index('ix_door_modes_community_id_lifted_at')
        batch_op.drop_index(batch_op.f('ix_door_modes_community_id'))
        batch_op.drop_index(batch_op.f('ix_door_modes_building_id'))

    op.drop_table('door_modes')
