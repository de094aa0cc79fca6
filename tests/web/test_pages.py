"""Server-rendered pages: sign-in, each role's home, HTML errors."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from server.models import UserRole
from tests import factories
from tests.factories import PASSWORD
from tests.support.pages import csrf, login


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
    answer = login(client, "boss", password="wrong-password", expect=401)
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
        "staff_a": ["Property office", "Community A", "<strong>1</strong> access point<"],
        "officer_a": ["Officer console", "Community A", "No open alerts"],
        "resident_a": ["My home", "Community A", "A1 · 101"],
    }
    for username, texts in expectations.items():
        login(client, username)
        page = client.get("/")
        assert page.status_code == 200
        for text in texts:
            assert text in page.text, (username, text)
        if username != "admin":
            assert "Community B" not in page.text, username
        signed_out = client.post("/logout", data={"csrf_token": csrf(page.text)})
        assert signed_out.status_code == 302
        assert client.get("/").status_code == 302
    assert w.b.name == "Community B"


def test_staff_home_lists_devices_of_their_community(client, ctx) -> None:
    w = factories.world()
    login(client, "staff_a")
    page = client.get("/")
    assert w.device_a.name in page.text
    assert w.device_b.name not in page.text
    assert "offline" in page.text and "door terminal" in page.text  # words, not door
    assert "<strong>1</strong> device<" in page.text


def test_each_role_sees_its_home_in_chinese(client, ctx) -> None:
    factories.world()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    expectations = {
        "admin": ["<h1>系统管理</h1>", "后台服务尚未上报", "<code>flask worker</code>"],
        "staff_a": ["<h1>物业服务中心</h1>", "车辆道闸", "门禁终端", "离线", "个门禁点"],
        "officer_a": ["<h1>民警工作台</h1>", "没有待处理告警", "时区 Asia/Shanghai"],
        "resident_a": ["<h1>我的家</h1>", "邀请访客", "A1 · 101"],
    }
    for username, texts in expectations.items():
        login(client, username)
        page = client.get("/")
        assert '<html lang="zh-CN">' in page.text
        for text in texts:
            assert text in page.text, (username, text)
        client.post("/logout", data={"csrf_token": csrf(page.text)})


# Each is what a browser would follow to another site, once it drops tabs and line breaks,
# trims controls and spaces, and reads a backslash as a slash.
LEAVING = [
    "https://evil.example/",
    "//evil.example/",
    "%2F%09%2Fevil.example%2F",  # "/\t/evil.example/"
    "%2F%0A%2Fevil.example",
    "%2F%0D%2Fevil.example",
    "%2F%5Cevil.example",  # "/\\evil.example"
    "%5C%5Cevil.example",
    "%20%2F%2Fevil.example",  # " //evil.example"
    "%01//evil.example",
    "javascript:alert(1)",
    "/%09/%09/evil.example",
    "https:evil.example",
]


@pytest.mark.parametrize("target", LEAVING)
def test_next_parameter_cannot_leave_the_site(client, ctx, target: str) -> None:
    factories.user(UserRole.ADMIN, username="boss")
    assert login(client, "boss", next_url=f"?next={target}").location == "/"


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/people?q=%E7%8E%8B", "/people?q=王"),
        ("%2Fofficer%09", "/officer"),  # a trailing tab the browser would drop anyway
        ("/communities/com_1/cars%23inside", "/communities/com_1/cars#inside"),
    ],
)
def test_next_parameter_keeps_local_paths(client, ctx, target: str, location: str) -> None:
    factories.user(UserRole.ADMIN, username="boss")
    assert unquote(login(client, "boss", next_url=f"?next={target}").location) == location


def test_pages_get_html_errors(client) -> None:
    answer = client.get("/no/such/page")
    assert answer.status_code == 404
    assert answer.mimetype == "text/html"
    assert "404 · Not found" in answer.text
    assert "There is no such page" in answer.text


def test_problem_types_are_documented(client) -> None:
    answer = client.get("/problems/validation-error")
    assert answer.status_code == 200
    assert "Unknown fields are errors" in answer.text
    assert client.get("/problems/no-such-problem").status_code == 404


def test_login_page_is_rate_limited(client, ctx) -> None:
    factories.user(UserRole.ADMIN, username="boss")
    statuses = [
        login(client, "boss", password="wrong-password", expect=None).status_code for _ in range(11)
    ]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429


def test_staff_home_tells_of_ended_leases(client, ctx) -> None:
    """The lease-end job's cascade reaches staff: the home page lists the tenants."""
    from datetime import timedelta

    from gatekeeper.vocabulary import PersonRole
    from server.extensions import db
    from server.models import utcnow
    from server.people.service import close_ended_leases

    w = factories.world()
    tenant = factories.person(w.a, "张伟")
    factories.membership(tenant, PersonRole.TENANT, unit_of=w.unit_a)
    now = utcnow()
    factories.lease(
        tenant, w.unit_a, starts_at=now - timedelta(days=30), ends_at=now - timedelta(hours=1)
    )
    close_ended_leases()
    db.session.commit()
    login(client, "staff_a")
    page = client.get("/").text
    assert "Leases ended this week" in page and "张伟" in page
    client.post("/logout", data={"csrf_token": csrf(page)})
    login(client, "staff_b")
    assert "张伟" not in client.get("/").text
