"""The common part of every simulated device: identity, connection, status, events, commands.

A device speaks docs/protocol.md section 5 over a ``DeviceBus``: an ``MqttBus`` signed in
as username = device id, password = secret, or a ``MemoryBus`` in unit tests. On
every connect it publishes a retained ``{"online": true, ...}`` status; its last will
is ``{"online": false}`` on the same topic, retained. Commands are decoded, checked
(duplicate ``cmd_id``, ``expires_at`` passed, supported by this kind of device),
acted on and acknowledged, one ack per command.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple

from gatekeeper.vocabulary import DeviceKind
from hardware.bus import BrokerAddress, DeviceBus, MqttBus
from hardware.memory import MemoryBroker, MemoryBus
from hardware.messages import (
    MAX_PAYLOAD_BYTES,
    OFFLINE_WILL,
    AckMessage,
    CommandMessage,
    EventMessage,
    PayloadError,
    StatusMessage,
)
from hardware.protocol import Command, EventType
from hardware.simulate.verify import VerifyClient
from hardware.topics import device_topic

_LOGGER = logging.getLogger(__name__)

FIRMWARE = "sim-1.0.0"
DEDUPE_MEMORY = 1000
# How long a clean stop waits for the broker to take the offline status.
STOP_FLUSH_S = 2.0

# Where a device connects: an mqtt:// URL, a parsed address, or the in-memory twin.
BrokerTarget = str | BrokerAddress | MemoryBroker


@dataclass(frozen=True)
class DeviceIdentity:
    """Who a device is: what staff got back when they provisioned it."""

    device_id: str
    secret: str
    community_id: str
    name: str = ""
    # The access point a door or barrier serves: it checks QR passes offline against it.
    access_point_id: str | None = None


class Action(NamedTuple):
    """A command a device acted on: ``(at, cmd, cmd_id)``."""

    at: datetime
    cmd: Command
    cmd_id: str


def utcnow() -> datetime:
    """The default device clock: now, in UTC."""
    return datetime.now(UTC)


def _now_us() -> int:
    return time.time_ns() // 1000


class EventSequence:
    """Per-device increasing ``seq`` with no state file.

    Each value is the current time in microseconds since the Unix epoch, or the last
    value + 1 when the clock has not moved on. A restarted device therefore starts
    above where it stopped, as long as it never sent more than one event per
    microsecond on average (and the clock is not set back across the restart).
    """

    def __init__(self, clock_us: Callable[[], int] = _now_us):
        self._clock_us = clock_us
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, self._clock_us())
            return self._last


def _salvage_cmd_id(payload: bytes) -> str | None:
    """The ``cmd_id`` of a command that failed to decode, when it has a well-formed one."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    # Reuse the protocol's own identifier check by decoding an ack made of that cmd_id.
    probe = {"cmd_id": data.get("cmd_id"), "ok": False, "ts": "2000-01-01T00:00:00+00:00"}
    try:
        return AckMessage.decode(json.dumps(probe).encode()).cmd_id
    except PayloadError:
        return None


