"""The live feeds told by PostgreSQL (``LISTEN gk_live``, migration 0015's triggers) rather than
polling: a change arrives with the poll switched off, nothing is read while nothing changes
(or while only what no stream wants changes), a lost notification is caught by the safety
poll, and the listener comes back after its backend is ended. SQLite keeps polling.

The broadcasters here are made with very long poll intervals, so that whatever arrives came
by notification; the feed reads are counted on the broadcaster itself."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import text

from hardware.protocol import Command
from server.core import live
from server.devices import commands
from server.extensions import db
from server.models import Device
from tests.support.api import WorldIds, in_app
from tests.support.e2e import eventually
from tests.support.live import car_enters, issue_in

WAIT_S = 10.0
OFF_S = 3600.0  # "never", for the intervals a test switches off
QUIET_S = 1.0  # how long a test watches for reads that should not happen


def _postgresql(app: Flask) -> bool:
    with app.app_context():
        return db.engine.dialect.name == "postgresql"


class Counted(live.Broadcaster):
    """A broadcaster that counts its feed reads (one per feed read)."""

    def __init__(self, app: Flask, **options: float | bool | None) -> None:
        super().__init__(app, **options)  # type: ignore[arg-type]
        self.reads: list[str] = []

    def _poll_feed(self, feed: live.Feed, cursor: live._Cursor) -> list[live.Change]:
        self.reads.append(feed.name)
        return super()._poll_feed(feed, cursor)


@pytest.fixture
def hubs(app: Flask) -> Iterator[list[Counted]]:
    made: list[Counted] = []
    yield made
    for hub in made:
        hub.stop()  # before the tables are wiped


def _hub(app: Flask, hubs: list[Counted], **options: float | bool | None) -> Counted:
    hub = Counted(app, **options)
    hubs.append(hub)
    return hub


def _next(subscriber: live.Subscriber) -> live.Change:
    return subscriber.changes.get(timeout=WAIT_S)


def _nothing(subscriber: live.Subscriber) -> bool:
    try:
        subscriber.changes.get(timeout=QUIET_S)
    except queue.Empty:
        return True
    return False


def _listening(app: Flask, hub: Counted, subscriber: live.Subscriber) -> int:
    """Subscribe, wait for the listener and its first read of every feed; its backend pid."""
    hub.subscribe(subscriber, 10)
    assert eventually(lambda: hub.listening and len(hub.reads) >= len(subscriber.feeds))
    return _listener_pid(app)


def _listener_pids(app: Flask) -> list[int]:
    """The backends of this database's live listeners."""
    with in_app(app):
        return db.session.scalars(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": live.LISTENER_NAME},
        ).all()


def _listener_pid(app: Flask) -> int:
    pids = _listener_pids(app)
    assert len(pids) == 1, pids
    return pids[0]


@pytest.mark.postgresql  # notifications
def test_a_change_arrives_by_notification_and_nothing_is_read_meanwhile(
    app: Flask, world: WorldIds, published, hubs
) -> None:
    hub = _hub(app, hubs, poll_s=OFF_S, safety_poll_s=OFF_S)
    staff_a = live.Subscriber(frozenset({"commands"}), frozenset({world.a}))
    _listening(app, hub, staff_a)
    reads = len(hub.reads)
    assert _nothing(staff_a) and len(hub.reads) == reads  # idle: not one read

    # What no open stream wants is not read: another community, a feed nobody follows.
    issue_in(app, world.device_b)
    car_enters(app, world.a, "浙A12345")
    assert _nothing(staff_a) and len(hub.reads) == reads

    mine = issue_in(app, world.device_a)
    change = _next(staff_a)
    assert (change.row_id, change.feed, change.payload["status"]) == (mine, "commands", "queued")
    assert hub.reads[reads:] == ["commands"]  # that feed alone, once
    assert _nothing(staff_a)


