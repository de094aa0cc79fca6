"""At a desk's 1280 px nothing in the staff's and officers' tables is cut off: every button and
link of the person page's faces and of the event search's results lies inside its card (and so
inside the window), in English and in Chinese (whose words are wider)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from gatekeeper.vocabulary import CredentialType, Decision, PersonRole, Reason
from server.core.scope import Scope
from server.extensions import db
from server.models import AccessEvent
from server.people import faces
from server.people import service as people
from tests import factories
from tests.fetch_test_data import test_image as photo_path
from tests.support.browser import PAGE_TIMEOUT_MS, expect, sign_in
from tests.support.live_server import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

DESK = {"width": 1280, "height": 800}
EVENING = datetime(2026, 11, 20, 13, 40, tzinfo=UTC)

# Each button and link of the tables in ``selector``: where it ends against its card and the
# window (a card scrolls sideways when its table is wider: what is past its edge is cut off).
_OVERFLOW = """(selector) => {
  const out = [];
  for (const table of document.querySelectorAll(selector)) {
    const card = table.closest('.card');
    const box = card.getBoundingClientRect();
    for (const el of table.querySelectorAll('a, button')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      out.push({
        text: (el.textContent || el.getAttribute('aria-label') || '').trim().slice(0, 40),
        right: r.right, left: r.left, cardRight: box.right, cardLeft: box.left,
        cardScrolls: card.scrollWidth > card.clientWidth,
        viewport: document.documentElement.clientWidth,
      });
    }
  }
  return out;
}"""


def _all_inside(page: Page, selector: str) -> int:
    """Assert every button and link in ``selector``'s tables is inside its card; how many."""
    found = page.evaluate(_OVERFLOW, selector)
    for item in found:
        assert not item["cardScrolls"], item
        assert item["cardLeft"] <= item["left"] and item["right"] <= item["cardRight"], item
        assert item["cardRight"] <= item["viewport"], item
    assert page.evaluate("document.documentElement.scrollWidth") <= DESK["width"]
    return len(found)


@pytest.fixture
def desk(app, live_server: LiveServer):
    """A person with two faces, and events of every kind the search shows, in community A."""
    with app.app_context():
        w = factories.world()
        person = factories.person(w.a, "欧阳娜娜丽莎·巴拉克")
        factories.membership(person, PersonRole.OWNER, unit_of=w.unit_a)
        scope = Scope(w.staff_a)
        people.record_consent(scope, person.id, people.FACE_PURPOSE)
        for name in ("obama.jpg", "obama2.jpg"):
            faces.enrol_face(scope, person.id, photo_path(name).read_bytes())
        gate = factories.access_point(w.a, name="North vehicle gate by the long eastern wall")
        rows = [
            AccessEvent(
                community_id=w.a.id,
                access_point_id=gate.id,
                occurred_at=EVENING - timedelta(minutes=n),
                credential_type=credential,
                decision=decision,
                reason=reason,
                person_id=person.id if known else None,
                direction="in",
                details={"plate": "浙A12345"} if credential is CredentialType.PLATE else {},
            )
            for n, (credential, decision, reason, known) in enumerate(
                [
                    (CredentialType.FACE, Decision.GRANT, Reason.RESIDENT, True),
                    (CredentialType.FACE, Decision.DENY, Reason.UNKNOWN_FACE, False),
                    (CredentialType.PLATE, Decision.GRANT, Reason.RESIDENT_VEHICLE, True),
                    (CredentialType.CARD, Decision.DENY, Reason.OUTSIDE_SCHEDULE, True),
                ]
            )
        ]
        db.session.add_all(rows)
        db.session.commit()
        built = {"person": person.id, "a": w.a.id}
        db.session.remove()
    return built


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_tables_fit_a_desk_at_1280(
    browser: Browser, live_server: LiveServer, desk, locale: str
) -> None:
    page = browser.new_page(viewport=DESK, locale=locale)
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    sign_in(page, live_server.url, "staff_a")

    page.goto(f"{live_server.url}/people/{desk['person']}")
    expect(page.locator("#faces tbody tr")).to_have_count(2)
    assert _all_inside(page, "#faces table") == 2  # a Delete button on each face

    page.goto(f"{live_server.url}/events/search?community_id={desk['a']}")
    expect(page.locator("#results tbody tr")).to_have_count(4)
    # A known person's name and "this person's events" (3 of each), "where else was this
    # face seen" on the two face events.
    assert _all_inside(page, "#results table") == 3 + 3 + 2
    page.close()


def test_event_search_fits_for_an_officer(browser: Browser, live_server: LiveServer, desk) -> None:
    """Officers see a masked name with the person's id: a wider column than a link."""
    page = browser.new_page(viewport=DESK, locale="zh-CN")
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    sign_in(page, live_server.url, "officer_a")
    page.goto(f"{live_server.url}/events/search?community_id={desk['a']}")
    expect(page.locator("#results tbody tr")).to_have_count(4)
    assert _all_inside(page, "#results table") == 3 + 2
    page.close()
