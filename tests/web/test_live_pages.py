"""``/live``: the pages' stream over real HTTP, and who follows what.

Staff and admins of a community follow its commands, devices and cars; a resident only the
commands they issued; officers and other communities' staff find no stream (404); a
signed-out browser is sent to sign in. The rows change in the test's own app contexts, as
the worker or another web process would change them: only the database tells the stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from server.core import live
from server.models import utcnow
from tests.support.api import WorldIds
from tests.support.live import ack_in, car_enters, issue_in, set_online
from tests.support.live_server import LiveServer
from tests.support.pages import csrf, login
from tests.support.sse import SseClient


def _cookie(app: Flask, username: str) -> dict[str, str]:
    """The page session of ``username``, signed in through the login form."""
    browser = app.test_client()
    login(browser, username)
    return {"Cookie": f"session={browser.get_cookie('session').value}"}


@pytest.fixture(autouse=True)
def _pages_to_spare(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Room for the streams a test opens (a closed one is let go at its next write)."""
    settings = dataclasses.replace(app.config["SETTINGS"], page_streams_per_process=8)
    monkeypatch.setitem(app.config, "SETTINGS", settings)


@pytest.fixture
def streams(app: Flask, live_server: LiveServer) -> Iterator[Any]:
    """Opens ``/live`` + query as ``username`` (None: signed out); closed after the test."""
    opened: list[SseClient] = []

    def open_stream(
        username: str | None,
        query: str,
        headers: dict[str, str] | None = None,
        path: str = "/live",
    ) -> SseClient:
        cookie = _cookie(app, username) if username else {}
        client = SseClient(live_server.url, {**cookie, **(headers or {})}, query, path=path)
        opened.append(client)
        return client

    yield open_stream
    for client in opened:
        client.close()


def connected(client: SseClient) -> SseClient:
    assert client.response.status == 200, client.response.read()
    assert client.response.getheader("Content-Type").startswith("text/event-stream")
    assert client.response.getheader("Cache-Control") == "no-cache"
    assert "connected" in client.read_event().comments
    return client


def test_staff_follow_their_communitys_commands_and_devices(
    app: Flask, world: WorldIds, streams, published
) -> None:
    staff = connected(streams("staff_a", f"?feeds=commands,devices&community={world.a}"))
    issue_in(app, world.device_b, world.staff_b)  # community B's: not this stream's
    command = issue_in(app, world.device_a, world.resident_a)  # anyone's, in A
    event, _ = staff.next_of("command")
    assert (event.alert["id"], event.alert["status"]) == (command, "queued")
    ack_in(app, command)
    event, _ = staff.next_of("command")
    assert (event.alert["id"], event.alert["status"]) == (command, "acked")
    assert event.id and event.id.endswith(command)
    set_online(app, world.device_a, True)
    event, _ = staff.next_of("device")
    assert (event.alert["id"], event.alert["online"]) == (world.device_a, True)


def test_a_resident_follows_only_the_commands_they_issued(
    app: Flask, world: WorldIds, streams, published
) -> None:
    resident = connected(streams("resident_a", f"?feeds=commands&community={world.a}"))
    theirs = issue_in(app, world.device_a, world.staff_a)
    neighbours = issue_in(app, world.device_a, None)  # a door's own open after a grant
    mine = issue_in(app, world.device_a, world.resident_a)
    ack_in(app, theirs)
    ack_in(app, neighbours)
    ack_in(app, mine)
    seen = [resident.next_of("command")[0].alert]
    while seen[-1]["status"] != "acked":  # queued first unless the ack came within a poll
        seen.append(resident.next_of("command")[0].alert)
    assert {c["id"] for c in seen} == {mine}
    # Not the devices, the cars, another community, nor the staff's feeds.
    for query in (
        f"?feeds=devices&community={world.a}",
        f"?feeds=commands,cars&community={world.a}",
        f"?feeds=commands&community={world.b}",
    ):
        assert streams("resident_a", query).response.status == 404, query


