"""A message bus over paho-mqtt 2.x: MQTT 5, persistent session, reconnects by itself.

``MqttBus`` is the real client; ``hardware.memory.MemoryBus`` is its in-memory twin
for unit tests. Both satisfy the ``Bus`` protocol below (what the server uses) and
``DeviceBus`` (the extra hooks the device simulators use).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hardware.topics import topic_filter_of

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]
# A handler that acknowledges the message itself, later: ``handler(topic, payload, ack)``.
DeferredHandler = Callable[[str, bytes, Callable[[], None]], None]
ConnectHook = Callable[[], None]

# Keep the broker-side session (subscriptions and queued QoS 1 messages) for a day.
SESSION_EXPIRY_S = 24 * 3600
# How long an early PUBACK (one that beats ``publish()`` returning) is remembered.
_EARLY_ACK_TTL_S = 30.0


def _run_ack_callback(callback: Callable[[], None]) -> None:
    """Run a publisher's PUBACK callback; its failure is logged, never paho's problem."""
    try:
        callback()
    except Exception:  # a broken callback must not stop the network thread
        _LOGGER.exception("a PUBACK callback failed")


@runtime_checkable
class Bus(Protocol):
    """What the server needs from a message bus; ``MqttBus`` and ``MemoryBus`` both fit."""

    @property
    def connected(self) -> bool: ...

    def subscribe(self, topic_filter: str, handler: Handler) -> None: ...

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        expiry_s: int | None = None,
        on_acked: Callable[[], None] | None = None,
    ) -> object: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wait_connected(self, timeout: float) -> bool: ...

    def wait_subscribed(self, timeout: float) -> bool: ...


@runtime_checkable
class DeviceBus(Bus, Protocol):
    """What a (simulated) device needs on top of ``Bus``."""

    def add_connect_hook(self, hook: ConnectHook) -> None: ...

    def flush(self, timeout: float) -> bool: ...

    def kill(self) -> None: ...


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
        """Parse a broker URL; a malformed one raises ``ValueError`` with a readable message."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"not an MQTT URL: {url!r}")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port
        except ValueError as error:
            raise ValueError(f"bad port in MQTT URL {url!r}: {error}") from None
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )


