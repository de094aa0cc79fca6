"""holidays: a community's holiday calendar, the access points each holiday closes or
gives other hours

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 10:45:00.000000

A holiday is a local date or a period ``[first_day, last_day]`` (the community's zone),
``closed`` or with other ``hours`` (weekly windows), for the listed access points or for all
of them. The verify path reads the holidays covering today (``community_id``, ``last_day``).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('holidays',
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('effect', sa.Enum('closed', 'hours', name='holidayeffect', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('hours', sa.JSON(), nullable=True),
    sa.Column('all_points', sa.Boolean(), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('community_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_holidays_community_id_communities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holidays'))
    )
    with op.batch_alter_table('holidays', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_holidays_community_id'), ['community_id'], unique=False)
        batch_op.create_index('ix_holidays_community_id_last_day', ['community_id', 'last_day'], unique=False)

    op.create_table('holiday_access_points',
    sa.Column('holiday_id', sa.String(length=40), nullable=False),
    sa.Column('access_point_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['access_point_id'], ['access_points.id'], name=op.f('fk_holiday_access_points_access_point_id_access_points'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['holiday_id'], ['holidays.id'], name=op.f('fk_holiday_access_points_holiday_id_holidays'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('holiday_id', 'access_point_id', name=op.f('pk_holiday_access_points'))
    )


def downgrade():
    op.drop_table('holiday_access_points')
    with op.batch_alter_table('holidays', schema=None) as batch_op:
        batch_op.drop_index('ix_holidays_community_id_last_day')
        batch_op.drop_index(batch_op.f('ix_holidays_community_id'))

    op.drop_table('holidays')
