"""Security headers (server/core/headers.py) on every page, API answer, static file and error;
no template holds script the Content-Security-Policy would block."""

from __future__ import annotations

import base64
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from gatekeeper.vocabulary import AlertType, PersonRole
from server import create_app
from server.core.headers import content_security_policy
from server.core.scope import Scope
from server.extensions import db
from server.models import Building, Holiday, PatrolRoute, Unit, User
from server.people import onboarding
from tests import factories
from tests.factories import Api
from tests.support.alerts import raise_in
from tests.support.api import in_app
from tests.support.pages import login, logout
from tests.support.passes import PassSite, pass_site

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)
# A visitor's snapshot: a 1x1 JPEG.
_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q=="
)
TEMPLATES = Path(__file__).parents[2] / "server" / "templates"

# Who opens each page: every GET page of the site, placeholders filled from the test's ids.
PAGES: dict[str | None, list[str]] = {
    None: [
        "/login",
        "/join/{code}",
        "/join/{code}/qr.png",
        "/join/status/{registration_token}",
        "/activate/{activation_token}",
        "/livez",
        "/healthz",  # 503 here: the test app has no worker and no broker
        "/problems/validation-error",
        "/static/site.css",
        "/g/{secret}",
    ],
    "admin": ["/", "/audit", "/audit.csv"],
    "staff_a": [
        "/",
        "/communities/{a}/people",
        "/communities/{a}/people/new",
        "/people/{person}",
        "/people/{person}/export.json",
        "/communities/{a}/devices",
        "/communities/{a}/cars",
        "/communities/{a}/blocked-plates",
        "/communities/{a}/door-modes",
        "/communities/{a}/parking-tariff",
        "/communities/{a}/registrations",
        "/registration-links/{link}/poster",
        "/registrations/{registration}",
        "/communities/{a}/site",
        "/buildings/{building}",
        "/buildings/{building}/delivery-codes",
        "/communities/{a}/access-points/new",
        "/access-points/{door}",
        "/communities/{a}/devices/new",
        "/devices/{device}",
        "/communities/{a}/webhooks",
        "/communities/{a}/patrol-routes",
        "/communities/{a}/patrol-routes/new",
        "/patrol-routes/{route}",
        "/patrol-routes/{route}/rounds",
        "/communities/{a}/holidays",
        "/holidays/{holiday}",
        "/communities/{a}/anti-passback",
        "/communities/{a}/intercom",
    ],
    "officer_a": [
        "/",
        "/officer",
        "/alerts/{alert}",
        "/alerts/{alert}/summary",
        "/events/search",
        "/stats",
    ],
    "resident_a": [
        "/",
        "/my/passes",
        "/my/passes/new",
        "/my/passes/{pass_id}",
        "/my/code",
        "/my/codes",
        "/my/doors",
        "/my/history",
        "/my/notifications",
        "/my/notifications/settings",
        "/intercom/calls/{call}/snapshot",
    ],
}
# Not a page: its answer never ends (the checks of the stream's headers are the API's).
NOT_PAGES = frozenset(
    {"web.shared_pass_qr", "web.live_stream", "web.portal_intercom_live"}  # streams never end
)


def assert_secured(answer: TestResponse, *, nonce: str | None = None) -> None:
    """``answer`` carries every security header, with the exact policy."""
    headers = answer.headers
    expected = POLICY
    if nonce is not None:
        expected = POLICY.replace("script-src 'self'", f"script-src 'self' 'nonce-{nonce}'")
    assert headers["Content-Security-Policy"] == expected, answer.request.path
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] in {"same-origin", "no-referrer"}
    assert "Strict-Transport-Security" not in headers  # not in the tests' environment


@pytest.fixture
def site(app: Flask) -> PassSite:
    return pass_site(app)


def _ids(app: Flask, client: FlaskClient, site: PassSite) -> dict[str, str]:
    """The ids the pages' paths need: a pass (with its share secret) and an alert."""
    resident = Api(client, "resident_a")
    visitor_pass = resident.post("/passes", json={"guest_name": "李四"}).json
    alert_id = raise_in(app, site.a, type=AlertType.STRANGER, summary="Unknown person at the door")
    with in_app(app):
        staff = Scope(db.session.scalar(select(User).where(User.username == "staff_a")))
        link = onboarding.create_registration_link(staff, site.a)
        unit = db.session.scalar(select(Unit.id).where(Unit.community_id == site.a))
        registration = onboarding.submit_registration(
            link, {"name": "张伟", "phone": "13900139000", "unit_id": unit, "role": "owner"}, None
        )
        building = db.session.scalar(select(Building.id).where(Building.community_id == site.a))
        route = PatrolRoute(community_id=site.a, name="Night round", checkpoint_device_ids=[])
        db.session.add(route)
        holiday = Holiday(
            community_id=site.a, name="春节", first_day=date(2027, 2, 5), last_day=date(2027, 2, 11)
        )
        db.session.add(holiday)
        newcomer = factories.person(site.a, "李华")
        factories.membership(newcomer, PersonRole.OWNER, unit_of=unit)
        invitation = onboarding.invite_resident(staff, newcomer.id, "li.hua")
        db.session.commit()
        onboarding_ids = {
            "code": link.code,
            "link": link.id,
            "registration": registration.request.id,
            "registration_token": registration.token,
            "activation_token": invitation.token,
            "building": building,
            "route": route.id,
            "holiday": holiday.id,
        }
    call = client.post(  # a visitor's call from the resident's door, with its snapshot
        "/api/v1/intercom/calls",
        json={"unit": "101", "snapshot": base64.b64encode(_JPEG).decode()},
        headers={"Authorization": f"Bearer {site.door_credential}"},
    )
    assert call.status_code == 201, call.json
    return {
        **onboarding_ids,
        "call": call.json["id"],
        "a": site.a,
        "person": site.resident_person,
        "pass_id": visitor_pass["id"],
        "secret": visitor_pass["share_url"].rsplit("/", 1)[-1],
        "alert": alert_id,
        "door": site.door,
        "device": site.door_device,
    }


