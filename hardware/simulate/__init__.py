"""Simulated devices that speak the device protocol (docs/protocol.md) for real.

Doors, barriers, RFID readers and panic buttons, over ``MqttBus`` against a real
broker or over ``MemoryBus`` in unit tests; ``python -m hardware.simulate`` runs them
from the command line (docs/simulators.md).
"""

from hardware.simulate.actuators import AccessPointDevice, Barrier, Door
from hardware.simulate.device import (
    Action,
    DeviceIdentity,
    DeviceKind,
    EventSequence,
    SimulatedDevice,
)
from hardware.simulate.fleet import (
    Fleet,
    FleetEntry,
    FleetFileError,
    build_device,
    load_fleet_file,
)
from hardware.simulate.sensors import PanicButton, RfidReader
from hardware.simulate.verify import VerifyClient, VerifyError

__all__ = [
    "AccessPointDevice",
    "Action",
    "Barrier",
    "DeviceIdentity",
    "DeviceKind",
    "Door",
    "EventSequence",
    "Fleet",
    "FleetEntry",
    "FleetFileError",
    "PanicButton",
    "RfidReader",
    "SimulatedDevice",
    "VerifyClient",
    "VerifyError",
    "build_device",
    "load_fleet_file",
]
