"""The worker: the one process that consumes MQTT and runs the scheduler."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from hardware.bus import BrokerAddress, MqttBus
from hardware.topics import SERVER_SUBSCRIPTIONS
from server.access import snapshots, vehicles
from server.alerts import channels as alert_channels
from server.alerts import rules as alert_rules
from server.alerts import service as alerts
from server.core import messaging
from server.devices import commands
from server.extensions import db
from server.models import ServiceHeartbeat, utcnow
from server.passes import keys as passkeys
from server.passes import keyset
from server.people import service as people
from server.worker import ingest

_LOGGER = logging.getLogger(__name__)

WORKER_NAME = "worker"
# How often unanswered commands are marked expired.
COMMAND_EXPIRY_CHECK_S = 5
# How often ended leases are closed (credentials disabled, passes revoked, faces erased).
LEASE_CHECK_S = 60
# How often kept face crops are checked against their retention.
SNAPSHOT_RETENTION_CHECK_S = 3600
# How often the pass-signing keys are checked for rotation.
KEY_ROTATION_CHECK_S = 3600
# How often SQLite's write-ahead log is copied into the database (see server/__init__.py).
SQLITE_CHECKPOINT_S = 5
# How often visitor cars still inside after their pass are looked for.
OVERSTAY_CHECK_S = 60
# How often exit tag reads whose guardian window has passed are judged (wandering).
WANDERING_CHECK_S = 15
# How often elders living alone are checked for being unseen too long.
INACTIVE_ELDER_CHECK_S = 300
# How often patrol rounds that have ended are judged.
PATROL_CHECK_S = 60
# How often alert deliveries that are due (webhooks, their retries) are sent.
ALERT_DELIVERY_CHECK_S = 1
# How often open alerts are checked against their community's alert_ack_minutes.
ALERT_ESCALATION_CHECK_S = 30


def checkpoint_sqlite(app: Flask) -> tuple[int, int] | None:
    """Copy SQLite's WAL into the database here, so no request pays for the fsync.

    PASSIVE: it never waits for readers or writers; what it cannot copy now waits for the
    next run. Returns the WAL's frames and those copied; None on PostgreSQL (nothing to do).
    """
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            return None
        with db.engine.connect() as connection:
            _busy, frames, copied = connection.exec_driver_sql(
                "PRAGMA wal_checkpoint(PASSIVE)"
            ).one()
        return frames, copied


class Worker:
    """Consumes device messages, runs scheduled jobs, and reports a heartbeat until stopped."""

    def __init__(self, app: Flask):
        self.app = app
        self.settings = app.config["SETTINGS"]
        self.started_at = utcnow()
        self.bus = MqttBus(
            BrokerAddress.from_url(self.settings.mqtt_url), client_id=self.settings.mqtt_client_id
        )
        self.ingest = ingest.DeviceIngest(app)
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self._stop = threading.Event()
        self._keys_published = False

    def heartbeat(self) -> None:
        """Record that the worker is alive and whether the broker is reachable."""
        with self.app.app_context():
            beat = db.session.get(ServiceHeartbeat, WORKER_NAME)
            if beat is None:
                beat = ServiceHeartbeat(name=WORKER_NAME)
                db.session.add(beat)
            beat.host = socket.gethostname()
            beat.pid = os.getpid()
            beat.started_at = self.started_at
            beat.beat_at = utcnow()
            beat.mqtt_connected = self.bus.connected
            db.session.commit()
        _LOGGER.debug("heartbeat (broker connected: %s)", self.bus.connected)

    def detect_offline_devices(self) -> None:
        self._in_transaction(
            lambda: ingest.detect_offline(
                self.settings.device_heartbeat_seconds, self.settings.device_offline_after_misses
            )
        )

    def expire_commands(self) -> None:
        self._in_transaction(commands.expire_overdue)

    def erase_expired_snapshots(self) -> None:
        """Face crops past their community's retention days are deleted."""
        self._in_transaction(snapshots.erase_expired)

    def close_leases(self) -> None:
        """The lease-end cascade (access already ended: the policy checks leases itself)."""
        self._in_transaction(people.close_ended_leases)

    def checkpoint_sqlite(self) -> None:
        checkpoint_sqlite(self.app)

    def flag_overstays(self) -> None:
        """One ``overstay`` alert per visitor car still inside after its pass ended."""
        self._in_transaction(vehicles.flag_overstays)

    def judge_wandering(self) -> None:
        """``elder_wandering``/``child_wandering`` once a read's guardian window has passed."""
        self._in_transaction(alert_rules.judge_wandering_reads)

    def flag_inactive_elders(self) -> None:
        """One ``elder_inactive`` per absence of an elder living alone."""
        self._in_transaction(alert_rules.flag_inactive_elders)

    def judge_patrol_rounds(self) -> None:
        """One ``patrol_missed`` per route while open, for rounds a checkpoint missed."""
        self._in_transaction(alert_rules.judge_patrol_rounds)

    def deliver_alerts(self) -> None:
        """Send the due webhook deliveries; a failure is retried later with backoff."""
        self._in_transaction(alert_channels.deliver_due)

    def escalate_alerts(self) -> None:
        """Open alerts nobody acknowledged in time go up one severity and are sent again."""
        self._in_transaction(alerts.escalate_overdue)

    def rotate_pass_keys(self) -> None:
        """Rotate the pass-signing keys when due; publish the key sets when they changed.

        The first run publishes in any case, so a broker that lost its retained messages
        (or a fresh one) holds every community's key set again.
        """

        def job() -> None:
            if passkeys.rotate() or not self._keys_published:
                keyset.publish_key_set()

        self._in_transaction(job)
        self._keys_published = True

    def _in_transaction(self, job: Callable[[], object]) -> None:
        with self.app.app_context():
            try:
                job()
                db.session.commit()
            finally:
                db.session.remove()

    def stop(self, *_args: object) -> None:
        self._stop.set()

    def _schedule(self, job: Callable[[], None], seconds: float) -> None:
        self.scheduler.add_job(
            job,
            "interval",
            id=job.__name__,
            seconds=seconds,
            next_run_time=datetime.now(UTC),
            coalesce=True,
            max_instances=1,
        )

    def run(self, run_seconds: float | None = None) -> None:
        """Run until SIGINT/SIGTERM, or for ``run_seconds``."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        # APScheduler logs each run at INFO: a line a second from the delivery job alone.
        if _LOGGER.getEffectiveLevel() > logging.DEBUG:
            logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
        _LOGGER.info("worker starting; broker %s:%s", self.bus.address.host, self.bus.address.port)
        for topic_filter in SERVER_SUBSCRIPTIONS:
            self.bus.subscribe(topic_filter, self.ingest.handle)
        messaging.use_bus(self.app, self.bus)  # jobs that command devices publish through us
        self.bus.start()
        self._schedule(self.heartbeat, self.settings.worker_heartbeat_seconds)
        # Check several times per allowed silence so an absence is caught promptly.
        self._schedule(
            self.detect_offline_devices, max(1.0, self.settings.device_heartbeat_seconds / 2)
        )
        self._schedule(self.expire_commands, COMMAND_EXPIRY_CHECK_S)
        self._schedule(self.close_leases, LEASE_CHECK_S)
        self._schedule(self.erase_expired_snapshots, SNAPSHOT_RETENTION_CHECK_S)
        self._schedule(self.rotate_pass_keys, KEY_ROTATION_CHECK_S)
        self._schedule(self.flag_overstays, OVERSTAY_CHECK_S)
        self._schedule(self.checkpoint_sqlite, SQLITE_CHECKPOINT_S)
        self._schedule(self.judge_wandering, WANDERING_CHECK_S)
        self._schedule(self.flag_inactive_elders, INACTIVE_ELDER_CHECK_S)
        self._schedule(self.judge_patrol_rounds, PATROL_CHECK_S)
        self._schedule(self.deliver_alerts, ALERT_DELIVERY_CHECK_S)
        self._schedule(self.escalate_alerts, ALERT_ESCALATION_CHECK_S)
        self.scheduler.start()
        try:
            self._stop.wait(run_seconds)
        finally:
            self.scheduler.shutdown(wait=True)
            self.bus.stop()
            self.heartbeat()  # the last word: stopped, and no longer connected
            _LOGGER.info("worker stopped; ingest counts: %s", dict(self.ingest.stats))