def test_every_page_sends_the_security_headers(app, client, site, frozen) -> None:
    ids = _ids(app, client, site)
    adapter = app.url_map.bind("localhost")
    seen: set[str] = set()
    for username, paths in PAGES.items():
        if username:
            login(client, username)
        for template in paths:
            path = template.format(**ids)
            answer = client.get(path)
            expected = 503 if path == "/healthz" else 200
            assert answer.status_code == expected, (username, path, answer.status_code)
            assert_secured(answer)
            seen.add(adapter.match(path)[0])
        if username:
            logout(client)
    pages = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods and rule.endpoint.split(".")[0] in {"web", "static"}
    }
    assert pages - NOT_PAGES - seen == set(), "a page this test does not open"


def test_the_guest_page_keeps_no_referrer(app, client, site, frozen) -> None:
    """Its URL is the pass's secret: it must not leave in a Referer header."""
    ids = _ids(app, client, site)
    guest = app.test_client()
    for path in (f"/g/{ids['secret']}", f"/g/{ids['secret']}/qr.png"):
        answer = guest.get(path)
        assert answer.status_code == 200
        assert_secured(answer)
        assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_api_answers_and_errors_send_them_too(client, world) -> None:
    assert_secured(client.get("/api/v1/openapi.json"))
    assert_secured(client.get("/api/v1/communities"))  # 401 problem document
    assert_secured(client.get("/no/such/page"))  # HTML 404
    assert_secured(client.get("/api/v1/no/such/thing"))  # problem 404
    assert_secured(client.get("/api/v1/docs/assets/swagger-ui-bundle.js"))
    token = Api(client, "staff_a")
    assert_secured(token.get(f"/communities/{world.a}/devices"))


def test_the_docs_page_inlines_only_its_nonced_script(client) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    [nonce] = re.findall(r'<script nonce="([^"]+)">', page.text)
    assert_secured(page, nonce=nonce)
    assert nonce != re.findall(r'<script nonce="([^"]+)">', client.get("/api/v1/docs").text)[0]


def test_an_unexpected_error_sends_them(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    monkeypatch.setitem(app.view_functions, "web.healthz", boom)
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 500
    assert_secured(answer)


def test_hsts_only_in_production(tmp_path: Path) -> None:
    production = create_app(
        {
            "GK_ENV": "production",
            "INSTANCE_DIR": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'gk.db'}",
            "SECRET_KEY": "k" * 64,
            "DATA_KEY": "A" * 43 + "=",
        }
    )
    answer = production.test_client().get("/login")
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert answer.headers["Content-Security-Policy"] == POLICY


def test_the_policy_names_a_nonce_only_when_given() -> None:
    assert content_security_policy() == POLICY
    assert "script-src 'self' 'nonce-abc';" in content_security_policy("abc")


class _ScriptFinder(HTMLParser):
    """Inline scripts without a nonce, inline event handlers and inline styles in a template."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._script_needs_nonce = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        self.problems += [f"{tag} {name}=" for name in names if name.startswith("on")]
        if "style" in names or tag == "style":
            self.problems.append(f"inline style on {tag}")
        # A JSON data block (type="application/json") is never run: the policy allows it.
        data_block = dict(attrs).get("type") == "application/json"
        self._script_needs_nonce = (
            tag == "script" and not names & {"src", "nonce"} and not data_block
        )
        if any((value or "").lstrip().lower().startswith("javascript:") for _, value in attrs):
            self.problems.append(f"javascript: URL on {tag}")

    def handle_data(self, data: str) -> None:
        if self._script_needs_nonce and data.strip():
            self.problems.append("inline <script> without a nonce")

    def handle_endtag(self, tag: str) -> None:
        self._script_needs_nonce = False


@pytest.mark.parametrize("template", sorted(TEMPLATES.glob("*.html")), ids=lambda path: path.name)
def test_templates_hold_no_script_the_policy_blocks(template: Path) -> None:
    finder = _ScriptFinder()
    finder.feed(template.read_text(encoding="utf-8"))
    assert finder.problems == []
