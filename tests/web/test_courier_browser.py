"""Courier codes in a real headless Chromium on a 360 px wide phone: made in two taps, the
digits read off the page, then shown only masked, and cancelled."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from server.extensions import db
from server.models import AccessPoint
from tests.support.browser import expect
from tests.support.live_server import LiveServer
from tests.support.passes import build_pass_site
from tests.web.test_portal_browser import ENGLISH, _fits_the_phone, _sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_a_resident_makes_and_cancels_a_courier_code(
    browser: Browser, live_server: LiveServer, ctx
) -> None:
    site = build_pass_site()
    db.session.get(AccessPoint, site.door).has_keypad = True
    db.session.commit()
    context = browser.new_context(**ENGLISH)
    page = context.new_page()
    _sign_in(page, live_server.url, "resident_a")
    page.get_by_role("link", name="Courier codes").first.click()
    expect(page.get_by_role("heading", name="Courier codes", exact=True)).to_be_visible()
    _fits_the_phone(page)
    page.get_by_label("For whom").fill("顺丰")
    page.get_by_role("button", name="Make a code").click()
    digits = page.locator("#issued-pin")
    expect(digits).to_have_text(re.compile(r"^\d{6}$"))
    _fits_the_phone(page)
    shown = digits.inner_text()

    # Shown once: the list, opened again, has it masked only.
    page.get_by_role("link", name="Courier codes").first.click()
    expect(page.locator("#issued-pin")).to_have_count(0)
    expect(page.get_by_text("••••" + shown[-2:])).to_be_visible()
    page.get_by_role("button", name="Cancel code").click()
    expect(page.get_by_text("no longer opens the door")).to_be_visible()
    expect(page.get_by_text("cancelled", exact=True)).to_be_visible()
    context.close()
