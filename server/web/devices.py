"""The staff device console: live state of every device, recent traffic, open/lock buttons.

The page follows the ``devices`` and ``commands`` feeds (``server.web.live``): a device's
online state and a command's outcome change in place, in the words the page gives its script.
"""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from flask_login import login_required
from werkzeug.wrappers import Response

from hardware.protocol import Command, CommandStatus, EventType
from server.access import doormodes as door_modes
from server.core.errors import DomainError
from server.core.wording import word
from server.devices import commands
from server.extensions import db
from server.models import AccessPoint, Community, Device, DeviceCommand, DeviceEvent
from server.web import bp
from server.web.helpers import (
    access_points_of,
    community_rows,
    desk_scope,
    flash_error,
    flash_ok,
)
from server.web.live import stream_url

RECENT = 15
# What the server itself writes as a command's outcome detail (devices write their own).
COMMAND_DETAILS: dict[str | None, LazyString] = {
    commands.NO_ANSWER_DETAIL: _l("no answer before expiry"),
}


def event_words(value: str) -> str:
    """A device event's type (stored as text) in words."""
    try:
        return word(EventType(value))
    except ValueError:
        return value


@bp.get("/communities/<cid>/devices")
@login_required
def device_console(cid: str) -> str:
    scope = desk_scope()
    community = scope.get(Community, cid)
    points = access_points_of(scope, community.id)
    devices = community_rows(scope, Device, community.id, Device.name)
    names = {d.id: d.name for d in devices}
    recent_commands = community_rows(
        scope, DeviceCommand, community.id, DeviceCommand.issued_at.desc(), limit=RECENT
    )
    recent_events = community_rows(
        scope, DeviceEvent, community.id, DeviceEvent.received_at.desc(), limit=RECENT
    )
    return render_template(
        "devices.html",
        community=community,
        points=points,
        devices=devices,
        names=names,
        commands=recent_commands,
        events=recent_events,
        can_command=scope.can_write(AccessPoint),
        point_commands=[Command.OPEN, Command.LOCK, Command.UNLOCK_HOLD],
        command_details=COMMAND_DETAILS,
        event_words=event_words,
        # The words static/devices.js writes when a command's outcome changes.
        command_statuses={status.value: word(status) for status in CommandStatus},
        command_detail_words={key: str(text) for key, text in COMMAND_DETAILS.items() if key},
        stream=stream_url(scope, community.id, "commands", "devices"),
    )


@bp.post("/access-points/<apid>/command")
@login_required
def command_access_point(apid: str) -> Response:
    scope = desk_scope()
    point = scope.get(AccessPoint, apid)
    try:
        command = Command(request.form.get("command", ""))
        rows = door_modes.command_access_point(scope, point.id, command)
        db.session.commit()
        flash_ok(
            _(
                "%(command)s sent to %(name)s (%(count)s device(s)).",
                command=word(command),
                name=point.name,
                count=len(rows),
            )
        )
    except ValueError:
        flash_error(_("Unknown command."))
    except DomainError as error:
        db.session.rollback()
        flash_error(error.detail)
    return redirect(url_for("web.device_console", cid=point.community_id))
