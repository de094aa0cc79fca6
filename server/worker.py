"""The worker: the one process that consumes MQTT and runs the scheduler."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from hardware.bus import BrokerAddress, MqttBus
from server.extensions import db
from server.models import ServiceHeartbeat, utcnow

_LOGGER = logging.getLogger(__name__)

WORKER_NAME = "worker"


class Worker:
    """Connects to the broker, schedules jobs, and reports a heartbeat until stopped."""

    def __init__(self, app: Flask):
        self.app = app
        self.settings = app.config["SETTINGS"]
        self.started_at = utcnow()
        self.bus = MqttBus(
            BrokerAddress.from_url(self.settings.mqtt_url), client_id=self.settings.mqtt_client_id
        )
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self._stop = threading.Event()

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

    def stop(self, *_args: object) -> None:
        self._stop.set()

    def run(self, run_seconds: float | None = None) -> None:
        """Run until SIGINT/SIGTERM, or for ``run_seconds``."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        _LOGGER.info("worker starting; broker %s:%s", self.bus.address.host, self.bus.address.port)
        self.bus.start()
        self.scheduler.add_job(
            self.heartbeat,
            "interval",
            id="heartbeat",
            seconds=self.settings.worker_heartbeat_seconds,
            next_run_time=datetime.now(UTC),
            coalesce=True,
            max_instances=1,
        )
        self.scheduler.start()
        try:
            self._stop.wait(run_seconds)
        finally:
            self.scheduler.shutdown(wait=True)
            self.bus.stop()
            self.heartbeat()  # the last word: stopped, and no longer connected
            _LOGGER.info("worker stopped")
