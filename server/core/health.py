"""What ``/healthz`` reports: whether this deployment can do its job now.

Three things must hold for a web process to be healthy: the database answers, the worker
(MQTT ingest and the scheduled jobs) beat recently and holds its broker session, and the
broker is reachable from this process (commands to doors leave from here). Any one
failing makes the answer ``degraded`` with a 503 and says what is wrong, so a load
balancer or an operator is told the truth. ``/livez`` only says the process runs, for
process managers that must not restart a web process because the database is down.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from hardware.bus import BrokerAddress
from server.extensions import db
from server.models import ServiceHeartbeat, utcnow

BROKER_TIMEOUT_S = 1.0
MIN_SLACK_S = 5.0


def stale_after_s(interval_s: float) -> float:
    """A heartbeat older than this is stale: one interval, plus half of one (at least 5 s)
    for the job's own delay. With the default 30 s, a worker silent for 45 s is reported."""
    return interval_s + max(MIN_SLACK_S, interval_s / 2)


@dataclass
class Health:
    """The answer of ``/healthz``; ``problems`` is empty when everything holds."""

    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "degraded",
            "problems": self.problems,
            "checks": self.checks,
        }


def check() -> Health:
    """Check the database, the worker's heartbeat and the broker, in that order."""
    health = Health()
    beat = _check_database(health)
    if health.ok:
        _check_worker(health, beat, utcnow())
    _check_broker(health)
    return health


def _check_database(health: Health) -> ServiceHeartbeat | None:
    try:
        db.session.execute(select(1))
        beat = db.session.get(ServiceHeartbeat, "worker")
    except SQLAlchemyError as error:
        db.session.rollback()
        health.checks["database"] = {"ok": False, "error": type(error).__name__}
        health.problems.append(f"the database does not answer ({type(error).__name__})")
        return None
    health.checks["database"] = {"ok": True}
    return beat


def _check_worker(health: Health, beat: ServiceHeartbeat | None, now: datetime) -> None:
    limit = stale_after_s(current_app.config["SETTINGS"].worker_heartbeat_seconds)
    if beat is None:
        health.checks["worker"] = {"ok": False, "beat_at": None, "mqtt_connected": False}
        health.problems.append("the worker has never reported")
        return
    age = (now - beat.beat_at).total_seconds()
    fresh = age <= limit
    health.checks["worker"] = {
        "ok": fresh and beat.mqtt_connected,
        "beat_at": beat.beat_at.isoformat(),
        "age_s": round(age, 1),
        "stale_after_s": limit,
        "mqtt_connected": beat.mqtt_connected,
    }
    if not fresh:
        health.problems.append(f"the worker's heartbeat is {age:.0f} s old (limit {limit:.0f} s)")
    elif not beat.mqtt_connected:
        health.problems.append("the worker is not connected to the broker")


def _check_broker(health: Health) -> None:
    address = BrokerAddress.from_url(current_app.config["SETTINGS"].mqtt_url)
    where = f"{address.host}:{address.port}"
    try:
        with socket.create_connection((address.host, address.port), timeout=BROKER_TIMEOUT_S):
            pass
    except OSError as error:
        health.checks["broker"] = {"ok": False, "address": where}
        health.problems.append(f"the broker at {where} is unreachable ({error.strerror or error})")
        return
    health.checks["broker"] = {"ok": True, "address": where}
