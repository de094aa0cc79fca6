"""Simulated devices and MqttBus against a real Mosquitto on a loopback port."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from hardware.bus import BrokerAddress, MqttBus
from hardware.messages import OFFLINE_WILL, EventMessage, StatusMessage
from hardware.protocol import Command, EventType
from hardware.simulate import DeviceIdentity, Door
from hardware.topics import SERVER_SUBSCRIPTIONS, device_topic
from tests.hardware.conftest import (
    WAIT_S,
    Inbox,
    cmd_topic,
    command,
    new_identity,
    restart_mosquitto,
)
from tests.support.mosquitto import Broker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server(mosquitto: Broker) -> Iterator[tuple[MqttBus, Inbox]]:
    """A server-side MqttBus subscribed like the server, with a persistent session."""
    bus = MqttBus(BrokerAddress.from_url(mosquitto.url), f"server-{mosquitto.port}")
    inbox = Inbox()
    for topic_filter in SERVER_SUBSCRIPTIONS:
        bus.subscribe(topic_filter, inbox)
    bus.start()
    assert bus.wait_subscribed(WAIT_S)
    yield bus, inbox
    bus.stop()


@pytest.fixture
def make_door(mosquitto: Broker) -> Iterator[Callable[..., Door]]:
    doors: list[Door] = []

    def make(identity: DeviceIdentity | None = None, **kwargs) -> Door:
        door = Door(identity or new_identity(), mosquitto.url, **kwargs)
        door.start()
        assert door.wait_ready(WAIT_S), "door never connected"
        doors.append(door)
        return door

    yield make
    for door in doors:
        door.stop()


def publish_command(server: tuple[MqttBus, Inbox], device_id: str, message) -> None:
    bus, _ = server
    bus.publish(cmd_topic(device_id), message.encode(), qos=1)


def read_retained(url: str, topic: str) -> bytes:
    """What a newcomer subscribing to ``topic`` gets first: the retained message."""
    inbox = Inbox()
    reader = MqttBus(BrokerAddress.from_url(url), f"reader-{time.monotonic_ns()}", clean_start=True)
    reader.subscribe(topic, inbox)
    reader.start()
    try:
        assert inbox.wait_for(lambda: bool(inbox.messages)), f"nothing retained on {topic}"
        return inbox.messages[0][1]
    finally:
        reader.stop()


def status_topic(door: Door) -> str:
    return device_topic(door.identity.community_id, door.device_id, "status")


def test_open_command_acts_and_is_acked(mosquitto: Broker, server, make_door) -> None:
    door = make_door()
    _, inbox = server
    cmd = command("open", open_ms=60_000)
    publish_command(server, door.device_id, cmd)
    assert door.wait_for_action(Command.OPEN, WAIT_S, cmd_id=cmd.cmd_id)
    ack = inbox.wait_ack(cmd.cmd_id)
    assert ack.ok and door.unlocked
    assert inbox.wait_for(lambda: any(s.online for s in inbox.statuses(door.device_id)))
    status = StatusMessage.decode(read_retained(mosquitto.url, status_topic(door)))
    assert status.online and status.fw and status.ts is not None


def test_command_sent_while_away_is_delivered_on_reconnect(server, make_door) -> None:
    door = make_door()
    _, inbox = server
    door.stop()  # clean disconnect: the broker keeps the session
    cmd = command("open", open_ms=60_000, expires_in=60)
    publish_command(server, door.device_id, cmd)
    door.start()
    assert door.wait_for_action(Command.OPEN, WAIT_S, cmd_id=cmd.cmd_id), "queued command lost"
    assert inbox.wait_ack(cmd.cmd_id).ok


def test_command_that_expired_while_away_is_dropped(server, make_door) -> None:
    door = make_door()
    _, inbox = server
    door.stop()
    cmd = command("open", open_ms=60_000, expires_in=0.3)
    publish_command(server, door.device_id, cmd)
    while datetime.now(UTC) <= cmd.expires_at:  # let it expire while the door is away
        time.sleep(0.05)
    door.start()
    ack = inbox.wait_ack(cmd.cmd_id)
    assert (ack.ok, ack.detail) == (False, "expired")
    assert door.actions == [] and not door.unlocked


def test_restarted_door_does_not_replay_an_old_unlock(server, make_door) -> None:
    identity = new_identity()
    first = make_door(identity)
    _, inbox = server
    cmd = command("open", open_ms=60_000)
    publish_command(server, identity.device_id, cmd)
    assert inbox.wait_ack(cmd.cmd_id).ok
    first.kill()  # a power cut, then the door boots again: a new object, nothing stored

    second = make_door(identity)
    marker = command("display", text="marker")
    publish_command(server, identity.device_id, marker)
    assert inbox.wait_ack(marker.cmd_id).ok
    # Anything replayed would have reached the door before the marker.
    assert [a.cmd for a in second.actions] == [Command.DISPLAY]
    assert not second.unlocked


def test_reboot_command_comes_back_online(server, make_door) -> None:
    door = make_door(reboot_s=0.1)
    _, inbox = server
    hold, reboot = command("unlock_hold"), command("reboot")
    publish_command(server, door.device_id, hold)
    publish_command(server, door.device_id, reboot)
    assert inbox.wait_ack(reboot.cmd_id).ok
    assert door.wait_for(lambda: door.reboots == 1, WAIT_S)
    assert door.wait_ready(WAIT_S) and not door.unlocked
    assert inbox.wait_for(
        lambda: [s.online for s in inbox.statuses(door.device_id)][-3:] == [True, False, True]
    )
    marker = command("display", text="back")
    publish_command(server, door.device_id, marker)
    assert inbox.wait_ack(marker.cmd_id).ok
    assert [a.cmd for a in door.actions] == ["unlock_hold", "reboot", "display"]


def test_broker_restart_loses_no_qos1_event(mosquitto: Broker, server, make_door) -> None:
    server_bus, inbox = server
    door = make_door()
    sent: list[EventMessage] = [door.tamper(), door.door_forced()]
    assert door.bus.flush(WAIT_S)

    def while_down() -> None:
        sent.append(door.exit_request())  # paho keeps QoS 1 messages until it can send them
        sent.append(door.door_held_open(45_000))

    restart_mosquitto(mosquitto, while_down)
    assert door.wait_ready(WAIT_S), "door did not reconnect by itself"
    assert server_bus.wait_subscribed(WAIT_S), "server bus did not reconnect by itself"
    sent.append(door.opened())

    wanted = {event.seq for event in sent}

    def received() -> set[int]:
        return {e.seq for e in inbox.events(door.device_id) if e.type is not EventType.HEARTBEAT}

    assert inbox.wait_for(lambda: wanted <= received(), 20), f"missing {wanted - received()}"
    status = StatusMessage.decode(read_retained(mosquitto.url, status_topic(door)))
    assert status.online  # republished on reconnect, and retained across the restart


def test_killed_door_leaves_its_will_retained(mosquitto: Broker, server, make_door) -> None:
    door = make_door()
    _, inbox = server
    door.kill()
    assert inbox.wait_for(
        lambda: [s.online for s in inbox.statuses(door.device_id)][-1:] == [False]
    )
    assert read_retained(mosquitto.url, status_topic(door)) == OFFLINE_WILL
    door.start()  # power back: the same object connects again and says so
    assert door.wait_ready(WAIT_S)
    assert inbox.wait_for(lambda: [s.online for s in inbox.statuses(door.device_id)][-1:] == [True])


def test_device_signs_in_with_its_id_and_secret(mosquitto: Broker) -> None:
    door = Door(new_identity(), "mqtt://someone:else@127.0.0.1:1")
    assert door.bus.address.username == door.device_id
    assert door.bus.address.password == door.identity.secret
