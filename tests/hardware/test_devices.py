"""Simulated devices over the in-memory twin: commands, acks, events, status, will."""

from __future__ import annotations

import json

import pytest

from hardware.memory import MemoryBroker, MemoryBus
from hardware.messages import OFFLINE_WILL, EventMessage, StatusMessage
from hardware.protocol import Command, EventType
from hardware.simulate import Barrier, Door, EventSequence, PanicButton, RfidReader
from hardware.topics import device_topic
from tests.hardware.conftest import WAIT_S, Inbox, cmd_topic, command, new_identity

Server = tuple[MemoryBus, Inbox]


@pytest.fixture
def door(memory_broker: MemoryBroker):
    door = Door(new_identity(), memory_broker)
    door.start()
    yield door
    door.stop()


def send(server: Server, device_id: str, *commands) -> None:
    bus, _ = server
    for message in commands:
        bus.publish(cmd_topic(device_id), message.encode())


def test_open_unlocks_then_relocks_and_is_acked(door: Door, memory_server: Server) -> None:
    _, inbox = memory_server
    cmd = command("open", open_ms=20)
    send(memory_server, door.device_id, cmd)
    action = door.wait_for_action(Command.OPEN, WAIT_S)
    assert action is not None
    at, what, cmd_id = action  # a (time, cmd, cmd_id) tuple too
    assert cmd_id == cmd.cmd_id
    assert what is Command.OPEN and at.tzinfo is not None
    ack = inbox.wait_ack(cmd.cmd_id)
    assert ack.ok is True and ack.detail == ""
    assert door.wait_for(lambda: not door.unlocked, WAIT_S), "the door never relocked"


def test_lock_ends_an_open_and_a_hold(door: Door, memory_server: Server) -> None:
    _, inbox = memory_server
    commands = [command("open", open_ms=60_000)]
    send(memory_server, door.device_id, commands[-1])
    assert door.unlocked
    commands.append(command("lock"))
    send(memory_server, door.device_id, commands[-1])
    assert not door.unlocked

    commands.append(command("unlock_hold"))
    send(memory_server, door.device_id, commands[-1])
    assert door.unlocked and door.held
    commands.append(command("open", open_ms=1))  # an open during a hold does not end it
    send(memory_server, door.device_id, commands[-1])
    assert not door.wait_for(lambda: not door.unlocked, 0.1)
    commands.append(command("lock"))
    send(memory_server, door.device_id, commands[-1])
    assert not door.unlocked and not door.held

    assert [a.cmd for a in door.actions] == ["open", "lock", "unlock_hold", "open", "lock"]
    assert [(a.cmd_id, a.ok) for a in inbox.acks()] == [(c.cmd_id, True) for c in commands]


def test_display_remembers_the_text(door: Door, memory_server: Server) -> None:
    send(memory_server, door.device_id, command("display", text="欢迎回家"))
    assert door.display_text == "欢迎回家"


def test_expired_command_is_dropped_and_acked(door: Door, memory_server: Server) -> None:
    _, inbox = memory_server
    cmd = command("open", expires_in=-5)
    send(memory_server, door.device_id, cmd)
    ack = inbox.wait_ack(cmd.cmd_id)
    assert (ack.ok, ack.detail) == (False, "expired")
    assert door.actions == [] and not door.unlocked
    assert door.counters["expired"] == 1


def test_duplicate_command_is_dropped_and_acked(door: Door, memory_server: Server) -> None:
    _, inbox = memory_server
    cmd = command("open", open_ms=60_000)
    send(memory_server, door.device_id, cmd, cmd)  # QoS 1 may deliver twice
    acks = [(a.ok, a.detail) for a in inbox.acks() if a.cmd_id == cmd.cmd_id]
    assert acks == [(True, ""), (False, "duplicate")]
    assert len(door.actions) == 1 and door.counters["duplicate"] == 1


def test_dedupe_memory_is_bounded(door: Door, memory_server: Server) -> None:
    from hardware.simulate.device import DEDUPE_MEMORY

    first = command("display", text="x")
    send(memory_server, door.device_id, first)
    for index in range(DEDUPE_MEMORY):
        send(memory_server, door.device_id, command("display", text=str(index)))
    send(memory_server, door.device_id, first)  # long forgotten: only its expiry protects
    assert door.counters["duplicate"] == 0
    assert len(door.actions) == DEDUPE_MEMORY + 2


