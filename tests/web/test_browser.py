"""Pages in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask

from server.models import UserRole
from tests import factories
from tests.factories import PASSWORD
from tests.support.browser import expect, sign_in
from tests.support.live import set_online
from tests.support.live_server import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_staff_signs_in_and_sees_home(browser: Browser, live_server: LiveServer, ctx) -> None:
    w = factories.world()
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    page.goto(live_server.url + "/")
    expect(page).to_have_url(live_server.url + "/login?next=%2F")
    page.fill("#username", w.staff_a.username)
    page.fill("#password", "wrong-password")
    page.click("main button[type=submit]")  # not the language switch
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")

    page.fill("#username", w.staff_a.username)
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")  # not the language switch
    expect(page).to_have_url(live_server.url + "/")
    expect(page.get_by_role("heading", name="Property office")).to_be_visible()
    expect(page.get_by_role("heading", name="Community A")).to_be_visible()
    expect(page.get_by_text(w.device_a.name)).to_be_visible()
    assert "Community B" not in page.content()
    # Nothing wider than the phone's screen but the device table's own scroller.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    page.click("text=Sign out")
    expect(page).to_have_url(live_server.url + "/login")
    page.close()


def test_resident_home_in_browser(browser: Browser, live_server: LiveServer, ctx) -> None:
    w = factories.world()
    page = browser.new_page()
    sign_in(page, live_server.url, w.resident_a.username)
    expect(page.get_by_text("A1 · 101")).to_be_visible()
    page.close()
    assert w.resident_a.role is UserRole.RESIDENT


def test_api_docs_render_without_internet(browser: Browser, live_server: LiveServer) -> None:
    page = browser.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(live_server.url + "/api/v1/docs")
    expect(page.get_by_text("/api/v1/communities/{cid}/devices").first).to_be_visible()
    assert failed == []
    page.close()


def test_the_browser_stays_on_the_site_whatever_next_says(
    browser: Browser, live_server: LiveServer, ctx
) -> None:
    """Chromium itself follows the redirect: what it makes of tabs and backslashes decides."""
    factories.user(UserRole.ADMIN, username="boss")
    page = browser.new_page()
    leaving = ["%2F%09%2Fevil.example%2F", "%2F%5Cevil.example", "%2F%0A%2Fevil.example"]
    for target in leaving:
        page.goto(f"{live_server.url}/login?next={target}")
        page.fill("#username", "boss")
        page.fill("#password", PASSWORD)
        page.click("main button[type=submit]")  # not the language switch
        expect(page).to_have_url(live_server.url + "/")
        page.click("text=Sign out")
        expect(page).to_have_url(live_server.url + "/login")
    page.close()


def test_the_device_console_updates_in_the_pages_language(
    app: Flask, browser: Browser, live_server: LiveServer, ctx
) -> None:
    """devices.js spells no word itself: the states it writes come from the page."""
    w = factories.world()
    community_id, device_id = w.a.id, w.device_a.id
    page = browser.new_page(locale="zh-CN")
    sign_in(page, live_server.url, w.staff_a.username)
    page.goto(f"{live_server.url}/communities/{community_id}/devices")
    expect(page.get_by_role("heading", name="设备 · Community A")).to_be_visible()
    state = page.locator(f'#devices tr[data-device="{device_id}"] .state')
    expect(state).to_have_text("离线")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    set_online(app, device_id, True)  # the worker, on the device's status message
    expect(state).to_have_text("在线")
    expect(state.locator(".pill.on")).to_have_count(1)
    page.close()
