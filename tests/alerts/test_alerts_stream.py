"""The live console: Server-Sent Events over real HTTP, fed by changes other processes commit.

The app is served on a loopback port (``live_server``) and read with a raw HTTP client. The
alerts are raised through a second app on the same database, as the worker process or
another web process would, so nothing in-process tells the stream: it must find them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from flask import Flask

from gatekeeper.vocabulary import AlertType, Severity
from server import create_app
from server.alerts import stream as alert_stream
from server.extensions import db
from tests.conftest import Recorder, app_environment
from tests.factories import Api
from tests.support.alerts import raise_in
from tests.support.live_server import LiveServer
from tests.support.pages import login
from tests.support.sse import READ_TIMEOUT_S, SseClient


@pytest.fixture
def elsewhere(app: Flask, workdir: Path, database_url: str) -> Iterator[Flask]:
    """Another app on the same database: the worker, or another gunicorn process."""
    other = create_app(app_environment(workdir, database_url))
    other.extensions["mqtt_publisher"] = Recorder()
    yield other


@pytest.fixture
def streams(live_server: LiveServer) -> Iterator[Any]:
    opened: list[SseClient] = []

    def open_stream(headers: dict[str, str], query: str = "") -> SseClient:
        client = SseClient(live_server.url, headers, query)
        opened.append(client)
        return client

    yield open_stream
    for client in opened:
        client.close()


def bearer(app: Flask, username: str) -> dict[str, str]:
    return Api(app.test_client(), username).headers


def connected(client: SseClient) -> SseClient:
    assert client.response.status == 200, client.response.read()
    assert client.response.getheader("Content-Type").startswith("text/event-stream")
    assert client.response.getheader("Cache-Control") == "no-cache"
    first = client.read_event()
    assert "connected" in first.comments
    return client


def test_an_alert_from_another_process_reaches_the_stream(app, world, elsewhere, streams) -> None:
    officer = connected(streams(bearer(app, "officer_a")))
    raise_in(elsewhere, world.b)  # not a community the officer covers
    alert_id = raise_in(
        elsewhere,
        world.a,
        type=AlertType.PANIC,
        severity=Severity.CRITICAL,
        summary="Panic button pressed: Gate",
        access_point_id=world.door_a,
    )
    event, _arrived = officer.next_alert()  # bounded by the client's read timeout
    payload = event.alert
    assert (payload["alert_id"], payload["community_id"]) == (alert_id, world.a)
    assert (payload["type"], payload["severity"], payload["status"]) == (
        "panic",
        "critical",
        "open",
    )
    assert payload["reason"] == "raised" and payload["access_point"] == "A door"
    assert payload["evidence"] == {"event_ids": [], "snapshots": []}
    assert event.id and event.id.endswith(alert_id)

    # The officer's own acknowledgement comes back the same way, with its reason.
    officer_api = Api(app.test_client(), "officer_a")
    assert officer_api.post(f"/alerts/{alert_id}/ack", json={"note": "coming"}).status_code == 200
    event, _arrived = officer.next_alert()
    assert (event.alert["reason"], event.alert["status"]) == ("acknowledged", "acknowledged")


def test_each_caller_sees_only_their_communities(app, world, elsewhere, streams) -> None:
    staff_b = connected(streams(bearer(app, "staff_b")))
    admin = connected(streams(bearer(app, "admin")))
    in_a = raise_in(elsewhere, world.a)
    in_b = raise_in(elsewhere, world.b)
    assert staff_b.next_alert()[0].alert["alert_id"] == in_b
    assert {admin.next_alert()[0].alert["alert_id"] for _ in range(2)} == {in_a, in_b}
    resident = streams(bearer(app, "resident_a"))
    assert resident.response.status == 404
    anonymous = streams({})
    assert anonymous.response.status == 401


def test_a_page_session_cookie_opens_the_stream(app, world, elsewhere, streams) -> None:
    browser = app.test_client()
    login(browser, "officer_a")
    cookie = browser.get_cookie("session")
    officer = connected(streams({"Cookie": f"session={cookie.value}"}))
    alert_id = raise_in(elsewhere, world.a)
    assert officer.next_alert()[0].alert["alert_id"] == alert_id


def test_last_event_id_resumes_what_was_missed(app, world, elsewhere, streams) -> None:
    headers = bearer(app, "officer_a")
    first = connected(streams(headers))
    seen = raise_in(elsewhere, world.a)
    event, _ = first.next_alert()
    first.close()
    missed = raise_in(elsewhere, world.a, type=AlertType.TAMPER, severity=Severity.HIGH)
    raise_in(elsewhere, world.b)
    again = connected(streams({**headers, "Last-Event-ID": event.id}))
    resumed, _ = again.next_alert()
    assert resumed.alert["alert_id"] == missed != seen
    newer = raise_in(elsewhere, world.a, type=AlertType.DOOR_FORCED)
    assert again.next_alert()[0].alert["alert_id"] == newer  # and then live again
    # The same through the query string (a page that keeps the id itself).
    query = connected(streams(headers, f"?last_event_id={event.id}"))
    assert query.next_alert()[0].alert["alert_id"] == missed


def test_heartbeats_and_a_gone_client_ends_its_stream(app, world, streams, monkeypatch) -> None:
    monkeypatch.setattr(alert_stream, "HEARTBEAT_S", 0.2)
    officer = connected(streams(bearer(app, "officer_a")))
    assert "keepalive" in officer.read_event().comments
    hub = alert_stream.broadcaster(app)
    assert hub.subscriber_count == 1
    officer.close()
    deadline = time.monotonic() + READ_TIMEOUT_S
    while hub.subscriber_count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.subscriber_count == 0
    # With no stream left the poller stops; the next stream starts it again.
    while hub._thread is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub._thread is None


def test_streams_hold_no_database_connection_while_idle(
    app, world, elsewhere, streams, monkeypatch
) -> None:
    settings = dataclasses.replace(app.config["SETTINGS"], alert_streams_per_process=3)
    monkeypatch.setitem(app.config, "SETTINGS", settings)
    clients = [connected(streams(bearer(app, "officer_a"))) for _ in range(3)]
    with app.app_context():
        pool = db.engine.pool
    samples = []
    for _ in range(30):
        samples.append(pool.checkedout())
        time.sleep(0.03)
    assert max(samples) <= 1, samples  # the process's one poller at most, never per stream
    # A fourth stream would take a thread the rest of the API needs.
    extra = streams(bearer(app, "officer_a"))
    assert extra.response.status == 503
    assert extra.response.getheader("Retry-After") == "10"
    alert_id = raise_in(elsewhere, world.a)
    assert {c.next_alert()[0].alert["alert_id"] for c in clients} == {alert_id}


def test_a_stream_ends_after_its_lifetime(app, world, streams, monkeypatch) -> None:
    monkeypatch.setattr(alert_stream, "STREAM_MAX_S", 0.3)
    officer = connected(streams(bearer(app, "officer_a")))
    with pytest.raises(EOFError):
        for _ in range(3):  # a last keepalive, then the end (EventSource reconnects)
            officer.read_event()


def test_event_ids_round_trip() -> None:
    change = alert_stream.AlertChange(
        "alr_1",
        "com_1",
        alert_stream.datetime(2026, 11, 21, 8, 30, 5, 120_001, tzinfo=alert_stream.UTC),
        {},
    )
    assert alert_stream.parse_event_id(change.event_id) == change.updated_at
    for bad in (None, "", "x.alr", "12", "9" * 30 + ".a"):
        assert alert_stream.parse_event_id(bad) is None


def test_a_change_committed_late_is_still_sent_once(app, world, elsewhere) -> None:
    """A transaction that commits after newer changes (its updated_at is older) is not lost."""
    hub = alert_stream.AlertBroadcaster(app)  # polled by hand here: no thread
    first = raise_in(elsewhere, world.a)
    assert [c.alert_id for c in hub.poll()] == [first]
    assert hub.poll() == []
    now = alert_stream.datetime.now(alert_stream.UTC)
    with time_machine.travel(now - alert_stream.timedelta(seconds=2), tick=False):
        late = raise_in(elsewhere, world.a, type=AlertType.TAMPER)
    with time_machine.travel(now - alert_stream.timedelta(seconds=60), tick=False):
        raise_in(elsewhere, world.a, type=AlertType.DOOR_FORCED)  # far too late: missed
    changes = hub.poll()
    assert [(c.alert_id, c.payload["reason"]) for c in changes] == [(late, "raised")]
    assert hub.poll() == []
