"""Happy paths of the management API and the behaviour behind them."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy import select

from hardware.topics import device_prefix
from server.community.settings import DEFAULTS
from server.core.auth import authenticate_device
from server.core.errors import Forbidden, Unauthorized
from server.extensions import db
from server.models import ApiToken, AuditEntry, Community, Device, User, utcnow
from tests.factories import PASSWORD, Api
from tests.support.api import WorldIds, assert_problem, in_app, snapshot
from tests.support.pages import csrf, login


def device_header(device_id: str, secret: str) -> str:
    return f"Bearer {device_id}.{secret}"


def authenticate(app: Flask, header: str) -> str:
    """The id of the device ``authenticate_device`` finds behind ``header``."""
    with app.test_request_context(headers={"Authorization": header}):
        try:
            return authenticate_device(request.headers.get("Authorization")).id
        finally:
            db.session.remove()


# Tokens and /me ------------------------------------------------------------------------------


def test_token_is_issued_with_an_aware_expiry(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    answer = client.post("/api/v1/auth/token", json={"username": "staff_a", "password": PASSWORD})
    assert answer.status_code == 201, answer.json
    token, expires_at = answer.json["token"], answer.json["expires_at"]
    assert token.startswith("gkt_")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d", expires_at)
    expiry = datetime.fromisoformat(expires_at)
    assert expiry.utcoffset() is not None
    ttl = timedelta(hours=app.config["SETTINGS"].token_ttl_hours)
    assert abs(expiry - (utcnow() + ttl)) < timedelta(minutes=5)
    with in_app(app):
        stored = db.session.scalars(select(ApiToken)).one()
        assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert stored.user_id == world.staff_a
        assert db.session.get(User, world.staff_a).last_login_at is not None


@pytest.mark.parametrize("username", ["admin", "staff_a", "officer_a", "resident_a"])
def test_me_describes_the_caller(client: FlaskClient, world: WorldIds, username: str) -> None:
    me = Api(client, username).get("/me")
    assert me.status_code == 200
    assert me.json["username"] == username
    assert me.json["id"] == getattr(world, username)
    assert not {"password", "password_hash"} & set(me.json)
    expected_communities = {"staff_a": [world.a], "officer_a": [world.a]}.get(username, [])
    assert me.json["community_ids"] == expected_communities
    assert me.json["unit_id"] == (world.unit_a if username == "resident_a" else None)


# Communities ---------------------------------------------------------------------------------


def test_admin_creates_a_community_with_defaults(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    answer = Api(client, "admin").post("/communities", json={"name": "Community C"})
    assert answer.status_code == 201, answer.json
    assert answer.json["timezone"] == "Asia/Shanghai"
    assert answer.json["settings"] == asdict(DEFAULTS)
    assert answer.json["id"].startswith("com_")
    with in_app(app):
        stored = db.session.get(Community, answer.json["id"])
        assert stored.name == "Community C"
        assert stored.timezone == "Asia/Shanghai"


def test_admin_creates_a_community_with_its_own_zone_and_settings(
    client: FlaskClient, world: WorldIds
) -> None:
    api = Api(client, "admin")
    answer = api.post(
        "/communities",
        json={"name": "Berlin", "timezone": "Europe/Berlin", "settings": {"keep_snapshots": True}},
    )
    assert answer.status_code == 201, answer.json
    assert answer.json["timezone"] == "Europe/Berlin"
    assert answer.json["settings"] == {**asdict(DEFAULTS), "keep_snapshots": True}
    assert api.get(f"/communities/{answer.json['id']}").json == answer.json


@pytest.mark.parametrize("username", ["staff_a", "officer_a", "resident_a"])
def test_only_admins_create_communities(
    app: Flask, client: FlaskClient, world: WorldIds, username: str
) -> None:
    api = Api(client, username)
    before = snapshot(app)
    assert_problem(api.post("/communities", json={"name": "Community C"}), 403)
    assert snapshot(app) == before


def test_staff_patch_their_community(app: Flask, client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "staff_a")
    answer = api.patch(
        f"/communities/{world.a}", json={"name": "Garden Court", "timezone": "Asia/Urumqi"}
    )
    assert answer.status_code == 200, answer.json
    assert (answer.json["name"], answer.json["timezone"]) == ("Garden Court", "Asia/Urumqi")
    with in_app(app):
        stored = db.session.get(Community, world.a)
        assert (stored.name, stored.timezone) == ("Garden Court", "Asia/Urumqi")


# Buildings, units, access points -------------------------------------------------------------


def test_buildings_create_list_get_patch(client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "staff_a")
    created = api.post(f"/communities/{world.a}/buildings", json={"name": "A0"})
    assert created.status_code == 201, created.json
    bid = created.json["id"]
    assert created.json["community_id"] == world.a
    listed = api.get(f"/communities/{world.a}/buildings").json
    assert [b["name"] for b in listed] == ["A0", "A1"]
    assert api.get(f"/buildings/{bid}").json == created.json
    patched = api.patch(f"/buildings/{bid}", json={"name": "A3"})
    assert patched.status_code == 200
    assert api.get(f"/buildings/{bid}").json["name"] == "A3"


def test_units_create_list_get_patch(client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "staff_a")
    created = api.post(
        f"/communities/{world.a}/units",
        json={"building_id": world.building_a, "number": "1202", "floor": 12},
    )
    assert created.status_code == 201, created.json
    uid = created.json["id"]
    assert (created.json["community_id"], created.json["building_id"]) == (
        world.a,
        world.building_a,
    )
    listed = api.get(f"/communities/{world.a}/units").json
    assert sorted(u["number"] for u in listed) == ["101", "1202"]
    assert api.get(f"/units/{uid}").json == created.json
    patched = api.patch(f"/units/{uid}", json={"floor": None, "number": "1203"})
    assert patched.status_code == 200, patched.json
    assert (patched.json["floor"], patched.json["number"]) == (None, "1203")


def test_unit_in_another_communitys_building_is_refused(
    client: FlaskClient, world: WorldIds
) -> None:
    answer = Api(client, "admin").post(
        f"/communities/{world.a}/units", json={"building_id": world.building_b, "number": "1"}
    )
    assert "building_id" in assert_problem(answer, 422)["errors"]


def test_units_and_buildings_are_deleted_only_when_unused(
    client: FlaskClient, world: WorldIds
) -> None:
    api = Api(client, "staff_a")
    building = api.post(f"/communities/{world.a}/buildings", json={"name": "A9"}).json["id"]
    unit = api.post(
        f"/communities/{world.a}/units", json={"building_id": building, "number": "901"}
    ).json["id"]
    assert_problem(api.delete(f"/buildings/{building}"), 409)
    assert_problem(api.delete(f"/units/{world.unit_a}"), 409)  # resident_a's unit
    for caller, status in (("staff_b", 404), ("officer_a", 403), ("resident_a", 404)):
        assert_problem(Api(client, caller).delete(f"/units/{unit}"), status)
    assert api.delete(f"/units/{unit}").status_code == 204
    assert_problem(api.get(f"/units/{unit}"), 404)
    assert api.delete(f"/buildings/{building}").status_code == 204
    assert_problem(api.get(f"/buildings/{building}"), 404)
    # A building keeps its units, then its own access points.
    assert_problem(api.delete(f"/buildings/{world.building_a}"), 409)
    lobby = api.post(f"/communities/{world.a}/buildings", json={"name": "A8"}).json["id"]
    door = {"name": "A8 door", "kind": "door", "zone": "building", "building_id": lobby}
    assert api.post(f"/communities/{world.a}/access-points", json=door).status_code == 201
    refused = assert_problem(api.delete(f"/buildings/{lobby}"), 409)
    assert "access points" in refused["detail"]


WEEK = [
    {"days": [1, 2, 3, 4, 5], "start": "07:00", "end": "22:00"},
    {"days": [6, 7], "start": "22:00", "end": "06:00"},
    {"days": [3], "start": "00:00", "end": "24:00"},
]


@pytest.mark.parametrize(
    ("kind", "zone", "in_building", "requires_depth"),
    [
        ("door", "building", True, True),
        ("door", "perimeter", False, False),
        ("gate", "perimeter", False, False),
        ("gate", "building", True, False),
        ("barrier", "perimeter", False, False),
    ],
)
def test_access_point_defaults(
    client: FlaskClient,
    world: WorldIds,
    kind: str,
    zone: str,
    in_building: bool,
    requires_depth: bool,
) -> None:
    body = {"name": "New point", "kind": kind, "zone": zone}
    if in_building:
        body["building_id"] = world.building_a
    answer = Api(client, "staff_a").post(f"/communities/{world.a}/access-points", json=body)
    assert answer.status_code == 201, answer.json
    assert answer.json["requires_depth"] is requires_depth
    assert answer.json["open_ms"] == 5000
    assert answer.json["schedule"] is None
    assert answer.json["building_id"] == (world.building_a if in_building else None)


def test_access_point_explicit_values_and_schedule_round_trip(
    client: FlaskClient, world: WorldIds
) -> None:
    api = Api(client, "staff_a")
    created = api.post(
        f"/communities/{world.a}/access-points",
        json={
            "name": "Side door",
            "kind": "door",
            "zone": "building",
            "building_id": world.building_a,
            "requires_depth": False,
            "open_ms": 3000,
            "schedule": WEEK,
        },
    )
    assert created.status_code == 201, created.json
    apid = created.json["id"]
    assert created.json["requires_depth"] is False
    fetched = api.get(f"/access-points/{apid}").json
    assert fetched == created.json
    assert fetched["schedule"] == WEEK
    assert [p["name"] for p in api.get(f"/communities/{world.a}/access-points").json] == [
        "A door",
        "Side door",
    ]
    patched = api.patch(
        f"/access-points/{apid}", json={"schedule": None, "open_ms": 8000, "name": "Back door"}
    )
    assert patched.status_code == 200, patched.json
    assert (patched.json["schedule"], patched.json["open_ms"], patched.json["name"]) == (
        None,
        8000,
        "Back door",
    )
    assert api.get(f"/access-points/{apid}").json == patched.json


# Devices -------------------------------------------------------------------------------------


def test_provisioning_shows_the_secret_once(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    api = Api(client, "staff_a")
    answer = api.post(
        f"/communities/{world.a}/devices",
        json={"name": "Lobby terminal", "kind": "door", "access_point_id": world.door_a},
    )
    assert answer.status_code == 201, answer.json
    device_id, secret = answer.json["id"], answer.json["secret"]
    assert len(secret) >= 40
    assert answer.json["mqtt"] == {
        "username": device_id,
        "topic_prefix": device_prefix(world.a, device_id),
    }
    assert answer.json["zone"] == "building"  # taken from the access point
    for shown in (
        api.get(f"/devices/{device_id}").json,
        *api.get(f"/communities/{world.a}/devices").json,
    ):
        assert "secret" not in shown
        assert "mqtt" not in shown
        assert secret not in json.dumps(shown)
    with in_app(app):
        stored = db.session.get(Device, device_id)
        assert secret not in (stored.secret_hash, stored.mqtt_password_hash)
        assert secret not in stored.mqtt_password_hash
        assert stored.mqtt_password_hash.startswith("$7$")
    assert authenticate(app, device_header(device_id, secret)) == device_id


def test_rotating_the_secret_retires_the_old_one(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    api = Api(client, "staff_a")
    old = api.post(
        f"/communities/{world.a}/devices",
        json={"name": "Gate reader", "kind": "rfid_reader", "zone": "perimeter"},
    ).json
    device_id = old["id"]
    assert old["secret_rotated_at"] is None
    rotated = api.post(f"/devices/{device_id}/rotate-secret")
    assert rotated.status_code == 200, rotated.json
    new_secret = rotated.json["secret"]
    assert new_secret != old["secret"]
    assert rotated.json["secret_rotated_at"] is not None
    assert rotated.json["mqtt"]["username"] == device_id
    assert authenticate(app, device_header(device_id, new_secret)) == device_id
    with pytest.raises(Unauthorized):
        authenticate(app, device_header(device_id, old["secret"]))
    assert "secret" not in api.get(f"/devices/{device_id}").json


@pytest.mark.parametrize(
    "header",
    [
        "Bearer {id}.wrong-secret",
        "Bearer {id}",
        "Bearer {id}.",
        "Bearer dev_nope.{secret}",
        "Bearer {secret}",
        "Basic {id}:{secret}",
    ],
    ids=["wrong secret", "no secret", "empty secret", "unknown device", "secret only", "basic"],
)
def test_wrong_device_credentials_are_unauthorized(
    app: Flask, client: FlaskClient, world: WorldIds, header: str
) -> None:
    provisioned = (
        Api(client, "staff_a")
        .post(
            f"/communities/{world.a}/devices",
            json={"name": "Reader", "kind": "rfid_reader", "zone": "perimeter"},
        )
        .json
    )
    with pytest.raises(Unauthorized):
        authenticate(app, header.format(id=provisioned["id"], secret=provisioned["secret"]))


def test_disabled_device_is_forbidden(app: Flask, client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "staff_a")
    provisioned = api.post(
        f"/communities/{world.a}/devices",
        json={"name": "Reader", "kind": "rfid_reader", "zone": "perimeter"},
    ).json
    header = device_header(provisioned["id"], provisioned["secret"])
    disabled = api.patch(f"/devices/{provisioned['id']}", json={"disabled": True})
    assert disabled.status_code == 200 and disabled.json["disabled"] is True
    with pytest.raises(Forbidden):
        authenticate(app, header)
    api.patch(f"/devices/{provisioned['id']}", json={"disabled": False})
    assert authenticate(app, header) == provisioned["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "T", "kind": "door"}, "access_point_id"),
        ({"name": "T", "kind": "door", "access_point_id": None}, "access_point_id"),
        ({"name": "T", "kind": "barrier", "access_point_id": "{door_a}"}, "access_point_id"),
        ({"name": "T", "kind": "door", "access_point_id": "{barrier}"}, "access_point_id"),
        ({"name": "T", "kind": "door", "access_point_id": "{door_b}"}, "access_point_id"),
        ({"name": "T", "kind": "rfid_reader"}, "zone"),
    ],
)
def test_device_bindings_are_checked(
    app: Flask, client: FlaskClient, world: WorldIds, body: dict[str, Any], field: str
) -> None:
    api = Api(client, "staff_a")
    barrier = api.post(
        f"/communities/{world.a}/access-points",
        json={"name": "Car barrier", "kind": "barrier", "zone": "perimeter"},
    )
    filled = {
        k: world.fill(v).replace("{barrier}", barrier.json["id"]) if isinstance(v, str) else v
        for k, v in body.items()
    }
    before = snapshot(app)
    answer = api.post(f"/communities/{world.a}/devices", json=filled)
    assert field in assert_problem(answer, 422)["errors"]
    assert snapshot(app) == before


def test_rebinding_a_device_is_checked_too(client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "staff_a")
    gate = api.post(
        f"/communities/{world.a}/access-points",
        json={"name": "Main gate", "kind": "gate", "zone": "perimeter"},
    ).json
    moved = api.patch(f"/devices/{world.device_a}", json={"access_point_id": gate["id"]})
    assert moved.status_code == 200, moved.json
    assert (moved.json["access_point_id"], moved.json["zone"]) == (gate["id"], "building")
    unbound = api.patch(f"/devices/{world.device_a}", json={"access_point_id": None})
    assert "access_point_id" in assert_problem(unbound, 422)["errors"]


# Pagination ----------------------------------------------------------------------------------


def test_lists_are_paginated_with_a_header(client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "staff_a")
    for name in ("A2", "A3", "A4", "A5", "A6"):
        assert api.post(f"/communities/{world.a}/buildings", json={"name": name}).status_code == 201
    answer = api.get(f"/communities/{world.a}/buildings?page=2&page_size=2")
    assert answer.status_code == 200
    assert [b["name"] for b in answer.json] == ["A3", "A4"]
    assert json.loads(answer.headers["X-Pagination"]) == {
        "total": 6,
        "total_pages": 3,
        "first_page": 1,
        "last_page": 3,
        "page": 2,
        "previous_page": 1,
        "next_page": 3,
    }
    last = api.get(f"/communities/{world.a}/buildings?page=3&page_size=2")
    assert [b["name"] for b in last.json] == ["A5", "A6"]
    assert "next_page" not in json.loads(last.headers["X-Pagination"])
    default = api.get(f"/communities/{world.a}/buildings")
    assert len(default.json) == 6


# Users ---------------------------------------------------------------------------------------


def test_admin_creates_staff_who_then_run_their_community(
    client: FlaskClient, world: WorldIds
) -> None:
    admin = Api(client, "admin")
    created = admin.post(
        "/users",
        json={
            "username": "staff_b2",
            "password": "long-enough-pw",
            "role": "staff",
            "community_ids": [world.b],
            "display_name": "Bea",
        },
    )
    assert created.status_code == 201, created.json
    assert created.json["community_ids"] == [world.b]
    assert "password" not in created.json
    staff = Api(client, "staff_b2", "long-enough-pw")
    assert [c["id"] for c in staff.get("/communities").json] == [world.b]


def test_password_change_takes_effect(client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "resident_a")
    answer = api.patch(f"/users/{world.resident_a}", json={"password": "a-new-long-password"})
    assert answer.status_code == 200, answer.json
    old = client.post("/api/v1/auth/token", json={"username": "resident_a", "password": PASSWORD})
    assert_problem(old, 401)
    Api(client, "resident_a", "a-new-long-password")


# Audit log -----------------------------------------------------------------------------------


def test_every_write_is_audited_without_secrets(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    api = Api(client, "staff_a")
    with in_app(app):
        db.session.execute(AuditEntry.__table__.delete())
        db.session.commit()
    secrets: list[str] = []
    targets: dict[str, str] = {}

    def write(action: str, answer: Any) -> Any:
        created = action.endswith((".create", ".provision"))
        assert answer.status_code == (201 if created else 200), (action, answer.json)
        targets[action] = answer.json["id"]
        if "secret" in answer.json:
            secrets.append(answer.json["secret"])
        return answer.json

    a = world.a
    write(
        "community.update",
        api.patch(f"/communities/{a}", json={"settings": {"keep_snapshots": True}}),
    )
    building = write(
        "building.create", api.post(f"/communities/{a}/buildings", json={"name": "A2"})
    )
    write("building.update", api.patch(f"/buildings/{building['id']}", json={"name": "A3"}))
    unit = write(
        "unit.create",
        api.post(f"/communities/{a}/units", json={"building_id": building["id"], "number": "1"}),
    )
    write("unit.update", api.patch(f"/units/{unit['id']}", json={"floor": 1}))
    point = write(
        "access_point.create",
        api.post(
            f"/communities/{a}/access-points",
            json={"name": "Gate", "kind": "gate", "zone": "perimeter"},
        ),
    )
    write("access_point.update", api.patch(f"/access-points/{point['id']}", json={"open_ms": 7000}))
    device = write(
        "device.provision",
        api.post(
            f"/communities/{a}/devices",
            json={"name": "Gate terminal", "kind": "door", "access_point_id": point["id"]},
        ),
    )
    write("device.rotate_secret", api.post(f"/devices/{device['id']}/rotate-secret"))
    write("device.update", api.patch(f"/devices/{device['id']}", json={"disabled": True}))
    user = write(
        "user.create",
        api.post(
            "/users",
            json={
                "username": "new_resident",
                "password": "long-enough-pw",
                "role": "resident",
                "unit_id": unit["id"],
            },
        ),
    )
    write(
        "user.update",
        api.patch(
            f"/users/{user['id']}", json={"password": "another-long-pw", "display_name": "N"}
        ),
    )

    with in_app(app):
        entries = db.session.scalars(select(AuditEntry)).all()
    by_action = {e.action: e for e in entries}
    assert set(by_action) == set(targets)
    assert len(entries) == len(targets)
    for action, entry in by_action.items():
        assert entry.actor == "staff_a", action
        assert entry.actor_user_id == world.staff_a, action
        assert entry.community_id == a, action
        assert entry.target_id == targets[action], action
        assert entry.remote_addr, action
        text = json.dumps(entry.details)
        for secret in (*secrets, "long-enough-pw", "another-long-pw", PASSWORD):
            assert secret not in text, (action, entry.details)
    assert by_action["user.update"].details["password_changed"] is True


def test_token_issue_is_audited(app: Flask, client: FlaskClient, world: WorldIds) -> None:
    Api(client, "officer_a")
    with in_app(app):
        entry = db.session.scalars(select(AuditEntry)).one()
        assert (entry.action, entry.actor, entry.community_id) == ("auth.token", "officer_a", None)
        assert PASSWORD not in json.dumps(entry.details)


# Login rate limit ----------------------------------------------------------------------------


def test_the_eleventh_login_in_a_minute_is_refused(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    assert app.config["SETTINGS"].login_rate_limit == "10 per minute"
    for _ in range(10):
        answer = client.post(
            "/api/v1/auth/token", json={"username": "staff_a", "password": "wrong-password"}
        )
        assert_problem(answer, 401)
    before = snapshot(app)
    answer = client.post("/api/v1/auth/token", json={"username": "staff_a", "password": PASSWORD})
    body = assert_problem(answer, 429)
    assert "10 per 1 minute" in body["detail"]
    assert 0 < int(answer.headers["Retry-After"]) <= 60
    assert snapshot(app) == before  # not even the right password got a token
    chinese = client.post(
        "/api/v1/auth/token",
        json={"username": "staff_a", "password": PASSWORD},
        headers={"Accept-Language": "zh-CN"},
    )
    assert "每 1 分钟 10 次" in assert_problem(chinese, 429)["detail"]


# Session and CSRF ----------------------------------------------------------------------------


@pytest.fixture
def session_client(app: Flask, world: WorldIds) -> tuple[FlaskClient, str]:
    """A browser signed in as staff_a through the login page, and its CSRF token."""
    browser = app.test_client()
    login(browser, "staff_a")
    return browser, csrf(browser.get("/").text)


def test_csrf_is_on_under_testing(app: Flask) -> None:
    """TESTING does not switch Flask-WTF's CSRF off; the tests below depend on it."""
    assert app.config["TESTING"] is True
    assert app.config.get("WTF_CSRF_ENABLED", True) is True


