"""Commands to doors and barriers, and what devices reported."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hardware.protocol import Command
from server.access import doormodes as door_modes
from server.access import remote
from server.api import authenticated_blueprint, scope
from server.api.pagination import paginated
from server.api.schemas import (
    AccessPointCommandSchema,
    CommandSchema,
    DeviceCommandRequestSchema,
    DeviceEventSchema,
)
from server.extensions import db
from server.models import Device, DeviceCommand, DeviceEvent

blp = authenticated_blueprint("commands", "Commands to devices and their outcome; device events")


@blp.post("/access-points/<apid>/commands")
@blp.arguments(AccessPointCommandSchema)
@blp.response(202, CommandSchema(many=True))
def command_access_point(data: dict[str, Any], apid: str) -> Any:
    """Send ``open``, ``lock`` or ``unlock_hold`` to every device of an access point (staff).

    The commands are published after they are stored; follow them with ``GET /commands/{id}``.
    """
    rows = door_modes.command_access_point(scope(), apid, Command(data["command"]))
    db.session.commit()
    return rows


@blp.post("/access-points/<apid>/open")
@blp.response(202, CommandSchema(many=True))
def open_access_point(apid: str) -> Any:
    """Open an access point remotely: staff any they run, residents the doors their policy
    allows now (letting in a courier). Rate-limited per account, audited, and recorded as an
    access event (``remote_open``)."""
    rows = remote.open_access_point(scope(), apid)
    db.session.commit()
    return rows


@blp.post("/devices/<device_id>/commands")
@blp.arguments(DeviceCommandRequestSchema)
@blp.response(202, CommandSchema)
def command_device(data: dict[str, Any], device_id: str) -> Any:
    """Send any command to one device, e.g. ``display`` with a ``text`` or ``reboot``."""
    row = door_modes.command_device(scope(), device_id, data["command"], data.get("text"))
    db.session.commit()
    return row


@blp.get("/commands/<cmd_id>")
@blp.response(200, CommandSchema)
def get_command(cmd_id: str) -> Any:
    """A command and its outcome: ``sent``, ``acked``, ``failed`` or ``expired``."""
    return scope().get(DeviceCommand, cmd_id)


@blp.get("/devices/<device_id>/commands")
@blp.response(200, CommandSchema(many=True))
@blp.paginate()
def list_device_commands(device_id: str, pagination_parameters: Any) -> Any:
    """Commands sent to a device, newest first."""
    device = scope().get(Device, device_id)
    query = select(DeviceCommand).where(DeviceCommand.device_id == device.id)
    return paginated(query.order_by(DeviceCommand.issued_at.desc()), pagination_parameters)


@blp.get("/devices/<device_id>/events")
@blp.response(200, DeviceEventSchema(many=True))
@blp.paginate()
def list_device_events(device_id: str, pagination_parameters: Any) -> Any:
    """Events a device published (door contact, forced, tamper, panic, tag reads), newest first."""
    device = scope().get(Device, device_id)
    query = select(DeviceEvent).where(DeviceEvent.device_id == device.id)
    return paginated(query.order_by(DeviceEvent.seq.desc()), pagination_parameters)
