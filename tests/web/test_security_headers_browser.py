"""Under the Content-Security-Policy (server/core/headers.py) the pages' scripts still run in
Chromium, and nothing on them is blocked: no `securitypolicyviolation`, no console error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask

from gatekeeper.vocabulary import AlertType
from server.extensions import db
from tests.support.alerts import raise_in
from tests.support.browser import PAGE_TIMEOUT_MS, expect, sign_in
from tests.support.live_server import LiveServer
from tests.support.passes import build_pass_site

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# Runs before each page's own scripts: keeps every violation the page reports.
_WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__violations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""


class Watched:
    """A page whose console errors, uncaught errors and policy violations are collected."""

    def __init__(self, browser: Browser, base: str) -> None:
        self.base = base
        self.page: Page = browser.new_page()
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)
        self.problems: list[str] = []
        self.page.add_init_script(_WATCH)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))

    def _console(self, message) -> None:
        # The site has no icon: Chromium's own request for one is no page's doing.
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            self.problems.append(f"console: {message.text}")

    def goto(self, path: str) -> Page:
        self.check()
        self.page.goto(self.base + path)
        return self.page

    def check(self) -> None:
        """No problem so far (a page's violations are read before it is left)."""
        if self.page.url.startswith(self.base):
            self.problems += self.page.evaluate("window.__violations || []")
            self.page.evaluate("window.__violations = []")
        assert self.problems == [], self.page.url


def test_officer_console_runs_under_the_policy(
    app: Flask, browser: Browser, live_server: LiveServer
) -> None:
    with app.app_context():
        site = build_pass_site()
        db.session.remove()
    watched = Watched(browser, live_server.url)
    sign_in(watched.page, live_server.url, "officer_a")
    page = watched.goto("/officer")
    expect(page.locator("#live-state")).to_have_text("live")  # the stream is connected
    alert_id = raise_in(app, site.a, type=AlertType.STRANGER, summary="Unknown person at the door")
    card = page.locator(f"#alert-{alert_id}")
    expect(card).to_be_visible()
    card.get_by_role("button", name="Acknowledge").click()
    expect(card.locator('[data-field="status"]')).to_have_text("acknowledged")
    watched.goto(f"/alerts/{alert_id}")
    for path in ("/events/search", "/stats"):
        watched.goto(path)
    watched.check()
    watched.page.close()


def test_resident_portal_runs_under_the_policy(
    app: Flask, browser: Browser, live_server: LiveServer, published
) -> None:
    with app.app_context():
        build_pass_site()
        db.session.remove()
    watched = Watched(browser, live_server.url)
    watched.page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=live_server.url
    )
    sign_in(watched.page, live_server.url, "resident_a")
    page = watched.goto("/my/code")
    page.wait_for_function("document.getElementById('my-code').naturalWidth > 0")
    watched.goto("/my/passes/new")
    page.get_by_label("Guest's name").fill("李四")
    page.get_by_role("button", name="Create pass").click()
    page.wait_for_url("**/my/passes/pas_*")
    page.wait_for_load_state()  # share.js binds the button once the page has loaded
    page.get_by_role("button", name="Copy link").click()
    expect(page.locator("#share-note")).to_have_text("Link copied.")
    share_url = page.locator("#share-link").input_value()
    watched.goto("/my/doors")
    page.get_by_role("button", name="Open A door").click()  # the remote open
    expect(page.get_by_role("alert")).to_contain_text("A door is opening.")
    watched.goto("/my/history")
    watched.goto(share_url.removeprefix(live_server.url))  # the guest's page
    watched.check()
    watched.page.close()


def test_staff_pages_and_api_docs_run_under_the_policy(
    app: Flask, browser: Browser, live_server: LiveServer
) -> None:
    with app.app_context():
        site = build_pass_site()
        db.session.remove()
    watched = Watched(browser, live_server.url)
    sign_in(watched.page, live_server.url, "staff_a")
    page = watched.goto(f"/communities/{site.a}/people/new")
    page.get_by_label("Role").select_option("worker")
    expect(page.get_by_label("Permit from")).to_be_visible()  # the role's part is shown
    for path in (
        f"/communities/{site.a}/people",
        f"/people/{site.resident_person}",
        f"/communities/{site.a}/devices",
        f"/communities/{site.a}/cars",
        f"/communities/{site.a}/blocked-plates",
        f"/communities/{site.a}/door-modes",
    ):
        watched.goto(path)
    page = watched.goto("/api/v1/docs")
    expect(page.get_by_text("/api/v1/communities/{cid}/devices").first).to_be_visible()
    watched.check()
    watched.page.close()
