"""courier codes: keypads on access points, one-time codes for them, keypad lockouts

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 11:00:00.000000

An access point may have a keypad (``has_keypad``); residents and staff issue six-digit codes
for it (``courier_codes``: only a keyed hash of the digits is stored); too many wrong codes
lock the keypad for a while (``keypad_lockouts``). Access events gain the credential type
``pin`` and alerts the type ``keypad_locked``: their CHECK constraints are widened.
"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

CREDENTIALS_BEFORE = ('face', 'qr', 'plate', 'card', 'tag', 'remote')
CREDENTIALS_AFTER = (*CREDENTIALS_BEFORE, 'pin')
ALERTS_BEFORE = (
    'stranger', 'watchlist_hit', 'elder_wandering', 'child_wandering', 'elder_inactive',
    'panic', 'door_forced', 'door_held_open', 'tamper', 'device_offline', 'spoof_attempt',
    'plate_blocked', 'overstay', 'patrol_missed', 'emergency_release',
)
ALERTS_AFTER = (*ALERTS_BEFORE, 'keypad_locked')


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
    with op.batch_alter_table('access_points', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('has_keypad', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        'courier_codes',
        sa.Column('access_point_id', sa.String(length=40), nullable=False),
        sa.Column('unit_id', sa.String(length=40), nullable=True),
        sa.Column('building_id', sa.String(length=40), nullable=True),
        sa.Column('issued_by_user_id', sa.String(length=40), nullable=True),
        sa.Column('issued_by_person_id', sa.String(length=40), nullable=True),
        sa.Column('label', sa.String(length=80), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('hint', sa.String(length=2), nullable=False),
        sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
        sa.Column('valid_until', sa.DateTime(timezone=True), nullable=False),
        sa.Column('max_uses', sa.Integer(), nullable=False),
        sa.Column('uses', sa.Integer(), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('community_id', sa.String(length=40), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['access_point_id'], ['access_points.id'], name=op.f('fk_courier_codes_access_point_id_access_points'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], name=op.f('fk_courier_codes_building_id_buildings'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_courier_codes_community_id_communities'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['issued_by_person_id'], ['people.id'], name=op.f('fk_courier_codes_issued_by_person_id_people'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['issued_by_user_id'], ['users.id'], name=op.f('fk_courier_codes_issued_by_user_id_users'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_courier_codes_unit_id_units'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_courier_codes')),
    )
    with op.batch_alter_table('courier_codes', schema=None) as batch_op:
        batch_op.create_index('ix_courier_codes_access_point_id_code_hash', ['access_point_id', 'code_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_courier_codes_building_id'), ['building_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_courier_codes_community_id'), ['community_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_courier_codes_issued_by_person_id'), ['issued_by_person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_courier_codes_unit_id'), ['unit_id'], unique=False)
    op.create_table(
        'keypad_lockouts',
        sa.Column('access_point_id', sa.String(length=40), nullable=False),
        sa.Column('locked_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('alert_id', sa.String(length=40), nullable=True),
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('community_id', sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(['access_point_id'], ['access_points.id'], name=op.f('fk_keypad_lockouts_access_point_id_access_points'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_keypad_lockouts_alert_id_alerts'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_keypad_lockouts_community_id_communities'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_keypad_lockouts')),
    )
    with op.batch_alter_table('keypad_lockouts', schema=None) as batch_op:
        batch_op.create_index('ix_keypad_lockouts_access_point_id_locked_until', ['access_point_id', 'locked_until'], unique=False)
        batch_op.create_index(batch_op.f('ix_keypad_lockouts_community_id'), ['community_id'], unique=False)
    _widen('access_events', 'credential_type', 'credentialtype', CREDENTIALS_BEFORE, CREDENTIALS_AFTER)
    _widen('alerts', 'type', 'alerttype', ALERTS_BEFORE, ALERTS_AFTER)


def downgrade():
    op.execute("DELETE FROM alerts WHERE type = 'keypad_locked'")
    _widen('alerts', 'type', 'alerttype', ALERTS_AFTER, ALERTS_BEFORE)
    op.execute("DELETE FROM access_events WHERE credential_type = 'pin'")
    _widen('access_events', 'credential_type', 'credentialtype', CREDENTIALS_AFTER, CREDENTIALS_BEFORE)
    with op.batch_alter_table('keypad_lockouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_keypad_lockouts_community_id'))
        batch_op.drop_index('ix_keypad_lockouts_access_point_id_locked_until')
    op.drop_table('keypad_lockouts')
    with op.batch_alter_table('courier_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_courier_codes_unit_id'))
        batch_op.drop_index(batch_op.f('ix_courier_codes_issued_by_person_id'))
        batch_op.drop_index(batch_op.f('ix_courier_codes_community_id'))
        batch_op.drop_index(batch_op.f('ix_courier_codes_building_id'))
        batch_op.drop_index('ix_courier_codes_access_point_id_code_hash')
    op.drop_table('courier_codes')
    with op.batch_alter_table('access_points', schema=None) as batch_op:
        batch_op.drop_column('has_keypad')
