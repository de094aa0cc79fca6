"""The live feeds' core (``server.core.live``): feeds polled for changes, fanned out to the
streams that may see them, each state once, the past never; resume; budgets per kind."""

from __future__ import annotations

import queue
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from flask import Flask

from hardware.messages import AckMessage
from hardware.protocol import CommandStatus
from server.access.feeds import CARS
from server.core import live
from server.devices import commands
from server.devices.feeds import COMMANDS, DEVICES
from server.extensions import db
from server.models import Device, DeviceCommand
from tests.support.api import WorldIds, in_app
from tests.support.live import ack_in, car_enters, car_leaves, issue_in, mark_sent, set_online

WAIT_S = 5.0


def _change(feed: str = "commands", community: str = "com_a", owner: str | None = None):
    return live.Change("cmd_1", community, datetime(2026, 12, 8, tzinfo=UTC), {}, feed, "x", owner)


def _next(subscriber: live.Subscriber) -> live.Change:
    return subscriber.changes.get(timeout=WAIT_S)


def _nothing(subscriber: live.Subscriber, wait_s: float = 0.6) -> bool:
    try:
        subscriber.changes.get(timeout=wait_s)
    except queue.Empty:
        return True
    return False


def test_event_ids_round_trip() -> None:
    at = datetime(2026, 12, 8, 9, 30, 5, 120_001, tzinfo=UTC)
    change = live.Change("cmd_1", "com_1", at, {"a": "门"}, "commands", "command")
    assert live.parse_event_id(change.event_id) == at
    assert live.parse_event_id(live.event_id_at(at)) == at  # a page's own starting point
    frame = change.frame().decode()
    assert frame.startswith(f"id: {change.event_id}\nevent: command\n")
    assert frame.endswith('data: {"a":"门"}\n\n')
    for bad in (None, "", "x.cmd", "12", "9" * 30 + ".a"):
        assert live.parse_event_id(bad) is None


def test_a_subscriber_wants_its_feeds_communities_and_own_rows() -> None:
    staff = live.Subscriber(frozenset({"commands", "devices"}), frozenset({"com_a"}))
    assert staff.wants(_change())
    assert not staff.wants(_change(community="com_b"))
    assert not staff.wants(_change(feed="cars"))
    resident = live.Subscriber(
        frozenset({"commands"}),
        frozenset({"com_a"}),
        user_id="usr_1",
        own_only=frozenset({"commands"}),
    )
    assert resident.wants(_change(owner="usr_1"))
    assert not resident.wants(_change(owner="usr_2"))
    assert not resident.wants(_change(owner=None))
    everyone = live.Subscriber(frozenset({"commands"}), None, keep=lambda c: c.owner != "usr_2")
    assert everyone.wants(_change(community="com_z"))
    assert not everyone.wants(_change(owner="usr_2"))


def test_a_feed_polled_by_hand_sends_each_state_once(
    app: Flask, world: WorldIds, published
) -> None:
    hub = live.Broadcaster(app, [COMMANDS])  # no thread: polled by hand from the start
    mine = issue_in(app, world.device_a, world.staff_a)
    [queued] = hub.poll()
    assert (queued.row_id, queued.feed, queued.event) == (mine, "commands", "command")
    assert (queued.community_id, queued.owner) == (world.a, world.staff_a)
    assert queued.payload["status"] == "queued" and queued.payload["device_id"] == world.device_a
    assert hub.poll() == []
    mark_sent(app, mine)
    ack_in(app, mine)
    [acked] = hub.poll()  # the newest state only: sent was never polled
    assert acked.payload["status"] == "acked"
    assert acked.changed_at > queued.changed_at
    assert hub.poll() == []


def test_a_change_committed_late_is_still_sent_once(app: Flask, world: WorldIds, published) -> None:
    hub = live.Broadcaster(app, [COMMANDS])
    first = issue_in(app, world.device_a)
    assert [c.row_id for c in hub.poll()] == [first]
    now = datetime.now(UTC)
    with time_machine.travel(now - timedelta(seconds=2), tick=False):
        late = issue_in(app, world.device_a)
    with time_machine.travel(now - timedelta(seconds=60), tick=False):
        issue_in(app, world.device_a)  # far too late: missed
    assert [c.row_id for c in hub.poll()] == [late]
    assert hub.poll() == []


def test_a_row_changed_by_a_later_column_is_sent_again(app: Flask, world: WorldIds) -> None:
    hub = live.Broadcaster(app, [CARS])
    presence = car_enters(app, world.a, "浙A12345")
    [entered] = hub.poll()
    assert entered.payload["inside"] is True and entered.payload["plate"] == "浙A12345"
    car_leaves(app, presence)
    [left] = hub.poll()
    assert (left.row_id, left.payload["inside"]) == (presence, False)
    assert left.changed_at > entered.changed_at


