"""The one-click reveal of a wandering elder's identity on the officer's alert page, in a real
headless Chromium: masked first, full details (the photo shown under the page's CSP) after."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from flask import Flask
from PIL import Image

from gatekeeper.vocabulary import AlertType, PersonRole, Severity
from server.alerts.service import raise_alert
from server.core import crypto
from server.extensions import db
from server.models import FaceTemplate
from tests import factories
from tests.support.browser import PAGE_TIMEOUT_MS, expect, sign_in
from tests.support.live_server import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 48), (180, 150, 120)).save(out, "JPEG")
    return out.getvalue()


def test_an_officer_opens_the_identity_in_one_click(
    app: Flask, browser: Browser, live_server: LiveServer
) -> None:
    with app.app_context():
        w = factories.world()
        guardian = factories.person(w.a, "赵强", phone="13800000001")
        elder = factories.person(w.a, "赵秀英")
        factories.membership(elder, PersonRole.ELDER, unit_of=w.unit_a)
        elder.guardians.append(guardian)
        db.session.add(
            FaceTemplate(
                community_id=w.a.id,
                person_id=elder.id,
                template_encrypted=crypto.encrypt(b"\0" * 512),
                model="test",
                photo_encrypted=crypto.encrypt(_jpeg()),
            )
        )
        alert = raise_alert(
            community_id=w.a.id,
            type=AlertType.ELDER_WANDERING,
            severity=Severity.HIGH,
            summary="Elder 赵*英 went out through A door",
            evidence={"person_id": elder.id},
        )
        db.session.commit()
        alert_id = alert.id
        db.session.remove()
    page = browser.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    sign_in(page, live_server.url, "officer_a")
    page.goto(f"{live_server.url}/alerts/{alert_id}")
    expect(page.locator("#identity-masked")).to_have_text("赵*英")
    expect(page.locator("#identity")).not_to_contain_text("13800000001")
    page.get_by_role("button", name="welfare check").click()
    expect(page.locator("#identity-name")).to_have_text("赵秀英")
    expect(page.locator("#identity-guardians")).to_contain_text("赵强 · 13800000001")
    expect(page.locator("#identity-units")).to_have_text("A1 · 101")
    photo = page.locator("#identity-photo")
    expect(photo).to_be_visible()
    assert photo.evaluate("img => img.complete && img.naturalWidth") == 40
