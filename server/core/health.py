"""What ``/healthz`` reports: whether this deployment can do its job now.

Three things must hold for a web process to be healthy: the database answers, the workers
beat recently (one of them leading the scheduled jobs, and one at least holding its broker
session for MQTT ingest), and the broker is reachable from this process (commands to doors
leave from here). Any one
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
# Workers' heartbeat rows are "worker:<worker id>" (server.worker.identity).
WORKER_ROW_PREFIX = "worker:"
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
    """Check the database, the workers' heartbeats and the broker, in that order."""
    health = Health()
    beats = _check_database(health)
    if health.ok:
        _check_worker(health, beats, utcnow())
    _check_broker(health)
    return health


def worker_beats() -> list[ServiceHeartbeat]:
    """Every worker's heartbeat row, the newest first."""
    return list(
        db.session.scalars(
            select(ServiceHeartbeat)
            .where(ServiceHeartbeat.name.like(f"{WORKER_ROW_PREFIX}%"))
            .order_by(ServiceHeartbeat.beat_at.desc())
        )
    )


def leading_worker() -> ServiceHeartbeat | None:
    """The row of the worker that leads the scheduled jobs, else the newest (admin home)."""
    beats = worker_beats()
    return next((beat for beat in beats if beat.leader), beats[0] if beats else None)


def _check_database(health: Health) -> list[ServiceHeartbeat]:
    try:
        db.session.execute(select(1))
        beats = worker_beats()
    except SQLAlchemyError as error:
        db.session.rollback()
        health.checks["database"] = {"ok": False, "error": type(error).__name__}
        health.problems.append(f"the database does not answer ({type(error).__name__})")
        return []
    health.checks["database"] = {"ok": True}
    return beats


def _check_worker(health: Health, beats: list[ServiceHeartbeat], now: datetime) -> None:
    """Fresh: beat within ``stale_after_s``. Healthy: a fresh worker leads (the jobs run) and
    a fresh worker holds its broker session (device traffic is consumed)."""
    limit = stale_after_s(current_app.config["SETTINGS"].worker_heartbeat_seconds)
    if not beats:
        health.checks["worker"] = {"ok": False, "beat_at": None, "mqtt_connected": False}
        health.problems.append("the worker has never reported")
        return
    workers = [_worker_state(beat, now, limit) for beat in beats]
    fresh = [w for w in workers if w["fresh"]]
    leader = next((w for w in fresh if w["leader"]), None)
    connected = any(w["mqtt_connected"] for w in fresh)
    shown = leader or workers[0]  # the newest, when none leads
    health.checks["worker"] = {
        "ok": leader is not None and connected,
        "beat_at": shown["beat_at"],
        "age_s": shown["age_s"],
        "stale_after_s": limit,
        "mqtt_connected": connected,
        "leader": leader["id"] if leader else None,
        "workers": workers,
    }
    if not fresh:
        age = shown["age_s"]
        health.problems.append(f"the worker's heartbeat is {age:.0f} s old (limit {limit:.0f} s)")
    elif leader is None:
        health.problems.append("no worker leads the scheduled jobs")
    elif not connected:
        health.problems.append("the worker is not connected to the broker")


def _worker_state(beat: ServiceHeartbeat, now: datetime, limit: float) -> dict[str, Any]:
    age = (now - beat.beat_at).total_seconds()
    return {
        "id": beat.name.removeprefix(WORKER_ROW_PREFIX),
        "host": beat.host,
        "pid": beat.pid,
        "beat_at": beat.beat_at.isoformat(),
        "age_s": round(age, 1),
        "fresh": age <= limit,
        "leader": beat.leader,
        "leader_since": beat.leader_since.isoformat() if beat.leader_since else None,
        "mqtt_connected": beat.mqtt_connected,
    }


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
