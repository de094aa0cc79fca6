"""The worker process: connects to a real Mosquitto and runs the scheduler's heartbeat.

Several workers at once (shared subscriptions, one leader): ``test_several_workers.py``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from server.extensions import db
from server.models import ServiceHeartbeat
from server.worker import checkpoint_sqlite
from tests import factories
from tests.conftest import app_environment
from tests.support.mosquitto import Broker


def _heartbeat(app, pid: int | None = None) -> ServiceHeartbeat | None:
    """The newest worker's heartbeat row (of the worker process ``pid`` when given)."""
    query = select(ServiceHeartbeat).where(ServiceHeartbeat.name.like("worker:%"))
    if pid is not None:
        query = query.where(ServiceHeartbeat.pid == pid)
    with app.app_context():
        beat = db.session.scalars(query.order_by(ServiceHeartbeat.beat_at.desc())).first()
        db.session.expunge_all()
        db.session.remove()
        return beat


def _worker(workdir: Path, database_url: str, mqtt_url: str, seconds: float):
    env = {
        **os.environ,
        **app_environment(workdir, database_url, MQTT_URL=mqtt_url, WORKER_HEARTBEAT_SECONDS="1"),
        "FLASK_APP": "server",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "worker", "--run-seconds", str(seconds)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_worker_connects_and_beats(app, workdir: Path, database_url: str, broker: Broker) -> None:
    process = _worker(workdir, database_url, broker.url, seconds=30)
    try:
        deadline = time.monotonic() + 20
        beats = []
        while time.monotonic() < deadline:
            beat = _heartbeat(app, process.pid)
            if beat is not None and beat.mqtt_connected:
                beats.append(beat.beat_at)
                if len(set(beats)) >= 2:  # the scheduled job runs again, not just at start
                    break
            time.sleep(0.2)
        assert len(set(beats)) >= 2, "worker never reported two connected heartbeats"
        assert beat.beat_at.tzinfo is not None
        assert beat.leader and beat.leader_since is not None  # alone: it leads the jobs
        assert beat.mqtt_client_id.startswith("gatekeeper-worker-")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    final = _heartbeat(app, process.pid)
    # Its last word on SIGTERM: no longer connected, no longer leading.
    assert final is not None and final.mqtt_connected is False and final.leader is False


def test_worker_without_broker_keeps_running_and_says_so(
    app, workdir: Path, database_url: str
) -> None:
    from tests.support.net import free_port

    process = _worker(workdir, database_url, f"mqtt://127.0.0.1:{free_port()}", seconds=2)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    beat = _heartbeat(app, process.pid)
    assert beat is not None and beat.mqtt_connected is False


def test_the_worker_checkpoints_sqlite_so_requests_need_not(app, database_url, tmp_path) -> None:
    """On SQLite the WAL is copied into the database file by the worker's job (a commit no
    longer does it); on PostgreSQL the job has nothing to do."""
    with app.app_context():
        community_id = factories.world().a.id  # some writes, so the WAL has frames
    if not database_url.startswith("sqlite"):
        assert checkpoint_sqlite(app) is None
        return

    def in_database_file() -> bool:
        """Whether the community is in the database file alone, without its WAL.

        Copied by another process: closing a file descriptor of the database here would drop
        every POSIX lock this process's SQLite connections hold on it (fcntl locks are per
        process), and a later connection of the test session fails with "disk I/O error".
        """
        copy = tmp_path / "alone.db"
        subprocess.run(
            ["cp", database_url.removeprefix("sqlite:///"), str(copy)], check=True, timeout=30
        )
        connection = sqlite3.connect(copy)
        try:
            tables = "SELECT count(*) FROM sqlite_master WHERE name = 'communities'"
            if connection.execute(tables).fetchone()[0] == 0:  # the schema is in the WAL too
                return False
            query = "SELECT count(*) FROM communities WHERE id = ?"
            return connection.execute(query, (community_id,)).fetchone()[0] == 1
        finally:
            connection.close()
            copy.unlink()

    assert not in_database_file()  # the commits left it in the WAL
    frames, copied = checkpoint_sqlite(app)
    assert frames > 0 and copied == frames
    assert in_database_file()


def _healthz(app) -> tuple[int, dict]:
    answer = app.test_client().get("/healthz")
    return answer.status_code, answer.json


def test_a_stopped_worker_makes_health_degraded_until_it_runs_again(
    workdir: Path, database_url: str, broker: Broker, app
) -> None:
    """SIGSTOP the real worker: /healthz turns 503 once its heartbeat is stale, and 200
    again after SIGCONT. The web side here is an app whose broker is the same Mosquitto."""
    from server import create_app
    from server.core.health import stale_after_s

    web = create_app(
        app_environment(workdir, database_url, MQTT_URL=broker.url, WORKER_HEARTBEAT_SECONDS="1")
    )
    process = _worker(workdir, database_url, broker.url, seconds=60)
    try:
        deadline = time.monotonic() + 20
        while _healthz(web)[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _healthz(web)[0] == 200, _healthz(web)
        os.kill(process.pid, signal.SIGSTOP)
        time.sleep(stale_after_s(1) + 1.5)
        status, body = _healthz(web)
        assert status == 503 and body["status"] == "degraded", body
        assert body["checks"]["worker"]["ok"] is False
        assert body["problems"][0].startswith("the worker's heartbeat is ")
        os.kill(process.pid, signal.SIGCONT)
        deadline = time.monotonic() + 20
        while _healthz(web)[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _healthz(web)[0] == 200, _healthz(web)
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        process.wait(timeout=30)


def test_a_killed_worker_loses_no_device_event(workdir: Path, new_database, broker: Broker) -> None:
    """SIGKILL the worker process while a door keeps sending: its persistent session keeps
    the events at the broker, and the restarted worker stores every one exactly once,
    compared by the door's own sequence numbers. (A database of its own: the worker is
    killed in the middle of its writes.)"""
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from hardware.protocol import EventType
    from hardware.simulate.actuators import Door
    from hardware.simulate.device import DeviceIdentity
    from server import create_app
    from server.models import DeviceEvent

    database_url = new_database(f"killed_worker_{os.getpid()}_{time.monotonic_ns()}")
    app = create_app(app_environment(workdir, database_url))
    with app.app_context():
        upgrade()

    with app.app_context():
        world = factories.world(door_secret="door-secret-for-the-kill-test")
        identity = DeviceIdentity(world.device_a.id, "door-secret-for-the-kill-test", world.a.id)
        db.session.remove()
    door = Door(identity, broker.url)
    door.start()
    assert door.wait_ready(15)

    def stored() -> list[int]:
        with app.app_context():
            rows = db.session.scalars(
                select(DeviceEvent.seq).where(DeviceEvent.device_id == identity.device_id)
            ).all()
            db.session.remove()
        return sorted(rows)

    def wait_connected(since: object) -> None:
        deadline = time.monotonic() + 60  # a worker starts in seconds; more on a loaded CI box
        while time.monotonic() < deadline:
            beat = _heartbeat(app)
            # mqtt_connected: connected, and the broker acknowledged its subscriptions.
            if beat is not None and beat.mqtt_connected and beat.pid != since:
                return
            time.sleep(0.2)
        raise AssertionError("the worker never connected")

    sent: list[int] = []
    first = _worker(workdir, database_url, broker.url, seconds=60)
    try:
        wait_connected(None)
        sent += [door.emit(EventType.EXIT_REQUEST).seq for _ in range(10)]
        first.kill()  # no clean disconnect, no last acknowledgements
        first.wait(timeout=30)
        sent += [door.emit(EventType.EXIT_REQUEST).seq for _ in range(10)]  # nobody listening
        second = _worker(workdir, database_url, broker.url, seconds=60)
        try:
            wait_connected(first.pid)
            sent += [door.emit(EventType.EXIT_REQUEST).seq for _ in range(10)]
            deadline = time.monotonic() + 30
            while stored() != sorted(sent) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert stored() == sorted(sent), (len(stored()), len(sent))
            with app.app_context():
                count = db.session.scalar(select(func.count()).select_from(DeviceEvent))
                db.session.remove()
            assert count == 30
        finally:
            second.terminate()
            second.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
        door.stop()
