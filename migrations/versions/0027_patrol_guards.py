"""patrol guards: only guards' tags count at checkpoints; routes may demand their order

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07 12:30:00.000000

``rfid_tags.guard`` marks a guard's tag (staff set it); only such tags count at a patrol
route's checkpoints. ``patrol_routes.ordered``: a read counts only at the next checkpoint in
the route's order.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('rfid_tags', schema=None) as batch_op:
        batch_op.add_column(sa.Column('guard', sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table('patrol_routes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ordered', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('patrol_routes', schema=None) as batch_op:
        batch_op.drop_column('ordered')

    with op.batch_alter_table('rfid_tags', schema=None) as batch_op:
        batch_op.drop_column('guard')
