"""evidence: an officer's hold on a stranger cluster's sightings

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 12:30:00.000000

``stranger_clusters.held_at``: while set, retention keeps the events and crops of the
cluster's sightings (``server.alerts.evidence``). The hold period of an alert's evidence
is a community setting (``evidence_hold_days``, in the settings JSON): no column.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("stranger_clusters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("stranger_clusters", schema=None) as batch_op:
        batch_op.drop_column("held_at")
