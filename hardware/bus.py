"""A message bus over paho-mqtt 2.x: MQTT 5, persistent session, reconnects by itself."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]

# Keep the broker-side session (subscriptions and queued QoS 1 messages) for a day.
SESSION_EXPIRY_S = 24 * 3600


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is and how to sign in, parsed from ``mqtt[s]://user:pass@host:port``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"not an MQTT URL: {url!r}")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )


class MqttBus:
    """One paho client: subscriptions renewed on every (re)connect, QoS 1 by default."""

    def __init__(
        self, address: BrokerAddress, client_id: str, *, will: tuple[str, bytes] | None = None
    ):
        self.address = address
        self._handlers: list[tuple[str, Handler]] = []
        self._connected = threading.Event()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if address.username:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Call ``handler(topic, payload)`` for messages matching ``topic_filter``."""
        self._handlers.append((topic_filter, handler))
        if self.connected:
            self._client.subscribe(topic_filter, qos=1)

    def start(self) -> None:
        """Connect in the background; paho retries with backoff until it succeeds."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        self._client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=30,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        expiry_s: int | None = None,
    ) -> mqtt.MQTTMessageInfo:
        """Queue a message; with ``expiry_s`` the broker drops it if undelivered by then."""
        properties = None
        if expiry_s is not None:
            properties = Properties(PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = expiry_s
        return self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    # paho callbacks (network thread) ------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _properties: Any
    ) -> None:
        if reason_code.is_failure:
            _LOGGER.warning(
                "broker %s:%s refused the connection: %s",
                self.address.host,
                self.address.port,
                reason_code,
            )
            return
        _LOGGER.info("connected to broker %s:%s", self.address.host, self.address.port)
        for topic_filter, _handler in self._handlers:
            client.subscribe(topic_filter, qos=1)
        self._connected.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _properties: Any
    ) -> None:
        self._connected.clear()
        _LOGGER.info("disconnected from broker: %s", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        for topic_filter, handler in self._handlers:
            if mqtt.topic_matches_sub(topic_filter, message.topic):
                try:
                    handler(message.topic, message.payload)
                except Exception:  # a bad message must never stop the consumer
                    _LOGGER.exception("handler for %s failed", message.topic)
