"""Simulated sensors that only report: an RFID reader and a panic button."""

from __future__ import annotations

import re

from hardware.messages import EventMessage
from hardware.protocol import EventType
from hardware.simulate.device import DeviceKind, SimulatedDevice

_HEX = re.compile(r"^[0-9A-F]{2,64}$")


class RfidReader(SimulatedDevice):
    """A UHF/HF reader at a zone boundary: one ``tag_read`` per tag that passes."""

    kind = DeviceKind.RFID_READER

    def read_tag(self, epc: str, rssi: int = -50) -> EventMessage:
        """A tag passed: publish its EPC/UID (upper-case hex) and the signal strength."""
        tag = epc.strip().upper()
        if not _HEX.match(tag):
            raise ValueError(f"tag must be 2 to 64 hex digits, not {epc!r}")
        return self.emit(EventType.TAG_READ, tag=tag, rssi=int(rssi))


class PanicButton(SimulatedDevice):
    """A one-click alarm button."""

    kind = DeviceKind.PANIC_BUTTON

    def press(self) -> EventMessage:
        """Someone pressed the button."""
        return self.emit(EventType.PANIC)
