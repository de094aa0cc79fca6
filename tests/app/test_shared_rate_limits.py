"""Rate limits hold across web processes: gunicorn's two workers (as ``make run`` starts
them) count sign-in attempts into one Redis, and the login page and ``POST
/api/v1/auth/token`` share one budget per account and client."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_client

from server import launcher
from tests.conftest import app_environment
from tests.support.api import WorldIds
from tests.support.clock import daemon_environment
from tests.support.net import free_port, wait_for_port
from tests.support.redis import RedisServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gunicorn(
    world: WorldIds, workdir: Path, database_url: str, redis: RedisServer
) -> Iterator[str]:
    """The launcher's gunicorn command (two worker processes), counting into ``redis``."""
    port = free_port()
    environ = {
        **os.environ,
        **app_environment(
            workdir,
            database_url,
            RATELIMIT_STORAGE_URI=redis.url,
            LOGIN_RATE_LIMIT="10 per minute",
        ),
    }
    process = subprocess.Popen(
        launcher.web_command("127.0.0.1", port),
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _status(opener: urllib.request.OpenerDirector, request: urllib.request.Request) -> int:
    try:
        with opener.open(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def api_sign_in(base: str, username: str) -> int:
    body = json.dumps({"username": username, "password": "wrong-password"}).encode()
    request = urllib.request.Request(  # noqa: S310 (the test's own http:// server)
        base + "/api/v1/auth/token", body, {"Content-Type": "application/json"}
    )
    return _status(urllib.request.build_opener(), request)


def page_sign_in(base: str, username: str) -> int:
    """The login form as a browser sends it: its page (cookie and CSRF token), then a post."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
        urllib.request.HTTPRedirectHandler(),
    )
    with opener.open(base + "/login", timeout=30) as page:
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.read().decode())
    assert token, "no CSRF token on the login page"
    form = {"username": username, "password": "wrong-password", "csrf_token": token.group(1)}
    form_body = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(base + "/login", form_body)  # noqa: S310 (as above)
    return _status(opener, request)


def test_sign_in_attempts_share_one_budget_across_processes(gunicorn: str) -> None:
    statuses = []
    for _ in range(15):  # 30 attempts, page and API in turn, new connections each time
        statuses.append(api_sign_in(gunicorn, "staff_a"))
        statuses.append(page_sign_in(gunicorn, "staff_a"))
    assert Counter(statuses) == {401: 10, 429: 20}, statuses
    assert statuses[:10] == [401] * 10
    # Another account from the same client has a budget of its own.
    assert api_sign_in(gunicorn, "staff_b") == 401
    assert page_sign_in(gunicorn, "staff_b") == 401


def test_the_launcher_starts_a_redis_and_stops_it(tmp_path: Path) -> None:

    with launcher.local_redis(tmp_path, daemon_environment()) as environment:
        url = environment["RATELIMIT_STORAGE_URI"]
        assert url.startswith("redis://127.0.0.1:")
        client = redis_client.Redis.from_url(url)
        assert client.ping() is True
        client.close()
    with pytest.raises(redis_client.ConnectionError):  # stopped with the block
        redis_client.Redis.from_url(url, socket_connect_timeout=1).ping()
