"""PostgreSQL tells the portal's live feed of a notification (migration 0025's ``gk_live``
triggers), made and read, at the commit."""

from __future__ import annotations

import psycopg
import pytest

from server.extensions import db
from server.notifications import service as notifications
from server.notifications.kinds import Kind
from tests.support.passes import pass_site


@pytest.mark.postgresql  # notifications
def test_a_notification_made_and_read_notifies_gk_live(app, database_url) -> None:
    site = pass_site(app)
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute("LISTEN gk_live")
        with app.app_context():
            [row] = notifications.notify(
                [site.resident_person], Kind.LEASE_ENDING, community_id=site.a, date="2026-12-01"
            )
            db.session.commit()
            notifications.mark_read(row.user_id)
            db.session.commit()
            db.session.remove()
        told = [n.payload for n in listener.notifies(timeout=5, stop_after=2)]
    assert told == [f"notifications:{site.a}", f"notifications:{site.a}"]