@pytest.mark.parametrize(
    ("username", "community"),
    [("staff_b", "a"), ("officer_a", "a"), ("staff_a", "b")],
)
def test_no_stream_for_others(world: WorldIds, streams, username: str, community: str) -> None:
    cid = getattr(world, community)
    for feeds in ("commands", "devices", "cars", "commands,devices"):
        answer = streams(username, f"?feeds={feeds}&community={cid}").response
        assert answer.status == 404, (username, feeds)


def test_an_admin_follows_any_community(app: Flask, world: WorldIds, streams) -> None:
    admin = connected(streams("admin", f"?feeds=cars&community={world.b}"))
    car_enters(app, world.a, "浙A11111")
    presence = car_enters(app, world.b, "浙B22222")
    event, _ = admin.next_of("car")
    assert (event.alert["id"], event.alert["plate"], event.alert["inside"]) == (
        presence,
        "浙B22222",
        True,
    )


def test_signed_out_and_malformed_requests(world: WorldIds, streams) -> None:
    anonymous = streams(None, f"?feeds=commands&community={world.a}").response
    assert anonymous.status == 302 and "/login" in anonymous.getheader("Location")
    for query in ("", f"?community={world.a}", f"?feeds=alerts&community={world.a}", "?feeds=x"):
        assert streams("staff_a", query).response.status == 422, query
    assert streams("staff_a", "?feeds=commands&community=com_nope").response.status == 404


def test_last_event_id_resumes_what_was_missed(
    app: Flask, world: WorldIds, streams, published
) -> None:
    query = f"?feeds=commands&community={world.a}"
    first = connected(streams("staff_a", query))
    seen = issue_in(app, world.device_a)
    event, _ = first.next_of("command")
    first.close()
    missed = issue_in(app, world.device_a)
    ack_in(app, missed)
    again = connected(streams("staff_a", query, {"Last-Event-ID": event.id}))
    resumed, _ = again.next_of("command")
    assert (resumed.alert["id"], resumed.alert["status"]) == (missed, "acked") != seen
    # A page gives its own rendering time: nothing between the page and the stream is lost.
    rendered = live.event_id_at(utcnow())
    later = issue_in(app, world.device_a)
    page = connected(streams("staff_a", f"{query}&last_event_id={rendered}"))
    assert page.next_of("command")[0].alert["id"] == later


def test_a_process_serves_a_few_pages_then_asks_to_wait(
    app: Flask, world: WorldIds, streams, monkeypatch
) -> None:
    settings = dataclasses.replace(app.config["SETTINGS"], page_streams_per_process=1)
    monkeypatch.setitem(app.config, "SETTINGS", settings)
    connected(streams("staff_a", f"?feeds=devices&community={world.a}"))
    extra = streams("staff_a", f"?feeds=cars&community={world.a}").response
    assert extra.status == 503 and extra.getheader("Retry-After") == "10"
    # The officers' consoles have their own budget.
    officer = streams("officer_a", "", path="/api/v1/alerts/stream")
    assert officer.response.status == 200


# The pages that follow a stream -----------------------------------------------------------------


def test_pages_name_their_stream_for_those_who_follow_it(
    app: Flask, client, world: WorldIds, published
) -> None:
    login(client, "staff_a")
    devices = client.get(f"/communities/{world.a}/devices").text
    assert 'data-live-stream="/live?feeds=commands,devices&amp;community=' in devices
    assert 'data-live-events="device command"' in devices
    cars = client.get(f"/communities/{world.a}/cars").text
    assert 'data-live-stream="/live?feeds=cars' in cars and "cars.js" in cars
    part = client.get(f"/communities/{world.a}/cars?part=inside")
    assert part.status_code == 200 and "No car inside." in part.text
    assert "<html" not in part.text and part.headers["Cache-Control"] == "no-store"
    client.post("/logout", data={"csrf_token": csrf(client.get("/").text)})
    login(client, "officer_a")  # reads the pages, follows nothing
    for path in (f"/communities/{world.a}/devices", f"/communities/{world.a}/cars"):
        page = client.get(path).text
        assert "data-live-stream" not in page and "live.js" not in page, path
