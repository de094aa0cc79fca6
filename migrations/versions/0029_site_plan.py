"""site plan: an uploaded plan per community; access points and devices placed on it

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07 14:05:00.000000

``site_plans`` holds one picture per community (PNG or JPEG, the plan staff upload).
``access_points.plan_x/plan_y`` and ``devices.plan_x/plan_y`` place them on it, as fractions
of the picture's width and height (0..1 from the top left), so a new picture of the same
plan at another size keeps every mark; null: not placed.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'site_plans',
        sa.Column('community_id', sa.String(length=40), nullable=False),
        sa.Column('content_type', sa.String(length=40), nullable=False),
        sa.Column('image', sa.LargeBinary(), nullable=False),
        sa.Column('width', sa.Integer(), nullable=False),
        sa.Column('height', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['community_id'], ['communities.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('community_id'),
    )
    for name in ('access_points', 'devices'):
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(sa.Column('plan_x', sa.Double(), nullable=True))
            batch_op.add_column(sa.Column('plan_y', sa.Double(), nullable=True))


def downgrade():
    for name in ('devices', 'access_points'):
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_column('plan_y')
            batch_op.drop_column('plan_x')
    op.drop_table('site_plans')
