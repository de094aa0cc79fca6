"""data reads: who read whose personal data, what and why; staff supervisors

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07 14:10:00.000000

``data_reads`` records every read of a person's data by staff, officers and administrators
(PIPL): the audit viewer shows them to supervisors, the person's export lists them.
``users.supervisor`` marks the staff who may read the audit log of their communities.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "data_reads",
        sa.Column("community_id", sa.String(length=40), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_user_id", sa.String(length=40), nullable=True),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("person_id", sa.String(length=40), nullable=False),
        sa.Column("what", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=True),
        sa.Column("alert_id", sa.String(length=40), nullable=True),
        sa.Column("remote_addr", sa.String(length=64), nullable=True),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["actor_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["community_id"], ["communities.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_data_reads_community_id_at", "data_reads", ["community_id", "at"])
    op.create_index("ix_data_reads_person_id_at", "data_reads", ["person_id", "at"])
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("supervisor", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("supervisor")
    op.drop_index("ix_data_reads_person_id_at", table_name="data_reads")
    op.drop_index("ix_data_reads_community_id_at", table_name="data_reads")
    op.drop_table("data_reads")
