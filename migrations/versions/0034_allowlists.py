"""allowlists: each access point's published offline list, dirty communities, device keys

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07 14:45:00.000000

``allowlist_states``: per access point the version of its offline allowlist and the entries
last published (without faces: the templates' ids and update times stand in), with when the
list next changes by itself. ``allowlist_dirty``: the communities a flush touched, rebuilt by
the worker's leader (server.access.allowlists). ``devices.allowlist_public_key``: the X25519
key a face terminal registered; its lists carry faces encrypted to it.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "allowlist_states",
        sa.Column("access_point_id", sa.String(length=40), nullable=False),
        sa.Column("community_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("header", sa.JSON(), nullable=False),
        sa.Column("entries", sa.JSON(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("refresh_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["access_point_id"],
            ["access_points.id"],
            name=op.f("fk_allowlist_states_access_point_id_access_points"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_allowlist_states_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("access_point_id", name=op.f("pk_allowlist_states")),
    )
    with op.batch_alter_table("allowlist_states", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_allowlist_states_community_id"), ["community_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_allowlist_states_refresh_at"), ["refresh_at"], unique=False
        )
    op.create_table(
        "allowlist_dirty",
        sa.Column("community_id", sa.String(length=40), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_allowlist_dirty_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("community_id", name=op.f("pk_allowlist_dirty")),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allowlist_public_key", sa.LargeBinary(), nullable=True))


def downgrade():
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("allowlist_public_key")
    op.drop_table("allowlist_dirty")
    with op.batch_alter_table("allowlist_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allowlist_states_refresh_at"))
        batch_op.drop_index(batch_op.f("ix_allowlist_states_community_id"))
    op.drop_table("allowlist_states")
