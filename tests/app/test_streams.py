"""The stream process (``server.streams``): only the two streams (and health and metrics), CORS
for a page of the same host on another port and for nobody else; the web server's pages open
their streams there when ``STREAM_PORT`` is set; and, for real, gunicorn's gevent worker
delivering an alert raised through the app, still answering while a stream waits on a lock."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from flask import Flask

from server import create_app, launcher, streams
from server.core import live
from tests.conftest import app_environment
from tests.factories import Api
from tests.support.alerts import raise_in
from tests.support.api import WorldIds
from tests.support.e2e import eventually
from tests.support.net import free_port, wait_for_port
from tests.support.pages import login
from tests.support.sse import SseClient

STREAM = "/api/v1/alerts/stream"
PAGE = "http://127.0.0.1:5000"  # the web server's page; the stream process is on :5001
HERE = "http://127.0.0.1:5001"
CONSOLES = 40  # opened at once on the stream process


@pytest.fixture
def stream_app(app: Flask, workdir: Path, database_url: str) -> Iterator[Flask]:
    other = streams.create_app(app_environment(workdir, database_url))
    yield other
    live.stop_broadcaster(other)  # before the tables are wiped


def bearer(app: Flask, username: str) -> dict[str, str]:
    return Api(app.test_client(), username).headers


def test_only_the_streams_health_and_metrics_are_served(stream_app: Flask, world: WorldIds) -> None:
    client = stream_app.test_client()
    for path in ("/login", "/officer", "/api/v1/alerts", "/static/officer.js", "/nothing"):
        assert client.get(path).status_code == 404, path
    # No other hook answers first: a form post meets no CSRF check, a page no sign-in.
    assert client.post("/login", data={"username": "x"}).status_code == 404
    assert client.post("/api/v1/auth/token", json={}).status_code == 404
    assert client.get("/livez").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get(STREAM).status_code == 401  # served: the caller must sign in
    page_stream = client.get(f"/live?feeds=commands&community={world.a}")
    assert page_stream.status_code == 302  # to sign in, as the web server's answer


def test_a_page_of_this_host_on_another_port_may_read_the_stream(
    app: Flask, stream_app: Flask, world: WorldIds
) -> None:
    client = stream_app.test_client()
    headers = {**bearer(app, "officer_a"), "Origin": PAGE}
    answer = client.get(STREAM, base_url=HERE, headers=headers, buffered=False)
    try:
        assert answer.status_code == 200
        assert answer.headers["Access-Control-Allow-Origin"] == PAGE
        assert answer.headers["Access-Control-Allow-Credentials"] == "true"
        assert "Origin" in answer.headers["Vary"]
    finally:
        answer.close()  # unsubscribes
    # An answer that is no stream (signed out) says the same, so the page can read why.
    signed_out = client.get(STREAM, base_url=HERE, headers={"Origin": PAGE})
    assert signed_out.status_code == 401
    assert signed_out.headers["Access-Control-Allow-Origin"] == PAGE


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://127.0.0.1:5000",  # another scheme
        "http://127.0.0.1.evil.example:5000",
        "http://localhost:5000",  # another host name, even if it is the same machine
        "null",
    ],
)
def test_other_sites_get_no_cors_headers(stream_app: Flask, world: WorldIds, origin: str) -> None:
    client = stream_app.test_client()
    answer = client.get(STREAM, base_url=HERE, headers={"Origin": origin})
    assert answer.status_code == 401
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert "Access-Control-Allow-Credentials" not in answer.headers
    preflight = client.options(STREAM, base_url=HERE, headers={"Origin": origin})
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_a_preflight_for_a_resuming_stream(stream_app: Flask, world: WorldIds) -> None:
    client = stream_app.test_client()
    for path in (STREAM, f"/live?feeds=commands&community={world.a}"):
        answer = client.options(
            path,
            base_url=HERE,
            headers={
                "Origin": PAGE,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "last-event-id",
            },
        )
        assert answer.status_code == 204, path
        assert answer.headers["Access-Control-Allow-Origin"] == PAGE
        assert answer.headers["Access-Control-Allow-Methods"] == "GET"
        assert "Last-Event-ID" in answer.headers["Access-Control-Allow-Headers"]
        assert int(answer.headers["Access-Control-Max-Age"]) > 0
    assert client.options("/login", base_url=HERE, headers={"Origin": PAGE}).status_code == 404


def test_pages_open_their_streams_on_the_stream_port(
    app: Flask, workdir: Path, database_url: str, world: WorldIds
) -> None:
    web = create_app(app_environment(workdir, database_url, STREAM_PORT="5001"))
    browser = web.test_client()
    login(browser, "officer_a")
    page = browser.get("/officer", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert 'data-stream="http://localhost:5001/api/v1/alerts/stream"' in page.text
    policy = dict(
        part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";")
    )
    assert policy["connect-src"] == "'self' http://localhost:5001"
    # Without STREAM_PORT (a proxy routes the streams) the page's own origin.
    own = app.test_client()
    login(own, "officer_a")
    page = own.get("/officer")
    assert f'data-stream="{STREAM}"' in page.text
    assert "5001" not in page.headers["Content-Security-Policy"]


# The stream process for real ------------------------------------------------------------------


@pytest.fixture
def stream_process(
    app: Flask, workdir: Path, database_url: str, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """``launcher.stream_command`` (gunicorn, gevent) on a free loopback port; its base URL
    and log."""
    port = free_port()
    environ = launcher.stream_environment(
        {**os.environ, **app_environment(workdir, database_url)}, tmp_path
    )
    log = tmp_path / "streams.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            launcher.stream_command("127.0.0.1", port),
            env=environ,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, timeout=60)  # the master's; then its worker's first answer
        base = f"http://127.0.0.1:{port}"
        assert eventually(lambda: _answers(base + "/livez"), timeout=60), log.read_text()
        yield base, log
    finally:
        process.send_signal(signal.SIGQUIT)  # at once: open streams would hold SIGTERM up
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.e2e
def test_a_console_on_the_stream_process_receives_an_alert(
    app: Flask, world: WorldIds, published, stream_process: tuple[str, Path]
) -> None:
    base, log = stream_process
    headers = {**bearer(app, "officer_a"), "Origin": "http://127.0.0.1:1"}
    # More consoles opening at once than the process's database pool has connections (15):
    # none holds one while it waits for the broadcaster, so none waits for good.
    with ThreadPoolExecutor(max_workers=CONSOLES) as pool:
        consoles = list(pool.map(lambda _n: SseClient(base, headers), range(CONSOLES)))
    try:
        for console in consoles:
            assert console.response.status == 200, log.read_text()
            assert "connected" in console.read_event().comments
        first = consoles[0]
        assert first.response.getheader("Access-Control-Allow-Origin") == "http://127.0.0.1:1"
        raise_in(app, world.b)  # not a community the officer covers
        alert_id = raise_in(app, world.a)
        for console in consoles:
            event, _arrived = console.next_alert()
            assert (event.alert["alert_id"], event.alert["community_id"]) == (alert_id, world.a)
    finally:
        for console in consoles:
            console.close()
    assert status_of(base + "/officer") == 404
    assert status_of(base + "/livez") == 200


def _answers(url: str) -> bool:
    try:
        return status_of(url) == 200
    except OSError:  # the worker is still booting
        return False


def status_of(url: str) -> int:
    """The status of a GET to the stream process (bounded)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (loopback http)
            return int(answer.status)
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code)


