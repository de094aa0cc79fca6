"""An in-memory twin of the MQTT broker and bus, for unit tests that need no Mosquitto.

``MemoryBroker`` routes messages between ``MemoryBus`` clients, which have the same
interface as ``hardware.bus.MqttBus`` (``Bus`` and ``DeviceBus`` protocols).

What it models: topic filters with ``+`` and ``#``; retained messages (delivered on
subscribe, cleared by an empty retained payload); the last will, published when a
client is killed (``broker.kill(client_id)`` or ``bus.kill()``) or taken over by a
new connection with the same client id, never on ``stop()``; persistent sessions
(``clean_start=False``, the default, as on ``MqttBus``): QoS 1 messages for a
stopped or killed client are queued and delivered when it connects again, unless
their ``expiry_s`` has passed by then. What it does not: QoS is not simulated beyond
"delivered once" (QoS 0 messages to an offline client are dropped), and there is no
authentication or ACL.

Delivery is synchronous and in order: ``publish()`` returns after the message, and
every message that handlers published in reaction to it, have been handed to their
subscribers. Handlers never nest: a publish made inside a handler is queued and
delivered when that handler returns, by the same thread. When two threads publish
at once, the second waits until the first one's deliveries are done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from hardware.bus import ConnectHook, Handler

_LOGGER = logging.getLogger(__name__)


def validate_topic_filter(topic_filter: str) -> None:
    """Raise ``ValueError`` unless ``topic_filter`` is a valid MQTT subscription filter."""
    if not topic_filter:
        raise ValueError("empty topic filter")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError(f"'#' must be a whole last level: {topic_filter!r}")
        if "+" in level and level != "+":
            raise ValueError(f"'+' must be a whole level: {topic_filter!r}")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches the subscription ``topic_filter`` (MQTT rules, ``$`` included)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


@dataclass(frozen=True)
class PublishedMessage:
    """One message as the broker received it, kept in ``MemoryBroker.log``."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    client_id: str | None
    expires_at: float | None = None  # time.monotonic() deadline from ``expiry_s``

    def expired(self) -> bool:
        return self.expires_at is not None and time.monotonic() >= self.expires_at


@dataclass
class _Session:
    client_id: str
    subscriptions: set[str] = field(default_factory=set)
    offline_queue: deque[PublishedMessage] = field(default_factory=deque)
    bus: MemoryBus | None = None


class MemoryBroker:
    """Routes messages between ``MemoryBus`` clients; inspect ``log`` and ``retained()``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._delivery_lock = threading.Lock()
        self._drainer: int | None = None
        self._pending: deque[tuple[str, PublishedMessage]] = deque()
        self._sessions: dict[str, _Session] = {}
        self._retained: dict[str, PublishedMessage] = {}
        self.log: list[PublishedMessage] = []

    # inspection -------------------------------------------------------------------------

    def retained(self, topic: str) -> bytes | None:
        """The retained payload on ``topic``, or None."""
        with self._lock:
            message = self._retained.get(topic)
            return None if message is None or message.expired() else message.payload

    def messages(self, topic_filter: str = "#") -> list[PublishedMessage]:
        """Every message received so far on topics matching ``topic_filter``, oldest first."""
        with self._lock:
            return [m for m in self.log if topic_matches(topic_filter, m.topic)]

    def is_connected(self, client_id: str) -> bool:
        """Whether a client with this id holds a connection."""
        with self._lock:
            session = self._sessions.get(client_id)
            return session is not None and session.bus is not None

    # connection faults --------------------------------------------------------------------

    def kill(self, client_id: str) -> None:
        """Drop a client's connection uncleanly: its last will is published, its session kept."""
        with self._lock:
            session = self._sessions.get(client_id)
            bus = session.bus if session else None
        if bus is not None:
            self._disconnect(bus, clean=False)

    # used by MemoryBus ----------------------------------------------------------------------

    def _connect(self, bus: MemoryBus) -> None:
        with self._lock:
            session = self._sessions.get(bus.client_id)
            old = session.bus if session else None
        if old is not None and old is not bus:
            _LOGGER.info("client id %s taken over by a new connection", bus.client_id)
            self._disconnect(old, clean=False)
        with self._lock:
            session = self._sessions.get(bus.client_id)
            if session is None or bus.clean_start:
                session = _Session(bus.client_id)
                self._sessions[bus.client_id] = session
            session.bus = bus
            queued = list(session.offline_queue)
            session.offline_queue.clear()
            self._pending.extend((bus.client_id, message) for message in queued)
        bus._on_connected()
        self._deliver()

    def _disconnect(self, bus: MemoryBus, *, clean: bool) -> None:
        with self._lock:
            session = self._sessions.get(bus.client_id)
            if session is None or session.bus is not bus:
                return
            session.bus = None
            if bus.clean_start:  # a clean session ends with its connection
                del self._sessions[bus.client_id]
        bus._on_disconnected()
        if not clean and bus.will is not None:
            topic, payload = bus.will
            self._publish(PublishedMessage(topic, payload, 1, True, bus.client_id))

    def _subscribe(self, bus: MemoryBus, topic_filter: str) -> None:
        with self._lock:
            session = self._sessions.get(bus.client_id)
            if session is None or session.bus is not bus:
                return
            session.subscriptions.add(topic_filter)
            for topic, message in sorted(self._retained.items()):
                if topic_matches(topic_filter, topic) and not message.expired():
                    self._pending.append((bus.client_id, message))
        self._deliver()

    def _publish(self, message: PublishedMessage) -> None:
        if "+" in message.topic or "#" in message.topic or not message.topic:
            raise ValueError(f"cannot publish to {message.topic!r}")
        with self._lock:
            self.log.append(message)
            if message.retain:
                if message.payload:
                    self._retained[message.topic] = message
                else:
                    self._retained.pop(message.topic, None)
            for session in self._sessions.values():
                if any(topic_matches(f, message.topic) for f in session.subscriptions):
                    self._pending.append((session.client_id, message))
        self._deliver()

    def _deliver(self) -> None:
        """Hand queued messages to their subscribers (see the module docstring for the order)."""
        me = threading.get_ident()
        with self._lock:
            if self._drainer == me:
                return  # called from inside a handler: the outer loop delivers it
        with self._delivery_lock:
            with self._lock:
                self._drainer = me
            try:
                while True:
                    with self._lock:
                        if not self._pending:
                            return
                        client_id, message = self._pending.popleft()
                        session = self._sessions.get(client_id)
                        if session is None or message.expired():
                            continue
                        bus = session.bus
                        if bus is None:
                            if message.qos > 0:
                                session.offline_queue.append(message)
                            continue
                    bus._dispatch(message.topic, message.payload)
            finally:
                with self._lock:
                    self._drainer = None