def test_login_page_refuses_a_post_without_its_csrf_token(app: Flask, world: WorldIds) -> None:
    browser = app.test_client()
    answer = browser.post("/login", data={"username": "staff_a", "password": PASSWORD})
    assert answer.status_code == 400
    assert_problem(browser.get("/api/v1/me"), 401)


def test_session_reads_need_no_csrf_token(session_client: tuple[FlaskClient, str]) -> None:
    browser, _ = session_client
    me = browser.get("/api/v1/me")
    assert me.status_code == 200 and me.json["username"] == "staff_a"


@pytest.mark.parametrize("header", [None, "not-the-token"], ids=["missing", "wrong"])
def test_session_writes_without_the_csrf_token_answer_400(
    app: Flask, world: WorldIds, session_client: tuple[FlaskClient, str], header: str | None
) -> None:
    browser, _ = session_client
    before = snapshot(app)
    answer = browser.post(
        f"/api/v1/communities/{world.a}/buildings",
        json={"name": "A2"},
        headers={"X-CSRFToken": header} if header else {},
    )
    body = assert_problem(answer, 400)
    assert "CSRF" in body["detail"]
    assert snapshot(app) == before


def test_session_writes_with_the_csrf_token_succeed(
    app: Flask, world: WorldIds, session_client: tuple[FlaskClient, str]
) -> None:
    browser, token = session_client
    answer = browser.post(
        f"/api/v1/communities/{world.a}/buildings",
        json={"name": "A2"},
        headers={"X-CSRFToken": token},
    )
    assert answer.status_code == 201, answer.json
    with in_app(app):
        entry = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "building.create")
        ).one()
        assert entry.actor == "staff_a"


def test_session_has_no_bearer_token_to_revoke(session_client: tuple[FlaskClient, str]) -> None:
    browser, token = session_client
    answer = browser.delete("/api/v1/auth/token", headers={"X-CSRFToken": token})
    assert_problem(answer, 422)
    assert browser.get("/api/v1/me").status_code == 200


def test_password_change_revokes_api_tokens(app, client) -> None:
    from tests.factories import Api, world

    with app.app_context():
        w = world()
        resident_id = w.resident_a.id
    admin = Api(client, "admin")
    resident = Api(client, "resident_a")
    assert resident.get("/me").status_code == 200
    assert admin.patch(f"/users/{resident_id}", {"password": "a-brand-new-pass"}).status_code == 200
    assert resident.get("/me").status_code == 401
    assert Api(client, "resident_a", "a-brand-new-pass").get("/me").status_code == 200
