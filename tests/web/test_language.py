"""Which language a page, a guest and an API caller get, and how they change it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gatekeeper.vocabulary import AlertStatus, DeviceKind, PersonRole
from hardware.protocol import Command
from server.core.wording import word
from server.extensions import db
from server.models import Community, User, UserRole
from tests.support.api import assert_problem, in_app
from tests.support.pages import csrf, login


def _chinese(client) -> None:
    client.environ_base.pop("HTTP_ACCEPT_LANGUAGE", None)


def test_a_browser_that_asks_for_nothing_gets_chinese(client) -> None:
    _chinese(client)
    page = client.get("/login")
    assert '<html lang="zh-CN">' in page.text
    assert "<h1>登录</h1>" in page.text and "用户名" in page.text


@pytest.mark.parametrize(
    ("header", "lang", "text"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN", "登录"),
        ("zh-TW", "zh-CN", "登录"),
        ("en-US,en;q=0.9", "en", "Sign in"),
        ("fr-FR,en;q=0.5,zh;q=0.4", "en", "Sign in"),
        ("fr-FR", "zh-CN", "登录"),
    ],
)
def test_accept_language_chooses_among_the_two(client, header, lang, text) -> None:
    page = client.get("/login", headers={"Accept-Language": header})
    assert f'<html lang="{lang}">' in page.text
    assert f"<h1>{text}</h1>" in page.text


def test_a_visitor_switches_language_with_a_cookie(client) -> None:
    page = client.get("/login?next=/my/passes")
    answer = client.post(
        "/language",
        data={"locale": "zh_CN", "next": "/login?next=/my/passes", "csrf_token": csrf(page.text)},
    )
    assert answer.status_code == 302 and answer.location == "/login?next=/my/passes"
    assert "gk_lang=zh_CN" in answer.headers["Set-Cookie"]
    assert "HttpOnly" in answer.headers["Set-Cookie"]
    # The choice beats the browser's English.
    assert "<h1>登录</h1>" in client.get("/login").text


def test_the_switch_goes_back_only_to_this_site(client) -> None:
    page = client.get("/login")
    answer = client.post(
        "/language",
        data={"locale": "en", "next": "//evil.example/", "csrf_token": csrf(page.text)},
    )
    assert answer.status_code == 302 and answer.location == "/"


def test_an_unknown_language_is_refused(client) -> None:
    page = client.get("/login")
    answer = client.post("/language", data={"locale": "fr", "csrf_token": csrf(page.text)})
    assert answer.status_code == 400
    assert "Set-Cookie" not in answer.headers or "gk_lang" not in answer.headers["Set-Cookie"]


def test_a_signed_in_users_choice_is_kept_on_the_account(app, client, world) -> None:
    login(client, "admin")
    home = client.get("/")
    assert "Sign out" in home.text  # the browser asks for English
    client.post("/language", data={"locale": "zh_CN", "next": "/", "csrf_token": csrf(home.text)})
    with in_app(app):
        assert db.session.scalar(select(User.locale).where(User.username == "admin")) == "zh_CN"
    # Another browser, asking for English, signed in as the same user: Chinese.
    other = app.test_client()
    login(other, "admin")
    again = other.get("/")
    assert '<html lang="zh-CN">' in again.text and "退出登录" in again.text


def test_the_communitys_default_applies_when_nobody_chose(app, client, world) -> None:
    with in_app(app):
        community = db.session.get(Community, world.a)
        community.settings = {**(community.settings or {}), "default_locale": "en"}
        db.session.commit()
    _chinese(client)
    login(client, "staff_a")
    assert '<html lang="en">' in client.get("/").text
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    assert '<html lang="zh-CN">' in client.get("/").text


def test_the_api_speaks_english_unless_asked(client) -> None:
    def broken_json(**headers):
        return client.post(
            "/api/v1/auth/token",
            data="{not json",
            headers={"Content-Type": "application/json", **headers},
        )

    problem = assert_problem(broken_json(), 400)
    assert problem["detail"] == "The request body is not valid JSON."
    translated = assert_problem(broken_json(**{"Accept-Language": "zh-CN,zh;q=0.9"}), 400)
    assert translated["detail"] == "请求体不是有效的 JSON。"
    assert translated["title"] == problem["title"]  # titles stay English
    assert translated["type"] == problem["type"]


def test_a_problem_detail_is_english_without_accept_language(client, world) -> None:
    client.environ_base.pop("HTTP_ACCEPT_LANGUAGE", None)
    problem = assert_problem(client.get("/api/v1/me"), 401)
    assert problem["detail"].isascii()


def test_domain_values_are_words_in_the_request_language(app) -> None:
    with app.test_request_context("/", headers={"Accept-Language": "zh-CN"}):
        assert word(PersonRole.OWNER) == "业主"
        assert word(DeviceKind.PANIC_BUTTON) == "紧急按钮"
        assert word(Command.OPEN) == "开门"
        assert word(AlertStatus.OPEN) == "待处理"
        assert word(UserRole.RESIDENT) == "住户"
        assert word(None) == "—"
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert word(Command.UNLOCK_HOLD) == "hold unlocked"
        assert word(PersonRole.RESIDENT) == "family member"
        assert word("rfid_reader") == "RFID reader"  # a plain value: found by its text
        assert word("no_such_value") == "no such value"
