"""The staff device console: live state of every device, recent traffic, open/lock buttons."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_login import login_required
from werkzeug.wrappers import Response

from hardware.protocol import Command
from server.core.errors import DomainError
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

RECENT = 15


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
    )


@bp.post("/access-points/<apid>/command")
@login_required
def command_access_point(apid: str) -> Response:
    scope = desk_scope()
    point = scope.get(AccessPoint, apid)
    try:
        command = Command(request.form.get("command", ""))
        rows = commands.command_access_point(scope, point.id, command)
        db.session.commit()
        flash_ok(f"{command.value} sent to {point.name} ({len(rows)} device(s)).")
    except ValueError:
        flash_error("Unknown command.")
    except DomainError as error:
        db.session.rollback()
        flash_error(error.detail)
    return redirect(url_for("web.device_console", cid=point.community_id))
