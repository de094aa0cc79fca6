"""The officer's night, end to end: an elder's tag at the perimeter, over a real Mosquitto, to
the console stream, the officers' MQTT topic and the console page in headless Chromium."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask
from sqlalchemy import select

from gatekeeper.vocabulary import AlertStatus
from hardware.simulate.device import DeviceIdentity
from hardware.simulate.sensors import RfidReader
from hardware.topics import alerts_topic
from server.extensions import db
from server.models import Alert, AlertHistory
from tests.factories import Api
from tests.support.browser import PAGE_TIMEOUT_MS, expect, sign_in
from tests.support.e2e import WAIT_S, mqtt_app, running_broker, running_worker, serving
from tests.support.elders import ELDER_TAG, build_wandering_elder
from tests.support.mqtt_listener import Listener
from tests.support.sse import SseClient

if TYPE_CHECKING:
    from playwright.sync_api import Browser

# The bound: from the reader's publish to each officer channel.
WITHIN_S = 1.0


def test_an_elder_wandering_reaches_every_officer_channel(
    app: Flask, workdir: Path, database_url: str, browser: Browser
) -> None:
    with (
        running_broker() as broker,
        mqtt_app(workdir, database_url, broker, "gatekeeper-worker-officer-e2e") as live,
    ):
        # No guardian window: the rule judges each read at once.
        site = build_wandering_elder(live, guardian_window_minutes=0)
        community_id, reader_id, secret = site.community_id, site.reader_id, site.reader_secret
        with running_worker(live), serving(live) as url:
            reader = RfidReader(
                DeviceIdentity(reader_id, secret, community_id), broker.url, heartbeat_s=0.5
            )
            reader.start()
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            stream = None
            listener = Listener(broker.port)
            try:
                assert reader.wait_ready(WAIT_S)
                # The officer's console, open before anything happens.
                sign_in(page, url, "officer_a")
                page.goto(url + "/officer")
                expect(page.locator("#live-state")).to_have_text("live")
                page.evaluate("window.loadedOnce = true")  # gone if the page reloads
                # A second console: the raw stream; and the officers' MQTT topic.
                stream = SseClient(url, Api(live.test_client(), "officer_a").headers)
                assert "connected" in stream.read_event().comments
                listener.listen(alerts_topic(community_id))

                pressed = time.monotonic()
                reader.read_tag(ELDER_TAG)
                event, streamed_at = stream.next_alert()
                topic, over_mqtt, qos = listener.next_alert()
                mqtt_at = listener.arrivals[0]
                assert event.alert["type"] == over_mqtt["type"] == "elder_wandering"
                assert event.alert["alert_id"] == over_mqtt["alert_id"]
                assert (topic, qos) == (alerts_topic(community_id), 1)
                assert streamed_at - pressed < WITHIN_S, streamed_at - pressed
                assert mqtt_at - pressed < WITHIN_S, mqtt_at - pressed
                alert_id = event.alert["alert_id"]

                # The page shows it without reloading; the officer works it from there.
                card = page.locator(f"#alert-{alert_id}")
                expect(card).to_be_visible()
                expect(card).to_contain_text("North gate")
                card.get_by_placeholder("What you did or saw").fill("Found at the gate")
                card.get_by_role("button", name="Acknowledge").click()
                status = card.locator('[data-field="status"]')
                expect(status).to_have_text("acknowledged")
                card.get_by_role("button", name="Resolve").click()
                expect(status).to_have_text("resolved")
                assert page.evaluate("window.loadedOnce") is True
                # Each step went out on MQTT too.
                reasons = [json.loads(listener.messages.get(timeout=WAIT_S)[1]) for _ in range(2)]
                assert [r["status"] for r in reasons] == ["acknowledged", "resolved"]
            finally:
                if stream is not None:
                    stream.close()
                listener.close()
                page.close()
                reader.stop()
        with live.app_context():
            alert = db.session.get(Alert, alert_id)
            assert alert.status is AlertStatus.RESOLVED
            steps = db.session.scalars(
                select(AlertHistory.action).where(AlertHistory.alert_id == alert_id)
            ).all()
            assert sorted(steps) == ["acknowledged", "raised", "resolved"]
            db.session.remove()
