"""Temporary cars on the cars page in a real headless Chromium (Debian's): a car held at the
exit with a fee appears without a reload (the ``parking`` feed), and the guard's
confirmation opens the barrier."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask

from hardware.messages import CommandMessage
from hardware.protocol import Command
from server.extensions import db
from server.models import Community
from tests.support.api import in_app
from tests.support.browser import PAGE_TIMEOUT_MS, expect, sign_in
from tests.support.live_server import LiveServer
from tests.support.passes import add_barrier, build_pass_site
from tests.support.published import commands

if TYPE_CHECKING:
    from playwright.sync_api import Browser

BARRIER_SECRET = "barrier-secret-for-parking-browser"
GUEST = "京N1234学"


def test_a_car_held_at_the_exit_appears_live_and_the_guard_lets_it_out(
    app: Flask, browser: Browser, live_server: LiveServer, published
) -> None:
    with in_app(app):
        site = build_pass_site()
        barrier = add_barrier(site, BARRIER_SECRET)
        community = db.session.get(Community, site.a)
        # Real time here: no free minutes, so the few seconds of the test cost one hour.
        community.settings = {
            "temporary_cars": True,
            "parking_free_minutes": 0,
            "parking_hour_fen": 600,
        }
        db.session.commit()
        community_id, credential, device = site.a, barrier.credential, barrier.device
    camera = app.test_client()
    headers = {"Authorization": f"Bearer {credential}"}

    def read(direction: str) -> dict:
        answer = camera.post(
            "/api/v1/verify/plate", json={"plate": GUEST, "direction": direction}, headers=headers
        )
        assert answer.status_code == 200, answer.json
        return answer.json

    assert read("in")["reason"] == "temporary_vehicle"
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    sign_in(page, live_server.url, "staff_a")
    page.goto(f"{live_server.url}/communities/{community_id}/cars")
    card = page.locator("#parking")
    expect(card).to_contain_text("No car waiting to pay.")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    page.evaluate("window.loadedOnce = true")
    published.clear()

    held = read("out")
    assert (held["reason"], held["parking"]["fee_fen"]) == ("payment_required", 600)
    row = page.locator(f'#parking tr[data-plate="{GUEST}"]')
    expect(row).to_contain_text("¥6.00")
    expect(page.locator("#parking-count")).to_have_text("1")
    assert page.evaluate("window.loadedOnce") is True  # no reload: the feed brought it
    assert commands(published) == []

    row.get_by_label("Paid by").select_option("wechat")
    row.get_by_role("button", name=f"Payment received from {GUEST}: open the barrier").click()
    expect(page.get_by_role("alert")).to_have_text(
        f"{GUEST} paid ¥6.00 (WeChat Pay): the barrier is opening."
    )
    expect(page.locator("#parking")).to_contain_text("No car waiting to pay.")
    [message] = commands(published)
    assert device in message.topic
    assert CommandMessage.decode(message.payload).cmd is Command.OPEN
    page.close()
