"""The officers' live console: alerts as Server-Sent Events, from whichever process raised them.

Alerts are raised in web processes (verification) and in the worker (MQTT ingest, scheduled
jobs), so a stream cannot wait for an in-process signal. The alerts are a feed of the
process's change broadcaster (``server.core.live``): while a console is open it reads the
alerts whose ``updated_at`` moved (on PostgreSQL when the ``alerts`` trigger notifies a
change, on SQLite every ``POLL_S``) and hands each change to the streams whose caller may
see that community (staff never get the police's alert types). This module says what an
alert's change is (its console payload, with why it changed, from its history); the reads,
the heartbeats, ``STREAM_MAX_S`` and the resume from ``Last-Event-ID`` are the core's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta  # noqa: F401 (tests read them here)

from flask import Flask
from sqlalchemy import ColumnElement, select

from server.alerts.channels import DeliveryReason, alert_payload
from server.core import live
from server.core.live import TooManyStreams, event_stream, parse_event_id
from server.extensions import db
from server.models import Alert, AlertHistory

__all__ = [
    "AlertBroadcaster",
    "AlertChange",
    "TooManyStreams",
    "broadcaster",
    "changes_of",
    "event_stream",
    "parse_event_id",
    "resume_changes",
    "stop_broadcaster",
    "subscriber",
]

POLL_S = live.POLL_S
LOOKBACK_S = live.LOOKBACK_S
HEARTBEAT_S = live.HEARTBEAT_S
STREAM_MAX_S = live.STREAM_MAX_S
RESUME_LIMIT = live.RESUME_LIMIT
# The officers' consoles' own budget of streams per process (ALERT_STREAMS_PER_PROCESS).
BUDGET = "alerts"


@dataclass(frozen=True)
class AlertChange(live.Change):
    """One state of one alert, as the console receives it."""

    feed: str = "alerts"
    event: str = "alert"

    @property
    def alert_id(self) -> str:
        return self.row_id

    @property
    def updated_at(self) -> datetime:
        return self.changed_at


def changes_of(alerts: Iterable[Alert]) -> list[AlertChange]:
    """Console payloads of these alert states, with why each changed (from their history)."""
    alerts = list(alerts)
    if not alerts:
        return []
    steps = db.session.execute(
        select(AlertHistory.alert_id, AlertHistory.at, AlertHistory.action).where(
            AlertHistory.alert_id.in_([a.id for a in alerts]),
            AlertHistory.at >= min(a.updated_at for a in alerts),
        )
    ).all()
    actions = {(alert_id, at): action for alert_id, at, action in steps}
    changes = []
    for alert in alerts:
        # A step written with the change carries its time; an update has no step.
        reason = actions.get((alert.id, alert.updated_at), DeliveryReason.UPDATED.value)
        changes.append(
            AlertChange(
                alert.id, alert.community_id, alert.updated_at, alert_payload(alert, reason)
            )
        )
    return changes


ALERTS = live.register(
    live.Feed(
        name="alerts",
        model=Alert,
        changed=(Alert.updated_at,),
        community=Alert.community_id,
        event="alert",
        changes=changes_of,  # type: ignore[arg-type]
    )
)


class AlertBroadcaster(live.Broadcaster):
    """A broadcaster of the alerts alone (``poll`` by hand reads them from the start)."""

    def __init__(self, app: Flask, *, poll_s: float = POLL_S, lookback_s: float = LOOKBACK_S):
        super().__init__(app, [ALERTS], poll_s=poll_s, lookback_s=lookback_s)


def subscriber(
    community_ids: frozenset[str] | None, hidden_types: frozenset[str]
) -> live.Subscriber:
    """An officer's or staff member's console: the alerts of these communities (None: all),
    but not the types hidden from them (staff: the police's)."""
    return live.Subscriber(
        feeds=frozenset({ALERTS.name}),
        community_ids=community_ids,
        budget=BUDGET,
        keep=lambda change: change.payload.get("type") not in hidden_types,
    )


def broadcaster(app: Flask | None = None) -> live.Broadcaster:
    """This process's broadcaster (the core's: one poller for every feed)."""
    return live.broadcaster(app)


def stop_broadcaster(app: Flask) -> None:
    """Stop this app's poller, if it ever started one (tests, before they wipe the data)."""
    live.stop_broadcaster(app)


def resume_changes(visible: ColumnElement[bool], since: datetime) -> list[AlertChange]:
    """What a reconnecting client missed: the current state of alerts changed after ``since``."""
    rows = db.session.scalars(
        select(Alert)
        .where(visible, Alert.updated_at > since)
        .order_by(Alert.updated_at, Alert.id)
        .limit(RESUME_LIMIT)
    ).all()
    return changes_of(rows)
