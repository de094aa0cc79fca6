"""The worker: a process that consumes MQTT and, while it leads, runs the scheduled jobs.

Several workers may run at once, on one host or many. Each consumes device traffic through
the broker's shared subscriptions (``hardware.topics.server_subscriptions``: the broker
hands each message to one of them) with a client id and persistent session of its own
(``server.worker.identity``). One of them, the leader, runs APScheduler's jobs: the one
that holds the scheduler's lock (``server.worker.leadership``). Every worker tries to take
it at each heartbeat, so another leads within two heartbeat intervals of the leader's death.
Each worker writes its own heartbeat row (``worker:<id>``), saying whether it leads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from hardware.bus import BrokerAddress, MqttBus, drain_session
from hardware.topics import SERVER_SUBSCRIPTIONS, server_subscriptions, share_group
from server.access import allowlists, intercom, retention, snapshots, vehicles
from server.alerts import channels as alert_channels
from server.alerts import cross_checks
from server.alerts import dispatch as alert_dispatch
from server.alerts import rules as alert_rules
from server.alerts import service as alerts
from server.core import messaging
from server.core.health import stale_after_s
from server.devices import commands
from server.extensions import db
from server.models import ServiceHeartbeat, utcnow
from server.notifications import service as notification_service
from server.passes import keys as passkeys
from server.passes import keyset
from server.people import service as people
from server.privacy import retention as privacy_retention
from server.worker import ingest
from server.worker import notifications as notification_delivery
from server.worker.identity import (
    HEARTBEAT_PREFIX,
    IdentityLock,
    WorkerIdentity,
    WorkerIdTaken,
    choose_identity,
    claim_identity,
)
from server.worker.leadership import LeaderLock, scheduler_lock
from server.worker.presence import PRESENCE_LAG, PresenceBuffer
from server.worker.pump import IngestPump

_LOGGER = logging.getLogger(__name__)

__all__ = ["Worker", "WorkerIdTaken", "checkpoint_sqlite"]

# Heartbeat rows of workers silent this long are deleted by the leader.
FORGET_WORKER_AFTER = timedelta(days=1)
# How often unanswered commands are marked expired.
COMMAND_EXPIRY_CHECK_S = 5
# How often ended leases are closed (credentials disabled, passes revoked, faces erased).
LEASE_CHECK_S = 60
# How often kept face crops and access events are checked against their retention.
RETENTION_CHECK_S = 3600
# How often the pass-signing keys are checked for rotation.
KEY_ROTATION_CHECK_S = 3600
# How often SQLite's write-ahead log is copied into the database (see server/__init__.py).
SQLITE_CHECKPOINT_S = 5
# How often visitor cars still inside after their pass are looked for.
OVERSTAY_CHECK_S = 60
# Intercom calls: roll over or time out when their time is up; snapshots erased after the call.
INTERCOM_CHECK_S = 2.0
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
# How often residents' notifications that are due (Web Push, SMS gateway) are sent.
NOTIFICATION_DELIVERY_CHECK_S = 1
# How often leases ending within a week are looked for (each tenant told once per lease).
LEASE_ENDING_CHECK_S = 3600
# How often the offline allowlists a change touched are rebuilt and published.
ALLOWLIST_CHECK_S = 1


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
    """Consumes device messages, runs the scheduled jobs while it leads, and reports a
    heartbeat until stopped."""

    def __init__(self, app: Flask):
        self.app = app
        self.settings = app.config["SETTINGS"]
        self.started_at = utcnow()
        self.address = BrokerAddress.from_url(self.settings.mqtt_url)
        # Chosen now, held from run() on (choose_identity only looks).
        self.identity: WorkerIdentity = choose_identity(self.settings)
        self.bus = self._new_bus()
        # Device messages: applied in batches on the pump's thread, heartbeats of devices
        # known online kept in memory and written once a second (server.worker.presence).
        silence = timedelta(
            seconds=self.settings.device_heartbeat_seconds
            * self.settings.device_offline_after_misses
        )
        self.presences = PresenceBuffer(app, fresh=silence - PRESENCE_LAG)
        self.ingest = ingest.DeviceIngest(app, self.presences)
        self.pump = IngestPump(self.ingest, self.presences)
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self.leading = False
        self.leader_since: datetime | None = None
        self._identity_lock: IdentityLock | None = None
        self._leader_lock: LeaderLock | None = None
        self._leader_jobs: list[str] = []
        self._stop = threading.Event()
        self._keys_published = False
        self._allowlists_published = False
        self._fence: Callable[[Session, str], bool] | None = None
        self._following = False  # said once that another worker leads
        self._warned_unshared = False
        self._beat_lock = threading.Lock()  # elect() beats at once when it takes the lead

    def _new_bus(self) -> MqttBus:
        return MqttBus(self.address, client_id=self.identity.client_id, deferred_acks=True)

    @property
    def worker_id(self) -> str:
        return self.identity.worker_id

    def heartbeat(self) -> None:
        """Record that this worker is alive, whether it holds the broker and whether it leads.

        The leader also clears the leader mark of rows that are not its own and forgets
        workers silent for a day.
        """
        with self._beat_lock, self.app.app_context():
            name = self.identity.heartbeat_name
            beat = db.session.get(ServiceHeartbeat, name)
            if beat is None:
                beat = ServiceHeartbeat(name=name)
                db.session.add(beat)
            now = utcnow()
            beat.host = socket.gethostname()[:120]
            beat.pid = os.getpid()
            beat.started_at = self.started_at
            beat.beat_at = now
            # Connected, and the broker acknowledged the subscriptions: it consumes traffic.
            beat.mqtt_connected = self.bus.wait_subscribed(0)
            beat.mqtt_client_id = self.identity.client_id
            beat.leader = self.leading
            beat.leader_since = self.leader_since if self.leading else None
            if self.leading:
                others = ServiceHeartbeat.name.like(f"{HEARTBEAT_PREFIX}%") & (
                    ServiceHeartbeat.name != name
                )
                db.session.execute(
                    update(ServiceHeartbeat)
                    .where(others, ServiceHeartbeat.leader)
                    .values(leader=False)
                )
                db.session.execute(
                    delete(ServiceHeartbeat).where(
                        others, ServiceHeartbeat.beat_at < now - FORGET_WORKER_AFTER
                    )
                )
                self._warn_of_unshared(others, now)
            db.session.commit()
            db.session.remove()
        _LOGGER.debug(
            "heartbeat of %s (leads: %s, broker connected: %s)",
            self.worker_id,
            self.leading,
            self.bus.connected,
        )

    def _warn_of_unshared(self, others: ColumnElement[bool], now: datetime) -> None:
        """Say once if several workers run without shared subscriptions: each then applies
        every device message (right, ingest is idempotent, but all the work N times)."""
        if self.settings.mqtt_shared_subscriptions or self._warned_unshared:
            return
        recent = now - timedelta(seconds=3 * self.settings.worker_heartbeat_seconds)
        running = db.session.scalar(
            select(func.count()).where(others, ServiceHeartbeat.beat_at >= recent)
        )
        if running:
            self._warned_unshared = True
            _LOGGER.warning(
                "%d other worker(s) run, and each applies every device message: set "
                "MQTT_SHARED_SUBSCRIPTIONS=1 on every worker so that they share them",
                running,
            )

    def elect(self) -> None:
        """Keep the scheduler's lock, or try to take it; every worker, at every heartbeat.

        It runs on the thread of ``run()``, never as a job: it adds and removes the leader's
        jobs, which a job thread must not do while the scheduler shuts down (the scheduler
        holds its lock while it waits for running jobs).
        """
        lock = self._leader_lock
        if lock is None:
            return
        if self.leading:
            if not lock.still_held():
                self._resign(f"{self.worker_id} lost the scheduler lock ({lock.where})")
            return
        if self._stop.is_set():
            return
        if not lock.try_acquire():
            _LOGGER.debug(
                "worker %s tried the scheduler lock: another worker holds it", self.worker_id
            )
            if not self._following:
                self._following = True
                _LOGGER.info(
                    "worker %s consumes MQTT; another worker runs the scheduled jobs "
                    "(it tries to take over at every heartbeat)",
                    self.worker_id,
                )
            return
        self._following = False
        self.leading = True
        self.leader_since = utcnow()
        self._keys_published = False  # a new leader publishes the key sets at once
        self._allowlists_published = False  # and every allowlist in full
        for job, seconds in self._jobs():
            self._schedule(self._while_leading(job), seconds)
            self._leader_jobs.append(job.__name__)
        _LOGGER.info("worker %s leads the scheduled jobs (%s)", self.worker_id, lock.where)
        try:
            self.heartbeat()  # say so now, not a heartbeat later
        except SQLAlchemyError as error:  # the heartbeat job says so again
            _LOGGER.warning("heartbeat of %s failed: %s", self.worker_id, error.__class__.__name__)

    def _resign(self, why: str, level: int = logging.WARNING, *, release: bool = True) -> None:
        """Stop leading: no more jobs start here (one already running finishes). The lock is
        released too unless ``release`` is False (then the caller releases it once the
        running jobs have ended)."""
        if not self.leading:
            return
        for job_id in self._leader_jobs:
            with contextlib.suppress(JobLookupError):
                self.scheduler.remove_job(job_id)
        self._leader_jobs.clear()
        self.leading = False
        self.leader_since = None
        if release and self._leader_lock is not None:
            self._leader_lock.release()
        _LOGGER.log(level, "worker %s no longer leads: %s", self.worker_id, why)

    def _elect_until_stopped(self, run_seconds: float | None) -> None:
        """Call ``elect`` now and every heartbeat interval until stopped or ``run_seconds``."""
        deadline = None if run_seconds is None else time.monotonic() + run_seconds
        while not self._stop.is_set():
            try:
                self.elect()
            except Exception:  # the next heartbeat tries again
                _LOGGER.exception("worker %s could not take part in the election", self.worker_id)
            wait = float(self.settings.worker_heartbeat_seconds)
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
            if wait <= 0 or self._stop.wait(wait):
                return

    def _while_leading(self, job: Callable[[], None]) -> Callable[[], None]:
        def run_if_leading() -> None:
            if self.leading:
                _LOGGER.debug("job %s starts", job.__name__)
                job()

        run_if_leading.__name__ = run_if_leading.__qualname__ = job.__name__
        return run_if_leading

    def _still_leading(self, session: Session, job: str) -> bool:
        """The fence of a scheduled job's transaction: this worker's lock is still held, and
        no other transaction runs ``job`` (``LeaderLock.confirm``)."""
        lock = self._leader_lock
        return self.leading and lock is not None and lock.confirm(session, job)

    def detect_offline_devices(self) -> None:
        """Silence as of ``PRESENCE_LAG`` ago: the workers write heartbeats' last-seen up to
        a second or so late (server.worker.presence), never a device that beats offline."""
        self._in_transaction(
            lambda: ingest.detect_offline(
                self.settings.device_heartbeat_seconds,
                self.settings.device_offline_after_misses,
                now=utcnow() - PRESENCE_LAG,
            )
        )

    def expire_commands(self) -> None:
        self._in_transaction(commands.expire_overdue)

    def apply_retention(self) -> None:
        """Face crops and access events past their community's retention days are deleted
        (events: whole months on PostgreSQL, whose months ahead are created here too)."""
        self._in_transaction(snapshots.erase_expired)
        self._in_transaction(retention.enforce)
        # Everything else personal (server.privacy.retention, docs/privacy.md).
        self._in_transaction(privacy_retention.run_personal)

    def close_leases(self) -> None:
        """The lease-end cascade (access already ended: the policy checks leases itself)."""
        self._in_transaction(people.close_ended_leases)

    def checkpoint_sqlite(self) -> None:
        checkpoint_sqlite(self.app)

    def flag_overstays(self) -> None:
        """One ``overstay`` alert per visitor car still inside after its pass ended."""
        self._in_transaction(vehicles.flag_overstays)

    def settle_intercom_calls(self) -> None:
        """Intercom calls whose ring or guard time is up: rolled over or timed out (with their
        access event and the door's display); old snapshots erased."""

        def job() -> None:
            intercom.settle_due()
            intercom.erase_snapshots()

        self._in_transaction(job)

    def judge_wandering(self) -> None:
        """``elder_wandering``/``child_wandering`` once a read's guardian window has passed;
        ``tag_exit_without_face`` once its face window has (``server.alerts.cross_checks``)."""
        self._in_transaction(alert_rules.judge_wandering_reads)
        self._in_transaction(cross_checks.judge_tag_exits)  # tag_exit_without_face

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
        """Open alerts nobody acknowledged in time go up one severity and are sent again;
        dispatches their officer did not acknowledge in time go to the station."""
        self._in_transaction(alerts.escalate_overdue)
        self._in_transaction(alert_dispatch.escalate_unacknowledged)

    def deliver_notifications(self) -> None:
        """Send the due notification deliveries (push, SMS); failures are retried later."""
        self._in_transaction(notification_delivery.deliver_due)

    def notify_leases_ending(self) -> None:
        """Tell tenants whose lease ends within a week, once per lease."""
        self._in_transaction(notification_service.notify_leases_ending)

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

    def publish_allowlists(self) -> None:
        """Rebuild the offline allowlists a change touched and publish their deltas and full
        lists (server.access.allowlists); the first run publishes every list in full, so a
        broker that lost its retained messages holds them again."""
        everything = not self._allowlists_published
        self._in_transaction(lambda: allowlists.publish_changes(everything=everything))
        self._allowlists_published = True

    def adopt_gone_workers(self) -> None:
        """Drain the broker sessions of workers that stopped beating (shared subscriptions).

        A broker keeps giving a shared subscription's turn to a member that is gone but whose
        persistent session lives on (Mosquitto does): every Nth device message would wait
        for that worker to come back, a day at most. So the leader takes over the session
        of a worker silent past ``stale_after_s`` (``hardware.bus.drain_session``): it
        applies what was queued there (ingest is idempotent), and ends the session, which
        takes the gone worker out of the group. A worker that was only paused joins again
        when it reconnects, with a fresh session.
        """
        limit = utcnow() - timedelta(seconds=stale_after_s(self.settings.worker_heartbeat_seconds))
        with self.app.app_context():
            gone = db.session.execute(
                select(ServiceHeartbeat.name, ServiceHeartbeat.mqtt_client_id).where(
                    ServiceHeartbeat.name.like(f"{HEARTBEAT_PREFIX}%"),
                    ServiceHeartbeat.name != self.identity.heartbeat_name,
                    ServiceHeartbeat.mqtt_client_id.is_not(None),
                    ServiceHeartbeat.beat_at < limit,
                )
            ).all()
            db.session.remove()
        for name, client_id in gone:
            if not self.leading:
                return
            ingest_of_gone = ingest.DeviceIngest(self.app)
            handled = drain_session(
                self.address, client_id, self.subscriptions(), ingest_of_gone.handle
            )
            with self.app.app_context():  # adopted: not again, even if it comes back
                db.session.execute(
                    update(ServiceHeartbeat)
                    .where(ServiceHeartbeat.name == name)
                    .values(mqtt_client_id=None)
                )
                db.session.commit()
                db.session.remove()
            _LOGGER.info(
                "worker %s took over the broker session of %s (%s): %s queued message(s) "
                "applied, the session ended; ingest counts: %s",
                self.worker_id,
                name.removeprefix(HEARTBEAT_PREFIX),
                client_id,
                "no session, 0" if handled is None else handled,
                dict(ingest_of_gone.stats),
            )

    def _in_transaction(self, job: Callable[[], object]) -> None:
        with self.app.app_context():
            try:
                # Scheduled (run() sets the fence): only while this worker still leads.
                name = f"{job.__module__}.{getattr(job, '__qualname__', type(job).__name__)}"
                if self._fence is not None and not self._fence(db.session, name):
                    _LOGGER.warning("%s skipped the job %s this time", self.worker_id, name)
                    return
                job()
                db.session.commit()
            finally:
                db.session.remove()

    def stop(self, *_args: object) -> None:
        self._stop.set()

    def _on_signal(self, *_args: object) -> None:
        """SIGTERM, SIGINT: stop, from another thread. The handler runs on the main thread,
        which may be inside ``self._stop.wait`` holding the event's lock; ``set`` from there
        would wait for that lock forever (a worker that ignores SIGTERM)."""
        threading.Thread(target=self.stop, name="worker-stop", daemon=True).start()

    def _schedule(self, job: Callable[[], None], seconds: float) -> None:
        self.scheduler.add_job(
            job,
            "interval",
            id=job.__name__,
            seconds=seconds,
            next_run_time=datetime.now(UTC),
            coalesce=True,  # runs missed meanwhile are one run
            max_instances=1,
            misfire_grace_time=None,  # a late run still runs (a busy machine, a slow start)
        )

    def subscriptions(self) -> tuple[str, ...]:
        """Every device's ``ack``, ``evt`` and ``status``: shared with the other workers
        (``MQTT_SHARED_SUBSCRIPTIONS=1``: each message to one of them), or this worker's own."""
        if self.settings.mqtt_shared_subscriptions:
            return server_subscriptions(share_group(self.address.password))
        return SERVER_SUBSCRIPTIONS

    def _jobs(self) -> list[tuple[Callable[[], None], float]]:
        """The leader's jobs, each with its interval in seconds."""
        return [
            # Check several times per allowed silence so an absence is caught promptly.
            (self.detect_offline_devices, max(1.0, self.settings.device_heartbeat_seconds / 2)),
            (self.expire_commands, COMMAND_EXPIRY_CHECK_S),
            (self.close_leases, LEASE_CHECK_S),
            (self.apply_retention, RETENTION_CHECK_S),
            (self.rotate_pass_keys, KEY_ROTATION_CHECK_S),
            (self.flag_overstays, OVERSTAY_CHECK_S),
            (self.settle_intercom_calls, INTERCOM_CHECK_S),
            (self.checkpoint_sqlite, SQLITE_CHECKPOINT_S),
            (self.judge_wandering, WANDERING_CHECK_S),
            (self.flag_inactive_elders, INACTIVE_ELDER_CHECK_S),
            (self.judge_patrol_rounds, PATROL_CHECK_S),
            (self.deliver_alerts, ALERT_DELIVERY_CHECK_S),
            (self.escalate_alerts, ALERT_ESCALATION_CHECK_S),
            (self.deliver_notifications, NOTIFICATION_DELIVERY_CHECK_S),
            (self.notify_leases_ending, LEASE_ENDING_CHECK_S),
            (self.publish_allowlists, ALLOWLIST_CHECK_S),
            *(
                [(self.adopt_gone_workers, self.settings.worker_heartbeat_seconds)]
                if self.settings.mqtt_shared_subscriptions
                else []
            ),
        ]

    def _claim_identity(self) -> None:
        """Hold this worker's id; an unnamed worker takes the next free one if it lost a race."""
        for _attempt in range(3):
            try:
                self._identity_lock = claim_identity(self.settings, self.identity)
                return
            except WorkerIdTaken:
                if self.identity.chosen:
                    raise
                self.identity = choose_identity(self.settings)
                self.bus = self._new_bus()
        self._identity_lock = claim_identity(self.settings, self.identity)

    def run(self, run_seconds: float | None = None) -> None:
        """Run until SIGINT/SIGTERM, or for ``run_seconds``.

        Raises ``WorkerIdTaken`` before connecting when ``WORKER_ID`` names a worker that runs.
        """
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        # APScheduler logs each run at INFO: a line a second from the delivery job alone.
        if _LOGGER.getEffectiveLevel() > logging.DEBUG:
            logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
        self._claim_identity()
        with self.app.app_context():
            self._leader_lock = scheduler_lock(db.engine, self.settings.instance_dir)
        self._fence = self._still_leading
        _LOGGER.info(
            "worker %s starting; broker %s:%s, client id %s",
            self.worker_id,
            self.address.host,
            self.address.port,
            self.identity.client_id,
        )
        for subscription in self.subscriptions():
            self.bus.subscribe_deferred(subscription, self.pump.submit)
        messaging.use_bus(self.app, self.bus)  # jobs that command devices publish through us
        self.pump.start()
        self.bus.start()
        self._schedule(self.heartbeat, self.settings.worker_heartbeat_seconds)
        self.scheduler.start()
        try:
            self._elect_until_stopped(run_seconds)
        finally:
            self._resign("it stopped", logging.INFO, release=False)
            self.scheduler.shutdown(wait=True)  # the jobs still running end here ...
            if self._leader_lock is not None:
                self._leader_lock.release()  # ... before another worker may lead
            self.pump.stop()  # what came is applied and acknowledged, last-seen written
            self.bus.stop()
            self._fence = None
            try:
                self.heartbeat()  # the last word: stopped, no longer connected nor leading
            finally:
                if self._identity_lock is not None:
                    self._identity_lock.release()
            _LOGGER.info(
                "worker %s stopped; ingest counts: %s", self.worker_id, dict(self.ingest.stats)
            )