@pytest.mark.parametrize(
    ("payload", "acked_detail"),
    [
        (b"not json", None),
        (b"[1, 2]", None),
        (b"\xff\xfe", None),
        (json.dumps({"cmd": "open"}).encode(), None),
        (json.dumps({"cmd_id": "c_bad_1", "cmd": "fly"}).encode(), "invalid: unknown cmd"),
        (
            json.dumps(
                {"cmd_id": "c_bad_1", "cmd": "open", "issued_at": "2026-11-21T08:30:05"}
            ).encode(),
            "invalid: issued_at has no UTC offset",
        ),
    ],
)
def test_bad_payloads_are_counted_never_fatal(
    door: Door, memory_server: Server, payload: bytes, acked_detail: str | None
) -> None:
    bus, inbox = memory_server
    bus.publish(cmd_topic(door.device_id), payload)
    assert door.bad_payloads == 1 and door.actions == []
    acks = inbox.acks(door.device_id)
    if acked_detail is None:
        assert acks == []
    else:
        assert [(a.cmd_id, a.ok, a.detail) for a in acks] == [("c_bad_1", False, acked_detail)]
    good = command("open", open_ms=60_000)
    send(memory_server, door.device_id, good)  # still alive and acting
    assert inbox.wait_ack(good.cmd_id).ok and door.unlocked


def test_commands_sent_while_away_arrive_on_reconnect_unless_expired(
    door: Door, memory_server: Server
) -> None:
    _, inbox = memory_server
    door.stop()
    fresh, stale = command("open", open_ms=60_000), command("lock", expires_in=-1)
    send(memory_server, door.device_id, fresh, stale)
    assert inbox.acks() == []
    door.start()
    assert inbox.wait_ack(fresh.cmd_id).ok
    assert inbox.wait_ack(stale.cmd_id).detail == "expired"
    assert door.unlocked  # the stale lock did not act


def test_seq_increases_within_and_across_instances(memory_broker: MemoryBroker) -> None:
    identity = new_identity()
    first = Door(identity, memory_broker)
    first.start()
    sent = [first.tamper(), first.door_forced(), first.exit_request()]
    first.stop()
    second = Door(identity, memory_broker)  # a restart: new object, nothing stored
    second.start()
    sent += [second.tamper(), second.opened()]
    second.stop()
    seqs = [event.seq for event in sent]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_event_sequence_never_goes_back() -> None:
    now = [1_000]
    sequence = EventSequence(clock_us=lambda: now[0])
    assert [sequence.next(), sequence.next()] == [1_000, 1_001]  # clock stuck: +1
    now[0] = 500  # clock set back
    assert sequence.next() == 1_002
    now[0] = 5_000
    assert sequence.next() == 5_000


def test_status_online_on_connect_and_will_on_kill(
    memory_broker: MemoryBroker, memory_server: Server
) -> None:
    _, inbox = memory_server
    door = Door(new_identity(), memory_broker, fw="9.9.9")
    status_topic = device_topic(door.identity.community_id, door.device_id, "status")
    door.start()
    online = StatusMessage.decode(memory_broker.retained(status_topic) or b"")
    assert online.online and online.fw == "9.9.9" and online.ts is not None
    door.kill()
    assert memory_broker.retained(status_topic) == OFFLINE_WILL
    assert [s.online for s in inbox.statuses(door.device_id)] == [True, False]
    door.start()  # back after the power cut: online again, on every connect
    assert StatusMessage.decode(memory_broker.retained(status_topic) or b"").online
    door.stop()  # clean: says offline itself, and the broker publishes no will
    assert memory_broker.retained(status_topic) == OFFLINE_WILL
    assert [s.online for s in inbox.statuses(door.device_id)] == [True, False, True, False]


