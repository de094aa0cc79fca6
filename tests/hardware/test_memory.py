"""The in-memory twin of the broker and bus."""

from __future__ import annotations

import pytest

from hardware.bus import Bus, DeviceBus, MqttBus
from hardware.memory import MemoryBroker, MemoryBus, topic_matches, validate_topic_filter
from tests.hardware.conftest import Inbox


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("gk/v1/+/+/evt", "gk/v1/c1/d1/evt", True),
        ("gk/v1/+/+/evt", "gk/v1/c1/d1/ack", False),
        ("gk/v1/+/+/evt", "gk/v1/c1/evt", False),
        ("gk/#", "gk/v1/c1/d1/evt", True),
        ("gk/#", "gk", True),
        ("#", "gk/v1", True),
        ("#", "$SYS/broker", False),
        ("+/broker", "$SYS/broker", False),
        ("a/+", "a/", True),
        ("a/b", "a/b/c", False),
    ],
)
def test_topic_matching(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b#", "a+/b"])
def test_bad_filters_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_topic_filter(bad)


def test_both_buses_fit_the_protocols(memory_broker: MemoryBroker) -> None:
    from hardware.bus import BrokerAddress

    for bus in (
        MemoryBus(memory_broker, "x"),
        MqttBus(BrokerAddress("127.0.0.1", 1), "x"),
    ):
        assert isinstance(bus, Bus)
        assert isinstance(bus, DeviceBus)


def test_delivery_is_synchronous_and_handlers_never_nest(memory_broker: MemoryBroker) -> None:
    order: list[str] = []
    echo = MemoryBus(memory_broker, "echo")

    def reply(topic: str, payload: bytes) -> None:
        order.append(f"echo got {payload.decode()}")
        echo.publish("replies", b"re:" + payload)
        order.append("echo handler returns")

    echo.subscribe("requests", reply)
    echo.start()
    client = MemoryBus(memory_broker, "client")
    client.subscribe("replies", lambda t, p: order.append(f"client got {p.decode()}"))
    client.start()

    client.publish("requests", b"1")
    # The reply was delivered before publish() returned, after the echo handler finished.
    assert order == ["echo got 1", "echo handler returns", "client got re:1"]


def test_retained_messages_are_delivered_on_subscribe_and_cleared_by_empty_payload(
    memory_broker: MemoryBroker,
) -> None:
    publisher = MemoryBus(memory_broker, "pub")
    publisher.start()
    publisher.publish("s/a", b"on", retain=True)
    publisher.publish("s/b", b"plain")
    inbox = Inbox()
    late = MemoryBus(memory_broker, "late")
    late.subscribe("s/+", inbox)
    late.start()
    assert inbox.messages == [("s/a", b"on")]
    assert memory_broker.retained("s/a") == b"on"
    publisher.publish("s/a", b"", retain=True)
    assert memory_broker.retained("s/a") is None


def test_last_will_on_kill_and_takeover_not_on_stop(memory_broker: MemoryBroker) -> None:
    inbox = Inbox()
    watcher = MemoryBus(memory_broker, "watcher")
    watcher.subscribe("status/#", inbox)
    watcher.start()

    device = MemoryBus(memory_broker, "dev", will=("status/dev", b"gone"))
    device.start()
    device.stop()
    assert inbox.messages == []
    device.start()
    memory_broker.kill("dev")
    assert inbox.messages == [("status/dev", b"gone")]
    assert memory_broker.retained("status/dev") == b"gone"
    assert not device.connected

    device.start()
    newcomer = MemoryBus(memory_broker, "dev", will=("status/dev", b"gone"))
    newcomer.start()  # the same client id takes the session over
    assert not device.connected and newcomer.connected
    assert inbox.messages[-1] == ("status/dev", b"gone")


def test_persistent_session_queues_qos1_only_and_honours_expiry(
    memory_broker: MemoryBroker,
) -> None:
    inbox = Inbox()
    device = MemoryBus(memory_broker, "dev")
    device.subscribe("cmd", inbox)
    device.start()
    device.stop()

    server = MemoryBus(memory_broker, "server")
    server.start()
    server.publish("cmd", b"qos1")
    server.publish("cmd", b"qos0", qos=0)
    server.publish("cmd", b"expires", expiry_s=0)
    server.publish("cmd", b"lasts", expiry_s=60)
    assert inbox.messages == []
    device.start()
    assert [p for _, p in inbox.messages] == [b"qos1", b"lasts"]


def test_clean_start_discards_the_session(memory_broker: MemoryBroker) -> None:
    inbox = Inbox()
    device = MemoryBus(memory_broker, "dev", clean_start=True)
    device.subscribe("cmd", inbox)
    device.start()
    device.stop()
    other = MemoryBus(memory_broker, "server2")
    other.start()
    other.publish("cmd", b"lost too")
    device.start()
    assert inbox.messages == []


def test_publish_while_disconnected_waits_for_the_connection(memory_broker: MemoryBroker) -> None:
    inbox = Inbox()
    server = MemoryBus(memory_broker, "server")
    server.subscribe("evt", inbox)
    server.start()
    device = MemoryBus(memory_broker, "dev")
    device.publish("evt", b"early")
    device.publish("evt", b"qos0 early", qos=0)
    assert inbox.messages == [] and not device.flush(0)
    device.start()
    assert inbox.messages == [("evt", b"early")] and device.flush(0)


def test_connect_hooks_run_on_every_connect_and_a_failing_one_is_contained(
    memory_broker: MemoryBroker,
) -> None:
    calls: list[str] = []
    bus = MemoryBus(memory_broker, "dev")

    def broken() -> None:
        raise RuntimeError("boom")

    bus.add_connect_hook(broken)
    bus.add_connect_hook(lambda: calls.append("connected"))
    bus.start()
    bus.kill()
    bus.start()
    assert calls == ["connected", "connected"]
    assert bus.wait_connected(0) and bus.wait_subscribed(0)


def test_wildcards_cannot_be_published(memory_broker: MemoryBroker) -> None:
    bus = MemoryBus(memory_broker, "dev")
    bus.start()
    with pytest.raises(ValueError):
        bus.publish("gk/+/x", b"")
