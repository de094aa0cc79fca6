"""The browser tests' Chromium: the ``browser`` fixture, Playwright's ``expect``, signing in.

Registered as a plugin in ``tests/conftest.py``. Playwright is imported only when a browser
test runs (inside the fixture and :func:`expect`), so collecting or running the other tests
never loads it; browser test modules import its types under ``TYPE_CHECKING`` only.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.factories import PASSWORD
from tests.support.clock import daemon_environment, faked_now, under_faketime

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError(
            "Debian's chromium is missing: apt-get install chromium "
            "chromium-driver (make test installs it)"
        )
    return path


# How long a page's navigation or action may take before the test fails. Generous: a slow CI
# machine has stalled a plain page load past 5 s; a broken page still fails, only later.
PAGE_TIMEOUT_MS = 15_000

# What the browser tests' pages ask for unless a test names another (``locale="zh-CN"``):
# the assertions read the English source texts; Chinese is tested by naming it.
DEFAULT_LOCALE = "en-US"


class _TestBrowser:
    """A Browser whose new contexts ask for English unless told otherwise, and under
    ``faketime`` start at the suite's faked time (Chromium itself runs on the real clock,
    tests.support.clock, so each context gets Playwright's clock set to the faked now)."""

    def __init__(self, browser: Browser, *, faked_clock: bool) -> None:
        self._browser = browser
        self._faked_clock = faked_clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)

    def new_context(self, **options: Any) -> Any:
        options.setdefault("locale", DEFAULT_LOCALE)
        context = self._browser.new_context(**options)
        if self._faked_clock:
            context.clock.install(time=faked_now())
        return context

    def new_page(self, **options: Any) -> Any:
        return self.new_context(**options).new_page()  # the context closes with the browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (its own download is not used)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, env=daemon_environment()
        )
        yield _TestBrowser(browser, faked_clock=under_faketime())  # type: ignore[misc]
        browser.close()


def expect(actual: Any, message: str | None = None) -> Any:
    """Playwright's ``expect`` (its assertions retry until they hold or time out)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(actual, message)


def sign_in(
    page: Page,
    base_url: str,
    username: str,
    *,
    password: str = PASSWORD,
    next_path: str | None = None,
) -> None:
    """Sign in through the login form at ``base_url`` (then to ``next_path`` when given)."""
    page.goto(base_url + "/login" + (f"?next={next_path}" if next_path else ""))
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("main button[type=submit]")  # not the language switch in the header