def test_heartbeats_are_emitted(memory_broker: MemoryBroker, memory_server: Server) -> None:
    _, inbox = memory_server
    reader = RfidReader(new_identity(), memory_broker, heartbeat_s=0.05)
    reader.start()
    try:

        def heartbeats() -> list[EventMessage]:
            return [e for e in inbox.events(reader.device_id) if e.type is EventType.HEARTBEAT]

        assert inbox.wait_for(lambda: len(heartbeats()) >= 3)
        seqs = [e.seq for e in heartbeats()]
        assert seqs == sorted(set(seqs))
    finally:
        reader.stop()


def test_door_events_decode(door: Door, memory_server: Server) -> None:
    _, inbox = memory_server
    door.opened()
    door.door_held_open(30_000)
    door.closed()
    door.door_forced()
    door.exit_request()
    door.tamper()
    events = inbox.events(door.device_id)
    assert [e.type.value for e in events] == [
        "door_opened",
        "door_held_open",
        "door_closed",
        "door_forced",
        "exit_request",
        "tamper",
    ]
    assert events[1].fields == {"open_ms": 30_000}
    assert events == door.events
    assert not door.is_open


def test_rfid_reader_and_panic_button_payloads(
    memory_broker: MemoryBroker, memory_server: Server
) -> None:
    _, inbox = memory_server
    reader = RfidReader(new_identity(), memory_broker)
    button = PanicButton(new_identity(), memory_broker)
    reader.start()
    button.start()
    try:
        reader.read_tag("e2000017221101441890abcd", rssi=-61)
        button.press()
        with pytest.raises(ValueError):
            reader.read_tag("not-hex")
    finally:
        reader.stop()
        button.stop()
    [tag] = inbox.events(reader.device_id)
    assert tag.type is EventType.TAG_READ
    assert tag.fields == {"tag": "E2000017221101441890ABCD", "rssi": -61}
    [panic] = inbox.events(button.device_id)
    assert panic.type is EventType.PANIC and panic.seq > 0 and panic.ts.tzinfo is not None


def test_sensors_refuse_actuation_commands(
    memory_broker: MemoryBroker, memory_server: Server
) -> None:
    _, inbox = memory_server
    button = PanicButton(new_identity(), memory_broker)
    button.start()
    cmd, display = command("open"), command("display", text="hi")
    send(memory_server, button.device_id, cmd, display)
    assert (inbox.wait_ack(cmd.cmd_id).ok, inbox.ack_for(cmd.cmd_id).detail) == (
        False,
        "unsupported",
    )
    assert inbox.wait_ack(display.cmd_id).ok and button.display_text == "hi"
    button.stop()


def test_reboot_reconnects_relocked_and_never_replays(
    memory_broker: MemoryBroker, memory_server: Server
) -> None:
    _, inbox = memory_server
    door = Door(new_identity(), memory_broker, reboot_s=0.05)
    door.start()
    hold, reboot = command("unlock_hold"), command("reboot")
    send(memory_server, door.device_id, hold, reboot)
    assert inbox.wait_ack(reboot.cmd_id).ok
    assert door.wait_for(lambda: door.reboots == 1 and door.connected, WAIT_S)
    assert not door.unlocked and not door.held  # fail secure after a power cycle
    # The online status after the reboot travels the broker after the door reconnected.
    assert inbox.wait_for(lambda: len(inbox.statuses(door.device_id)) >= 3)
    assert [s.online for s in inbox.statuses(door.device_id)] == [True, False, True]
    marker = command("display", text="after")
    send(memory_server, door.device_id, marker)
    assert inbox.wait_ack(marker.cmd_id).ok
    assert [a.cmd for a in door.actions] == ["unlock_hold", "reboot", "display"]
    door.stop()


def test_barrier_lifts_on_open(memory_broker: MemoryBroker, memory_server: Server) -> None:
    barrier = Barrier(new_identity(), memory_broker)
    barrier.start()
    send(memory_server, barrier.device_id, command("open", open_ms=60_000))
    assert barrier.raised
    send(memory_server, barrier.device_id, command("lock"))
    assert not barrier.raised
    barrier.stop()


def test_presenting_without_an_api_says_so(door: Door) -> None:
    with pytest.raises(RuntimeError, match="no API URL"):
        door.present_card("04A1B2C3")
