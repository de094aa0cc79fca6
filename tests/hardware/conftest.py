"""Fixtures for the device layer: the in-memory twin, a real Mosquitto, a "server" inbox."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from hardware.memory import MemoryBroker, MemoryBus
from hardware.messages import AckMessage, CommandMessage, EventMessage, StatusMessage
from hardware.protocol import Command
from hardware.simulate import DeviceIdentity
from hardware.topics import SERVER_SUBSCRIPTIONS, device_topic, parse_device_topic
from tests.support.mosquitto import Broker
from tests.support.net import wait_for_port

COMMUNITY = "c_test"
WAIT_S = 10.0  # the bound of every wait; nothing asserts how fast anything is

_ids = itertools.count(1)


def new_identity(device_id: str | None = None) -> DeviceIdentity:
    return DeviceIdentity(
        device_id=device_id or f"dev_{next(_ids)}",
        secret="s3cret-" + "x" * 20,
        community_id=COMMUNITY,
        name="test device",
    )


def command(
    cmd: Command | str,
    *,
    cmd_id: str | None = None,
    expires_in: float = 30.0,
    open_ms: int | None = None,
    text: str | None = None,
) -> CommandMessage:
    """A command issued now that expires ``expires_in`` seconds from now (negative: expired)."""
    now = datetime.now(UTC)
    return CommandMessage(
        cmd_id=cmd_id or f"cmd_{next(_ids)}",
        cmd=Command(cmd),
        issued_at=now - timedelta(seconds=max(0.0, -expires_in) + 1),
        expires_at=now + timedelta(seconds=expires_in),
        open_ms=open_ms,
        text=text,
    )


def cmd_topic(device_id: str) -> str:
    return device_topic(COMMUNITY, device_id, "cmd")


class Inbox:
    """What a server-side subscriber received, with bounded waits."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._changed = threading.Condition()

    def __call__(self, topic: str, payload: bytes) -> None:
        with self._changed:
            self.messages.append((topic, payload))
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def _payloads(self, suffix: str, device_id: str | None) -> list[bytes]:
        with self._changed:
            messages = list(self.messages)
        found = []
        for topic, payload in messages:
            parsed = parse_device_topic(topic)
            if parsed and parsed.suffix == suffix and device_id in (None, parsed.device_id):
                found.append(payload)
        return found

    def acks(self, device_id: str | None = None) -> list[AckMessage]:
        return [AckMessage.decode(p) for p in self._payloads("ack", device_id)]

    def events(self, device_id: str | None = None) -> list[EventMessage]:
        return [EventMessage.decode(p) for p in self._payloads("evt", device_id)]

    def statuses(self, device_id: str | None = None) -> list[StatusMessage]:
        return [StatusMessage.decode(p) for p in self._payloads("status", device_id)]

    def ack_for(self, cmd_id: str) -> AckMessage | None:
        return next((a for a in self.acks() if a.cmd_id == cmd_id), None)

    def wait_ack(self, cmd_id: str, timeout: float = WAIT_S) -> AckMessage:
        assert self.wait_for(lambda: self.ack_for(cmd_id) is not None, timeout), (
            f"no ack for {cmd_id}"
        )
        ack = self.ack_for(cmd_id)
        assert ack is not None
        return ack


@pytest.fixture
def memory_broker() -> MemoryBroker:
    return MemoryBroker()


@pytest.fixture
def memory_server(memory_broker: MemoryBroker) -> tuple[MemoryBus, Inbox]:
    """A connected server-side twin bus subscribed like the server, and what it received."""
    bus = MemoryBus(memory_broker, "server")
    inbox = Inbox()
    for topic_filter in SERVER_SUBSCRIPTIONS:
        bus.subscribe(topic_filter, inbox)
    bus.start()
    return bus, inbox


@pytest.fixture
def mosquitto() -> Iterator[Broker]:
    broker = Broker()
    broker.start()
    yield broker
    broker.stop()


def restart_mosquitto(broker: Broker, while_down: Callable[[], None] | None = None) -> None:
    """Stop the Mosquitto process and start it again on the same port, keeping its data."""
    assert broker.process is not None
    broker.process.terminate()
    broker.process.wait(timeout=10)
    broker.process = None
    if while_down is not None:
        while_down()
    broker.start()
    wait_for_port(broker.port)
