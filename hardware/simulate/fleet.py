"""Many simulated devices in one process, described by a JSON fleet file.

The file is a JSON list of objects::

    [{"kind": "door", "device_id": "dev_...", "secret": "...", "community_id": "...",
      "name": "3号楼1单元", "access_point_id": "acp_..."}]

``kind`` is one of ``door``, ``barrier``, ``rfid_reader``, ``panic_button``; ``name``
and ``access_point_id`` (what a door checks QR passes against offline) are optional and
other fields are ignored.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hardware.simulate.actuators import AccessPointDevice, Barrier, Door
from hardware.simulate.device import BrokerTarget, DeviceIdentity, DeviceKind, SimulatedDevice
from hardware.simulate.sensors import PanicButton, RfidReader

_LOGGER = logging.getLogger(__name__)

DEVICE_CLASSES: dict[DeviceKind, type[SimulatedDevice]] = {
    DeviceKind.DOOR: Door,
    DeviceKind.BARRIER: Barrier,
    DeviceKind.RFID_READER: RfidReader,
    DeviceKind.PANIC_BUTTON: PanicButton,
}


class FleetFileError(ValueError):
    """A fleet file that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class FleetEntry:
    """One device of a fleet file."""

    kind: DeviceKind
    identity: DeviceIdentity


def build_device(
    kind: DeviceKind | str,
    identity: DeviceIdentity,
    broker: BrokerTarget,
    *,
    api: str | None = None,
    heartbeat_s: float = 60.0,
    state_dir: str | Path | None = None,
) -> SimulatedDevice:
    """A simulated device of ``kind`` (not started). Doors and barriers keep their allowlist
    and unsent offline decisions in ``state_dir/<device_id>`` when ``state_dir`` is given."""
    device_class = DEVICE_CLASSES[DeviceKind(kind)]
    if state_dir is not None and issubclass(device_class, AccessPointDevice):
        return device_class(
            identity,
            broker,
            api=api,
            heartbeat_s=heartbeat_s,
            state_dir=Path(state_dir) / identity.device_id,
        )
    return device_class(identity, broker, api=api, heartbeat_s=heartbeat_s)


def parse_fleet(data: object) -> list[FleetEntry]:
    """Fleet entries from decoded JSON; raises ``FleetFileError``."""
    if not isinstance(data, list) or not data:
        raise FleetFileError("a fleet file is a non-empty JSON list of devices")
    entries: list[FleetEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        where = f"device {index}"
        if not isinstance(item, dict):
            raise FleetFileError(f"{where}: not a JSON object")
        try:
            kind = DeviceKind(item.get("kind"))
        except ValueError:
            kinds = ", ".join(k.value for k in DeviceKind)
            raise FleetFileError(f"{where}: kind must be one of {kinds}") from None
        values = {}
        for name in ("device_id", "secret", "community_id"):
            value = item.get(name)
            if not isinstance(value, str) or not value:
                raise FleetFileError(f"{where}: {name} must be a non-empty string")
            values[name] = value
        name = item.get("name") or ""
        if not isinstance(name, str):
            raise FleetFileError(f"{where}: name must be a string")
        access_point_id = item.get("access_point_id") or None
        if access_point_id is not None and not isinstance(access_point_id, str):
            raise FleetFileError(f"{where}: access_point_id must be a string")
        if values["device_id"] in seen:
            raise FleetFileError(f"{where}: device_id {values['device_id']!r} appears twice")
        seen.add(values["device_id"])
        entries.append(
            FleetEntry(kind, DeviceIdentity(name=name, access_point_id=access_point_id, **values))
        )
    return entries


def load_fleet_file(path: str | Path) -> list[FleetEntry]:
    """Read and check a fleet file; raises ``FleetFileError`` with a readable message."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise FleetFileError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise FleetFileError(f"{path} is not JSON: {error}") from None
    try:
        return parse_fleet(data)
    except FleetFileError as error:
        raise FleetFileError(f"{path}: {error}") from None


class Fleet:
    """Starts and stops a set of devices together; ``devices`` is keyed by device id."""

    def __init__(self, devices: Iterable[SimulatedDevice]):
        self.devices: dict[str, SimulatedDevice] = {d.device_id: d for d in devices}

    @classmethod
    def from_entries(
        cls,
        entries: Iterable[FleetEntry],
        broker: BrokerTarget,
        *,
        api: str | None = None,
        heartbeat_s: float = 60.0,
        state_dir: str | Path | None = None,
    ) -> Fleet:
        """Build (not start) one device per entry."""
        return cls(
            build_device(
                e.kind, e.identity, broker, api=api, heartbeat_s=heartbeat_s, state_dir=state_dir
            )
            for e in entries
        )

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        broker: BrokerTarget,
        *,
        api: str | None = None,
        heartbeat_s: float = 60.0,
    ) -> Fleet:
        """Build (not start) the devices of a fleet file; raises ``FleetFileError``."""
        return cls.from_entries(load_fleet_file(path), broker, api=api, heartbeat_s=heartbeat_s)

    def start(self) -> None:
        """Start every device (each connects in the background)."""
        for device in self.devices.values():
            device.start()
        _LOGGER.info("fleet of %d devices started", len(self.devices))

    def wait_ready(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` in all) until every device is connected and subscribed."""
        deadline = time.monotonic() + timeout
        return all(
            device.wait_ready(max(0.0, deadline - time.monotonic()))
            for device in self.devices.values()
        )

    def stop(self) -> None:
        """Disconnect every device cleanly (offline status first)."""
        for device in self.devices.values():
            device.stop()
        _LOGGER.info("fleet stopped")
