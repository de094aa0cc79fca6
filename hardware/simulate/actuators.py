"""Simulated access-point devices: a unit door (lock relay + door contact) and a barrier.

Both act on ``open`` (unlock for ``open_ms``, then relock), ``lock`` (lock now,
ending an ``unlock_hold`` too), ``unlock_hold`` (stay unlocked until ``lock``),
``display`` and ``reboot``; both raise door-contact events and present credentials
to the server's HTTP verification endpoints.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, ClassVar

from hardware.messages import CommandMessage, EventMessage
from hardware.protocol import Command, EventType
from hardware.simulate.device import DeviceKind, SimulatedDevice
from hardware.simulate.verify import VerifyClient

_LOGGER = logging.getLogger(__name__)

# PROTOCOL.md gives open_ms with every open; a command without one gets this.
DEFAULT_OPEN_MS = 5000


class AccessPointDevice(SimulatedDevice):
    """What doors and barriers share: a lock that commands drive, a contact, a reader."""

    supported_commands: ClassVar[frozenset[Command]] = frozenset(Command)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.unlocked = False
        self.held = False  # unlock_hold in force
        self.is_open = False  # the door contact
        self._relock_timer: threading.Timer | None = None
        self._generation = 0

    def describe(self) -> dict[str, Any]:
        """The common state plus the lock and the door contact."""
        with self._state:
            return {
                **super().describe(),
                "unlocked": self.unlocked,
                "held": self.held,
                "is_open": self.is_open,
            }

    # commands -------------------------------------------------------------------------------

    def _act(self, command: CommandMessage) -> None:
        if command.cmd is Command.OPEN:
            open_ms = command.open_ms if command.open_ms is not None else DEFAULT_OPEN_MS
            with self._state:
                self.unlocked = True
                if not self.held:  # an open during a hold does not shorten the hold
                    self._schedule_relock(open_ms)
                self._state.notify_all()
            _LOGGER.info(
                "%s unlocked for %d ms (command %s)", self.device_id, open_ms, command.cmd_id
            )
        elif command.cmd is Command.LOCK:
            with self._state:
                self._cancel_relock()
                self.unlocked = self.held = False
                self._state.notify_all()
            _LOGGER.info("%s locked (command %s)", self.device_id, command.cmd_id)
        elif command.cmd is Command.UNLOCK_HOLD:
            with self._state:
                self._cancel_relock()
                self.unlocked = self.held = True
                self._state.notify_all()
            _LOGGER.info(
                "%s unlocked until further notice (command %s)", self.device_id, command.cmd_id
            )
        else:
            super()._act(command)

    def _schedule_relock(self, open_ms: int) -> None:
        self._cancel_relock()
        self._generation += 1
        timer = threading.Timer(open_ms / 1000, self._relock, args=(self._generation,))
        timer.daemon = True
        self._relock_timer = timer
        timer.start()

    def _cancel_relock(self) -> None:
        if self._relock_timer is not None:
            self._relock_timer.cancel()
            self._relock_timer = None
        self._generation += 1

    def _relock(self, generation: int) -> None:
        with self._state:
            if generation != self._generation or self.held:
                return  # a later command took over
            self.unlocked = False
            self._relock_timer = None
            self._state.notify_all()
        _LOGGER.info("%s relocked", self.device_id)

    def _power_off(self) -> None:
        # Fail secure: a device that loses power comes back locked, holds forgotten.
        with self._state:
            self._cancel_relock()
            self.unlocked = self.held = False
        super()._power_off()

    # events ---------------------------------------------------------------------------------

    def opened(self) -> EventMessage:
        """The door contact opened."""
        with self._state:
            self.is_open = True
        return self.emit(EventType.DOOR_OPENED)

    def closed(self) -> EventMessage:
        """The door contact closed."""
        with self._state:
            self.is_open = False
        return self.emit(EventType.DOOR_CLOSED)

    def door_forced(self) -> EventMessage:
        """The door opened without a grant or an exit request."""
        return self.emit(EventType.DOOR_FORCED)

    def door_held_open(self, open_ms: int) -> EventMessage:
        """The door has been open longer than the access point allows."""
        return self.emit(EventType.DOOR_HELD_OPEN, open_ms=int(open_ms))

    def exit_request(self) -> EventMessage:
        """The request-to-exit button inside was pressed."""
        return self.emit(EventType.EXIT_REQUEST)

    # credentials (HTTP, PROTOCOL.md section 2) ------------------------------------------------

    def _verify(self) -> VerifyClient:
        if self.api is None:
            raise RuntimeError(f"{self.device_id}: no API URL configured (--api)")
        return self.api

    def present_card(self, uid: str) -> dict[str, Any]:
        """Someone held an IC card to the reader: ask the server."""
        return self._verify().card(uid)

    def present_qr_token(self, token: str) -> dict[str, Any]:
        """The scanner decoded a QR code itself."""
        return self._verify().qr_token(token)

    def present_qr_image(self, path: str | Path) -> dict[str, Any]:
        """The camera saw a QR code: send the frame."""
        return self._verify().qr_image(path)

    def present_face(
        self,
        image_path: str | Path,
        depth_path: str | Path | None = None,
        direction: str | None = None,
    ) -> dict[str, Any]:
        """A face in front of the terminal: the colour image and, if any, the depth image."""
        return self._verify().face(image_path, depth_path, direction)


class Door(AccessPointDevice):
    """A unit-door face terminal with a lock relay and a door contact."""

    kind = DeviceKind.DOOR


class Barrier(AccessPointDevice):
    """A vehicle barrier with a plate camera; ``open`` lifts the arm."""

    kind = DeviceKind.BARRIER

    @property
    def raised(self) -> bool:
        """Whether the arm is up (the barrier's word for unlocked)."""
        return self.unlocked

    def present_plate(
        self,
        plate: str,
        confidence: float,
        color: str,
        direction: str,
        snapshot_path: str | Path | None = None,
    ) -> dict[str, Any]:
        """The camera read a plate: ask the server (with the snapshot when given)."""
        return self._verify().plate(plate, confidence, color, direction, snapshot_path)
