"""Signing in to the server's pages with the test client: the CSRF token and the login form."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tests.factories import PASSWORD


def csrf(html: str) -> str:
    """The CSRF token of the (first) form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" type="hidden" value="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: FlaskClient, username: str) -> None:
    """Sign ``client`` in as ``username`` (password ``factories.PASSWORD``) through the form."""
    page = client.get("/login")
    answer = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf(page.text)},
    )
    assert answer.status_code == 302
