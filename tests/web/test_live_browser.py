"""Live pages in a real headless Chromium (Debian's): the outcome a user waits for appears
without a reload, as the worker (or another web process) writes it into the database.

The device console shows a command's outcome change; a resident's doors page says that the
door opened after their remote open; the cars page gains and loses a car as it enters and
leaves. ``window.loadedOnce`` is gone if a page reloads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from flask import Flask
from flask_babel import force_locale
from sqlalchemy import select

from hardware.protocol import CommandStatus
from server.core.wording import word
from server.extensions import db
from server.models import DeviceCommand, User
from tests.support.api import in_app
from tests.support.browser import PAGE_TIMEOUT_MS, expect, sign_in
from tests.support.live import ack_in, issue_in, mark_sent
from tests.support.live_server import LiveServer
from tests.support.passes import add_barrier, build_pass_site

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

BARRIER_SECRET = "barrier-secret-for-live-browser"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def site(app: Flask) -> dict[str, str]:
    """Community A with the resident's door, a barrier (known secret) and the owner's car."""
    with in_app(app):
        pass_site = build_pass_site()
        barrier = add_barrier(pass_site, BARRIER_SECRET)
        return {
            "a": pass_site.a,
            "door": pass_site.door,
            "door_device": pass_site.door_device,
            "barrier_credential": barrier.credential,
        }


def _user_id(app: Flask, username: str) -> str:
    with in_app(app):
        return db.session.scalar(select(User.id).where(User.username == username))


def _loaded_once(page: Page) -> None:
    page.evaluate("window.loadedOnce = true")


def _not_reloaded(page: Page) -> None:
    assert page.evaluate("window.loadedOnce") is True


def test_the_device_console_shows_a_command_answered_in_chinese(
    app: Flask, browser: Browser, live_server: LiveServer, site, published
) -> None:
    with app.test_request_context(), force_locale("zh_CN"):
        sent, done = (str(word(status)) for status in (CommandStatus.SENT, CommandStatus.ACKED))
    command = issue_in(app, site["door_device"], _user_id(app, "staff_a"))
    mark_sent(app, command)
    page = browser.new_page(locale="zh-CN")
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    sign_in(page, live_server.url, "staff_a")
    page.goto(f"{live_server.url}/communities/{site['a']}/devices")
    outcome = page.locator(f'#commands tr[data-command="{command}"] .outcome')
    expect(outcome).to_have_text(sent)
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    _loaded_once(page)

    ack_in(app, command)  # the worker, on the door's ack
    expect(outcome).to_have_text(done)
    expect(outcome.locator(".pill.on")).to_have_count(1)
    assert done != "done" and sent != "sent"
    _not_reloaded(page)
    page.close()


def test_a_resident_sees_the_door_open_after_a_remote_open(
    app: Flask, browser: Browser, live_server: LiveServer, site, published
) -> None:
    page = browser.new_page(viewport=PHONE)
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    sign_in(page, live_server.url, "resident_a")
    page.goto(f"{live_server.url}/my/doors")
    expect(page.locator("#live-state")).to_have_count(0)  # nothing to wait for yet
    door = page.locator(f'li[data-door="{site["door"]}"]')
    door.get_by_role("button", name="Open A door").click()
    expect(page.get_by_role("alert")).to_have_text("A door is opening.")
    outcome = door.locator(".door-outcome")
    expect(outcome).to_have_text("Opening… waiting for the door.")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    _loaded_once(page)

    with in_app(app):
        [command] = db.session.scalars(
            select(DeviceCommand.id).where(DeviceCommand.access_point_id == site["door"])
        ).all()
    ack_in(app, command)
    expect(outcome).to_have_text("The door opened.")
    expect(outcome.locator(".pill.on")).to_have_count(1)
    expect(page.locator("#live-state")).to_be_hidden()  # nothing waits: the stream is let go
    _not_reloaded(page)
    # Without the script the same page says the same.
    page.reload()
    expect(door.locator(".door-outcome")).to_have_text("The door opened.")
    page.close()


def test_the_cars_page_gains_and_loses_a_car_as_it_comes_and_goes(
    app: Flask, browser: Browser, live_server: LiveServer, site, published
) -> None:
    page = browser.new_page(viewport=PHONE)
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    sign_in(page, live_server.url, "staff_a")
    page.goto(f"{live_server.url}/communities/{site['a']}/cars")
    inside = page.locator("#inside")
    expect(inside).to_contain_text("No car inside.")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    _loaded_once(page)

    barrier = app.test_client()
    headers = {"Authorization": f"Bearer {site['barrier_credential']}"}
    for direction in ("in", "out"):
        answer = barrier.post(
            "/api/v1/verify/plate",
            json={"plate": "浙B82345", "confidence": 0.97, "direction": direction},
            headers=headers,
        )
        assert answer.json["decision"] == "grant"
        row = inside.locator('tr[data-plate="浙B82345"]')
        if direction == "in":
            expect(row).to_contain_text("王小明")
            expect(inside.locator("#inside-count")).to_have_text("1")
        else:
            expect(row).to_have_count(0)
            expect(inside.locator("#inside-count")).to_have_text("0")
            expect(inside).to_contain_text("No car inside.")
    _not_reloaded(page)
    page.close()