@pytest.mark.postgresql  # notifications
def test_a_burst_of_changes_is_read_a_few_times_not_once_each(
    app: Flask, world: WorldIds, published, hubs
) -> None:
    hub = _hub(app, hubs, poll_s=OFF_S, safety_poll_s=OFF_S)
    staff_a = live.Subscriber(frozenset({"commands"}), frozenset({world.a}))
    _listening(app, hub, staff_a)
    reads = len(hub.reads)
    burst = 20
    with in_app(app):  # twenty commits in a row, each notifying
        device = db.session.get(Device, world.device_a)
        for _ in range(burst):
            commands.issue(device, Command.OPEN)
            db.session.commit()
    received = {_next(staff_a).row_id for _ in range(burst)}
    assert len(received) == burst
    assert len(hub.reads) - reads < burst  # coalesced (how much depends on the machine)


@pytest.mark.postgresql  # notifications
def test_a_lost_notification_is_caught_by_the_safety_poll(
    app: Flask, world: WorldIds, published, hubs
) -> None:
    """A change committed with the triggers off (``session_replication_role = replica``)
    notifies nobody: the safety poll still brings it."""
    hub = _hub(app, hubs, poll_s=OFF_S, safety_poll_s=0.5)
    staff_a = live.Subscriber(frozenset({"commands"}), frozenset({world.a}))
    _listening(app, hub, staff_a)
    with in_app(app):
        db.session.execute(text("SET LOCAL session_replication_role = replica"))
        device = db.session.get(Device, world.device_a)
        silent = commands.issue(device, Command.OPEN).id
        db.session.commit()
    assert _next(staff_a).row_id == silent


@pytest.mark.postgresql  # notifications
def test_the_listener_comes_back_after_its_backend_is_ended(
    app: Flask, world: WorldIds, published, hubs
) -> None:
    hub = _hub(app, hubs, poll_s=OFF_S, safety_poll_s=OFF_S)
    staff_a = live.Subscriber(frozenset({"commands"}), frozenset({world.a}))
    first = _listening(app, hub, staff_a)
    with in_app(app):
        db.session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        db.session.commit()

    def listening_again() -> bool:
        pids = _listener_pids(app)
        return hub.listening and len(pids) == 1 and pids[0] != first

    assert eventually(listening_again, timeout=WAIT_S)
    mine = issue_in(app, world.device_a)
    assert _next(staff_a).row_id == mine
    assert hub._thread is not None and hub._thread.is_alive()


@pytest.mark.postgresql  # notifications
def test_the_listening_thread_ends_with_its_last_stream_and_lets_go(
    app: Flask, world: WorldIds, published, hubs
) -> None:
    hub = _hub(app, hubs, poll_s=OFF_S, safety_poll_s=OFF_S)
    staff_a = live.Subscriber(frozenset({"commands"}), frozenset({world.a}))
    _listening(app, hub, staff_a)
    hub.unsubscribe(staff_a)  # rings the thread awake: it ends now, not in an hour

    def gone() -> bool:
        with in_app(app):
            count = db.session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": live.LISTENER_NAME},
            )
        return hub._thread is None and not hub.listening and count == 0

    assert eventually(gone, timeout=WAIT_S)
    # The next stream starts a fresh thread that listens again.
    again = live.Subscriber(frozenset({"commands"}), frozenset({world.a}))
    _listening(app, hub, again)
    mine = issue_in(app, world.device_a)
    assert _next(again).row_id == mine


def test_without_notifications_the_broadcaster_polls(
    app: Flask, world: WorldIds, published, hubs
) -> None:
    """SQLite has no notifications: it polls every ``POLL_S`` (on PostgreSQL: told not to
    listen, as when its listener cannot connect)."""
    hub = _hub(app, hubs, listen=None if not _postgresql(app) else False)
    staff_a = live.Subscriber(frozenset({"commands"}), frozenset({world.a}))
    hub.subscribe(staff_a, 10)
    mine = issue_in(app, world.device_a)
    assert _next(staff_a).row_id == mine
    assert not hub.listening
    assert eventually(lambda: len(hub.reads) >= 2)  # it keeps reading, changes or not
