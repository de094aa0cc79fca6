"""The portal's live feed of notifications (``server.core.live``): ``notifications``.

Every state of a notification (made, read) by ``changed_at``; only the account it tells
follows it (a resident owns their rows, nobody reads anyone else's). The page words the
line itself, from the kind and the params (``portal_notifications.html``).
"""

from __future__ import annotations

from typing import Any

from server.core import live
from server.models import Notification, UserRole


def notification_payload(row: Notification) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "params": row.params or {},
        "in_portal": row.in_portal,
        "created_at": row.created_at.isoformat(),
        "read_at": row.read_at.isoformat() if row.read_at is not None else None,
    }


NOTIFICATIONS = live.register(
    live.Feed(
        name="notifications",
        model=Notification,
        changed=(Notification.changed_at,),
        community=Notification.community_id,
        event="notification",
        payload=notification_payload,
        owner=Notification.user_id,
        owners=frozenset({UserRole.RESIDENT}),
    )
)
