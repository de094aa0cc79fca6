"""Every error path of the management API answers an RFC 9457 problem document, never a 500."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from server.core.bodies import NUL_CHARACTER
from server.extensions import db, limiter
from server.models import AccessPoint, ApiToken, Building, Community, User, utcnow
from tests.factories import PASSWORD, Api
from tests.support.api import WorldIds, assert_problem, in_app, snapshot

JSON = "application/json"


def send_raw(api: Api, method: str, path: str, data: bytes | str, content_type: str = JSON) -> Any:
    """A request with a body sent as is (``Api`` would encode it as JSON)."""
    return api.client.open(
        "/api/v1" + path,
        method=method,
        data=data,
        headers={**api.headers, "Content-Type": content_type},
    )


# Authentication ------------------------------------------------------------------------------

BAD_AUTHORIZATION = {
    "none": None,
    "garbage bearer": "Bearer garbage",
    "well-formed unknown token": "Bearer gkt_" + "A" * 43,
    "basic": "Basic " + base64.b64encode(f"staff_a:{PASSWORD}".encode()).decode(),
    "scheme only": "Bearer",
    "other scheme": "Token abc",
}


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION.values(), ids=BAD_AUTHORIZATION)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/me"), ("GET", "/communities"), ("POST", "/communities/{a}/buildings")],
)
def test_bad_credentials_answer_401(
    app: Flask,
    client: FlaskClient,
    world: WorldIds,
    authorization: str | None,
    method: str,
    path: str,
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    before = snapshot(app)
    answer = client.open(
        "/api/v1" + world.fill(path),
        method=method,
        headers=headers,
        json={"name": "Sneaky"} if method == "POST" else None,
    )
    assert_problem(answer, 401)
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert snapshot(app) == before


def test_expired_token_answers_401(app: Flask, client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "staff_a")
    assert api.get("/me").status_code == 200
    with in_app(app):
        db.session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert_problem(api.get("/me"), 401)


def test_revoked_token_answers_401_and_other_tokens_live_on(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    first, second = Api(client, "staff_a"), Api(client, "staff_a")
    assert first.delete("/auth/token").status_code == 204
    assert_problem(first.get("/me"), 401)
    assert_problem(first.delete("/auth/token"), 401)
    assert second.get("/me").status_code == 200
    with in_app(app):
        revoked = db.session.scalars(select(ApiToken.revoked_at)).all()
        assert sum(at is not None for at in revoked) == 1


def test_disabled_users_token_answers_401(app: Flask, client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "resident_a")
    with in_app(app):
        db.session.get(User, world.resident_a).disabled_at = utcnow()
        db.session.commit()
    assert_problem(api.get("/me"), 401)
    answer = client.post(
        "/api/v1/auth/token", json={"username": "resident_a", "password": PASSWORD}
    )
    assert_problem(answer, 401)


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "staff_a", "password": "wrong-password"},
        {"username": "nobody", "password": PASSWORD},
    ],
    ids=["wrong password", "unknown user"],
)
def test_wrong_credentials_answer_401_alike(
    client: FlaskClient, world: WorldIds, credentials: dict[str, str]
) -> None:
    body = assert_problem(client.post("/api/v1/auth/token", json=credentials), 401)
    assert body["detail"] == "Wrong username or password, or the account is disabled."


# Bodies --------------------------------------------------------------------------------------


def test_malformed_json_answers_400(client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "staff_a")
    for raw in ('{"name": "x"', '{"name": "x",}', "{'name': 'x'}", b"\xff\xfe"):
        body = assert_problem(send_raw(api, "POST", f"/communities/{world.a}/buildings", raw), 400)
        assert body["detail"] == "The request body is not valid JSON."


@pytest.mark.parametrize("value", [[], [{"name": "x"}], "x", 1, 1.5, True, None], ids=repr)
def test_json_of_the_wrong_top_level_type_answers_422(
    app: Flask, client: FlaskClient, world: WorldIds, value: Any
) -> None:
    api = Api(client, "staff_a")
    before = snapshot(app)
    for method, path in (
        ("POST", f"/communities/{world.a}/buildings"),
        ("PATCH", f"/buildings/{world.building_a}"),
        ("POST", "/users"),
    ):
        body = assert_problem(send_raw(api, method, path, json.dumps(value)), 422)
        assert "_schema" in body["errors"]
    assert snapshot(app) == before


def _door(**values: Any) -> dict[str, Any]:
    return {"name": "New door", "kind": "door", "zone": "building", **values}


def _window(**values: Any) -> dict[str, Any]:
    return {"days": [1, 2, 3], "start": "07:00", "end": "22:00", **values}


WRONG_TYPES: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/communities/{a}/buildings", {"name": 123}, "name"),
    ("POST", "/communities/{a}/buildings", {"name": ""}, "name"),
    ("PATCH", "/buildings/{building_a}", {"name": ["A1"]}, "name"),
    ("POST", "/communities/{a}/access-points", _door(open_ms="long"), "open_ms"),
    ("POST", "/communities/{a}/access-points", _door(open_ms=100), "open_ms"),
    ("PATCH", "/access-points/{door_a}", {"requires_depth": "yes"}, "requires_depth"),
    ("PATCH", "/access-points/{door_a}", {"requires_depth": 1}, "requires_depth"),
    ("POST", "/communities/{a}/access-points", _door(kind="portal"), "kind"),
    ("POST", "/communities/{a}/access-points", _door(zone=None), "zone"),
    ("PATCH", "/access-points/{door_a}", {"schedule": [_window(days=[0])]}, "schedule"),
    ("PATCH", "/access-points/{door_a}", {"schedule": [_window(days=[8])]}, "schedule"),
    ("PATCH", "/access-points/{door_a}", {"schedule": [_window(days=[])]}, "schedule"),
    ("PATCH", "/access-points/{door_a}", {"schedule": [_window(start="25:00")]}, "schedule"),
    ("PATCH", "/access-points/{door_a}", {"schedule": [_window(end="7:00")]}, "schedule"),
    ("PATCH", "/access-points/{door_a}", {"schedule": [_window(end="07:00")]}, "schedule"),
    ("PATCH", "/access-points/{door_a}", {"schedule": {"days": [1]}}, "schedule"),
    (
        "POST",
        "/communities/{a}/units",
        {"building_id": "{building_a}", "number": "9", "floor": "ground"},
        "floor",
    ),
    ("POST", "/communities/{a}/units", {"number": "9"}, "building_id"),
    ("POST", "/communities/{a}/devices", {"name": "D", "kind": "teleporter"}, "kind"),
    ("PATCH", "/devices/{device_a}", {"disabled": "no"}, "disabled"),
    (
        "POST",
        "/users",
        {
            "username": "two words",
            "password": "long-enough-pw",
            "role": "resident",
            "unit_id": "{unit_a}",
        },
        "username",
    ),
    (
        "POST",
        "/users",
        {"username": "shorty", "password": "short", "role": "resident", "unit_id": "{unit_a}"},
        "password",
    ),
    (
        "POST",
        "/users",
        {"username": "someone", "password": "long-enough-pw", "role": "emperor"},
        "role",
    ),
    ("PATCH", "/communities/{a}", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ("PATCH", "/communities/{a}", {"name": None}, "name"),
]


@pytest.mark.parametrize("case", WRONG_TYPES, ids=lambda c: f"{c[0]} {c[1]} {c[3]}")
def test_wrong_field_values_answer_422_naming_the_field(
    app: Flask, client: FlaskClient, world: WorldIds, case: tuple[str, str, dict[str, Any], str]
) -> None:
    method, path, body, field = case
    api = Api(client, "admin")
    before = snapshot(app)
    answer = getattr(api, method.lower())(world.fill(path), json=world.fill(body))
    problem = assert_problem(answer, 422)
    assert field in problem["errors"], problem
    assert snapshot(app) == before


def test_schedule_errors_point_at_the_window_and_member(
    client: FlaskClient, world: WorldIds
) -> None:
    api = Api(client, "staff_a")
    schedule = [_window(), _window(start="25:00"), _window(days=[0, 8]), _window(end="07:00")]
    errors = assert_problem(
        api.patch(f"/access-points/{world.door_a}", json={"schedule": schedule}), 422
    )["errors"]["schedule"]
    assert set(errors) == {"1", "2", "3"}
    assert "start" in errors["1"]
    assert set(errors["2"]["days"]) == {"0", "1"}
    assert errors["3"]["end"] == ["start and end must differ."]


FORBIDDEN_FIELDS: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/communities/{a}/buildings", {"name": "X", "community_id": "{b}"}, "community_id"),
    ("POST", "/communities/{a}/buildings", {"name": "X", "id": "bld_mine"}, "id"),
    (
        "POST",
        "/communities/{a}/buildings",
        {"name": "X", "created_at": "2020-01-01T00:00:00Z"},
        "created_at",
    ),
    ("PATCH", "/units/{unit_a}", {"community_id": "{b}"}, "community_id"),
    ("PATCH", "/units/{unit_a}", {"building_id": "{building_a}"}, "building_id"),
    ("PATCH", "/access-points/{door_a}", {"kind": "gate"}, "kind"),
    ("PATCH", "/access-points/{door_a}", {"community_id": "{b}"}, "community_id"),
    (
        "POST",
        "/communities/{a}/devices",
        {"name": "D", "kind": "door", "access_point_id": "{door_a}", "secret": "mine"},
        "secret",
    ),
    ("PATCH", "/devices/{device_a}", {"secret": "mine"}, "secret"),
    ("PATCH", "/devices/{device_a}", {"online": True}, "online"),
    ("PATCH", "/devices/{device_a}", {"firmware": "9.9"}, "firmware"),
    ("PATCH", "/users/{resident_a}", {"role": "admin"}, "role"),
    ("PATCH", "/users/{resident_a}", {"username": "renamed"}, "username"),
    (
        "POST",
        "/users",
        {
            "username": "someone",
            "password": "long-enough-pw",
            "role": "resident",
            "unit_id": "{unit_a}",
            "disabled": True,
        },
        "disabled",
    ),
    ("PATCH", "/communities/{a}", {"id": "com_mine"}, "id"),
    ("PATCH", "/communities/{a}", {"settings": {"face_tolerance": 0.4, "root": True}}, "settings"),
]


@pytest.mark.parametrize("case", FORBIDDEN_FIELDS, ids=lambda c: f"{c[0]} {c[1]} {c[3]}")
def test_fields_a_caller_may_not_set_answer_422_and_store_nothing(
    app: Flask, client: FlaskClient, world: WorldIds, case: tuple[str, str, dict[str, Any], str]
) -> None:
    method, path, body, field = case
    api = Api(client, "staff_a")
    before = snapshot(app)
    answer = getattr(api, method.lower())(world.fill(path), json=world.fill(body))
    errors = assert_problem(answer, 422)["errors"]
    assert field in errors
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/communities/{a}/buildings"),
        ("PATCH", "/buildings/{building_a}"),
        ("POST", "/users"),
        ("PATCH", "/devices/{device_a}"),
        ("POST", "/auth/token"),
    ],
)
@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("name=X&username=staff_a&password=" + PASSWORD, "application/x-www-form-urlencoded"),
        ('{"name": "X"}', "text/plain"),
        ('{"name": "X"}', "multipart/form-data; boundary=x"),
    ],
    ids=["form", "text", "multipart"],
)
def test_bodies_that_are_not_json_answer_415(
    app: Flask,
    client: FlaskClient,
    world: WorldIds,
    method: str,
    path: str,
    data: str,
    content_type: str,
) -> None:
    api = Api(client, "staff_a")
    before = snapshot(app)
    assert_problem(send_raw(api, method, world.fill(path), data, content_type), 415)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/communities/{a}/buildings", {"name": "x" * 81}, "name"),
        ("POST", "/communities/{a}/buildings", {"name": "x" * 100_000}, "name"),
        ("PATCH", "/units/{unit_a}", {"number": "9" * 41}, "number"),
        ("PATCH", "/users/{resident_a}", {"display_name": "x" * 81}, "display_name"),
        ("PATCH", "/users/{resident_a}", {"password": "x" * 257}, "password"),
        ("PATCH", "/communities/{a}", {"name": "x" * 121}, "name"),
    ],
)
def test_very_long_strings_answer_422(
    app: Flask,
    client: FlaskClient,
    world: WorldIds,
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    api = Api(client, "staff_a")
    before = snapshot(app)
    answer = getattr(api, method.lower())(world.fill(path), json=body)
    assert field in assert_problem(answer, 422)["errors"]
    assert snapshot(app) == before


def test_very_long_credentials_answer_422(client: FlaskClient, world: WorldIds) -> None:
    answer = client.post("/api/v1/auth/token", json={"username": "x" * 65, "password": "p"})
    assert "username" in assert_problem(answer, 422)["errors"]


@pytest.mark.parametrize(
    ("method", "path", "body", "name"),
    [
        ("POST", "/communities/{a}/buildings", {"name": "A1"}, "A1"),
        (
            "POST",
            "/communities/{a}/access-points",
            {"name": "A door", "kind": "gate", "zone": "perimeter"},
            "A door",
        ),
        ("POST", "/communities/{a}/units", {"building_id": "{building_a}", "number": "101"}, "101"),
        ("POST", "/communities", {"name": "Community B"}, "Community B"),
        ("PATCH", "/communities/{a}", {"name": "Community B"}, "Community B"),
        ("PATCH", "/buildings/{building_a}", {"name": "A2"}, "A2"),
        ("PATCH", "/access-points/{door_a}", {"name": "A gate"}, "A gate"),
        ("PATCH", "/units/{unit_a}", {"number": "102"}, "102"),
        (
            "POST",
            "/users",
            {
                "username": "staff_b",
                "password": "long-enough-pw",
                "role": "resident",
                "unit_id": "{unit_a}",
            },
            "staff_b",
        ),
    ],
)
def test_duplicate_names_answer_409_naming_the_duplicate(
    app: Flask,
    client: FlaskClient,
    world: WorldIds,
    method: str,
    path: str,
    body: dict[str, Any],
    name: str,
) -> None:
    api = Api(client, "admin")
    # Rows to collide with when renaming.
    assert api.post(f"/communities/{world.a}/buildings", json={"name": "A2"}).status_code == 201
    assert (
        api.post(
            f"/communities/{world.a}/units", json={"building_id": world.building_a, "number": "102"}
        ).status_code
        == 201
    )
    assert (
        api.post(
            f"/communities/{world.a}/access-points",
            json={"name": "A gate", "kind": "gate", "zone": "perimeter"},
        ).status_code
        == 201
    )
    before = snapshot(app)
    answer = getattr(api, method.lower())(world.fill(path), json=world.fill(body))
    problem = assert_problem(answer, 409)
    assert repr(name) in problem["detail"], problem["detail"]
    assert snapshot(app) == before


def test_names_are_unique_per_community_only(client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "staff_b")
    assert api.post(f"/communities/{world.b}/buildings", json={"name": "A1"}).status_code == 201
    assert (
        api.post(
            f"/communities/{world.b}/access-points",
            json={"name": "A door", "kind": "gate", "zone": "perimeter"},
        ).status_code
        == 201
    )


UNKNOWN_IDS: list[tuple[str, str, Any]] = [
    ("GET", "/communities/com_nope", None),
    ("PATCH", "/communities/com_nope", {"name": "X"}),
    ("GET", "/communities/com_nope/buildings", None),
    ("POST", "/communities/com_nope/buildings", {"name": "X"}),
    ("GET", "/communities/com_nope/units", None),
    ("POST", "/communities/com_nope/units", {"building_id": "{building_a}", "number": "1"}),
    ("GET", "/communities/com_nope/access-points", None),
    (
        "POST",
        "/communities/com_nope/access-points",
        {"name": "G", "kind": "gate", "zone": "perimeter"},
    ),
    ("GET", "/communities/com_nope/devices", None),
    (
        "POST",
        "/communities/com_nope/devices",
        {"name": "R", "kind": "rfid_reader", "zone": "perimeter"},
    ),
    ("GET", "/buildings/bld_nope", None),
    ("PATCH", "/buildings/bld_nope", {"name": "X"}),
    ("GET", "/units/unt_nope", None),
    ("PATCH", "/units/unt_nope", {"floor": 1}),
    ("GET", "/access-points/ap_nope", None),
    ("PATCH", "/access-points/ap_nope", {"open_ms": 1000}),
    ("GET", "/devices/dev_nope", None),
    ("PATCH", "/devices/dev_nope", {"name": "X"}),
    ("POST", "/devices/dev_nope/rotate-secret", None),
    ("GET", "/users/usr_nope", None),
    ("PATCH", "/users/usr_nope", {"display_name": "X"}),
    ("GET", "/buildings/" + "x" * 5000, None),
    ("GET", "/nothing-here", None),
]


@pytest.mark.parametrize("case", UNKNOWN_IDS, ids=lambda c: f"{c[0]} {c[1][:40]}")
def test_unknown_ids_answer_404(
    app: Flask, client: FlaskClient, world: WorldIds, case: tuple[str, str, Any]
) -> None:
    method, path, body = case
    api = Api(client, "admin")
    before = snapshot(app)
    answer = client.open(
        "/api/v1" + path, method=method, headers=api.headers, json=world.fill(body)
    )
    assert_problem(answer, 404)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/communities/{a}"),
        ("PUT", "/communities/{a}"),
        ("PATCH", "/communities"),
        ("PUT", "/buildings/{building_a}"),
        ("PUT", "/units/{unit_a}"),
        ("DELETE", "/access-points/{door_a}"),
        ("DELETE", "/devices/{device_a}"),
        ("GET", "/devices/{device_a}/rotate-secret"),
        ("GET", "/auth/token"),
        ("DELETE", "/users/{resident_a}"),
        ("POST", "/me"),
    ],
)
def test_wrong_method_answers_405(
    app: Flask, client: FlaskClient, world: WorldIds, method: str, path: str
) -> None:
    api = Api(client, "admin")
    before = snapshot(app)
    answer = client.open("/api/v1" + world.fill(path), method=method, headers=api.headers)
    assert_problem(answer, 405)
    assert "Allow" in answer.headers
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=abc", "page"),
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=1.5", "page"),
        ("page_size=100000", "page_size"),
        ("page_size=0", "page_size"),
        ("page_size=ten", "page_size"),
    ],
)
@pytest.mark.parametrize("path", ["/communities", "/communities/{a}/units", "/users"])
def test_bad_pagination_answers_422(
    client: FlaskClient, world: WorldIds, query: str, field: str, path: str
) -> None:
    api = Api(client, "staff_a")
    answer = api.get(f"{world.fill(path)}?{query}")
    assert field in assert_problem(answer, 422)["errors"]


def test_a_page_past_the_end_is_empty_however_far(client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "admin")
    for page in (3, 10**6, 10**20, 10**100):
        answer = api.get(f"/communities?page={page}&page_size=1")
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert answer.json == []
        assert json.loads(answer.headers["X-Pagination"])["total"] == 2


def test_unloadable_json_answers_400(client: FlaskClient, world: WorldIds) -> None:
    """Deep nesting and huge integer literals are valid JSON that Python refuses to load."""
    api = Api(client, "staff_a")
    path = f"/communities/{world.a}/units"
    deep = "[" * 100_000 + "]" * 100_000
    huge = json.dumps({"building_id": world.building_a, "number": "9"})[:-1] + ', "floor": '
    huge += "9" * 5000 + "}"
    for raw in (deep, huge):
        assert_problem(send_raw(api, "POST", path, raw), 400)


def test_nul_characters_are_refused_alike_on_every_backend(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    """PostgreSQL text cannot hold NUL and SQLite can: the boundary refuses it for both."""
    api = Api(client, "staff_a")
    before = snapshot(app)
    answer = api.post(f"/communities/{world.a}/buildings", json={"name": "A\x00B"})
    assert assert_problem(answer, 422)["errors"] == {"name": [NUL_CHARACTER]}
    search = api.get(f"/communities/{world.a}/people", query_string={"q": "王\x00"})
    assert assert_problem(search, 422)["errors"] == {"q": [NUL_CHARACTER]}
    assert_problem(api.get("/buildings/bld_%00"), 404)  # names no resource
    login = client.post("/api/v1/auth/token", json={"username": "staff\x00a", "password": PASSWORD})
    assert assert_problem(login, 422)["errors"] == {"username": [NUL_CHARACTER]}
    form = client.post("/login", data={"username": "staff\x00a", "password": PASSWORD})
    assert form.status_code == 422 and "NUL" in form.get_data(as_text=True)
    assert snapshot(app) == before


def test_empty_building_id_is_a_validation_error(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    api = Api(client, "staff_a")
    before = snapshot(app)
    for answer in (
        api.post(
            f"/communities/{world.a}/access-points",
            json={"name": "G", "kind": "gate", "zone": "perimeter", "building_id": ""},
        ),
        api.patch(f"/access-points/{world.door_a}", json={"building_id": ""}),
        api.patch(f"/access-points/{world.door_a}", json={"building_id": world.building_b}),
    ):
        assert "building_id" in assert_problem(answer, 422)["errors"]
    assert snapshot(app) == before


# Community settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"settings": {"face_tolerance": 0.9}}, "face_tolerance"),
        ({"settings": {"face_tolerance": 0.1}}, "face_tolerance"),
        ({"settings": {"face_tolerance": "tight"}}, "face_tolerance"),
        ({"settings": {"face_margin": -0.1}}, "face_margin"),
        ({"settings": {"pass_default_hours": 7 * 24 + 1}}, "pass_default_hours"),
        ({"settings": {"pass_default_hours": 49, "pass_max_days": 2}}, "pass_default_hours"),
        ({"settings": {"pass_max_days": 0}}, "pass_max_days"),
        ({"settings": {"snapshot_retention_days": 0}}, "snapshot_retention_days"),
        ({"settings": {"keep_snapshots": "yes"}}, "keep_snapshots"),
        ({"settings": {"no_such_setting": 1}}, "no_such_setting"),
    ],
)
def test_out_of_range_settings_answer_422(
    app: Flask, client: FlaskClient, world: WorldIds, changes: dict[str, Any], field: str
) -> None:
    api = Api(client, "staff_a")
    before = snapshot(app)
    errors = assert_problem(api.patch(f"/communities/{world.a}", json=changes), 422)["errors"]
    assert field in errors["settings"], errors
    assert snapshot(app) == before


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "UTC+8", "asia/shanghai ", "../etc"])
def test_bad_time_zone_answers_422(client: FlaskClient, world: WorldIds, zone: str) -> None:
    api = Api(client, "staff_a")
    answer = api.patch(f"/communities/{world.a}", json={"timezone": zone})
    assert "timezone" in assert_problem(answer, 422)["errors"]
    assert api.get(f"/communities/{world.a}").json["timezone"] == "Asia/Shanghai"


def test_partial_settings_patch_merges(app: Flask, client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "staff_a")
    path = f"/communities/{world.a}"
    assert api.patch(path, json={"settings": {"face_tolerance": 0.4}}).status_code == 200
    answer = api.patch(path, json={"settings": {"keep_snapshots": True}})
    assert answer.status_code == 200, answer.json
    settings = answer.json["settings"]
    assert settings["face_tolerance"] == 0.4
    assert settings["keep_snapshots"] is True
    assert settings["pass_max_days"] == 7  # a default, untouched
    assert api.get(path).json["settings"] == settings
    with in_app(app):
        stored = db.session.get(Community, world.a).settings
        assert stored["face_tolerance"] == 0.4
        assert stored["keep_snapshots"] is True


def test_partial_settings_are_checked_against_the_stored_ones(
    client: FlaskClient, world: WorldIds
) -> None:
    api = Api(client, "staff_a")
    path = f"/communities/{world.a}"
    assert api.patch(path, json={"settings": {"pass_max_days": 30}}).status_code == 200
    # 200 hours fit in 30 days, although not in the default 7.
    answer = api.patch(path, json={"settings": {"pass_default_hours": 200}})
    assert answer.status_code == 200, answer.json
    assert answer.json["settings"]["pass_default_hours"] == 200
    # Now shrinking the maximum below the stored default is refused.
    answer = api.patch(path, json={"settings": {"pass_max_days": 2}})
    assert "pass_default_hours" in assert_problem(answer, 422)["errors"]["settings"]
    assert api.get(path).json["settings"]["pass_max_days"] == 30


# Fuzz ------------------------------------------------------------------------------------------

# Every POST and PATCH that reads a body. (rotate-secret reads none.)
BODY_ENDPOINTS = [
    ("POST", "/auth/token"),
    ("POST", "/communities"),
    ("PATCH", "/communities/{a}"),
    ("POST", "/communities/{a}/buildings"),
    ("PATCH", "/buildings/{building_a}"),
    ("POST", "/communities/{a}/units"),
    ("PATCH", "/units/{unit_a}"),
    ("POST", "/communities/{a}/access-points"),
    ("PATCH", "/access-points/{door_a}"),
    ("POST", "/communities/{a}/devices"),
    ("PATCH", "/devices/{device_a}"),
    ("POST", "/users"),
    ("PATCH", "/users/{resident_a}"),
]


def _json(value: Any) -> tuple[str, str]:
    return json.dumps(value), JSON


# Bodies no endpoint may accept: each holds a field no endpoint knows or a value of a wrong
# type for every endpoint that knows the field.
JUNK: list[tuple[str, str]] = [
    _json([]),
    _json([{"name": "x"}]),
    _json("name"),
    _json(0),
    _json(-1.5),
    _json(True),
    _json(None),
    _json({"name": 123}),
    _json({"name": None}),
    _json({"name": ["x"]}),
    _json({"name": {"$gt": ""}}),
    _json({"name": "x" * 5000}),
    _json({"id": "com_x"}),
    _json({"community_id": "{b}"}),
    _json({"created_at": "2020-01-01T00:00:00Z"}),
    _json({"secret": "s"}),
    _json({"online": True}),
    _json({"": ""}),
    _json({"open_ms": "long"}),
    _json({"requires_depth": "yes"}),
    _json({"settings": "x"}),
    _json({"kind": "spaceship"}),
    _json({"zone": 5}),
    _json({"disabled": "false"}),
    _json({"password": 12345678901}),
    _json({"floor": 1e300}),
    _json({"schedule": [{"days": [8], "start": "25:00", "end": "25:00"}]}),
    ("{", JSON),
    ('{"name": "x",}', JSON),
    ("\udcff", JSON),
    ("NaN", JSON),
    ("[" * 50_000, JSON),
    ('{"floor": ' + "9" * 5000 + "}", JSON),
    ("name=x", "application/x-www-form-urlencoded"),
    ('{"name": "x"}', "text/plain"),
]
ALLOWED = {400, 404, 409, 415, 422}


@pytest.mark.parametrize(("user", "community"), [("admin", "a"), ("staff_a", "b")])
def test_junk_bodies_never_fail_the_server(
    app: Flask, client: FlaskClient, world: WorldIds, user: str, community: str
) -> None:
    api = Api(client, user)
    # staff_a aims at community B's rows: scope or the body must refuse, never a 500.
    ids = (
        world
        if community == "a"
        else WorldIds(
            **{
                **world.__dict__,
                "a": world.b,
                "building_a": world.building_b,
                "unit_a": world.unit_b,
                "door_a": world.door_b,
                "device_a": world.device_b,
                "resident_a": world.resident_b,
            }
        )
    )
    before = snapshot(app)
    for method, path in BODY_ENDPOINTS:
        for raw, content_type in JUNK:
            with in_app(app):
                limiter.reset()  # the token endpoint allows ten tries a minute
            data = ids.fill(raw).encode("utf-8", "surrogateescape")
            answer = send_raw(api, method, ids.fill(path), data, content_type)
            where = f"{method} {path} {raw[:60]!r} {content_type}"
            assert answer.status_code in ALLOWED, (where, answer.get_data(as_text=True))
            assert_problem(answer, answer.status_code)
    assert snapshot(app) == before


def test_problem_members_are_always_present(client: FlaskClient, world: WorldIds) -> None:
    """One of each status, checked member by member (``assert_problem`` does it everywhere)."""
    api = Api(client, "resident_a")
    answers = {
        400: send_raw(api, "POST", f"/communities/{world.a}/buildings", "{"),
        401: client.get("/api/v1/me"),
        403: api.post(f"/communities/{world.a}/buildings", json={"name": "X"}),
        404: api.get(f"/communities/{world.b}"),
        405: client.delete(f"/api/v1/communities/{world.a}", headers=api.headers),
        415: send_raw(
            api,
            "POST",
            f"/communities/{world.a}/buildings",
            "name=X",
            "application/x-www-form-urlencoded",
        ),
        422: api.get("/communities?page=abc"),
    }
    for status, answer in answers.items():
        body = assert_problem(answer, status)
        assert set(body) >= {"type", "title", "status", "detail", "instance"}
        assert (
            body["type"]
            == "/problems/"
            + {
                400: "bad-request",
                401: "unauthorized",
                403: "forbidden",
                404: "not-found",
                405: "method-not-allowed",
                415: "unsupported-media-type",
                422: "validation-error",
            }[status]
        )
        assert client.get(body["type"]).status_code == 200  # the type is documented


def test_building_of_an_access_point_stays_when_refused(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    api = Api(client, "staff_a")
    api.patch(f"/access-points/{world.door_a}", json={"building_id": world.building_b})
    with in_app(app):
        point = db.session.get(AccessPoint, world.door_a)
        assert point.building_id == world.building_a
        assert db.session.get(Building, world.building_b).community_id == world.b
