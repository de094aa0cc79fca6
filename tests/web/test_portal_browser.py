"""The resident portal in a real headless Chromium (Debian's), on a 360 px wide phone.

A pass is made in a few taps, shared, opened by the guest without signing in (its QR image
decodes to the pass's token), and revoked; the rotating code changes at its step.
"""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import time_machine
from PIL import Image
from pyzbar import pyzbar

from gatekeeper import passtokens
from server.access.qr import RESIDENT_CODE_STEP_S
from tests.support.browser import expect, sign_in
from tests.support.live_server import LiveServer
from tests.support.passes import build_pass_site

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

PHONE = {"width": 360, "height": 740}
# The browser asks for English (the texts below); a courier's phone asks for Chinese.
ENGLISH = {"viewport": PHONE, "locale": "en-US"}
_LOADED = "image => image.complete && image.naturalWidth > 0"


def _sign_in(page: Page, base: str, username: str) -> None:
    sign_in(page, base, username)
    expect(page.get_by_role("heading", name="My home")).to_be_visible()


def _decode(png: bytes) -> str:
    [code] = pyzbar.decode(Image.open(io.BytesIO(png)))
    return code.data.decode()


def _wait_loaded(image: Locator) -> None:
    image.page.wait_for_function(_LOADED, arg=image.element_handle())


def _fits_the_phone(page: Page) -> None:
    """Nothing wider than the phone, once the page a click led to has loaded (asked
    straight after a click, the old document may already be gone)."""
    page.wait_for_load_state()
    page.wait_for_function(
        "width => document.documentElement !== null"
        " && document.documentElement.scrollWidth <= width",
        arg=PHONE["width"],
        timeout=10_000,
    )


def test_a_pass_is_made_shared_and_revoked(browser: Browser, live_server: LiveServer, ctx) -> None:
    build_pass_site()
    base = live_server.url
    context = browser.new_context(**ENGLISH)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = context.new_page()
    _sign_in(page, base, "resident_a")
    _fits_the_phone(page)

    # A few taps: invite, the guest's name, how long, create.
    page.get_by_role("link", name="Invite a guest").click()
    _fits_the_phone(page)
    page.get_by_label("Guest's name").fill("快递 小李")
    page.get_by_label("2 hours").check()
    page.get_by_role("button", name="Create pass").click()
    expect(page.get_by_text("Pass for 快递 小李 created")).to_be_visible()
    pass_id = re.fullmatch(rf"{re.escape(base)}/my/passes/(pas_\w+)", page.url).group(1)
    qr = page.locator("#pass-qr")
    _wait_loaded(qr)
    _fits_the_phone(page)

    page.get_by_role("button", name="Copy link").click()
    expect(page.locator("#share-note")).to_have_text("Link copied.")
    share_url = page.locator("#share-link").input_value()
    assert share_url.startswith(base + "/g/")
    assert page.evaluate("navigator.clipboard.readText()") == share_url
    token = page.request.get(f"{base}/api/v1/passes/{pass_id}").json()["token"]
    assert _decode(page.request.get(qr.evaluate("image => image.src")).body()) == token

    # The guest opens the link on their own phone: no session, no cookies.
    guest_context = browser.new_context(**ENGLISH)
    guest = guest_context.new_page()
    guest.goto(share_url)
    expect(guest.get_by_text("快递 小李")).to_be_visible()
    image = guest.locator("img.qr")
    _wait_loaded(image)
    _fits_the_phone(guest)
    assert _decode(guest.request.get(image.evaluate("image => image.src")).body()) == token
    assert _decode(image.screenshot()) == token  # as the browser painted it
    # A courier's phone set to Chinese reads the page in Chinese.
    courier_context = browser.new_context(viewport=PHONE, locale="zh-CN")
    courier = courier_context.new_page()
    courier.goto(share_url)
    expect(courier.get_by_role("heading", name="访客通行证")).to_be_visible()
    expect(courier.get_by_text("请在距门口摄像头约 30 厘米处出示此二维码。")).to_be_visible()
    courier_context.close()

    page.get_by_text("Revoke this pass…").click()
    page.get_by_role("button", name="Yes, revoke the pass").click()
    expect(page.get_by_text("its code no longer opens any door")).to_be_visible()
    expect(page.locator("#pass-status")).to_have_text("cancelled")
    expect(page.locator("#pass-qr")).to_have_count(0)

    guest.reload()
    expect(guest.get_by_text("This pass was cancelled.")).to_be_visible()
    expect(guest.locator("img.qr")).to_have_count(0)

    page.get_by_role("link", name="Passes", exact=True).click()
    expect(page.get_by_text("No passes here.")).to_be_visible()
    page.get_by_role("link", name=re.compile("^Expired")).click()
    expect(page.get_by_role("link", name=re.compile("快递 小李"))).to_be_visible()
    for path in ("/my/doors", "/my/history"):
        page.goto(base + path)
        _fits_the_phone(page)
    guest_context.close()
    context.close()


def test_my_code_changes_at_the_step(browser: Browser, live_server: LiveServer, ctx) -> None:
    build_pass_site()
    page = browser.new_page(**ENGLISH)
    _sign_in(page, live_server.url, "resident_a")
    # The server's clock jumps (forward, so the session stays valid) to just before a step
    # ends; the page keeps time by the server's clock, not the browser's.
    now = time.time()
    boundary = (int(now) // RESIDENT_CODE_STEP_S + 1) * RESIDENT_CODE_STEP_S
    if boundary - now < 5:
        boundary += RESIDENT_CODE_STEP_S
    with time_machine.travel(datetime.fromtimestamp(boundary - 4, UTC), tick=True):
        page.get_by_role("link", name="My code").click()
        code = page.locator("#my-code")
        _wait_loaded(code)
        _fits_the_phone(page)
        first_src = code.get_attribute("src")
        first = _decode(code.screenshot())
        seconds = int(page.locator("#code-seconds").inner_text())
        assert 1 <= seconds <= 4

        expect(code).not_to_have_attribute("src", first_src, timeout=10_000)
        _wait_loaded(code)
        second = _decode(code.screenshot())
        assert second != first
        expect(page.locator("#code-seconds")).to_have_text(re.compile(r"^(2\d|30)$"))
    before, after = passtokens.parse(first)[0], passtokens.parse(second)[0]
    assert before.kind is after.kind is passtokens.TokenKind.RESIDENT_CODE
    assert after.not_before == before.not_after == datetime.fromtimestamp(boundary, UTC)
    page.close()
