"""Over-long URLs answer the app's 414 (a problem document under /api, a page elsewhere),
through the test client and through the real gunicorn that ``make run`` starts."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from server import launcher
from server.core.problems import MAX_URL_BYTES, request_target_bytes
from tests.conftest import app_environment
from tests.factories import Api
from tests.support.api import WorldIds, assert_problem
from tests.support.net import free_port, wait_for_port

GUNICORN_START_S = 60.0


def _padded(path: str, length: int) -> str:
    """``path`` with a query string that makes the whole target ``length`` bytes."""
    prefix = path + "?q="
    return prefix + "a" * (length - len(prefix))


def test_an_api_url_over_the_limit_answers_a_414_problem(
    client: FlaskClient, world: WorldIds
) -> None:
    api = Api(client, "staff_a")
    target = _padded(f"/api/v1/communities/{world.a}/people", MAX_URL_BYTES + 1)
    body = assert_problem(api.client.get(target, headers=api.headers), 414)
    assert body["type"] == "/problems/uri-too-long"
    assert str(MAX_URL_BYTES) in body["detail"]


def test_the_limit_comes_before_authentication(client: FlaskClient, world: WorldIds) -> None:
    """No credentials: still 414, not 401 (the URL is refused before anything reads it)."""
    target = _padded("/api/v1/communities", MAX_URL_BYTES + 1)
    assert_problem(client.get(target), 414)
    assert_problem(client.get(_padded("/api/v1/communities", MAX_URL_BYTES)), 401)


def test_a_url_at_the_limit_is_served(client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "staff_a")
    target = _padded(f"/api/v1/communities/{world.a}/people", MAX_URL_BYTES)
    answer = api.client.get(target, headers=api.headers)
    assert answer.status_code == 422, answer.get_data(as_text=True)  # q is at most 80 long


def test_a_page_url_over_the_limit_answers_an_html_414(client: FlaskClient) -> None:
    answer = client.get(_padded("/login", MAX_URL_BYTES + 1))
    assert answer.status_code == 414
    assert answer.mimetype == "text/html"
    page = answer.get_data(as_text=True)
    assert "414 · Address too long" in page and str(MAX_URL_BYTES) in page


def test_the_problem_type_is_documented(client: FlaskClient) -> None:
    assert client.get("/problems/uri-too-long").status_code == 200


def test_percent_escapes_count_as_sent() -> None:
    environ = {"PATH_INFO": "/api/v1/people", "QUERY_STRING": "q=%E7%8E%8B"}
    assert request_target_bytes(environ) == len("/api/v1/people?q=%E7%8E%8B")
    environ = {"PATH_INFO": "/people/王".encode().decode("latin-1")}
    assert request_target_bytes(environ) == len("/people/%E7%8E%8B")
    assert request_target_bytes({"RAW_URI": "/x?y=1", "PATH_INFO": "/x"}) == len("/x?y=1")


def test_gunicorn_reads_longer_lines_than_the_app() -> None:
    """The app's limit plus the longest method and the version fits gunicorn's line."""
    longest_line = len("OPTIONS ") + MAX_URL_BYTES + len(" HTTP/1.1")
    assert longest_line <= launcher.REQUEST_LINE_LIMIT <= 8190  # gunicorn's own maximum
    command = launcher.web_command("127.0.0.1", 8000)
    flag = command.index("--limit-request-line")
    assert command[flag + 1] == str(launcher.REQUEST_LINE_LIMIT)


@contextmanager
def _gunicorn(environ: dict[str, str]) -> Iterator[int]:
    """``launcher.web_command``'s gunicorn on a free loopback port; stopped on exit."""
    port = free_port()
    process = subprocess.Popen(
        launcher.web_command("127.0.0.1", port),
        env={**os.environ, **environ},
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=GUNICORN_START_S)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@pytest.mark.e2e
def test_gunicorn_hands_long_urls_to_the_app(app, workdir: Path, database_url: str) -> None:
    """Targets longer than gunicorn's default line (4094) reach the app: one over the app's
    limit gets its problem document, one under it an ordinary answer."""
    environ = app_environment(workdir, database_url)
    with _gunicorn(environ) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=GUNICORN_START_S)
        try:
            connection.request("GET", _padded("/api/v1/communities", MAX_URL_BYTES + 1))
            answer = connection.getresponse()
            assert answer.status == 414
            assert answer.getheader("Content-Type") == "application/problem+json"
            assert json.loads(answer.read())["type"] == "/problems/uri-too-long"
        finally:
            connection.close()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=GUNICORN_START_S)
        try:
            connection.request("GET", _padded("/api/v1/communities", 5000))
            answer = connection.getresponse()
            assert answer.status == 401  # read by the app, past gunicorn's default 4094
        finally:
            connection.close()
