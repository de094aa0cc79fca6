"""Car gate pages in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from flask import Flask
from sqlalchemy import select

from hardware.messages import CommandMessage
from hardware.protocol import Command
from server.extensions import db
from server.models import BlockedPlate
from tests.support.browser import PAGE_TIMEOUT_MS, expect, sign_in
from tests.support.live_server import LiveServer
from tests.support.passes import add_barrier, build_pass_site

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

BARRIER_SECRET = "barrier-secret-for-car-browser"


@pytest.fixture
def barrier(app: Flask, ctx) -> dict[str, str]:
    """Community A with a barrier (known secret) and the owner's registered car."""
    site = build_pass_site()
    added = add_barrier(site, BARRIER_SECRET)
    ids = {"a": site.a, "device": added.device, "credential": added.credential}
    db.session.remove()
    return ids


def _staff_page(browser: Browser, live_server: LiveServer) -> Page:
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    sign_in(page, live_server.url, "staff_a")
    expect(page.get_by_role("heading", name="Property office")).to_be_visible()
    return page


def test_staff_sees_a_car_inside_and_opens_the_barrier(
    app: Flask, browser: Browser, live_server: LiveServer, barrier, published
) -> None:
    entry = app.test_client().post(
        "/api/v1/verify/plate",
        json={"plate": "浙B82345", "confidence": 0.97, "direction": "in"},
        headers={"Authorization": f"Bearer {barrier['credential']}"},
    )
    assert entry.json["decision"] == "grant"
    published.clear()

    page = _staff_page(browser, live_server)
    page.get_by_role("link", name="Cars and barriers").click()
    expect(page.get_by_role("heading", name="Cars · Community A")).to_be_visible()
    inside = page.locator("#inside")
    expect(inside.locator("#inside-count")).to_have_text("1")
    row = inside.locator('tr[data-plate="浙B82345"]')
    expect(row).to_contain_text("resident")
    expect(row).to_contain_text("王小明")
    expect(row).to_contain_text("0 min")
    decisions = page.locator("table.decisions tbody tr")
    expect(decisions).to_have_count(1)
    expect(decisions.first).to_contain_text("Household car")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    page.get_by_role("button", name="Open barrier").click()
    expect(page.get_by_role("alert")).to_have_text("South barrier is opening (1 device(s)).")
    expect(decisions).to_have_count(2)
    expect(decisions.first).to_contain_text("opened by staff_a")
    [message] = published
    assert barrier["device"] in message.topic
    assert CommandMessage.decode(message.payload).cmd is Command.OPEN
    page.close()


def test_staff_blocks_and_unblocks_a_plate(
    app: Flask, browser: Browser, live_server: LiveServer, barrier
) -> None:
    page = _staff_page(browser, live_server)
    page.get_by_role("link", name="Blocked plates").click()
    expect(page.get_by_role("heading", name="Blocked plates · Community A")).to_be_visible()
    expect(page.get_by_text("No plate is blocked.")).to_be_visible()

    page.get_by_label("Plate").fill("沪C8888")  # one character short
    page.get_by_label("Reason").fill("Stolen car")
    page.get_by_role("button", name="Block plate").click()
    expect(page.get_by_text("Nothing was stored: please check.")).to_be_visible()
    expect(page.locator("#plate-error")).to_be_visible()
    expect(page.get_by_label("Reason")).to_have_value("Stolen car")

    page.get_by_label("Plate").fill("沪c·88888")
    page.get_by_role("button", name="Block plate").click()
    expect(page.get_by_role("alert")).to_contain_text("沪C88888 is blocked")
    row = page.locator('tr[data-plate="沪C88888"]')
    expect(row).to_contain_text("Stolen car")

    # Removing asks first: dismissed, nothing happens; accepted, the plate is unblocked.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Unblock 沪C88888").click()
    expect(row).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Unblock 沪C88888").click()
    expect(page.get_by_role("alert")).to_have_text("沪C88888 is no longer blocked.")
    expect(page.get_by_text("No plate is blocked.")).to_be_visible()
    page.close()
    with app.app_context():
        assert list(db.session.scalars(select(BlockedPlate))) == []
