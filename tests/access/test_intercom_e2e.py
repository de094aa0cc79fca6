"""The door intercom end to end: a real Mosquitto, the app over loopback HTTP, a simulated door.

A visitor's call from the simulated door rings a resident's portal page (their passes, not the
home page) in a real Chromium (with the snapshot, at the top of the screen and in the title);
the resident's click on "Open the door" sends ``open`` to the door over Mosquitto.
Over MQTT, an ``intercom_call`` event the worker ingests places the same call, and a refusal
reaches the door as a ``display``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from flask_babel import force_locale
from PIL import Image
from sqlalchemy import select

from gatekeeper.vocabulary import IntercomStatus
from hardware.protocol import Command
from hardware.simulate.actuators import Door
from hardware.simulate.device import DeviceIdentity
from hardware.simulate.intercom import IntercomClient
from hardware.simulate.verify import VerifyClient
from server.access import intercom
from server.community.settings import DEFAULTS
from server.extensions import db
from server.models import AccessEvent, DeviceCommand, IntercomCall
from server.worker import Worker
from tests.factories import Api
from tests.support.browser import PAGE_TIMEOUT_MS, expect, sign_in
from tests.support.e2e import WAIT_S, eventually, query
from tests.support.mosquitto import Broker
from tests.support.passes import DOOR_SECRET, build_pass_site

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.timeout(120)

PHONE = {"width": 390, "height": 844}


@dataclass(frozen=True)
class DoorSite:
    door: Door
    snapshot: Path
    base_url: str


@pytest.fixture
def site(live_app: Flask, broker: Broker, http_server: str, tmp_path: Path) -> Iterator[DoorSite]:
    """Community A's building door A1 (``build_pass_site``), its terminal online; the visitor's
    snapshot a small JPEG the camera took."""
    with live_app.app_context():
        built = build_pass_site()
        identity = DeviceIdentity(
            built.door_device, DOOR_SECRET, built.a, access_point_id=built.door
        )
        db.session.remove()
    snapshot = tmp_path / "visitor.jpg"
    picture = io.BytesIO()
    Image.new("RGB", (160, 120), (200, 160, 120)).save(picture, format="JPEG")
    snapshot.write_bytes(picture.getvalue())
    door = Door(
        identity,
        broker.url,
        api=VerifyClient(http_server, identity.device_id, DOOR_SECRET),
        heartbeat_s=0.5,
    )
    door.start()
    assert door.wait_ready(WAIT_S), "the door never reached the broker"
    yield DoorSite(door, snapshot, http_server)
    door.stop()


def test_a_call_rings_the_residents_passes_page_and_the_answer_opens_the_door(
    live_app: Flask, browser: Browser, site: DoorSite
) -> None:
    """The ring is on every portal page, not the home page only: here the list of passes."""
    page = browser.new_page(viewport=PHONE, locale="en-US")
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    sign_in(page, site.base_url, "resident_a")
    expect(page.get_by_role("heading", name="My home")).to_be_visible()
    other_tab = page.context.new_page()
    other_tab.goto(f"{site.base_url}/my/code")
    expect(other_tab.locator("#intercom")).to_have_attribute("data-live", "yes")
    page.goto(f"{site.base_url}/my/passes")
    title = page.title()
    ring = page.locator("#intercom")
    expect(ring).to_have_attribute("data-live", "yes")  # following the unit's calls
    expect(ring).to_be_hidden()
    # One ring stream per account: the newest page's; the other tab follows when looked at.
    expect(other_tab.locator("#intercom")).to_have_attribute("data-live", "replaced")
    page.mouse.wheel(0, 2000)  # read further down: the ring still shows at the top

    placed = site.door.place_call("101", None, site.snapshot)  # a building's door: its own
    assert placed["status"] == "ringing", placed
    call = ring.locator(f'[data-call="{placed["id"]}"]')
    expect(call).to_be_visible()
    expect(call).to_be_in_viewport()
    expect(call.get_by_role("heading")).to_have_text("Visitor at A door")
    expect(call).to_contain_text("For unit A1-101")
    expect(page).to_have_title(f"Visitor at A door · {title}")
    picture = call.locator("img.intercom-snapshot")
    page.wait_for_function(
        "image => image.complete && image.naturalWidth === 160", arg=picture.element_handle()
    )

    call.get_by_role("button", name="Open the door").click()
    expect(call.locator(".intercom-outcome")).to_have_text("The door is opening for your visitor.")
    expect(page).to_have_title(title)
    opened = site.door.wait_for_action(Command.OPEN, WAIT_S)
    assert opened is not None, "the door never got open"
    assert site.door.wait_for(lambda: site.door.unlocked, WAIT_S)
    state = IntercomClient(site.door.api).wait_for_outcome(placed["id"], WAIT_S)
    assert (state["status"], state["decision"], state["reason"]) == (
        "answered",
        "grant",
        "intercom_answered",
    )
    [(event_id,)] = query(
        live_app, select(DeviceCommand.event_id).where(DeviceCommand.id == opened.cmd_id)
    )
    assert event_id == state["event_id"]
    page.close()


def test_a_call_over_mqtt_is_placed_by_the_worker_and_a_refusal_reaches_the_door(
    live_app: Flask, worker: Worker, site: DoorSite
) -> None:
    site.door.call_over_mqtt("101", None, site.snapshot)

    def placed() -> list:
        return query(live_app, select(IntercomCall.id, IntercomCall.source, IntercomCall.snapshot))

    rows = eventually(placed)
    assert rows, "the worker never placed the call"
    [(call_id, source, snapshot)] = rows
    assert source == "mqtt" and snapshot == site.snapshot.read_bytes()

    answer = Api(live_app.test_client(), "resident_a").post(
        f"/intercom/calls/{call_id}/answer", json={"action": "refuse"}
    )
    assert answer.status_code == 200, answer.json
    shown = site.door.wait_for_action(Command.DISPLAY, WAIT_S)
    with live_app.test_request_context(), force_locale(DEFAULTS.default_locale):
        declined = str(intercom.OUTCOME_TEXT[IntercomStatus.REFUSED])
    assert shown is not None and site.door.display_text == declined
    assert not any(action.cmd is Command.OPEN for action in site.door.actions)
    [(status,)] = query(live_app, select(IntercomCall.status).where(IntercomCall.id == call_id))
    assert status is IntercomStatus.REFUSED
    [(reason,)] = query(
        live_app, select(AccessEvent.reason).where(AccessEvent.id == answer.json["event_id"])
    )
    assert reason == "intercom_refused"
