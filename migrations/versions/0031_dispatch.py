"""dispatch: officers on duty with a position; alerts assigned to an officer

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07 14:20:00.000000

``officer_duties`` says whether an officer is on duty and where they are (an access point:
where they last said they are, or the place of the last alert they acknowledged or
resolved). ``alerts.assignee_id`` and the columns beside it record a dispatch: the officer,
when and by whom, when the officer acknowledged it and when it was escalated to the station.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "officer_duties",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("on_duty", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("access_point_id", sa.String(length=40), nullable=True),
        sa.Column("position_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["access_point_id"], ["access_points.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignee_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("assigned_by_id", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("assignment_acknowledged_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("dispatch_escalated_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_alerts_assignee_id_users"),
            "users",
            ["assignee_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_alerts_assigned_by_id_users"),
            "users",
            ["assigned_by_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(batch_op.f("ix_alerts_assignee_id"), ["assignee_id"], unique=False)
    # The dispatch reasons (dispatch_escalated: 18 characters) are longer than 16.
    with op.batch_alter_table("alert_deliveries", schema=None) as batch_op:
        batch_op.alter_column(
            "reason", existing_type=sa.String(length=16), type_=sa.String(length=32)
        )


def downgrade():
    op.execute(
        "DELETE FROM alert_deliveries WHERE reason IN "
        "('dispatched', 'dispatch_accepted', 'dispatch_escalated')"
    )
    with op.batch_alter_table("alert_deliveries", schema=None) as batch_op:
        batch_op.alter_column(
            "reason", existing_type=sa.String(length=32), type_=sa.String(length=16)
        )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_assignee_id"))
        batch_op.drop_constraint(batch_op.f("fk_alerts_assigned_by_id_users"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_alerts_assignee_id_users"), type_="foreignkey")
        batch_op.drop_column("dispatch_escalated_at")
        batch_op.drop_column("assignment_acknowledged_at")
        batch_op.drop_column("assigned_by_id")
        batch_op.drop_column("assigned_at")
        batch_op.drop_column("assignee_id")
    op.drop_table("officer_duties")
