"""What a test's app published (the ``published`` fixture): the commands sent to devices."""

from __future__ import annotations

from collections.abc import Iterable

from hardware.messages import CommandMessage
from hardware.protocol import Command
from server.core.messaging import OutgoingMessage


def commands(published: Iterable[OutgoingMessage]) -> list[OutgoingMessage]:
    """The commands to devices among what was published (alerts are published too)."""
    return [message for message in published if message.topic.endswith("/cmd")]


def assert_one_open(published: list[OutgoingMessage], device_id: str, event_id: str) -> None:
    """The only message published told ``device_id`` to open, for the access event ``event_id``."""
    [message] = published
    command = CommandMessage.decode(message.payload)
    assert command.cmd is Command.OPEN and command.event_id == event_id
    assert message.topic.endswith(f"/{device_id}/cmd")
