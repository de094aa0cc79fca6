"""The portal's notification list in a real headless Chromium (Debian's), live: a guest's pass
used at a door appears at the top with the header's unread count moving, without a reload;
read elsewhere (the API), the count goes back. A neighbour's notification never shows.
``window.loadedOnce`` is gone if the page reloads.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from flask import Flask

from server.extensions import db
from server.notifications import service as notifications
from server.notifications.kinds import Kind
from tests.factories import Api
from tests.support.browser import expect, sign_in
from tests.support.live_server import LiveServer
from tests.support.passes import NOW, pass_site

if TYPE_CHECKING:
    from playwright.sync_api import Browser

PHONE = {"width": 360, "height": 740}


def _tell(app: Flask, person: str, community: str, guest: str) -> None:
    with app.app_context():
        notifications.notify(
            [person],
            Kind.PASS_USED,
            community_id=community,
            guest=guest,
            door="A door",
            at=NOW,
            pass_id="pas_x",
        )
        db.session.commit()
        db.session.remove()


def test_a_used_pass_appears_in_the_portal_live(
    app: Flask, browser: Browser, live_server: LiveServer
) -> None:
    site = pass_site(app)
    page = browser.new_page(viewport=PHONE, locale="en-US", timezone_id="Asia/Shanghai")
    page.set_default_timeout(8000)
    sign_in(page, live_server.url, "resident_a")
    page.goto(f"{live_server.url}/my/notifications")
    count = page.locator("#unread-count")
    expect(count).to_have_text("0")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    page.evaluate("window.loadedOnce = true")

    _tell(app, site.tenant_person, site.a, "邻居的客人")  # another account's: never shown
    _tell(app, site.resident_person, site.a, "王小二")
    first = page.locator("#notifications li").first
    expect(first.locator(".notification-text")).to_have_text(
        "王小二's pass was used at A door (11-21 16:30)."
    )
    made = first.locator(".muted").inner_text()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", made), made
    expect(first).to_have_class("unread")
    expect(count).to_have_text("1")
    expect(page.locator("#notifications li")).to_have_count(1)
    assert "邻居" not in page.locator("#notifications").inner_text()

    Api(app.test_client(), "resident_a").post("/notifications/read")
    expect(count).to_have_text("0")
    expect(first).not_to_have_class("unread")
    assert page.evaluate("window.loadedOnce") is True
    page.close()


# The browser's push service is Google's, out of reach here: the page's PushManager.subscribe
# answers the loopback push service's subscription instead, and keeps the key it was given.
_STAND_IN = """
(subscription) => {
  if (!window.PushManager) return;
  PushManager.prototype.subscribe = async function (options) {
    const key = new Uint8Array(options.applicationServerKey);
    window.subscribedWith = btoa(String.fromCharCode.apply(null, key))
      .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
    return { toJSON: function () { return subscription; } };
  };
}
"""


def test_the_button_subscribes_this_browser_and_a_push_reaches_it(
    app: Flask, browser: Browser, live_server: LiveServer, monkeypatch
) -> None:
    import dataclasses
    import json

    from server.notifications.push import public_key
    from server.worker import notifications as delivery
    from tests.notifications.keys import VAPID_PEM
    from tests.support.alerts import allow_webhook_hosts
    from tests.support.pushservice import PushService

    settings = dataclasses.replace(
        app.config["SETTINGS"], vapid_private_key=VAPID_PEM, vapid_contact="mailto:ops@example.cn"
    )
    monkeypatch.setitem(app.config, "SETTINGS", settings)
    allow_webhook_hosts(app, monkeypatch, ["127.0.0.1"])
    site = pass_site(app)
    service = PushService().start()
    try:
        subscription = service.subscribe()
        context = browser.new_context(viewport=PHONE)
        context.grant_permissions(["notifications"], origin=live_server.url)
        context.add_init_script(f"({_STAND_IN})({json.dumps(subscription)})")
        page = context.new_page()
        page.set_default_timeout(8000)
        sign_in(page, live_server.url, "resident_a")
        page.goto(f"{live_server.url}/my/notifications/settings")
        page.click("#push-subscribe")
        expect(page.locator("#push-state")).to_have_text(
            "Phone notifications are on in this browser."
        )
        with app.app_context():
            assert page.evaluate("window.subscribedWith") == public_key()
        assert page.evaluate(
            "navigator.serviceWorker.getRegistration('/static/').then(r => !!(r && r.active))"
        )
        context.close()
        _tell(app, site.resident_person, site.a, "王小二")
        with app.app_context():
            assert delivery.deliver_due() == 1
        [push] = service.pushes
        assert push.json()["url"] == "/my/notifications" and push.json()["tag"] == "pass_used"
    finally:
        service.stop()