@pytest.mark.e2e
@pytest.mark.postgresql  # LOCK TABLE
def test_the_stream_process_answers_while_a_stream_waits_for_the_database(
    app: Flask, world: WorldIds, published, stream_process: tuple[str, Path], database_url: str
) -> None:
    """A stream whose query waits on a lock is one greenlet waiting: psycopg waits through
    gevent's patched ``select``, so the process goes on answering (its C wait would stop it)."""
    base, log = stream_process
    headers = bearer(app, "officer_a")
    locker = psycopg.connect(database_url.replace("+psycopg", ""))
    opened: dict[str, object] = {}
    try:
        locker.execute("LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE")

        def open_stream() -> None:  # its first stream reads the alerts' newest change: waits
            connection = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), 60)
            connection.request("GET", STREAM, headers=headers)
            opened["connection"] = connection
            opened["response"] = connection.getresponse()

        thread = threading.Thread(target=open_stream, daemon=True)
        thread.start()

        def waiting() -> bool:
            with psycopg.connect(database_url.replace("+psycopg", "")) as observer:
                row = observer.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database() AND query ILIKE '%alerts%'"
                ).fetchone()
            return bool(row and row[0])

        assert eventually(waiting, timeout=30), log.read_text()
        assert status_of(base + "/livez") == 200  # the hub is free: answered meanwhile
        assert "response" not in opened
    finally:
        locker.rollback()
        locker.close()
    thread.join(timeout=30)
    response = opened["response"]
    assert isinstance(response, http.client.HTTPResponse) and response.status == 200
    console = SseClient.__new__(SseClient)
    console.connection, console.response = opened["connection"], response  # type: ignore[assignment]
    try:
        assert "connected" in console.read_event().comments
        alert_id = raise_in(app, world.a)
        assert console.next_alert()[0].alert["alert_id"] == alert_id
    finally:
        console.close()
