"""A paho MQTT 5 subscriber for tests: what arrives on some topics, and when."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import time
from typing import Any

import paho.mqtt.client as mqtt

WAIT_S = 15


def stop_client(client: mqtt.Client) -> None:
    """Disconnect a test's paho client and end its network thread. The thread may have ended
    by itself (a refused CONNACK, a broker that cut the connection), and paho 2.1 clears
    ``_thread`` between ``loop_stop``'s check and its join: stopping a client whose thread
    is already gone is then a no-op, not an error."""
    client.disconnect()
    with contextlib.suppress(AttributeError):
        client.loop_stop()


class Listener:
    """A paho MQTT 5 client subscribed to some topics, keeping what arrives."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None):
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"alert-listener-{os.getpid()}-{time.monotonic_ns()}",
            protocol=mqtt.MQTTv5,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.port = port
        self.connack: queue.Queue[Any] = queue.Queue()
        self.subacks: queue.Queue[Any] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
        # When each message arrived (time.monotonic), in arrival order.
        self.arrivals: list[float] = []
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self.connack.put(reason)
        self.client.on_subscribe = lambda _c, _u, _m, reasons, _p: self.subacks.put(reasons)
        self.client.on_message = self._keep

    def _keep(self, _client: Any, _userdata: Any, message: Any) -> None:
        self.arrivals.append(time.monotonic())
        self.messages.put((message.topic, message.payload, message.qos))

    def listen(self, *topics: str) -> None:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        reason = self.connack.get(timeout=WAIT_S)
        assert not reason.is_failure, reason
        self.client.subscribe([(topic, 1) for topic in topics])
        self.subacks.get(timeout=WAIT_S)

    def next_alert(self) -> tuple[str, dict[str, Any], int]:
        topic, payload, qos = self.messages.get(timeout=WAIT_S)
        return topic, json.loads(payload), qos

    def close(self) -> None:
        stop_client(self.client)