class SimulatedDevice:
    """A device on the bus: status, heartbeats, numbered events and command handling.

    Construct with an identity and where the broker is (an ``mqtt://`` URL, a
    ``BrokerAddress`` or a ``MemoryBroker``), then ``start()``; ``stop()`` disconnects
    cleanly (offline status first), ``kill()`` drops the connection so the broker
    publishes the last will. Handlers run on the bus's thread.
    """

    kind: ClassVar[DeviceKind]
    supported_commands: ClassVar[frozenset[Command]] = frozenset({Command.DISPLAY, Command.REBOOT})

    def __init__(
        self,
        identity: DeviceIdentity,
        broker: BrokerTarget,
        *,
        api: str | VerifyClient | None = None,
        heartbeat_s: float = 60.0,
        fw: str = FIRMWARE,
        reboot_s: float = 0.5,
        clock: Callable[[], datetime] = utcnow,
        sequence: EventSequence | None = None,
    ):
        if heartbeat_s <= 0:
            raise ValueError("heartbeat_s must be positive")
        self.identity = identity
        self.fw = fw
        self.heartbeat_s = heartbeat_s
        self.reboot_s = reboot_s
        self.clock = clock
        self.sequence = sequence or EventSequence()
        if isinstance(api, str):
            api = VerifyClient(api, identity.device_id, identity.secret)
        self.api = api
        self.topics = {
            suffix: device_topic(identity.community_id, identity.device_id, suffix)
            for suffix in ("cmd", "ack", "evt", "status")
        }
        self.bus = self._make_bus(broker)
        self.bus.subscribe(self.topics["cmd"], self._on_command)
        self.bus.add_connect_hook(self._on_connect)

        self.events: list[EventMessage] = []
        self.acks: list[AckMessage] = []
        self.actions: list[Action] = []
        self.counters: Counter[str] = Counter()
        self.display_text: str | None = None
        self.reboots = 0
        self._recent_ids: OrderedDict[str, None] = OrderedDict()
        self._state = threading.Condition(threading.RLock())
        self._lifecycle = threading.Lock()
        self._running = False
        self._halt = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def device_id(self) -> str:
        return self.identity.device_id

    @property
    def connected(self) -> bool:
        return self.bus.connected

    @property
    def bad_payloads(self) -> int:
        """Commands that could not be decoded (logged and counted, never fatal)."""
        return self.counters["invalid"]

    def describe(self) -> dict[str, Any]:
        """The device's state in a few words (the console's ``status``)."""
        with self._state:
            return {
                "device_id": self.device_id,
                "kind": self.kind.value,
                "connected": self.connected,
                "display": self.display_text,
                "commands": dict(self.counters),
                "events_sent": len(self.events),
                "reboots": self.reboots,
            }

    def _make_bus(self, broker: BrokerTarget) -> DeviceBus:
        will = (self.topics["status"], OFFLINE_WILL)
        if isinstance(broker, MemoryBroker):
            return MemoryBus(broker, self.device_id, will=will)
        address = BrokerAddress.from_url(broker) if isinstance(broker, str) else broker
        # docs/protocol.md section 2: the MQTT username is the device id, the password its secret.
        address = replace(address, username=self.device_id, password=self.identity.secret)
        # PUBACK before acting: once the server holds a command's ack, the broker will never
        # redeliver it, even to a door that lost power right after (see MqttBus).
        return MqttBus(address, self.device_id, will=will, ack_first=True)

    # lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (in the background for MQTT) and start the heartbeat; idempotent."""
        with self._lifecycle:
            if self._running:
                return
            self._running = True
            self._halt.clear()
            _LOGGER.info("%s %s starting", self.kind.value, self.device_id)
            self.bus.start()
            self._heartbeat = threading.Thread(
                target=self._heartbeat_loop, name=f"heartbeat-{self.device_id}", daemon=True
            )
            self._heartbeat.start()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until connected and subscribed to ``cmd``."""
        return self.bus.wait_subscribed(timeout)

    def stop(self) -> None:
        """Disconnect cleanly: publish ``{"online": false}`` (retained), then DISCONNECT."""
        with self._lifecycle:
            if not self._running:
                return
            self._running = False
            self._halt.set()
            if self.bus.connected:
                self._publish_status(online=False)
                if not self.bus.flush(STOP_FLUSH_S):
                    _LOGGER.warning("%s: offline status not confirmed by broker", self.device_id)
            self.bus.stop()
            self._power_off()
        self._join_heartbeat()
        _LOGGER.info("%s %s stopped", self.kind.value, self.device_id)

    def kill(self) -> None:
        """Drop the connection without DISCONNECT, as a power cut would: the will is published."""
        with self._lifecycle:
            if not self._running:
                return
            self._running = False
            self._halt.set()
            self.bus.kill()
            self._power_off()
        self._join_heartbeat()
        _LOGGER.info("%s %s killed (connection dropped)", self.kind.value, self.device_id)

    def _join_heartbeat(self) -> None:
        thread, self._heartbeat = self._heartbeat, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _power_off(self) -> None:
        """Reset what a device forgets when it loses power (subclasses extend)."""
        with self._state:
            self.display_text = None
            self._state.notify_all()

    # waiting helpers for tests ---------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` is true or ``timeout`` passes.

        Checked on every change of the device's state, and every 50 ms for what changes
        elsewhere (the connection).
        """
        deadline = time.monotonic() + timeout
        with self._state:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._state.wait(min(remaining, 0.05))
            return True

    def wait_for_ack(self, cmd_id: str, timeout: float) -> AckMessage | None:
        """The ack this device sent for ``cmd_id``, waiting for it if needed."""

        def find() -> AckMessage | None:
            return next((ack for ack in self.acks if ack.cmd_id == cmd_id), None)

        self.wait_for(lambda: find() is not None, timeout)
        with self._state:
            return find()

    def wait_for_action(
        self, cmd: Command | str, timeout: float, *, cmd_id: str | None = None
    ) -> Action | None:
        """The first action for ``cmd`` (and ``cmd_id`` if given), waiting for it if needed."""

        def find() -> Action | None:
            return next(
                (
                    action
                    for action in self.actions
                    if action.cmd == cmd and (cmd_id is None or action.cmd_id == cmd_id)
                ),
                None,
            )

        self.wait_for(lambda: find() is not None, timeout)
        with self._state:
            return find()

    # publishing -----------------------------------------------------------------------------

    def _wire_now(self) -> datetime:
        """The clock at the precision timestamps have on the wire (milliseconds)."""
        now = self.clock()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def emit(self, event_type: EventType, **fields: Any) -> EventMessage:
        """Publish one event (QoS 1) with the next ``seq``; returns what was sent."""
        message = EventMessage(
            type=event_type, seq=self.sequence.next(), ts=self._wire_now(), fields=fields
        )
        self.bus.publish(self.topics["evt"], message.encode(), qos=1)
        with self._state:
            self.events.append(message)
            self._state.notify_all()
        log = _LOGGER.debug if event_type is EventType.HEARTBEAT else _LOGGER.info
        log("%s event %s seq=%d %s", self.device_id, event_type.value, message.seq, fields or "")
        return message

    def tamper(self) -> EventMessage:
        """The enclosure was opened or the reader pulled off."""
        return self.emit(EventType.TAMPER)

    def _publish_status(self, *, online: bool) -> None:
        status = StatusMessage(online=online, fw=self.fw, ts=self._wire_now())
        payload = status.encode() if online else OFFLINE_WILL
        self.bus.publish(self.topics["status"], payload, qos=1, retain=True)

    def _on_connect(self) -> None:
        _LOGGER.info("%s connected; status online", self.device_id)
        self._publish_status(online=True)
        with self._state:
            self._state.notify_all()

    def _heartbeat_loop(self) -> None:
        while not self._halt.wait(self.heartbeat_s):
            if self.bus.connected:  # a heartbeat says "alive now": none are queued while away
                self.emit(EventType.HEARTBEAT)

    # commands -------------------------------------------------------------------------------

    def _ack(self, cmd_id: str, ok: bool, detail: str = "") -> None:
        ack = AckMessage(cmd_id=cmd_id, ok=ok, ts=self._wire_now(), detail=detail)
        self.bus.publish(self.topics["ack"], ack.encode(), qos=1)
        with self._state:
            self.acks.append(ack)
            self._state.notify_all()

    def _drop(self, reason: str, cmd_id: str, detail: str, what: str) -> None:
        with self._state:
            self.counters[reason] += 1
            self._state.notify_all()
        _LOGGER.warning("%s dropped command %s (%s): %s", self.device_id, cmd_id, what, detail)
        self._ack(cmd_id, False, detail)

    def _on_command(self, _topic: str, payload: bytes) -> None:
        with self._state:
            self.counters["received"] += 1
        try:
            command = CommandMessage.decode(payload)
        except PayloadError as error:
            cmd_id = _salvage_cmd_id(payload)
            with self._state:
                self.counters["invalid"] += 1
                self._state.notify_all()
            _LOGGER.warning(
                "%s: bad command payload (%s), cmd_id %s", self.device_id, error.reason, cmd_id
            )
            if cmd_id is not None:
                self._ack(cmd_id, False, f"invalid: {error.reason}")
            return
        with self._state:
            duplicate = command.cmd_id in self._recent_ids
            self._recent_ids[command.cmd_id] = None
            self._recent_ids.move_to_end(command.cmd_id)
            while len(self._recent_ids) > DEDUPE_MEMORY:
                self._recent_ids.popitem(last=False)
        what = command.cmd.value
        if duplicate:
            self._drop("duplicate", command.cmd_id, "duplicate", what)
        elif command.expired(self.clock()):
            self._drop("expired", command.cmd_id, "expired", what)
        elif command.cmd not in self.supported_commands:
            self._drop("unsupported", command.cmd_id, "unsupported", what)
        else:
            self._act(command)
            with self._state:
                self.counters["acted"] += 1
                self.actions.append(Action(self.clock(), command.cmd, command.cmd_id))
                self._state.notify_all()
            self._ack(command.cmd_id, True)
            _LOGGER.info("%s acted on command %s (%s), acked", self.device_id, command.cmd_id, what)

    def _act(self, command: CommandMessage) -> None:
        """Carry out a supported, fresh command (subclasses handle their own)."""
        if command.cmd is Command.DISPLAY:
            with self._state:
                self.display_text = command.text or ""
            _LOGGER.info("%s display: %s", self.device_id, command.text)
        elif command.cmd is Command.REBOOT:
            _LOGGER.info("%s rebooting (command %s)", self.device_id, command.cmd_id)
            threading.Thread(
                target=self._reboot, name=f"reboot-{self.device_id}", daemon=True
            ).start()

    def _reboot(self) -> None:
        # Let the ack and the PUBACK for the reboot command leave first.
        if self._halt.wait(0.1):
            return
        with self._lifecycle:
            if not self._running:
                return
            if self.bus.connected:
                self._publish_status(online=False)
                self.bus.flush(STOP_FLUSH_S)
            self.bus.stop()
            self._power_off()
        # The recent cmd_id memory survives, as firmware that keeps it in flash would; a
        # replayed command is refused as a duplicate, a stale one by its expiry.
        if self._halt.wait(self.reboot_s):
            return
        with self._lifecycle:
            if not self._running:
                return
            with self._state:
                self.reboots += 1
                self._state.notify_all()
            self.bus.start()
        _LOGGER.info("%s rebooted", self.device_id)
