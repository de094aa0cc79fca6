"""Page sessions end when they should, even for a copied cookie (``WebSession`` rows).

Each test signs a browser in, copies its session cookie into a second client (what an
attacker who stole it would replay), and checks who still gets ``/api/v1/me``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from server.extensions import db
from server.models import AuditEntry, WebSession
from tests.factories import Api
from tests.support.api import WorldIds, in_app
from tests.support.pages import csrf, login, logout

COOKIE = "session"


def replay(app: Flask, client: FlaskClient) -> FlaskClient:
    """A second client holding a copy of ``client``'s session cookie."""
    copy = app.test_client()
    copy.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    return copy


def me(client: FlaskClient) -> int:
    return client.get("/api/v1/me").status_code


def test_a_copied_cookie_dies_with_the_sign_out(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    login(client, "staff_a")
    stolen = replay(app, client)
    assert me(client) == me(stolen) == 200
    logout(client)
    assert me(stolen) == 401 and me(client) == 401
    with in_app(app):
        [row] = db.session.scalars(select(WebSession)).all()
        assert row.revoked_at is not None and row.user_id == world.staff_a


def test_signing_in_again_starts_a_new_session(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    login(client, "staff_a")
    before = client.get_cookie(COOKIE).value
    logout(client)
    login(client, "staff_a")
    assert client.get_cookie(COOKIE).value != before and me(client) == 200
    with in_app(app):
        assert db.session.scalar(select(func.count()).select_from(WebSession)) == 2


def test_a_new_password_ends_the_other_browsers(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    login(client, "resident_a")
    other = app.test_client()
    login(other, "resident_a")
    stolen = replay(app, other)
    token = Api(app.test_client(), "resident_a")
    answer = client.patch(
        f"/api/v1/users/{world.resident_a}",
        json={"password": "a-new-long-password"},
        headers={"X-CSRFToken": csrf(client.get("/").text)},
    )
    assert answer.status_code == 200, answer.json
    assert me(client) == 200  # the browser that changed it stays signed in
    assert me(other) == me(stolen) == 401
    assert token.get("/me").status_code == 401


def test_an_administrator_changing_a_password_ends_every_browser(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    login(client, "resident_a")
    answer = Api(app.test_client(), "admin").patch(
        f"/users/{world.resident_a}", json={"password": "a-new-long-password"}
    )
    assert answer.status_code == 200, answer.json
    assert me(client) == 401


def test_a_disabled_account_stays_signed_out_when_enabled_again(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    login(client, "resident_a")
    stolen = replay(app, client)
    admin = Api(app.test_client(), "admin")
    assert admin.patch(f"/users/{world.resident_a}", json={"disabled": True}).status_code == 200
    assert me(client) == me(stolen) == 401
    assert admin.patch(f"/users/{world.resident_a}", json={"disabled": False}).status_code == 200
    assert me(client) == me(stolen) == 401
    login(client, "resident_a")
    assert me(client) == 200


def test_sign_out_everywhere_from_a_page(app: Flask, client: FlaskClient, world: WorldIds) -> None:
    login(client, "staff_a")
    other = app.test_client()
    login(other, "staff_a")
    stolen = replay(app, other)
    token = Api(app.test_client(), "staff_a")
    answer = client.post("/logout/everywhere", data={"csrf_token": csrf(client.get("/").text)})
    assert answer.status_code == 302 and answer.location == "/login"
    assert me(client) == me(other) == me(stolen) == 401
    assert token.get("/me").status_code == 401
    with in_app(app):
        entry = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "auth.sign_out_everywhere")
        ).one()
        assert entry.actor_user_id == world.staff_a


def test_sign_out_everywhere_through_the_api(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    login(client, "officer_a")
    api = Api(app.test_client(), "officer_a")
    answer = api.post("/auth/sign-out-everywhere")
    assert answer.status_code == 204
    assert api.get("/me").status_code == 401 and me(client) == 401
    # Another account is untouched.
    assert Api(app.test_client(), "staff_a").get("/me").status_code == 200


def test_a_session_ends_after_the_credential_lifetime(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    hours = app.config["SETTINGS"].token_ttl_hours
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        login(client, "staff_a")
    with time_machine.travel(start + timedelta(hours=hours) - timedelta(seconds=1), tick=False):
        assert me(client) == 200
    with time_machine.travel(start + timedelta(hours=hours), tick=False):
        assert me(client) == 401
        page = client.get("/")
        assert page.status_code == 302 and page.location.startswith("/login")
