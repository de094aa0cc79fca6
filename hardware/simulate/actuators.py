"""Simulated access-point devices: a unit door (lock relay + door contact) and a barrier.

Both act on ``open`` (unlock for ``open_ms``, then relock), ``lock`` (lock now,
ending an ``unlock_hold`` too), ``unlock_hold`` (stay unlocked until ``lock``),
``display`` and ``reboot``; both raise door-contact events and present credentials
to the server's HTTP verification endpoints. Both keep their community's key set
(the retained ``keys`` topic) and, when the server does not answer, check a visitor
pass's QR code themselves, open, and upload the use as a ``pass_used`` event; cards,
resident codes and (on face terminals) faces they decide from the access point's signed
allowlist (``hardware.simulate.allowlist``) and upload each decision as ``offline_decision``.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from gatekeeper import offline_rules, passtokens
from gatekeeper.tariff import yuan
from gatekeeper.vocabulary import Reason
from hardware.messages import CommandMessage, EventMessage, KeySetMessage, PayloadError
from hardware.protocol import Command, EventType
from hardware.simulate.allowlist import AllowlistHolder
from hardware.simulate.device import DeviceKind, SimulatedDevice
from hardware.simulate.intercom import IntercomClient
from hardware.simulate.offline import check_pass_offline
from hardware.simulate.verify import VerifyClient, VerifyError
from hardware.topics import keys_topic

_LOGGER = logging.getLogger(__name__)

# docs/protocol.md gives open_ms with every open; a command without one gets this.
DEFAULT_OPEN_MS = 5000


class AccessPointDevice(AllowlistHolder, SimulatedDevice):
    """What doors and barriers share: a lock that commands drive, a contact, a reader.

    ``state_dir``: where the door keeps its allowlist, key set, face key and unsent
    offline decisions across restarts (None: in memory only).
    """

    supported_commands: ClassVar[frozenset[Command]] = frozenset(Command)

    def __init__(self, *args: Any, state_dir: str | Path | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.unlocked = False
        self.held = False  # unlock_hold in force
        self.is_open = False  # the door contact
        self._relock_timer: threading.Timer | None = None
        self._generation = 0
        # Kept across reboots, as firmware keeps them in flash: a door that restarts while
        # the server is away still checks codes, and still knows which uses it granted.
        self.key_set: KeySetMessage | None = None
        self.pass_uses: Counter[bytes] = Counter()  # uses this door granted, by pass serial
        self.bus.subscribe(keys_topic(self.identity.community_id), self._on_key_set)
        self._init_allowlist(state_dir)

    def start(self) -> None:
        """Connect, then (in the background) register the face key and fetch the allowlist."""
        super().start()
        self._sync_in_background(register=self.matches_faces_locally)

    def describe(self) -> dict[str, Any]:
        """The common state plus the lock, the door contact and the known key ids."""
        with self._state:
            return {
                **super().describe(),
                "unlocked": self.unlocked,
                "held": self.held,
                "is_open": self.is_open,
                "key_ids": [key.key_id for key in self.key_set.keys] if self.key_set else [],
                "allowlist_version": self.held_list.version if self.held_list else None,
                "offline_decisions_unsent": len(self.outbox),
            }

    def _on_key_set(self, _topic: str, payload: bytes) -> None:
        try:
            key_set = KeySetMessage.decode(payload)
        except PayloadError as error:
            _LOGGER.warning("%s: bad key set (%s); keeping the last one", self.device_id, error)
            return
        with self._state:
            self.key_set = key_set
            self._state.notify_all()
        _LOGGER.info("%s key set: ids %s", self.device_id, [key.key_id for key in key_set.keys])
        self._key_set_changed(payload)

    # commands -------------------------------------------------------------------------------

    def _act(self, command: CommandMessage) -> None:
        if command.cmd is Command.OPEN:
            open_ms = command.open_ms if command.open_ms is not None else DEFAULT_OPEN_MS
            self._unlock(open_ms)
            _LOGGER.info(
                "%s unlocked for %d ms (command %s, request %s)",
                self.device_id,
                open_ms,
                command.cmd_id,
                command.request_id or "-",
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

    def _unlock(self, open_ms: int) -> None:
        with self._state:
            self.unlocked = True
            if not self.held:  # an open during a hold does not shorten the hold
                self._schedule_relock(open_ms)
            self._state.notify_all()

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

    # credentials (HTTP, docs/protocol.md section 3) -------------------------------------------

    def _verify(self) -> VerifyClient:
        if self.api is None:
            raise RuntimeError(f"{self.device_id}: no API URL configured (--api)")
        return self.api

    def present_card(self, uid: str) -> dict[str, Any]:
        """Someone held an IC card to the reader: ask the server, or decide from the list."""
        try:
            return self._verify().card(uid)
        except VerifyError as error:
            if error.status is not None and error.status < 500:
                raise
            _LOGGER.warning("%s: server unavailable (%s); deciding offline", self.device_id, error)
        return self.decide_offline(offline_rules.Card(uid), card=uid.strip().upper())

    def enter_pin(self, digits: str) -> dict[str, Any]:
        """Someone typed a code on the keypad: ask the server (never decided offline).

        The lock opens on the ``open`` command a grant brings, not on the answer.
        """
        answer = self._verify().pin(digits)
        _LOGGER.info(
            "%s keypad: %s %s", self.device_id, answer.get("decision"), answer.get("reason")
        )
        return answer

    def present_qr_token(self, token: str) -> dict[str, Any]:
        """The scanner decoded a QR code itself: ask the server, or decide offline.

        When the server does not answer (no connection, or a 5xx), the door checks the
        code itself (``present_qr_offline``). A pass the server grants counts against
        this door's own use count too, so an offline check later knows it was used here.
        """
        try:
            answer = self._verify().qr_token(token)
        except VerifyError as error:
            if error.status is not None and error.status < 500:
                raise
            _LOGGER.warning("%s: server unavailable (%s); checking offline", self.device_id, error)
            if _is_resident_code(token):
                return self.present_code_offline(token)
            return self.present_qr_offline(token)
        if answer.get("reason") == Reason.VISITOR_PASS:
            self._count_use(token)
        return answer

    def present_qr_offline(self, token: str) -> dict[str, Any]:
        """Check a visitor pass's code without the server; open and upload ``pass_used``.

        The checks are ``check_pass_offline``'s (docs/devices.md); the decision body
        looks like the server's with ``"offline": true``.
        """
        with self._state:
            decision = check_pass_offline(
                token, self.key_set, self.identity.access_point_id, self.clock(), self.pass_uses
            )
            if decision.claims is not None and decision.granted:
                self.pass_uses[decision.claims.serial] += 1
        _LOGGER.info(
            "%s offline QR check: %s %s", self.device_id, decision.reason.value, decision.detail
        )
        if decision.granted:
            self._unlock(DEFAULT_OPEN_MS)
            self.emit(EventType.PASS_USED, token=token.strip())
        return decision.answer(DEFAULT_OPEN_MS)

    def present_code_offline(self, token: str) -> dict[str, Any]:
        """Decide on a resident code from the allowlist (its serial is listed)."""
        key_set = self.key_set
        code = offline_rules.Code(
            token,
            key_set.verifying_keys(self.clock()) if key_set else {},
            key_set.community_tag if key_set else b"",
        )
        return self.decide_offline(code, token=token.strip())

    def _count_use(self, token: str) -> None:
        try:
            claims, _signed, _signature = passtokens.parse(token)
        except passtokens.TokenError:
            return  # not a code this door could read offline: nothing to count
        with self._state:
            self.pass_uses[claims.serial] += 1

    def present_qr_image(self, path: str | Path) -> dict[str, Any]:
        """The camera saw a QR code: send the frame."""
        return self._verify().qr_image(path)

    def present_face(
        self,
        image_path: str | Path,
        depth_path: str | Path | None = None,
        direction: str | None = None,
        *,
        template: Sequence[float] | None = None,
    ) -> dict[str, Any]:
        """A face in front of the terminal: the colour image and, if any, the depth image.

        When the server does not answer, a terminal that matches faces locally decides
        from the ``template`` its camera computed (128 numbers) and the list's faces.
        """
        try:
            return self._verify().face(image_path, depth_path, direction)
        except VerifyError as error:
            if error.status is not None and error.status < 500:
                raise
            if template is None or not self.matches_faces_locally:
                raise
            _LOGGER.warning("%s: server unavailable (%s); matching offline", self.device_id, error)
        return self.decide_offline(offline_rules.Face(tuple(template)), direction=direction)

    # the door intercom (docs/protocol.md, "The door intercom") --------------------------------

    # The longest ``call`` waits for an answer (a ring and the guard booth's time, and more).
    CALL_WAIT_S: ClassVar[float] = 180.0

    def place_call(
        self, unit: str, building: str | None = None, snapshot_path: str | Path | None = None
    ) -> dict[str, Any]:
        """A visitor keyed a unit on the intercom (with the camera's snapshot): the call."""
        return IntercomClient(self._verify()).call(unit, building, snapshot_path)

    def call(
        self, unit: str, building: str | None = None, snapshot_path: str | Path | None = None
    ) -> dict[str, Any]:
        """Place a call and wait for its outcome (``answered``: the ``open`` comes over MQTT)."""
        placed = self.place_call(unit, building, snapshot_path)
        _LOGGER.info("%s intercom call %s to unit %s rings", self.device_id, placed["id"], unit)
        return IntercomClient(self._verify()).wait_for_outcome(placed["id"], self.CALL_WAIT_S)

    def call_over_mqtt(
        self, unit: str, building: str | None = None, snapshot_path: str | Path | None = None
    ) -> EventMessage:
        """The same call as an ``intercom_call`` event (the outcome comes as ``display``)."""
        fields: dict[str, Any] = {"unit": unit}
        if building:
            fields["building"] = building
        if snapshot_path is not None:
            fields["snapshot"] = base64.b64encode(Path(snapshot_path).read_bytes()).decode("ascii")
        return self.emit(EventType.INTERCOM_CALL, **fields)


class Door(AccessPointDevice):
    """A unit-door face terminal with a lock relay and a door contact."""

    kind = DeviceKind.DOOR
    matches_faces_locally = True


def _is_resident_code(token: str) -> bool:
    try:
        claims, _signed, _signature = passtokens.parse(token)
    except passtokens.TokenError:
        return False
    return claims.kind is passtokens.TokenKind.RESIDENT_CODE


class Barrier(AccessPointDevice):
    """A vehicle barrier with a plate camera; ``open`` lifts the arm."""

    kind = DeviceKind.BARRIER
    # What the barrier's screen shows after the last read (a temporary car's fee).
    screen: str | None = None

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
        """The camera read a plate: ask the server (with the snapshot when given). A
        temporary car's answer carries ``parking``: the barrier shows the stay and the fee
        (``screen``)."""
        answer = self._verify().plate(plate, confidence, color, direction, snapshot_path)
        self.screen = parking_screen(answer)
        if self.screen:
            _LOGGER.info("%s shows: %s", self.device_id, self.screen)
        return answer


def parking_screen(answer: dict[str, Any]) -> str | None:
    """What a barrier's screen shows a temporary car (None for any other answer): the stay
    and the fee due, ``停车 2小时05分  应缴 ¥12.50  请到岗亭缴费`` (fen shown as yuan), or
    ``停车 10分  免费放行`` when it leaves free."""
    parking = answer.get("parking")
    if not isinstance(parking, dict):
        return None
    minutes = max(0, int(parking.get("duration_s") or 0)) // 60
    hours, minutes = divmod(minutes, 60)
    stay = f"{hours}小时{minutes:02d}分" if hours else f"{minutes}分"
    fen = int(parking.get("fee_fen") or 0)
    if answer.get("reason") == Reason.PAYMENT_REQUIRED:
        return f"停车 {stay}  应缴 {yuan(fen)}  请到岗亭缴费"
    if answer.get("reason") == Reason.TEMPORARY_VEHICLE and parking.get("status") == "inside":
        return f"临时车 欢迎光临  {parking.get('ticket_id', '')}"
    return f"停车 {stay}  {'已缴 ' + yuan(fen) if parking.get('paid_fen') else '免费放行'}"