class MqttBus:
    """One paho client: subscriptions renewed on every (re)connect, QoS 1 by default.

    The session is persistent (``clean_start=False`` with a session expiry), so QoS 1
    messages published while this client is away are delivered when it comes back
    with the same ``client_id``. Handlers and connect hooks run on paho's network
    thread; an exception in one is logged and never stops the client.

    Incoming QoS 1 messages are acknowledged (PUBACK) after the handlers ran: a crash
    mid-handling means redelivery (at least once, for consumers that dedupe, like the
    server on device and ``seq``). With ``ack_first=True`` the PUBACK leaves before the
    handlers run (at most once, for devices: a door must rather miss an unlock than
    repeat one after a power cut, and anything a handler publishes, such as the
    command's ack, then reaches the broker after the PUBACK).

    With ``deferred_acks=True`` a handler subscribed with ``subscribe_deferred`` gets the
    message's ``ack`` and calls it itself, once the message is safely applied (the worker's
    ingest: after the commit of the batch that holds it, on a thread of its own); other
    messages are acknowledged after their handlers ran, as without it.
    """

    def __init__(
        self,
        address: BrokerAddress,
        client_id: str,
        *,
        will: tuple[str, bytes] | None = None,
        clean_start: bool = False,
        session_expiry_s: int = SESSION_EXPIRY_S,
        keepalive_s: int = 30,
        ack_first: bool = False,
        deferred_acks: bool = False,
    ):
        self.address = address
        self._ack_first = ack_first
        self._deferred_acks = deferred_acks and not ack_first
        self.client_id = client_id
        self._clean_start = clean_start
        self._session_expiry_s = session_expiry_s
        self._keepalive_s = keepalive_s
        self._handlers: list[tuple[str, Handler]] = []
        self._deferred_handlers: list[tuple[str, DeferredHandler]] = []
        self._connect_hooks: list[ConnectHook] = []
        self._disconnect_hooks: list[ConnectHook] = []
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._lock = threading.Lock()
        self._pending_subscribes: set[int] = set()
        self._acks = threading.Condition()
        self._pending_publishes: set[int] = set()
        self._early_acks: dict[int, float] = {}
        self._ack_callbacks: dict[int, Callable[[], None]] = {}
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if address.username:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        if ack_first or deferred_acks:
            client.manual_ack_set(True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        self._client = client

    @property
    def connected(self) -> bool:
        """Whether the client holds a connection right now."""
        return self._connected.is_set()

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Call ``handler(topic, payload)`` for messages matching ``topic_filter``.

        A shared subscription (``$share/{group}/{filter}``) is matched as ``filter``.
        """
        with self._lock:
            self._handlers.append((topic_filter, handler))
            if self.connected:
                self._subscribe_locked(topic_filter)

    def subscribe_deferred(self, topic_filter: str, handler: DeferredHandler) -> None:
        """Call ``handler(topic, payload, ack)`` for messages matching ``topic_filter``; the
        broker gets the PUBACK when ``ack()`` is called (from any thread, in the order the
        messages came). Needs ``deferred_acks=True``; one such handler per message."""
        if not self._deferred_acks:
            raise ValueError("subscribe_deferred needs a bus made with deferred_acks=True")
        with self._lock:
            self._deferred_handlers.append((topic_filter, handler))
            if self.connected:
                self._subscribe_locked(topic_filter)

    def add_connect_hook(self, hook: ConnectHook) -> None:
        """Call ``hook()`` after every successful (re)connect, once subscriptions are renewed."""
        with self._lock:
            self._connect_hooks.append(hook)

    def add_disconnect_hook(self, hook: ConnectHook) -> None:
        """Call ``hook()`` whenever the connection is lost or closed (the server's metrics)."""
        with self._lock:
            self._disconnect_hooks.append(hook)

    @property
    def unacknowledged(self) -> int:
        """QoS 1/2 messages published and not yet acknowledged by the broker (kept by paho
        while the broker is away)."""
        with self._acks:
            return len(self._pending_publishes)

    def start(self) -> None:
        """Connect in the background; paho retries with backoff until it succeeds."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._session_expiry_s
        self._client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=self._keepalive_s,
            clean_start=self._clean_start,
            properties=properties,
        )
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until connected; False after ``timeout`` seconds."""
        return self._connected.wait(timeout)

    def wait_subscribed(self, timeout: float) -> bool:
        """Wait until connected and every subscription has been acknowledged by the broker."""
        deadline = time.monotonic() + timeout
        if not self._connected.wait(timeout):
            return False
        return self._subscribed.wait(max(0.0, deadline - time.monotonic()))

    def flush(self, timeout: float) -> bool:
        """Wait until every QoS 1/2 message published so far is acknowledged by the broker."""
        deadline = time.monotonic() + timeout
        with self._acks:
            while self._pending_publishes:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._acks.wait(remaining)
        return True

    def stop(self) -> None:
        """Disconnect cleanly: the broker keeps the session and does not publish the will."""
        self._client.disconnect()
        _end_network_thread(self._client)
        self._connected.clear()
        self._subscribed.clear()

    def kill(self) -> None:
        """Drop the connection without a DISCONNECT, as a power cut would.

        The broker sees the TCP connection close and publishes the last will. The
        network thread is stopped so paho does not reconnect; ``start()`` connects again.
        """
        sock = self._client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed: the effect we want
                sock.shutdown(socket.SHUT_RDWR)
        _end_network_thread(self._client)
        self._connected.clear()
        self._subscribed.clear()

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        expiry_s: int | None = None,
        on_acked: Callable[[], None] | None = None,
    ) -> mqtt.MQTTMessageInfo:
        """Queue a message; with ``expiry_s`` the broker drops it if undelivered by then.

        QoS 1/2 messages published while disconnected are kept by paho and sent on
        reconnect. ``on_acked`` runs (on paho's network thread) once the broker has
        acknowledged a QoS 1 message (PUBACK without a failure): the message is then the
        broker's to deliver, not only ours to send.
        """
        properties = None
        if expiry_s is not None:
            properties = Properties(PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = expiry_s
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        acked_already = False
        if qos > 0:
            with self._acks:
                # The PUBACK can beat us here; _on_publish then left a note.
                acked_already = self._early_acks.pop(info.mid, None) is not None
                if not acked_already:
                    self._pending_publishes.add(info.mid)
                    if on_acked is not None:
                        self._ack_callbacks[info.mid] = on_acked
        if acked_already and on_acked is not None:
            _run_ack_callback(on_acked)
        return info

    # paho callbacks (network thread) ------------------------------------------------------

    def _subscribe_locked(self, topic_filter: str) -> None:
        result, mid = self._client.subscribe(topic_filter, qos=1)
        if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._pending_subscribes.add(mid)
            self._subscribed.clear()

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason_code: Any, _properties: Any
    ) -> None:
        if reason_code.is_failure:
            _LOGGER.warning(
                "broker %s:%s refused the connection: %s",
                self.address.host,
                self.address.port,
                reason_code,
            )
            return
        _LOGGER.info(
            "connected to broker %s:%s as %s (session present: %s)",
            self.address.host,
            self.address.port,
            self.client_id,
            getattr(flags, "session_present", None),
        )
        with self._lock:
            self._pending_subscribes.clear()
            for topic_filter, _handler in self._handlers:
                self._subscribe_locked(topic_filter)
            for topic_filter, _deferred in self._deferred_handlers:
                self._subscribe_locked(topic_filter)
            if not self._pending_subscribes:
                self._subscribed.set()
            hooks = tuple(self._connect_hooks)
        self._connected.set()
        for hook in hooks:
            try:
                hook()
            except Exception:  # a hook must never stop the client
                _LOGGER.exception("connect hook %r failed", hook)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _properties: Any
    ) -> None:
        self._connected.clear()
        self._subscribed.clear()
        _LOGGER.info("disconnected from broker: %s", reason_code)
        with self._lock:
            hooks = tuple(self._disconnect_hooks)
        for hook in hooks:
            try:
                hook()
            except Exception:  # a hook must never stop the client
                _LOGGER.exception("disconnect hook %r failed", hook)

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason_codes: Any, _properties: Any
    ) -> None:
        for code in reason_codes:
            if code.is_failure:
                _LOGGER.warning("broker refused a subscription of %s: %s", self.client_id, code)
        with self._lock:
            self._pending_subscribes.discard(mid)
            if not self._pending_subscribes:
                self._subscribed.set()

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason_code: Any, _properties: Any
    ) -> None:
        refused = getattr(reason_code, "is_failure", False)
        if refused:
            _LOGGER.warning("broker refused a message from %s: %s", self.client_id, reason_code)
        with self._acks:
            callback = self._ack_callbacks.pop(mid, None)
            if mid in self._pending_publishes:
                self._pending_publishes.discard(mid)
                if not self._pending_publishes:
                    self._acks.notify_all()
            else:
                now = time.monotonic()
                self._early_acks = {
                    m: at for m, at in self._early_acks.items() if now - at < _EARLY_ACK_TTL_S
                }
                self._early_acks[mid] = now
        if callback is not None and not refused:
            _run_ack_callback(callback)

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._ack_first:
            client.ack(message.mid, message.qos)
        with self._lock:
            handlers = tuple(self._handlers)
            deferred = tuple(self._deferred_handlers)
        for subscription, handler in handlers:
            # A shared subscription ($share/{group}/...) matches as its filter does.
            if mqtt.topic_matches_sub(topic_filter_of(subscription), message.topic):
                try:
                    handler(message.topic, message.payload)
                except Exception:  # a bad message must never stop the consumer
                    _LOGGER.exception("handler for %s failed", message.topic)
        if not self._deferred_acks:
            return
        for subscription, deferred_handler in deferred:
            if mqtt.topic_matches_sub(topic_filter_of(subscription), message.topic):
                try:
                    deferred_handler(
                        message.topic,
                        message.payload,
                        partial(client.ack, message.mid, message.qos),
                    )
                    return  # the handler acknowledges it
                except Exception:
                    _LOGGER.exception("handler for %s failed", message.topic)
                    break
        client.ack(message.mid, message.qos)  # no deferred handler took it: done here


