"""The worker's ingest thread: device messages applied in batches, acknowledged once applied.

paho's network thread only queues each message (``submit``); this thread takes what has
come meanwhile, up to ``MAX_BATCH`` messages (while messages come in a burst it waits up to
``LINGER_S`` for more), and applies it in one transaction
(``DeviceIngest.apply_batch``), then acknowledges those messages to the broker in the order
they came. A message is acknowledged only once its batch committed (or was applied one by
one), so a worker killed meanwhile loses nothing: its persistent session gives the messages
again, and ingest is idempotent on device and ``seq``. There is no waiting for a batch to
fill: a quiet worker applies each message at once, a busy one gets larger batches by itself
while the previous one commits. Between batches it writes the heartbeats kept in memory
(``PresenceBuffer.flush``) once the oldest waited ``PRESENCE_FLUSH_S``; ``stop`` applies
what was queued and writes them all.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime

from server.models import utcnow
from server.worker.ingest import DeviceIngest
from server.worker.presence import PRESENCE_FLUSH_S, PresenceBuffer

_LOGGER = logging.getLogger(__name__)

# The most messages one transaction applies (a batch of these commits in tens of ms).
MAX_BATCH = 200
# How long a batch waits for more messages while messages come in a burst: a few ms more on an
# event, against a transaction's fixed round trips shared by more events.
LINGER_S = 0.005

_Item = tuple[str, bytes, datetime, Callable[[], None]]
_STOP = object()


class IngestPump:
    """Feeds ``ingest`` from the bus on a thread of its own; ``submit`` is the bus's handler
    (``MqttBus.subscribe_deferred``)."""

    def __init__(
        self,
        ingest: DeviceIngest,
        presences: PresenceBuffer | None = None,
        *,
        max_batch: int = MAX_BATCH,
        flush_after_s: float = PRESENCE_FLUSH_S,
        linger_s: float = LINGER_S,
    ):
        self.ingest = ingest
        self.presences = presences
        self.max_batch = max_batch
        self.flush_after_s = flush_after_s
        self.linger_s = linger_s
        self._bursting = False
        self.batches = 0
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._flush_due: float | None = None

    def submit(self, topic: str, payload: bytes, ack: Callable[[], None]) -> None:
        """Queue one message (paho's thread); ``ack`` runs once it is applied. After
        ``stop`` nothing is taken nor acknowledged: the broker gives it again."""
        if not self._closed.is_set():
            self._queue.put((topic, payload, utcnow(), ack))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Apply and acknowledge what was queued, write the pending last-seen, end."""
        self._closed.set()
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _LOGGER.warning("the ingest thread did not end within %.0f s", timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._next_batch()
            if batch:
                self._apply(batch)
            if self.presences is not None and self.presences.pending:
                now = time.monotonic()
                if self._flush_due is None:
                    self._flush_due = now + self.flush_after_s
                if stopping or now >= self._flush_due:
                    self._flush()

    def _next_batch(self) -> tuple[list[_Item], bool]:
        """What came meanwhile (waiting for the first no longer than the next flush), and
        whether ``stop`` was asked."""
        timeout = None
        if self._flush_due is not None:
            timeout = max(0.0, self._flush_due - time.monotonic())
        elif self.presences is not None and self.presences.pending:
            timeout = self.flush_after_s
        batch: list[_Item] = []
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return batch, False
        # In a burst (the last batch held more than one message) the batch waits a moment for
        # more: each transaction's own round trips then serve more messages. A lone message,
        # a door's event on a quiet evening, is applied at once.
        linger_until = time.monotonic() + self.linger_s if self._bursting else 0.0
        while True:
            if item is _STOP:
                return batch, True
            batch.append(item)  # type: ignore[arg-type]
            if len(batch) >= self.max_batch:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                left = linger_until - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = self._queue.get(timeout=left)
                except queue.Empty:
                    break
        self._bursting = len(batch) > 1
        return batch, False

    def _apply(self, batch: list[_Item]) -> None:
        try:
            self.ingest.apply_batch([(topic, payload, at) for topic, payload, at, _ack in batch])
        except Exception:  # logged; acknowledged all the same, as a failed handler's message
            _LOGGER.exception("a batch of %d device message(s) failed", len(batch))
        self.batches += 1
        for *_message, ack in batch:
            try:
                ack()
            except Exception:  # the connection is gone: the broker gives it again
                _LOGGER.debug("could not acknowledge a device message", exc_info=True)

    def _flush(self) -> None:
        if self.presences is None:
            return
        try:
            self.presences.flush()  # a database error keeps them for the next one
        except Exception:  # never the end of the ingest thread
            _LOGGER.exception("writing the heartbeats' last-seen failed")
        for name, count in self.presences.stats.items():
            self.ingest.stats[name] += count  # one by one: the metrics follow each count
        self.presences.stats.clear()
        self._flush_due = time.monotonic() + self.flush_after_s if self.presences.pending else None
