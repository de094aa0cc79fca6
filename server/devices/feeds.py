"""The devices' live feeds (``server.core.live``): commands' outcomes and devices' state.

``commands``: every state of a command (queued, sent, then the device's answer or expiry),
by ``status_at``. Staff and admins follow every command of their community (the device
console); a resident follows only the commands they issued themselves (their remote opens,
on the portal's doors page), never anyone else's.

``devices``: a device's online state and last contact, by ``updated_at``; staff and admins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.core import live
from server.models import Device, DeviceCommand, UserRole

_DESK = frozenset({UserRole.ADMIN, UserRole.STAFF})


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def command_payload(row: DeviceCommand) -> dict[str, Any]:
    return {
        "id": row.id,
        "community_id": row.community_id,
        "device_id": row.device_id,
        "access_point_id": row.access_point_id,
        "command": row.command.value,
        "status": row.status.value,
        "detail": row.detail,
        "issued_at": _time(row.issued_at),
        "status_at": _time(row.status_at),
    }


def device_payload(row: Device) -> dict[str, Any]:
    return {
        "id": row.id,
        "community_id": row.community_id,
        "online": row.online,
        "disabled": row.disabled,
        "last_seen_at": _time(row.last_seen_at),
    }


COMMANDS = live.register(
    live.Feed(
        name="commands",
        model=DeviceCommand,
        changed=(DeviceCommand.status_at,),
        community=DeviceCommand.community_id,
        event="command",
        payload=command_payload,
        owner=DeviceCommand.issued_by_user_id,
        readers=_DESK,
        owners=frozenset({UserRole.RESIDENT}),
    )
)

DEVICES = live.register(
    live.Feed(
        name="devices",
        model=Device,
        changed=(Device.updated_at,),
        community=Device.community_id,
        event="device",
        payload=device_payload,
        readers=_DESK,
    )
)
