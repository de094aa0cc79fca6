"""The site pages in a real headless Chromium, in Chinese and in English: a staff member adds an
access point, provisions a door terminal for it and sees the installer's QR code; the secret
shown works at the door."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from flask import Flask

from tests.support.api import WorldIds
from tests.support.browser import PAGE_TIMEOUT_MS, expect, sign_in
from tests.support.live_server import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser

DESK = {"width": 1280, "height": 800}

# What each language calls the things the test clicks and reads.
WORDS = {
    "zh-CN": {
        "site": "楼栋与门禁点",
        "new point": "新建门禁点",
        "name": "名称",
        "kind": "类型",
        "zone": "区域",
        "open": "开门时长（秒）",
        "add point": "添加门禁点",
        "added": "门禁点 东门 已添加。",
        "point": "门禁点 东门",
        "provision for": "为此门禁点开通设备",
        "provision": "开通设备",
        "provisioned": "东门 门禁终端 已开通",
    },
    "en-US": {
        "site": "Buildings and access points",
        "new point": "New access point",
        "name": "Name",
        "kind": "Kind",
        "zone": "Zone",
        "open": "Unlocked for (seconds)",
        "add point": "Add access point",
        "added": "Access point 东门 added.",
        "point": "Access point 东门",
        "provision for": "Provision a device for this access point",
        "provision": "Provision device",
        "provisioned": "东门 门禁终端 is provisioned",
    },
}


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_staff_add_an_access_point_and_provision_its_door_terminal(
    app: Flask, browser: Browser, live_server: LiveServer, world: WorldIds, locale: str
) -> None:
    words = WORDS[locale]
    page = browser.new_page(viewport=DESK, locale=locale)
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    sign_in(page, live_server.url, "staff_a")
    assert page.evaluate("document.documentElement.lang") == (
        "zh-CN" if locale == "zh-CN" else "en"
    )

    page.get_by_role("link", name=words["site"]).click()
    page.get_by_role("link", name=words["new point"]).click()
    page.get_by_label(words["name"], exact=True).fill("东门")
    page.get_by_label(words["kind"], exact=True).select_option("gate")
    page.get_by_label(words["zone"], exact=True).select_option("perimeter")
    page.get_by_label(words["open"]).fill("3")
    page.get_by_role("button", name=words["add point"]).click()
    expect(page.get_by_role("alert")).to_have_text(words["added"])
    expect(page.get_by_role("heading", name=words["point"])).to_be_visible()

    page.get_by_role("link", name=words["provision for"]).click()
    page.get_by_label(words["name"], exact=True).fill("东门 门禁终端")
    page.get_by_role("button", name=words["provision"]).click()
    expect(page.get_by_role("heading", name=words["provisioned"])).to_be_visible()
    qr = page.locator("#provisioning-qr")
    expect(qr).to_be_visible()
    assert qr.evaluate("image => image.complete && image.naturalWidth > 100")
    device_id = page.locator("#device-id").inner_text()
    secret = page.locator("#device-secret").inner_text()
    door = app.test_client().post(
        "/api/v1/verify/card",
        json={"uid": "04A1B2C3"},
        headers={"Authorization": f"Bearer {device_id}.{secret}"},
    )
    assert door.status_code == 200, door.text
    page.close()
