"""Onboarding in a real headless Chromium, in Chinese and in English: staff print an
invitation, a resident registers on their phone with a selfie, staff approve, the resident
chooses a password, signs in and shares a pass whose guest page speaks Chinese; a second
registrant with the same face is held back, the first one named (masked) with their unit."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.fetch_test_data import test_image as photo_path
from tests.support.browser import expect, sign_in
from tests.support.live_server import LiveServer
from tests.support.passes import build_pass_site

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PHONE = {"width": 360, "height": 740}
DESK = {"width": 1280, "height": 800}

# What each language calls the things the test clicks and reads.
WORDS = {
    "zh-CN": {
        "make": "生成邀请",
        "name": "您的姓名",
        "phone": "手机号码",
        "unit": "您的房屋",
        "owner": "业主",
        "consent": "我同意使用我的人脸开启小区的门禁。",
        "selfie": "您的正脸照片",
        "send": "提交给物业",
        "waiting": "等待物业审核。",
        "review": "审核",
        "approve": "批准",
        "approved": "已批准。欢迎入住！",
        "choose": "设置您的密码",
        "password": "新密码",
        "again": "再次输入密码",
        "set": "设置密码并登录",
        "home": "我的家",
        "invite": "邀请访客",
        "guest": "访客姓名",
        "create": "生成通行证",
        "enrolled": "此人脸已登记",
    },
    "en-US": {
        "make": "Make invitation",
        "name": "Your name",
        "phone": "Mobile phone",
        "unit": "Your unit",
        "owner": "owner",
        "consent": "I agree that my face is used to open the community's doors.",
        "selfie": "A photo of your face",
        "send": "Send to the property office",
        "waiting": "Waiting for the property office.",
        "review": "Review",
        "approve": "Approve",
        "approved": "Approved. Welcome!",
        "choose": "Choose your password",
        "password": "New password",
        "again": "The same password again",
        "set": "Set password and sign in",
        "home": "My home",
        "invite": "Invite a guest",
        "guest": "Guest's name",
        "create": "Create pass",
        "enrolled": "This face is already enrolled",
    },
}


def _register(
    page: Page, words: dict[str, str], join_url: str, name: str, phone: str, photo: str
) -> str:
    """Fill in the lobby's form on a phone; the registrant's own page's URL."""
    page.goto(join_url)
    page.get_by_label(words["name"]).fill(name)
    page.get_by_label(words["phone"], exact=False).first.fill(phone)
    page.get_by_label(words["unit"]).select_option(label="A1 · 101")
    page.get_by_label(words["owner"], exact=True).check()
    page.get_by_label(words["consent"]).check()
    page.get_by_label(words["selfie"], exact=False).set_input_files(str(photo_path(photo)))
    page.get_by_role("button", name=words["send"]).click()
    expect(page.get_by_text(words["waiting"])).to_be_visible()
    return page.url


def _review(staff: Page, words: dict[str, str], base: str, community_id: str, name: str) -> None:
    staff.goto(f"{base}/communities/{community_id}/registrations")
    staff.get_by_role("row", name=re.compile(name)).get_by_role(
        "link", name=words["review"]
    ).click()


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_a_resident_registers_is_approved_and_shares_a_pass(
    browser: Browser, live_server: LiveServer, ctx, locale: str
) -> None:
    site = build_pass_site()
    words = WORDS[locale]
    base = live_server.url
    staff = browser.new_page(viewport=DESK, locale=locale)
    sign_in(staff, base, "staff_a")
    staff.goto(f"{base}/communities/{site.a}/registrations")
    staff.get_by_role("button", name=words["make"]).click()
    poster = staff.locator("#poster")
    expect(poster.locator("img.qr")).to_be_visible()
    join_url = re.search(r"https?://\S+/join/\S+", poster.inner_text()).group(0)
    assert staff.evaluate("document.documentElement.lang") == (
        "zh-CN" if locale == "zh-CN" else "en"
    )

    phone = browser.new_page(viewport=PHONE, locale=locale)
    status_url = _register(phone, words, join_url, "陈静", "13900139000", "obama.jpg")

    _review(staff, words, base, site.a, "陈静")
    staff.get_by_role("button", name=words["approve"]).click()
    expect(staff.get_by_text(re.compile("陈静")).first).to_be_visible()

    phone.goto(status_url)
    expect(phone.get_by_text(words["approved"])).to_be_visible()
    phone.get_by_role("link", name=words["choose"]).click()
    phone.get_by_label(words["password"], exact=False).fill("zhang-wei-2026")
    phone.get_by_label(words["again"]).fill("zhang-wei-2026")
    phone.get_by_role("button", name=words["set"]).click()
    expect(phone.get_by_role("heading", name=words["home"])).to_be_visible()

    # The new resident shares a pass; the courier's phone asks for nothing: Chinese.
    phone.get_by_role("link", name=words["invite"]).click()
    phone.get_by_label(words["guest"]).fill("快递 小李")
    phone.get_by_role("button", name=words["create"]).click()
    share_url = phone.locator("#share-link").input_value()
    courier = browser.new_page(viewport=PHONE, locale="zh-CN")
    courier.goto(share_url)
    expect(courier.get_by_role("heading", name="访客通行证")).to_be_visible()
    assert courier.evaluate("document.documentElement.lang") == "zh-CN"

    # Another registrant sends the same face (another photo of it): staff see who has it.
    second = browser.new_page(viewport=PHONE, locale=locale)
    _register(second, words, join_url, "李娜", "13700137000", "obama2.jpg")
    _review(staff, words, base, site.a, "李娜")
    alike = staff.locator("#look-alike")
    expect(alike).to_contain_text(words["enrolled"])
    expect(alike).to_contain_text("陈*")
    expect(alike).to_contain_text("A1 · 101")
    expect(staff.get_by_role("button", name=words["approve"])).to_be_disabled()
