"""The site plan in a real headless Chromium: a member of staff uploads the plan, presses
"Place on the plan" beside a door and clicks its spot; the position stored is the click's
fraction of the picture, and the page draws the door there. The page's script runs under
the Content-Security-Policy (no inline script): any refusal or error fails the test."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from flask import Flask
from PIL import Image

from server.extensions import db
from server.models import AccessPoint
from tests.support.api import WorldIds, in_app
from tests.support.browser import PAGE_TIMEOUT_MS, expect, sign_in
from tests.support.live_server import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser

DESK = {"width": 1280, "height": 900}
_WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def test_staff_place_a_door_by_clicking_on_the_plan(
    app: Flask, browser: Browser, live_server: LiveServer, world: WorldIds
) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (800, 400), (230, 236, 242)).save(picture, "PNG")
    page = browser.new_page(viewport=DESK, locale="en-US")
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    problems: list[str] = []
    # The site has no icon: Chromium's own request for one is no page's doing.
    page.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type == "error" and not m.location["url"].endswith("/favicon.ico")
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    page.add_init_script(_WATCH)
    sign_in(page, live_server.url, "staff_a")
    page.goto(f"{live_server.url}/communities/{world.a}/site")

    page.set_input_files(
        "#site-plan-image",
        files=[{"name": "plan.png", "mimeType": "image/png", "buffer": picture.getvalue()}],
    )
    page.get_by_role("button", name="Upload the plan").click()
    expect(page.get_by_role("alert")).to_have_text("Site plan saved.")

    row = page.locator(f'tr[data-target="access_point:{world.door_a}"]')
    row.get_by_role("button", name="Place on the plan").click()
    expect(page.locator("[data-place-status]")).to_have_text(
        "Click the spot of A door on the plan."
    )
    image = page.locator("svg.site-plan image.plan-picture")
    box = image.bounding_box()
    assert box is not None and box["width"] > 100
    image.click(position={"x": box["width"] * 0.25, "y": box["height"] * 0.75})
    expect(page.get_by_role("alert")).to_have_text("A door placed on the site plan.")

    with in_app(app):
        door = db.session.get(AccessPoint, world.door_a)
        assert abs(door.plan_x - 0.25) < 0.01 and abs(door.plan_y - 0.75) < 0.01
    mark = page.locator(f'svg.site-plan g[data-access-point="{world.door_a}"] circle')
    assert abs(float(mark.get_attribute("cx")) - 200) < 8
    assert abs(float(mark.get_attribute("cy")) - 300) < 4
    problems += page.evaluate("window.__violations || []")
    assert problems == []
