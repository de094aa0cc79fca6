"""Device commands: issued, recorded, published after commit, tracked to their outcome.

Every status change writes ``status_at`` with the server's clock; the commands feed of the
live pages (``server.devices.feeds``) follows them by it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, select, update

from gatekeeper.vocabulary import DEVICE_KINDS_WITH_ACCESS_POINT
from hardware.messages import AckMessage, CommandMessage
from hardware.protocol import Command, CommandStatus
from hardware.topics import device_topic
from server.core import audit, logs, metrics
from server.core.errors import Conflict, Invalid
from server.core.messaging import OutgoingMessage, queue_message, when_acked
from server.core.scope import Scope
from server.extensions import db
from server.models import AccessPoint, Device, DeviceCommand, utcnow
from server.models.ids import new_id

_LOGGER = logging.getLogger(__name__)

# What staff may send to an access point, and to one device.
ACCESS_POINT_COMMANDS = frozenset({Command.OPEN, Command.LOCK, Command.UNLOCK_HOLD})
DEVICE_COMMANDS = frozenset(Command)
# A device that answers "expired" dropped the command because it came too late.
_EXPIRED_DETAIL = "expired"
_DUPLICATE_DETAIL = "duplicate"
# The detail of a command nobody answered before it expired (pages show it in words).
NO_ANSWER_DETAIL = "no answer before expiry"
# An ack may be on its way when a command expires; give it a moment before giving up.
_ACK_GRACE = timedelta(seconds=5)


def issue(
    device: Device,
    command: Command,
    *,
    issued_by_user_id: str | None = None,
    event_id: str | None = None,
    open_ms: int | None = None,
    text: str | None = None,
) -> DeviceCommand:
    """Record a command for ``device`` and queue it for publishing when the session commits."""
    ttl = current_app.config["SETTINGS"].command_ttl_seconds
    now = utcnow()
    request_id = logs.current_request_id()  # the HTTP request that caused it, if one did
    extras = (("open_ms", open_ms), ("text", text), ("request_id", request_id))
    row = DeviceCommand(
        # Its id now: the row waits for the transaction's next flush (a verify flushes once).
        id=new_id(DeviceCommand.ID_PREFIX),
        community_id=device.community_id,
        device_id=device.id,
        access_point_id=device.access_point_id,
        event_id=event_id,
        issued_by_user_id=issued_by_user_id,
        command=command,
        payload={k: v for k, v in extras if v},
        issued_at=now,
        expires_at=now + timedelta(seconds=ttl),
        status=CommandStatus.QUEUED,
        status_at=now,
    )
    db.session.add(row)
    message = CommandMessage(
        cmd_id=row.id,
        cmd=command,
        issued_at=now,
        expires_at=row.expires_at,
        event_id=event_id,
        open_ms=open_ms,
        text=text,
        request_id=request_id,
    )
    sent = metrics.after(
        when_acked(_SENT, command_id=row.id), partial(metrics.command_outcome, "sent")
    )
    queue_message(
        db.session,
        OutgoingMessage(
            device_topic(device.community_id, device.id, "cmd"),
            message.encode(),
            expiry_s=ttl,
            on_acked=sent,
        ),
    )
    metrics.command_issued(command.value)
    _LOGGER.info("command %s (%s) queued for device %s", row.id, command.value, device.id)
    return row


_commands = DeviceCommand.__table__
# The broker took a command (``when_acked``): ``queued`` becomes ``sent``; an answer already in
# stays. Core, with bind parameters: the ack writer runs it for many commands at once.
_SENT = (
    update(_commands)
    .where(
        _commands.c.id == bindparam("command_id"),
        _commands.c.status == CommandStatus.QUEUED,
    )
    .values(status=CommandStatus.SENT, status_at=bindparam("acked_at"))
)


def actuators(point: AccessPoint) -> list[Device]:
    """The enabled doors and barriers that act for ``point``."""
    return list(
        db.session.scalars(
            select(Device)
            .where(
                Device.access_point_id == point.id,
                Device.disabled_at.is_(None),
                Device.kind.in_(DEVICE_KINDS_WITH_ACCESS_POINT),
            )
            .order_by(Device.id)
        )
    )


def open_for(
    devices: list[Device], event_id: str, open_ms: int, user_id: str | None
) -> list[DeviceCommand]:
    """``open`` to each of ``devices`` for an access event a person caused from afar (a remote
    open, a paid parking ticket)."""
    return [
        issue(device, Command.OPEN, issued_by_user_id=user_id, event_id=event_id, open_ms=open_ms)
        for device in devices
    ]


def command_access_point(
    scope: Scope, access_point_id: str, command: Command
) -> list[DeviceCommand]:
    """Staff send ``open``, ``lock`` or ``unlock_hold`` to every device of an access point."""
    point = scope.get(AccessPoint, access_point_id)
    scope.require_write(AccessPoint)
    if command not in ACCESS_POINT_COMMANDS:
        choices = ", ".join(sorted(c.value for c in ACCESS_POINT_COMMANDS))
        raise Invalid(
            _l("'%(command)s' is not sent to access points.", command=command.value),
            errors={"command": [str(_l("One of %(choices)s.", choices=choices))]},
        )
    devices = actuators(point)
    if not devices:
        raise Conflict(_l("No enabled door or barrier device serves '%(name)s'.", name=point.name))
    rows = [
        issue(
            device,
            command,
            issued_by_user_id=scope.user.id,
            open_ms=point.open_ms if command is Command.OPEN else None,
        )
        for device in devices
    ]
    audit.record(
        scope.user,
        f"access_point.{command.value}",
        community_id=point.community_id,
        target=point,
        details={"commands": [r.id for r in rows]},
    )
    return rows


def command_device(
    scope: Scope, device_id: str, command: Command, text: str | None = None
) -> DeviceCommand:
    """Staff send any command to one device (``display`` needs ``text``)."""
    device = scope.writable(Device, device_id)
    if device.disabled:
        raise Conflict(_l("The device is disabled."))
    if command is Command.DISPLAY and not text:
        raise Invalid(
            _l("display needs a text."), errors={"text": [str(_l("Required for display."))]}
        )
    point = device.access_point
    row = issue(
        device,
        command,
        issued_by_user_id=scope.user.id,
        text=text,
        open_ms=point.open_ms if point and command is Command.OPEN else None,
    )
    audit.record(
        scope.user,
        f"device.{command.value}",
        community_id=device.community_id,
        target=device,
        details={"command": row.id},
    )
    return row


def record_ack(device: Device, ack: AckMessage) -> DeviceCommand | None:
    """Apply a device's ack; None when the command is unknown or another device's."""
    row = db.session.get(DeviceCommand, ack.cmd_id)
    if row is None or row.device_id != device.id:
        return None
    request_id = (row.payload or {}).get("request_id")
    if row.status is CommandStatus.ACKED or ack.detail == _DUPLICATE_DETAIL:
        metrics.command_outcome("duplicate")
        return row  # a redelivery (QoS 1) answered "duplicate": the first answer stands
    if ack.ok:
        row.status = CommandStatus.ACKED  # the device acted: that outranks our own expiry
    elif ack.detail == _EXPIRED_DETAIL:
        row.status = CommandStatus.EXPIRED
    else:
        row.status = CommandStatus.FAILED
    # When the server learned the outcome (its clock, like every status_at: the live pages
    # read changes by it), not the device's ``ts``.
    row.status_at = utcnow()
    row.detail = ack.detail[:255] or None
    metrics.command_outcome(row.status.value)
    _LOGGER.info(
        "command %s (%s) %s by device %s",
        row.id,
        row.command.value,
        row.status.value,
        device.id,
        extra={"request_id": request_id},  # the request that caused it: its lines join ours
    )
    return row


def expire_overdue(now: datetime | None = None) -> int:
    """Mark commands still unanswered after their expiry as ``expired`` (queued ones too:
    the broker never took them in time); return how many."""
    now = now or utcnow()
    result = db.session.execute(
        update(DeviceCommand)
        .where(
            DeviceCommand.status.in_((CommandStatus.QUEUED, CommandStatus.SENT)),
            DeviceCommand.expires_at < now - _ACK_GRACE,
        )
        .values(status=CommandStatus.EXPIRED, status_at=now, detail=NO_ANSWER_DETAIL)
    )
    metrics.command_outcome("no_answer", result.rowcount or 0)
    return result.rowcount or 0
