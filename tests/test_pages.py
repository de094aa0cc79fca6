"""Server-rendered pages: sign-in, each role's home, HTML errors."""

from __future__ import annotations

import re

from server.models import UserRole
from tests import factories
from tests.factories import PASSWORD


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def _login(client, username: str, password: str = PASSWORD, next_url: str = ""):
    page = client.get("/login")
    return client.post(
        "/login" + next_url,
        data={"username": username, "password": password, "csrf_token": _csrf(page.text)},
    )


def test_home_needs_sign_in(client) -> None:
    answer = client.get("/")
    assert answer.status_code == 302
    assert answer.location.startswith("/login")


def test_login_page_is_phone_ready(client) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.text
    assert 'autocomplete="current-password"' in page.text


def test_wrong_password_is_refused(client, ctx) -> None:
    factories.user(UserRole.ADMIN, username="boss")
    answer = _login(client, "boss", "wrong-password")
    assert answer.status_code == 401
    assert "Wrong username or password." in answer.text
    assert client.get("/").status_code == 302


def test_login_without_csrf_token_is_refused(client, ctx) -> None:
    factories.user(UserRole.ADMIN, username="boss")
    answer = client.post("/login", data={"username": "boss", "password": PASSWORD})
    assert answer.status_code == 400
    assert client.get("/").status_code == 302


def test_each_role_sees_its_home(client, ctx) -> None:
    w = factories.world()
    expectations = {
        "admin": ["Administration", "Community A", "Community B", "has not reported yet"],
        "staff_a": ["Property office", "Community A", "access points"],
        "officer_a": ["Officer console", "Community A", "No open alerts"],
        "resident_a": ["My home", "Community A", "A1 · 101"],
    }
    for username, texts in expectations.items():
        assert _login(client, username).status_code == 302
        page = client.get("/")
        assert page.status_code == 200
        for text in texts:
            assert text in page.text, (username, text)
        if username != "admin":
            assert "Community B" not in page.text, username
        logout = client.post("/logout", data={"csrf_token": _csrf(page.text)})
        assert logout.status_code == 302
        assert client.get("/").status_code == 302
    assert w.b.name == "Community B"


def test_staff_home_lists_devices_of_their_community(client, ctx) -> None:
    w = factories.world()
    _login(client, "staff_a")
    page = client.get("/")
    assert w.device_a.name in page.text
    assert w.device_b.name not in page.text
    assert "offline" in page.text


def test_next_parameter_cannot_leave_the_site(client, ctx) -> None:
    factories.user(UserRole.ADMIN, username="boss")
    assert _login(client, "boss", next_url="?next=https://evil.example/").location == "/"
    client.post("/logout", data={"csrf_token": _csrf(client.get("/").text)})
    assert _login(client, "boss", next_url="?next=//evil.example/").location == "/"


def test_pages_get_html_errors(client) -> None:
    answer = client.get("/no/such/page")
    assert answer.status_code == 404
    assert answer.mimetype == "text/html"
    assert "404 · Not Found" in answer.text


def test_problem_types_are_documented(client) -> None:
    answer = client.get("/problems/validation-error")
    assert answer.status_code == 200
    assert "Unknown fields are errors" in answer.text
    assert client.get("/problems/no-such-problem").status_code == 404


def test_login_page_is_rate_limited(client, ctx) -> None:
    factories.user(UserRole.ADMIN, username="boss")
    statuses = [_login(client, "boss", "wrong-password").status_code for _ in range(11)]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429


def test_staff_home_tells_of_ended_leases(client, ctx) -> None:
    """The lease-end job's cascade reaches staff: the home page lists the tenants."""
    from datetime import timedelta

    from gatekeeper.vocabulary import PersonRole
    from server.extensions import db
    from server.models import Lease, Membership, Person, utcnow
    from server.people.service import close_ended_leases

    w = factories.world()
    tenant = Person(community_id=w.a.id, name="张伟")
    db.session.add(tenant)
    db.session.flush()
    now = utcnow()
    db.session.add_all(
        [
            Membership(
                community_id=w.a.id,
                person_id=tenant.id,
                unit_id=w.unit_a.id,
                role=PersonRole.TENANT,
            ),
            Lease(
                community_id=w.a.id,
                person_id=tenant.id,
                unit_id=w.unit_a.id,
                starts_at=now - timedelta(days=30),
                ends_at=now - timedelta(hours=1),
            ),
        ]
    )
    db.session.commit()
    close_ended_leases()
    db.session.commit()
    _login(client, "staff_a")
    page = client.get("/").text
    assert "Leases ended this week" in page and "张伟" in page
    client.post("/logout", data={"csrf_token": _csrf(page)})
    _login(client, "staff_b")
    assert "张伟" not in client.get("/").text
