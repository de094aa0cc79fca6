"""The resident portal's notifications: the list (live), marking read, and the choices.

``/my/notifications`` lists what the resident was told, newest first, and follows the
``notifications`` feed (``server.notifications.feeds``: only their own rows) so that a new
one appears and the unread count in the portal's header moves while the page is open.
``/my/notifications/settings`` is the form of which kinds reach them on which channel, and
the button that subscribes this browser to Web Push (``static/push.js``, where the server
has a VAPID key).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.wrappers import Response

from server.extensions import db
from server.models import UserRole
from server.notifications import feeds  # noqa: F401 - registers the live feed
from server.notifications import service as notifications
from server.notifications.kinds import CHANNEL_LABELS, KINDS, Channel, Kind, line
from server.notifications.push import public_key
from server.web import bp
from server.web.helpers import flash_ok, signed_in_user
from server.web.live import stream_url
from server.web.portal import _resident


@bp.app_template_global("notifications_unread")
def notifications_unread() -> int:
    """The signed-in resident's unread notifications (the portal's header)."""
    user = signed_in_user()
    if user.role is not UserRole.RESIDENT:
        return 0
    return notifications.unread_count(user.id)


@bp.app_template_filter("notification_time")
def notification_time(value: datetime, zone: str) -> str:
    """When a notification was made, as the list's script writes it: ``YYYY-MM-DD HH:MM``."""
    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


@bp.get("/my/notifications")
@login_required
def portal_notifications() -> str:
    resident = _resident()
    rows = notifications.listed(resident.user.id)
    zone = resident.community.timezone
    return render_template(
        "portal_notifications.html",
        section="notifications",
        resident=resident,
        items=[(row, line(row.kind, row.params or {}, zone)) for row in rows],
        unread=notifications.unread_count(resident.user.id),
        texts={kind.value: str(text.line) for kind, text in KINDS.items()},
        zone=zone,
        stream=stream_url(resident.scope, resident.community.id, "notifications"),
    )


@bp.post("/my/notifications/read")
@login_required
def portal_notifications_read() -> Response:
    resident = _resident()
    notifications.mark_read(resident.user.id)
    db.session.commit()
    return redirect(url_for("web.portal_notifications"))


@bp.route("/my/notifications/settings", methods=["GET", "POST"])
@login_required
def portal_notification_settings() -> Any:
    resident = _resident()
    if request.method == "POST":
        notifications.set_preferences(
            resident.user.id,
            {
                kind: {
                    channel: request.form.get(f"{kind.value}.{channel.value}") == "on"
                    for channel in Channel
                }
                for kind in Kind
            },
        )
        db.session.commit()
        flash_ok(_("Your choices are saved."))
        return redirect(url_for("web.portal_notification_settings"))
    return render_template(
        "portal_notification_settings.html",
        section="notifications",
        resident=resident,
        kinds=KINDS,
        channels=CHANNEL_LABELS,
        chosen=notifications.preferences(resident.user.id),
        push_key=public_key(),
    )