def drain_session(
    address: BrokerAddress,
    client_id: str,
    subscriptions: tuple[str, ...],
    handler: Handler,
    *,
    quiet_s: float = 1.0,
    limit_s: float = 30.0,
) -> int | None:
    """Take over the persistent session of ``client_id`` (a client that is gone for good),
    hand ``handler`` every message the broker kept for it, and end the session.

    It connects as ``client_id`` with clean start off (the session and its queue are
    resumed) and a session expiry of 0 (the broker deletes the session when we leave), and
    unsubscribes ``subscriptions`` at once, so the broker routes nothing new to it: with
    shared subscriptions it would otherwise keep giving the gone client its turn. Messages
    are acknowledged after ``handler`` ran. It leaves when no message came for ``quiet_s``
    seconds, or after ``limit_s``. Returns how many messages it handled; None when the
    broker refused the connection or had no session for ``client_id`` (nothing to drain).
    """
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    state = {"handled": 0, "last": time.monotonic(), "resumed": False}
    finished = threading.Event()

    def on_connect(
        client: mqtt.Client, _userdata: Any, flags: Any, reason_code: Any, _properties: Any
    ) -> None:
        if reason_code.is_failure or not getattr(flags, "session_present", False):
            finished.set()  # refused, or no session: nothing was kept for it
            return
        state["resumed"] = True
        state["last"] = time.monotonic()
        client.unsubscribe(list(subscriptions))

    def on_message(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            handler(message.topic, message.payload)
        except Exception:  # one bad message must not keep the rest
            _LOGGER.exception("handler for %s failed while draining %s", message.topic, client_id)
        state["handled"] += 1
        state["last"] = time.monotonic()

    def on_disconnect(*_args: Any) -> None:
        finished.set()  # e.g. the client came back and took its session: leave it be

    client.on_connect = on_connect
    client.on_message = on_message
    client.on_disconnect = on_disconnect
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0
    deadline = time.monotonic() + limit_s
    try:
        client.connect(
            address.host, address.port, keepalive=30, clean_start=False, properties=properties
        )
    except OSError as error:
        _LOGGER.warning("cannot drain %s: %s", client_id, error)
        return None
    client.loop_start()
    try:
        while not finished.wait(0.1):
            now = time.monotonic()
            if now > deadline or (state["resumed"] and now - state["last"] > quiet_s):
                break
    finally:
        client.disconnect()
        _end_network_thread(client)
    return int(state["handled"]) if state["resumed"] else None


def _end_network_thread(client: mqtt.Client) -> None:
    """``loop_stop``, where the thread may have ended by itself (a refused or cut connection):
    paho 2.1 clears ``_thread`` between its check and its join, so that is no error."""
    with contextlib.suppress(AttributeError):
        client.loop_stop()
