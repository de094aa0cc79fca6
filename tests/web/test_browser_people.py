"""The enrolment page in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from PIL import Image, ImageFilter
from sqlalchemy import select

from server.extensions import db
from server.models import FaceTemplate, Person
from tests import factories
from tests.fetch_test_data import test_image as photo_path
from tests.support.browser import expect, sign_in
from tests.support.live_server import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def _blurred_jpeg() -> bytes:
    image = Image.open(photo_path("obama.jpg")).filter(ImageFilter.GaussianBlur(6))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def test_enrol_with_a_photo_then_a_refused_upload(
    browser: Browser, live_server: LiveServer, ctx
) -> None:
    w = factories.world()
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    sign_in(page, live_server.url, w.staff_a.username)
    page.get_by_role("link", name="People").click()
    expect(page.get_by_role("heading", name="People · Community A")).to_be_visible()
    page.get_by_role("link", name="Enrol a person").click()

    # Only the parts the chosen role needs are shown.
    expect(page.get_by_label("Starts")).to_be_hidden()
    page.get_by_label("Role").select_option("tenant")
    expect(page.get_by_label("Starts")).to_be_visible()
    page.get_by_label("Role").select_option("resident")
    expect(page.get_by_label("Starts")).to_be_hidden()

    page.get_by_label("Name").fill("Barack")
    page.get_by_label("Unit").select_option(label="A1 · 101")
    page.get_by_label("Phone").fill("13800000001")
    page.get_by_label("The person consents to face recognition").check()
    page.get_by_label("Face photo").set_input_files(str(photo_path("obama.jpg")))
    page.get_by_role("button", name="Enrol").click()

    expect(page.get_by_role("heading", name="Barack")).to_be_visible()
    expect(page.get_by_text("Barack enrolled.")).to_be_visible()
    result = page.locator("#face-result")
    expect(result).to_contain_text("Photo accepted.")
    expect(result).to_contain_text("eye distance")
    expect(page.get_by_role("heading", name="Faces (1 of 5)")).to_be_visible()
    expect(page.locator("#faces tbody tr")).to_have_count(1)
    expect(page.get_by_text("family member · A1 · 101")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    page.get_by_label("Add a face photo").set_input_files(
        files=[{"name": "blurred.jpg", "mimeType": "image/jpeg", "buffer": _blurred_jpeg()}]
    )
    page.get_by_role("button", name="Upload and check").click()
    expect(result).to_contain_text("Photo refused: The photo is too blurry.")
    expect(result).to_contain_text("Nothing was stored")
    expect(result).to_contain_text("sharpness")
    expect(page.get_by_role("heading", name="Faces (1 of 5)")).to_be_visible()
    page.close()

    db.session.remove()
    person = db.session.scalar(select(Person))
    assert person.name == "Barack" and person.phone == "13800000001"
    assert len(list(db.session.scalars(select(FaceTemplate)))) == 1
