"""A raw HTTP client for Server-Sent Events (the alert console's stream, the pages' ``/live``),
bounded reads."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

READ_TIMEOUT_S = 5.0  # every read is bounded; the assertions ask for far less


@dataclass
class Event:
    id: str | None = None
    event: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    @property
    def alert(self) -> dict[str, Any]:
        return json.loads(self.data)


class SseClient:
    """A raw HTTP client reading ``text/event-stream`` line by line."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        query: str = "",
        path: str = "/api/v1/alerts/stream",
    ):
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(
            parts.hostname, parts.port, timeout=READ_TIMEOUT_S
        )
        self.connection.request("GET", path + query, headers=headers)
        self.response = self.connection.getresponse()

    def read_event(self) -> Event:
        """The next event or comment block (raises ``TimeoutError`` after READ_TIMEOUT_S)."""
        event = Event()
        while True:
            line = self.response.readline()
            if not line:
                raise EOFError("the stream ended")
            text = line.decode("utf-8").rstrip("\n")
            if text == "":
                if event.id or event.event or event.data or event.comments:
                    return event
                continue
            name, _, value = text.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                event.comments.append(value)
            elif name == "data":
                event.data += value
            elif name in ("id", "event"):
                setattr(event, name, value)

    def next_alert(self) -> tuple[Event, float]:
        """The next ``alert`` event and when it arrived (``time.monotonic``)."""
        return self.next_of("alert")

    def next_of(self, kind: str) -> tuple[Event, float]:
        """The next event named ``kind`` and when it arrived (``time.monotonic``)."""
        while True:
            event = self.read_event()
            if event.event == kind:
                return event, time.monotonic()

    def close(self) -> None:
        self.response.close()  # the response holds the socket open as much as the connection
        self.connection.close()
