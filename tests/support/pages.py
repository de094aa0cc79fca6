"""Signing in to the server's pages with the test client: the CSRF token and the login form."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.factories import PASSWORD


def csrf(html: str) -> str:
    """The CSRF token of the (first) form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" type="hidden" value="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(
    client: FlaskClient,
    username: str,
    *,
    password: str = PASSWORD,
    next_url: str = "",
    expect: int | None = 302,
) -> TestResponse:
    """Sign ``client`` in as ``username`` through the login form, with the page's CSRF token.

    ``next_url`` is appended to the form's URL (``"?next=/x"``). The form's answer is returned
    after checking that its status is ``expect`` (302: signed in; ``None``: not checked).
    """
    page = client.get("/login")
    answer = client.post(
        "/login" + next_url,
        data={"username": username, "password": password, "csrf_token": csrf(page.text)},
    )
    if expect is not None:
        assert answer.status_code == expect, answer.text
    return answer


def logout(client: FlaskClient) -> None:
    """Sign ``client`` out through the home page's sign-out form."""
    answer = client.post("/logout", data={"csrf_token": csrf(client.get("/").text)})
    assert answer.status_code == 302, answer.text
