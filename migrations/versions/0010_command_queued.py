"""commands are queued until the broker acknowledges them: the status 'queued'

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 17:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

NAME = "commandstatus"
BEFORE = ("sent", "acked", "failed", "expired")
AFTER = ("queued", *BEFORE)


def _statuses(values):
    return sa.Enum(*values, name=NAME, native_enum=False, create_constraint=True, length=32)


def _change(old, new):
    """SQLite rebuilds the table with the new CHECK (batch mode); PostgreSQL swaps it."""
    constraint = op.f(f"ck_device_commands_{NAME}")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("device_commands", schema=None) as batch_op:
            batch_op.drop_constraint(constraint, type_="check")
            batch_op.alter_column("status", existing_type=_statuses(old), type_=_statuses(new))
        return
    op.drop_constraint(constraint, "device_commands", type_="check")
    listed = ", ".join(f"'{value}'" for value in new)
    op.create_check_constraint(constraint, "device_commands", sa.text(f"status IN ({listed})"))


def upgrade():
    _change(BEFORE, AFTER)


def downgrade():
    op.execute("UPDATE device_commands SET status = 'sent' WHERE status = 'queued'")
    _change(AFTER, BEFORE)
