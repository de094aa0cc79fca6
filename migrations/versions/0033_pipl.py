"""pipl: people erased on request; indexes for the retention of notifications and deliveries

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07 14:25:00.000000

``people.erased_at`` says a person's data was erased on request (server.privacy.erasure):
the row stays, with a pseudonym for a name. Retention deletes each community's old
notifications and deliveries (server.privacy.retention) through the new indexes.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_notifications_community_id_created_at",
        "notifications",
        ["community_id", "created_at"],
    )
    op.create_index(
        "ix_notification_deliveries_community_id_created_at",
        "notification_deliveries",
        ["community_id", "created_at"],
    )
    op.create_index(
        "ix_alert_deliveries_community_id_created_at",
        "alert_deliveries",
        ["community_id", "created_at"],
    )


def downgrade():
    op.drop_index("ix_alert_deliveries_community_id_created_at", table_name="alert_deliveries")
    op.drop_index(
        "ix_notification_deliveries_community_id_created_at",
        table_name="notification_deliveries",
    )
    op.drop_index("ix_notifications_community_id_created_at", table_name="notifications")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
