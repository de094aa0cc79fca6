"""Dispatch in a real headless Chromium: one click on the alert page rings the assignee's
console, and a dispatch nobody acknowledged shows on every console of the community."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from flask import Flask

from gatekeeper.vocabulary import AlertType, Severity
from server.alerts.dispatch import escalate_unacknowledged
from server.alerts.service import raise_alert
from server.extensions import db
from server.models import OfficerDuty, UserRole, utcnow
from tests import factories
from tests.support.browser import PAGE_TIMEOUT_MS, expect, sign_in
from tests.support.live_server import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_one_click_rings_the_assignees_console_and_escalation_every_console(
    app: Flask, browser: Browser, live_server: LiveServer
) -> None:
    with app.app_context():
        w = factories.world()
        wang = factories.user(UserRole.OFFICER, communities=[w.a], username="wang")
        db.session.flush()
        db.session.add(OfficerDuty(user_id=wang.id, on_duty=True, access_point_id=w.door_a.id))
        alert = raise_alert(
            community_id=w.a.id,
            type=AlertType.DOOR_FORCED,
            severity=Severity.HIGH,
            summary="Door forced open: A door",
            access_point_id=w.door_a.id,
        )
        db.session.commit()
        alert_id = alert.id
        db.session.remove()

    assignee = browser.new_page()
    assignee.set_default_timeout(PAGE_TIMEOUT_MS)
    sign_in(assignee, live_server.url, "wang")
    assignee.goto(live_server.url + "/officer")
    expect(assignee.locator("#live-state")).to_have_text("live")
    expect(assignee.locator("#duty-state")).to_have_attribute("data-on-duty", "true")

    station = browser.new_page()
    station.set_default_timeout(PAGE_TIMEOUT_MS)
    sign_in(station, live_server.url, "officer_a")
    station.goto(f"{live_server.url}/alerts/{alert_id}")
    station.get_by_role("button", name="Dispatch the nearest: wang").click()
    expect(station.locator("#dispatch-state")).to_contain_text("Dispatched to wang")

    banner = assignee.locator("#dispatch-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Dispatched to you: Door forced open: A door")
    expect(banner).to_have_attribute("data-tones", "1")

    station.goto(live_server.url + "/officer")
    expect(station.locator("#live-state")).to_have_text("live")
    expect(station.locator("#dispatch-banner")).to_be_hidden()  # not theirs
    with app.app_context():
        assert escalate_unacknowledged(utcnow() + timedelta(minutes=5)) == 1
        db.session.commit()
        db.session.remove()
    for page in (station, assignee):
        banner = page.locator("#dispatch-banner")
        expect(banner).to_contain_text("wang did not acknowledge a dispatch")
        expect(banner).to_have_attribute("data-kind", "escalated")
    assignee.close()
    station.close()
