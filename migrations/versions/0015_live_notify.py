"""live notify: PostgreSQL triggers that tell the live feeds' broadcasters of each change

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-10 09:00:00.000000

Each table a live feed follows (``server.core.live``) notifies ``gk_live`` with
``'<feed>:<community id>'`` when a row is inserted or its change time moves; PostgreSQL
delivers it at the commit, once per distinct payload and transaction. The broadcasters of
the web processes listen instead of polling every 200 ms. SQLite has no notifications: its
broadcasters keep polling, and this migration changes nothing there.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

# (table, feed, the columns whose change is a change of the feed): server.core.live's feeds.
FEEDS = (
    ('alerts', 'alerts', ('updated_at',)),
    ('device_commands', 'commands', ('status_at',)),
    ('devices', 'devices', ('updated_at',)),
    ('vehicle_presences', 'cars', ('entered_at', 'exited_at')),
)


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(
        """
        CREATE FUNCTION gk_live_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('gk_live', TG_ARGV[0] || ':' || NEW.community_id);
            RETURN NULL;
        END
        $$
        """
    )
    for table, feed, columns in FEEDS:
        moved = ' OR '.join(f'NEW.{c} IS DISTINCT FROM OLD.{c}' for c in columns)
        op.execute(
            f"CREATE TRIGGER {table}_live_insert AFTER INSERT ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION gk_live_notify('{feed}')"
        )
        op.execute(
            f"CREATE TRIGGER {table}_live_update AFTER UPDATE ON {table} "
            f"FOR EACH ROW WHEN ({moved}) EXECUTE FUNCTION gk_live_notify('{feed}')"
        )


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, _feed, _columns in FEEDS:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_live_update ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_live_insert ON {table}")
    op.execute("DROP FUNCTION IF EXISTS gk_live_notify()")