def test_the_poller_starts_with_a_stream_and_sends_what_is_new(
    app: Flask, world: WorldIds, published
) -> None:
    before = issue_in(app, world.device_a)
    hub = live.broadcaster(app)
    staff_a = live.Subscriber(frozenset({"commands", "devices"}), frozenset({world.a}))
    hub.subscribe(staff_a, 2)
    assert _nothing(staff_a)  # what was there before the stream is the past
    issue_in(app, world.device_b)  # another community's
    ack_in(app, before)
    change = _next(staff_a)
    assert (change.row_id, change.payload["status"]) == (before, "acked")
    set_online(app, world.device_a, True)
    change = _next(staff_a)
    assert (change.feed, change.payload["online"]) == ("devices", True)
    assert change.payload["last_seen_at"] is not None
    assert _nothing(staff_a)
    # With no stream left the poller lets its feeds go and ends; the next starts afresh.
    hub.unsubscribe(staff_a)
    deadline = time.monotonic() + WAIT_S
    while hub._thread is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub._thread is None and hub._cursors == {}


def test_a_feed_nobody_follows_is_not_polled(app: Flask, world: WorldIds, published) -> None:
    hub = live.broadcaster(app)
    cars = live.Subscriber(frozenset({"cars"}), frozenset({world.a}))
    hub.subscribe(cars, 2)
    assert set(hub._cursors) == {"cars"}
    devices = live.Subscriber(frozenset({"devices"}), None)
    hub.subscribe(devices, 2)
    assert set(hub._cursors) == {"cars", "devices"}
    hub.unsubscribe(cars)
    assert set(hub._cursors) == {"devices"}
    car_enters(app, world.a, "浙A12345")
    assert _nothing(cars)


def test_each_kind_of_stream_has_its_own_budget(app: Flask, world: WorldIds) -> None:
    hub = live.broadcaster(app)
    hub.subscribe(live.Subscriber(frozenset({"devices"}), None), 1)
    with pytest.raises(live.TooManyStreams):
        hub.subscribe(live.Subscriber(frozenset({"devices"}), None), 1)
    hub.subscribe(live.Subscriber(frozenset({"alerts"}), None, budget="alerts"), 1)
    assert hub.subscriber_count == 2
    with pytest.raises(KeyError):
        hub.subscribe(live.Subscriber(frozenset({"nothing"}), None), 5)


def test_resume_sends_the_current_state_of_what_changed_since(
    app: Flask, world: WorldIds, published
) -> None:
    earlier = issue_in(app, world.device_a, world.resident_a)
    since = datetime.now(UTC)
    time.sleep(0.01)
    own = issue_in(app, world.device_a, world.resident_a)
    issue_in(app, world.device_a, world.staff_a)  # someone else's
    issue_in(app, world.device_b, world.resident_a)  # another community (as if)
    ack_in(app, own)
    resident = live.Subscriber(
        frozenset({"commands"}),
        frozenset({world.a}),
        user_id=world.resident_a,
        own_only=frozenset({"commands"}),
    )
    staff = live.Subscriber(frozenset({"commands", "devices"}), frozenset({world.a}))
    with in_app(app):
        mine = live.resume(resident, since)
        theirs = live.resume(staff, since)
    assert [(c.row_id, c.payload["status"]) for c in mine] == [(own, "acked")]
    assert earlier not in {c.row_id for c in theirs} and len(theirs) == 2


def test_a_command_records_its_status_on_the_servers_clock(
    app: Flask, world: WorldIds, published
) -> None:
    """The feed reads by status_at: a device's clock must not hide an answer in the past."""
    command_id = issue_in(app, world.device_a)
    before = datetime.now(UTC)
    with in_app(app):
        row = db.session.get(DeviceCommand, command_id)
        assert row.status_at == row.issued_at
        device = db.session.get(Device, world.device_a)
        slow_clock = before - timedelta(hours=3)
        commands.record_ack(device, AckMessage(cmd_id=command_id, ok=True, ts=slow_clock))
        db.session.commit()
        assert row.status is CommandStatus.ACKED and row.status_at >= before


def test_page_feeds_say_who_reads_them() -> None:
    assert COMMANDS.readers == DEVICES.readers == CARS.readers
    assert COMMANDS.owners and not DEVICES.owners and not CARS.owners
    assert not live.FEEDS["alerts"].readers  # the officers' console has its own endpoint


def test_a_newer_stream_of_an_account_replaces_its_older_one(app: Flask, world: WorldIds) -> None:
    """The ring of the door intercom: one stream per account, the newest page's."""
    hub = live.broadcaster(app)

    def ring(user_id: str) -> live.Subscriber:
        return live.Subscriber(
            frozenset({"devices"}), None, budget="ring", user_id=user_id, one_per_account=True
        )

    older, page = ring("usr_1"), live.Subscriber(frozenset({"devices"}), None, user_id="usr_1")
    hub.subscribe(older, 1)
    hub.subscribe(page, 1)  # another budget, and not one per account: it stays
    newer = ring("usr_1")
    hub.subscribe(newer, 1)  # the budget of one is not spent: the older stream made room
    assert hub.subscriber_count == 2
    frames = list(live.event_stream(hub, older, [], heartbeat_s=WAIT_S, max_s=WAIT_S))
    assert frames[-1].startswith(b"id: ") and b"event: replaced\n" in frames[-1]
    assert len(frames) == 2  # "connected", then the end: the page does not reconnect
    with pytest.raises(live.TooManyStreams):
        hub.subscribe(ring("usr_2"), 1)  # another account's stream replaces nobody's
    assert _nothing(newer, 0.1) and _nothing(page, 0.1)
    hub.unsubscribe(newer)
    hub.unsubscribe(page)
    assert hub.subscriber_count == 0
