"""Rows the live feeds follow, changed as another process would change them: a command
issued, marked sent, answered by its device (the worker's ack), a car entering and leaving."""

from __future__ import annotations

from datetime import datetime

from flask import Flask
from sqlalchemy import update

from hardware.messages import AckMessage
from hardware.protocol import Command, CommandStatus
from server.devices import commands
from server.extensions import db
from server.models import Device, DeviceCommand, VehiclePresence, utcnow
from tests.support.api import in_app


def issue_in(app: Flask, device_id: str, user_id: str | None = None) -> str:
    """``open`` to a device, issued by ``user_id`` and committed; its id. The app must have a
    publisher that sends nothing (the ``published`` fixture)."""
    with in_app(app):
        device = db.session.get(Device, device_id)
        row = commands.issue(device, Command.OPEN, issued_by_user_id=user_id)
        db.session.commit()
        return row.id


def mark_sent(app: Flask, command_id: str) -> None:
    """What the broker's PUBACK records: ``queued`` becomes ``sent``."""
    with in_app(app):
        db.session.execute(
            update(DeviceCommand)
            .where(DeviceCommand.id == command_id)
            .values(status=CommandStatus.SENT, status_at=utcnow())
        )
        db.session.commit()


def ack_in(app: Flask, command_id: str, ok: bool = True, detail: str = "") -> None:
    """The device's answer, recorded as the worker records it."""
    with in_app(app):
        row = db.session.get(DeviceCommand, command_id)
        device = db.session.get(Device, row.device_id)
        ack = AckMessage(cmd_id=command_id, ok=ok, ts=utcnow(), detail=detail)
        assert commands.record_ack(device, ack) is not None
        db.session.commit()


def set_online(app: Flask, device_id: str, online: bool) -> None:
    """A device's status message, as the worker records it."""
    with in_app(app):
        device = db.session.get(Device, device_id)
        device.online = online
        if online:
            device.last_seen_at = utcnow()
        db.session.commit()


def car_enters(app: Flask, community_id: str, plate: str, at: datetime | None = None) -> str:
    """An open presence (what a granted entry at a barrier stores); its id."""
    with in_app(app):
        row = VehiclePresence(community_id=community_id, plate=plate, entered_at=at or utcnow())
        db.session.add(row)
        db.session.commit()
        return row.id


def car_leaves(app: Flask, presence_id: str) -> None:
    with in_app(app):
        row = db.session.get(VehiclePresence, presence_id)
        row.exited_at, row.closed_reason = utcnow(), "exit"
        db.session.commit()
