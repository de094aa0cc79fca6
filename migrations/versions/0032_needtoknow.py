"""need to know: a list's read of personal data names the people it showed

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07 14:20:00.000000

A read of a list of people (``what`` ``person_list``) is one ``data_reads`` row, not one
per person listed; ``person_ids`` holds the ids of the people on the page that was read, so
a supervisor (or a person's export) still finds every list that showed someone.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("data_reads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_ids", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("data_reads", schema=None) as batch_op:
        batch_op.drop_column("person_ids")
