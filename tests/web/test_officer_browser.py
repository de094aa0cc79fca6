"""The officer's console in a real headless Chromium (Debian's): live alerts, flash, workflow."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from flask import Flask
from sqlalchemy import select

from gatekeeper.vocabulary import AlertStatus, AlertType, Severity
from server.alerts import summaries
from server.alerts.service import raise_alert
from server.extensions import db
from server.models import Alert, AlertHistory
from tests import factories
from tests.support.browser import PAGE_TIMEOUT_MS, expect, sign_in
from tests.support.live_server import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser

FLASHING = re.compile(r"\bflashing\b")
# As the server's local_time writes it (the browser's own name for Shanghai is "GMT+8").
SHANGHAI_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d CST$")


def _raise(
    app: Flask, community_id: str, severity: Severity, summary: str | summaries.Summary, **values
) -> str:
    """An alert raised as a rule would, in its own app context (not the page's request)."""
    with app.app_context():
        alert = raise_alert(
            community_id=community_id,
            type=values.pop("type", AlertType.STRANGER),
            severity=severity,
            summary=summary,
            **values,
        )
        db.session.commit()
        ident = alert.id
        db.session.remove()
    return ident


def test_console_shows_new_alerts_live_and_works_them(
    app: Flask, browser: Browser, live_server: LiveServer
) -> None:
    with app.app_context():
        w = factories.world()
        a, b, door = w.a.id, w.b.id, w.door_a.id
        db.session.remove()
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    sign_in(page, live_server.url, "officer_a")
    page.get_by_role("link", name="Open the alert console").click()
    expect(page.get_by_role("heading", name="Alert console")).to_be_visible()
    expect(page.get_by_text("No open alerts.")).to_be_visible()
    expect(page.locator("#live-state")).to_have_text("live")
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads

    # Raised after the page loaded: B's alert is not this officer's, A's two are.
    _raise(app, b, Severity.CRITICAL, "Panic in community B", type=AlertType.PANIC)
    low = _raise(app, a, Severity.LOW, "Door 3 reader tampered", type=AlertType.TAMPER)
    high = _raise(
        app, a, Severity.HIGH, "Unknown person seen 3 times at 2 doors", access_point_id=door
    )
    card = page.locator(f"#alert-{high}")
    expect(card).to_be_visible()
    expect(card).to_contain_text("Unknown person seen 3 times at 2 doors")
    expect(card).to_contain_text("Community A · A door")
    expect(card).to_have_class(FLASHING)
    expect(card.locator('[data-field="ts"]')).to_have_text(SHANGHAI_TIME)
    expect(card.locator('[data-field="type"]')).to_have_text("stranger")
    expect(page.locator("#alarm-banner")).to_contain_text("High alert: Unknown person")
    low_card = page.locator(f"#alert-{low}")
    expect(low_card).to_be_visible()
    expect(low_card).not_to_have_class(FLASHING)
    # The most severe first, and no tone for a low alert (one for the high one).
    assert page.locator("[data-alert-id]").first.get_attribute("id") == f"alert-{high}"
    assert page.locator("#alert-console").get_attribute("data-beeps") == "1"
    assert "Panic in community B" not in page.content()
    expect(page.get_by_text("No open alerts.")).to_be_hidden()

    card.get_by_placeholder("What you did or saw").fill("Guard sent to the door")
    card.get_by_role("button", name="Acknowledge").click()
    status = card.locator('[data-field="status"]')
    expect(status).to_have_text("acknowledged")
    expect(card).not_to_have_class(FLASHING)
    expect(card.get_by_role("button", name="Acknowledge")).to_be_hidden()
    card.get_by_role("button", name="Resolve").click()
    expect(status).to_have_text("resolved")
    expect(card.get_by_role("button", name="Resolve")).to_be_hidden()
    # Resolved alerts go below the unresolved ones.
    expect(page.locator("[data-alert-id]").first).to_have_id(f"alert-{low}")
    assert page.evaluate("window.loadedOnce") is True

    with app.app_context():
        assert db.session.get(Alert, high).status is AlertStatus.RESOLVED
        steps = db.session.scalars(
            select(AlertHistory).where(AlertHistory.alert_id == high).order_by(AlertHistory.at)
        ).all()
        assert [s.action for s in steps] == ["raised", "acknowledged", "resolved"]
        assert steps[1].note == "Guard sent to the door"
        assert steps[1].by_user_id == steps[2].by_user_id is not None
        db.session.remove()

    # The alert's page: its history and the map with the door marked.
    card.get_by_role("link", name="Unknown person seen 3 times at 2 doors").click()
    expect(page.get_by_role("heading", name="Stranger")).to_be_visible()
    history = page.locator("#history-list li")
    expect(history).to_have_count(3)
    expect(history.nth(1)).to_contain_text("officer_a")
    expect(history.nth(1)).to_contain_text("Guard sent to the door")
    expect(page.locator(f'svg.site-map g.ap.hit[data-access-point="{door}"]')).to_have_count(1)
    page.close()


def test_alert_page_acknowledges_in_place(
    app: Flask, browser: Browser, live_server: LiveServer
) -> None:
    with app.app_context():
        w = factories.world()
        a = w.a.id
        db.session.remove()
    alert = _raise(app, a, Severity.CRITICAL, "Door forced open", type=AlertType.DOOR_FORCED)
    page = browser.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    sign_in(page, live_server.url, "officer_a", next_path=f"/alerts/{alert}")
    header = page.locator(f"#alert-{alert}")
    expect(header).to_have_class(FLASHING)
    page.get_by_placeholder("What you did or saw").fill("On my way")
    page.get_by_role("button", name="Acknowledge").click()
    expect(header.locator('[data-field="status"]')).to_have_text("acknowledged")
    expect(header).not_to_have_class(FLASHING)
    expect(page.locator("#history-list li").last).to_contain_text("officer_a")
    expect(page.locator("#history-list li").last).to_contain_text("On my way")
    # Acting twice is refused by the API; the page says so instead of failing silently.
    page.evaluate(
        "document.querySelector('[data-action=acknowledge]').style.display = 'inline-block'"
    )
    page.get_by_role("button", name="Acknowledge").click()
    expect(header.locator('[data-field="error"]')).to_contain_text("cannot be acknowledged")
    page.close()


def test_console_in_chinese(app: Flask, browser: Browser, live_server: LiveServer) -> None:
    """A live alert's card in the reader's language: its words from the page, its summary
    from the page's server (the stream's is English), its time labelled as the page's."""
    with app.app_context():
        w = factories.world()
        a, door = w.a.id, w.door_a.id
        db.session.remove()
    page = browser.new_page(locale="zh-CN")
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    sign_in(page, live_server.url, "officer_a", next_path="/officer")
    expect(page.get_by_role("heading", name="告警台")).to_be_visible()
    expect(page.locator("#live-state")).to_have_text("实时")
    expect(page.locator("#sound-toggle")).to_have_text("声音：开")
    ident = _raise(
        app,
        a,
        Severity.HIGH,
        summaries.summary(summaries.N_("Door forced open: %(device)s"), device="A door terminal"),
        type=AlertType.DOOR_FORCED,
        access_point_id=door,
    )
    card = page.locator(f"#alert-{ident}")
    # The translation is a second request after the stream's (English) change: a loaded
    # machine takes longer than Playwright's default 5 s.
    expect(card.locator('[data-field="summary"]')).to_have_text(
        "门被强行打开：A door terminal", timeout=15_000
    )
    expect(card.locator('[data-field="type"]')).to_have_text("门被强行打开")
    expect(card.locator('[data-field="severity"]')).to_have_text("高")
    expect(card.locator('[data-field="status"]')).to_have_text("待处理")
    expect(card.locator('[data-field="ts"]')).to_have_text(SHANGHAI_TIME)
    expect(page.locator("#alarm-banner")).to_have_text("高级告警：门被强行打开：A door terminal")
    card.get_by_role("button", name="确认").click()
    expect(card.locator('[data-field="status"]')).to_have_text("已确认")
    # The translation is a second request after the stream's (English) change: a loaded
    # machine takes longer than Playwright's default 5 s.
    expect(card.locator('[data-field="summary"]')).to_have_text(
        "门被强行打开：A door terminal", timeout=15_000
    )
    page.get_by_role("button", name="声音：开").click()
    expect(page.locator("#sound-toggle")).to_have_text("声音：关")
    page.close()