class MemoryBus:
    """A client of ``MemoryBroker`` with ``MqttBus``'s interface; connects synchronously."""

    def __init__(
        self,
        broker: MemoryBroker,
        client_id: str,
        *,
        will: tuple[str, bytes] | None = None,
        clean_start: bool = False,
    ):
        self.broker = broker
        self.client_id = client_id
        self.will = will
        self.clean_start = clean_start
        self._lock = threading.Lock()
        self._handlers: list[tuple[str, Handler]] = []
        self._connect_hooks: list[ConnectHook] = []
        self._outbox: list[tuple[PublishedMessage, Callable[[], None] | None]] = []
        self._connected = threading.Event()

    @property
    def connected(self) -> bool:
        """Whether this client is connected to its broker."""
        return self._connected.is_set()

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Call ``handler(topic, payload)`` for messages matching ``topic_filter``."""
        validate_topic_filter(topic_filter)
        with self._lock:
            self._handlers.append((topic_filter, handler))
        if self.connected:
            self.broker._subscribe(self, topic_filter)

    def add_connect_hook(self, hook: ConnectHook) -> None:
        """Call ``hook()`` after every connect, once subscriptions are renewed."""
        with self._lock:
            self._connect_hooks.append(hook)

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        expiry_s: int | None = None,
        on_acked: Callable[[], None] | None = None,
    ) -> PublishedMessage:
        """Publish; while disconnected, QoS 1 messages wait for the next connect (as paho's do).

        ``on_acked`` runs once the broker has taken a QoS 1 message, as after a PUBACK.
        """
        expires_at = time.monotonic() + expiry_s if expiry_s is not None else None
        message = PublishedMessage(topic, bytes(payload), qos, retain, self.client_id, expires_at)
        if not self.connected:
            if qos > 0:
                with self._lock:
                    self._outbox.append((message, on_acked))
            return message
        self._hand_over(message, on_acked)
        return message

    def _hand_over(self, message: PublishedMessage, on_acked: Callable[[], None] | None) -> None:
        self.broker._publish(message)
        if on_acked is not None and message.qos > 0:
            on_acked()

    def start(self) -> None:
        """Connect now (synchronously): hooks run, queued messages arrive before this returns."""
        if not self.connected:
            self.broker._connect(self)

    def stop(self) -> None:
        """Disconnect cleanly: no last will; the session (and its queue) is kept."""
        self.broker._disconnect(self, clean=True)

    def kill(self) -> None:
        """Disconnect uncleanly: the broker publishes the last will."""
        self.broker._disconnect(self, clean=False)

    def wait_connected(self, timeout: float) -> bool:
        """Wait until connected (``start()`` connects at once, so only another thread waits)."""
        return self._connected.wait(timeout)

    def wait_subscribed(self, timeout: float) -> bool:
        """Subscriptions take effect at once: the same as ``wait_connected``."""
        return self._connected.wait(timeout)

    def flush(self, timeout: float) -> bool:
        """Delivery is synchronous, so there is nothing to wait for once connected."""
        with self._lock:
            return not self._outbox

    # called by MemoryBroker -----------------------------------------------------------------

    def _on_connected(self) -> None:
        self._connected.set()
        with self._lock:
            filters = [topic_filter for topic_filter, _ in self._handlers]
            hooks = tuple(self._connect_hooks)
            outbox, self._outbox = self._outbox, []
        for topic_filter in dict.fromkeys(filters):
            self.broker._subscribe(self, topic_filter)
        for message, on_acked in outbox:
            if not message.expired():
                self._hand_over(message, on_acked)
        for hook in hooks:
            try:
                hook()
            except Exception:  # same promise as MqttBus: a hook never stops the client
                _LOGGER.exception("connect hook %r failed", hook)

    def _on_disconnected(self) -> None:
        self._connected.clear()

    def _dispatch(self, topic: str, payload: bytes) -> None:
        with self._lock:
            handlers = tuple(self._handlers)
        for topic_filter, handler in handlers:
            if topic_matches(topic_filter, topic):
                try:
                    handler(topic, payload)
                except Exception:  # a bad message must never stop the consumer
                    _LOGGER.exception("handler for %s failed", topic)
