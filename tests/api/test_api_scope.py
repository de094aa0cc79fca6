"""Scope rules of the management API: who sees and changes what (``server.core.scope``).

Out of scope answers 404 (ids cannot be probed); visible but read-only answers 403. Every
refused request must leave the database exactly as it was.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gatekeeper.vocabulary import Zone
from server.extensions import db
from server.models import Building, Unit, User, utcnow
from tests import factories
from tests.factories import Api
from tests.support.api import WorldIds, assert_problem, in_app, snapshot

# Everything of community B, read and changed. Bodies are valid, so only scope can refuse.
B_REQUESTS: list[tuple[str, str, Any]] = [
    ("GET", "/communities/{b}", None),
    ("PATCH", "/communities/{b}", {"name": "Renamed"}),
    ("PATCH", "/communities/{b}", {"settings": {"face_tolerance": 0.4}}),
    ("GET", "/communities/{b}/buildings", None),
    ("GET", "/communities/{b}/units", None),
    ("GET", "/communities/{b}/access-points", None),
    ("GET", "/communities/{b}/devices", None),
    ("POST", "/communities/{b}/buildings", {"name": "B2"}),
    ("POST", "/communities/{b}/units", {"building_id": "{building_b}", "number": "909"}),
    (
        "POST",
        "/communities/{b}/access-points",
        {"name": "B gate", "kind": "gate", "zone": "perimeter"},
    ),
    (
        "POST",
        "/communities/{b}/devices",
        {"name": "B reader", "kind": "rfid_reader", "zone": "perimeter"},
    ),
    (
        "POST",
        "/communities/{b}/devices",
        {"name": "B terminal", "kind": "door", "access_point_id": "{door_b}"},
    ),
    ("GET", "/buildings/{building_b}", None),
    ("PATCH", "/buildings/{building_b}", {"name": "B9"}),
    ("GET", "/units/{unit_b}", None),
    ("PATCH", "/units/{unit_b}", {"number": "909", "floor": 9}),
    ("GET", "/access-points/{door_b}", None),
    ("PATCH", "/access-points/{door_b}", {"open_ms": 9000, "requires_depth": True}),
    ("GET", "/devices/{device_b}", None),
    ("PATCH", "/devices/{device_b}", {"disabled": True}),
    ("PATCH", "/devices/{device_b}", {"name": "Renamed"}),
    ("POST", "/devices/{device_b}/rotate-secret", None),
    ("GET", "/users/{resident_b}", None),
    ("PATCH", "/users/{resident_b}", {"disabled": True}),
    ("PATCH", "/users/{staff_b}", {"display_name": "Mallory"}),
]

# Reads of community A's structure (visible to staff and officers of A).
A_READS: list[tuple[str, str]] = [
    ("/communities/{a}", "{a}"),
    ("/buildings/{building_a}", "{building_a}"),
    ("/units/{unit_a}", "{unit_a}"),
    ("/access-points/{door_a}", "{door_a}"),
    ("/devices/{device_a}", "{device_a}"),
]
A_LISTS: list[tuple[str, str]] = [
    ("/communities/{a}/buildings", "{building_a}"),
    ("/communities/{a}/units", "{unit_a}"),
    ("/communities/{a}/access-points", "{door_a}"),
    ("/communities/{a}/devices", "{device_a}"),
]

# Writes in community A (valid bodies): staff may, officers and residents may not.
A_WRITES: list[tuple[str, str, Any]] = [
    ("PATCH", "/communities/{a}", {"name": "Renamed"}),
    ("PATCH", "/communities/{a}", {"settings": {"keep_snapshots": True}}),
    ("POST", "/communities/{a}/buildings", {"name": "A2"}),
    ("POST", "/communities/{a}/units", {"building_id": "{building_a}", "number": "909"}),
    (
        "POST",
        "/communities/{a}/access-points",
        {"name": "A gate", "kind": "gate", "zone": "perimeter"},
    ),
    (
        "POST",
        "/communities/{a}/devices",
        {"name": "A reader", "kind": "rfid_reader", "zone": "perimeter"},
    ),
    ("PATCH", "/buildings/{building_a}", {"name": "A9"}),
    ("PATCH", "/units/{unit_a}", {"floor": 3}),
    ("PATCH", "/access-points/{door_a}", {"open_ms": 9000}),
    ("PATCH", "/devices/{device_a}", {"disabled": True}),
    ("POST", "/devices/{device_a}/rotate-secret", None),
]


def send(api: Api, world: WorldIds, method: str, path: str, body: Any = None) -> Any:
    path = world.fill(path)
    if method == "GET":
        return api.get(path)
    return getattr(api, method.lower())(path, json=world.fill(body))


def ids_of(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [row["id"] for row in response.json]


def success_status(method: str, path: str) -> int:
    """What the API answers a permitted request: 201 for a new resource, 200 otherwise."""
    return 201 if method == "POST" and not path.endswith("/rotate-secret") else 200


def _case_id(case: tuple[Any, ...]) -> str:
    return f"{case[0]} {case[1]}"


def assert_refused(
    app: Flask,
    client: FlaskClient,
    world: WorldIds,
    username: str,
    case: tuple[str, str, Any],
    status: int,
) -> dict[str, Any]:
    """``username`` sends ``case``: refused with ``status``, the database untouched; the problem."""
    api = Api(client, username)  # signing in writes to the database: before the snapshot
    before = snapshot(app)
    body = assert_problem(send(api, world, *case), status)
    assert snapshot(app) == before
    return body


def assert_sees_structure_of_a(api: Api, world: WorldIds) -> None:
    """``api``'s user lists and reads community A's buildings, units, doors and devices."""
    for path, expected in A_LISTS:
        assert ids_of(api.get(world.fill(path))) == [world.fill(expected)], path
    for path, expected in A_READS:
        answer = api.get(world.fill(path))
        assert answer.status_code == 200, path
        assert answer.json["id"] == world.fill(expected)


# Staff -----------------------------------------------------------------------------------------


def test_staff_lists_only_their_communities(client: FlaskClient, world: WorldIds) -> None:
    assert ids_of(Api(client, "staff_a").get("/communities")) == [world.a]
    assert ids_of(Api(client, "staff_b").get("/communities")) == [world.b]


@pytest.mark.parametrize("username", ["staff_a", "officer_a", "resident_a"])
@pytest.mark.parametrize("case", B_REQUESTS, ids=_case_id)
def test_a_user_of_a_finds_nothing_of_b(
    app: Flask, client: FlaskClient, world: WorldIds, username: str, case: tuple[str, str, Any]
) -> None:
    assert_refused(app, client, world, username, case, 404)


@pytest.mark.parametrize("case", B_REQUESTS, ids=_case_id)
def test_staff_of_b_reaches_the_same_requests(
    client: FlaskClient, world: WorldIds, case: tuple[str, str, Any]
) -> None:
    """The 404s above come from scope, not from the requests themselves."""
    answer = send(Api(client, "staff_b"), world, *case)
    assert answer.status_code == success_status(*case[:2]), answer.get_data(as_text=True)


def test_staff_sees_their_community_structure(client: FlaskClient, world: WorldIds) -> None:
    assert_sees_structure_of_a(Api(client, "staff_a"), world)


# Officers --------------------------------------------------------------------------------------


def test_officer_reads_the_communities_they_cover(client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "officer_a")
    assert ids_of(api.get("/communities")) == [world.a]
    assert_sees_structure_of_a(api, world)


@pytest.mark.parametrize("case", A_WRITES, ids=_case_id)
def test_officer_cannot_change_anything(
    app: Flask, client: FlaskClient, world: WorldIds, case: tuple[str, str, Any]
) -> None:
    body = assert_refused(app, client, world, "officer_a", case, 403)
    assert "officer" in body["detail"]


@pytest.mark.parametrize("case", A_WRITES, ids=_case_id)
def test_staff_may_make_the_writes_officers_may_not(
    client: FlaskClient, world: WorldIds, case: tuple[str, str, Any]
) -> None:
    answer = send(Api(client, "staff_a"), world, *case)
    assert answer.status_code == success_status(*case[:2]), answer.get_data(as_text=True)


# Residents -------------------------------------------------------------------------------------


@pytest.fixture
def more_of_a(app: Flask, world: WorldIds) -> dict[str, str]:
    """A second building in A and other units, none of them resident_a's."""
    with in_app(app):
        building_a = db.session.get(Building, world.building_a)
        a2 = factories.building(building_a.community, "A2")
        neighbour = factories.unit(building_a, "102")
        across = factories.unit(a2, "201")
        return {"building_a2": a2.id, "neighbour": neighbour.id, "across": across.id}


def test_resident_sees_only_their_community_building_and_unit(
    client: FlaskClient, world: WorldIds, more_of_a: dict[str, str]
) -> None:
    api = Api(client, "resident_a")
    assert ids_of(api.get("/communities")) == [world.a]
    assert ids_of(api.get(f"/communities/{world.a}/buildings")) == [world.building_a]
    assert ids_of(api.get(f"/communities/{world.a}/units")) == [world.unit_a]
    for path in (
        f"/communities/{world.a}",
        f"/buildings/{world.building_a}",
        f"/units/{world.unit_a}",
    ):
        assert api.get(path).status_code == 200, path
    for path in (
        f"/buildings/{more_of_a['building_a2']}",
        f"/units/{more_of_a['neighbour']}",
        f"/units/{more_of_a['across']}",
    ):
        assert_problem(api.get(path), 404)


def test_resident_sees_their_doors_but_no_devices(
    app: Flask, client: FlaskClient, world: WorldIds, more_of_a: dict[str, str]
) -> None:
    """Residents see the doors they use (their building's, the shared gates) and no device."""
    with in_app(app):
        community = db.session.get(Building, world.building_a).community
        gate = factories.access_point(community, name="Gate", zone=Zone.PERIMETER)
        other = factories.access_point(
            community,
            name="A2 door",
            building_of=db.session.get(Building, more_of_a["building_a2"]),
        )
        gate_id, other_id = gate.id, other.id
    api = Api(client, "resident_a")
    assert sorted(ids_of(api.get(f"/communities/{world.a}/access-points"))) == sorted(
        [world.door_a, gate_id]
    )
    assert api.get(f"/access-points/{world.door_a}").status_code == 200
    assert_problem(api.get(f"/access-points/{other_id}"), 404)
    assert ids_of(api.get(f"/communities/{world.a}/devices")) == []
    assert_problem(api.get(f"/devices/{world.device_a}"), 404)


# Writes on what a resident can see: the community, their building, unit and doors.
RESIDENT_VISIBLE_WRITES = [case for case in A_WRITES if "{device_a}" not in case[1]]
# Writes on what they cannot see in their own community: devices.
RESIDENT_HIDDEN_WRITES = [case for case in A_WRITES if case not in RESIDENT_VISIBLE_WRITES]


@pytest.mark.parametrize("case", RESIDENT_VISIBLE_WRITES, ids=_case_id)
def test_resident_cannot_change_what_they_see(
    app: Flask, client: FlaskClient, world: WorldIds, case: tuple[str, str, Any]
) -> None:
    body = assert_refused(app, client, world, "resident_a", case, 403)
    assert "resident" in body["detail"]


@pytest.mark.parametrize("case", RESIDENT_HIDDEN_WRITES, ids=_case_id)
def test_resident_cannot_reach_devices(
    app: Flask, client: FlaskClient, world: WorldIds, case: tuple[str, str, Any]
) -> None:
    assert_refused(app, client, world, "resident_a", case, 404)


# Admin -----------------------------------------------------------------------------------------


def test_admin_sees_both_communities(client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "admin")
    assert sorted(ids_of(api.get("/communities"))) == sorted([world.a, world.b])
    assert ids_of(api.get(f"/communities/{world.b}/devices")) == [world.device_b]
    assert api.get(f"/units/{world.unit_b}").status_code == 200
    assert len(ids_of(api.get("/users"))) == 6


# Users -----------------------------------------------------------------------------------------


def usernames(response: Any) -> set[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return {row["username"] for row in response.json}


def test_staff_lists_the_accounts_of_their_communities(
    client: FlaskClient, world: WorldIds
) -> None:
    assert usernames(Api(client, "staff_a").get("/users")) == {"staff_a", "officer_a", "resident_a"}
    assert usernames(Api(client, "staff_b").get("/users")) == {"staff_b", "resident_b"}


def test_staff_cannot_read_accounts_of_other_communities(
    client: FlaskClient, world: WorldIds
) -> None:
    api = Api(client, "staff_a")
    for user in (world.resident_b, world.staff_b, world.admin):
        assert_problem(api.get(f"/users/{user}"), 404)
    assert api.get(f"/users/{world.resident_a}").json["username"] == "resident_a"


@pytest.mark.parametrize("role", ["staff", "admin", "officer"])
def test_staff_cannot_create_privileged_accounts(
    app: Flask, client: FlaskClient, world: WorldIds, role: str
) -> None:
    api = Api(client, "staff_a")
    before = snapshot(app)
    body = {"username": f"new_{role}", "password": "long-enough-pw", "role": role}
    if role != "admin":
        body["community_ids"] = [world.a]
    assert_problem(api.post("/users", json=body), 403)
    assert snapshot(app) == before


def test_staff_cannot_create_a_resident_of_another_community(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    api = Api(client, "staff_a")
    before = snapshot(app)
    answer = api.post(
        "/users",
        json={
            "username": "intruder",
            "password": "long-enough-pw",
            "role": "resident",
            "unit_id": world.unit_b,
        },
    )
    body = assert_problem(answer, 422)
    assert "unit_id" in body["errors"]
    assert snapshot(app) == before


def test_staff_creates_a_resident_of_their_community(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    answer = Api(client, "staff_a").post(
        "/users",
        json={
            "username": "new_resident",
            "password": "long-enough-pw",
            "role": "resident",
            "unit_id": world.unit_a,
        },
    )
    assert answer.status_code == 201, answer.json
    assert answer.json["unit_id"] == world.unit_a
    with in_app(app):
        stored = db.session.get(User, answer.json["id"])
        assert stored.unit_id == world.unit_a
        assert db.session.get(Unit, world.unit_a).community_id == world.a


@pytest.fixture
def neighbours(app: Flask, world: WorldIds) -> dict[str, str]:
    """Unit 102 next to resident_a's 101, the person who lives there, and one who left it."""
    with in_app(app):
        building_a = db.session.get(Building, world.building_a)
        unit_102 = factories.unit(building_a, "102")
        lives_there = factories.person(world.a, "住102")
        factories.membership(lives_there, unit_of=unit_102)
        left = factories.person(world.a, "搬走了")
        factories.membership(left, unit_of=unit_102, valid_until=utcnow() - timedelta(days=1))
        return {"unit_102": unit_102.id, "lives_there": lives_there.id, "left": left.id}


def _resident_account(unit_id: str, person_id: str) -> dict[str, str]:
    return {
        "username": "bound_resident",
        "password": "long-enough-pw",
        "role": "resident",
        "unit_id": unit_id,
        "person_id": person_id,
    }


@pytest.mark.parametrize(
    ("unit", "person"),
    [
        ("unit_a", "lives_there"),  # the person of 102 on an account of 101
        ("unit_102", "left"),  # a membership of 102 that has ended
    ],
)
def test_a_resident_account_binds_only_a_person_of_its_unit(
    app: Flask,
    client: FlaskClient,
    world: WorldIds,
    neighbours: dict[str, str],
    unit: str,
    person: str,
) -> None:
    unit_id = world.unit_a if unit == "unit_a" else neighbours[unit]
    staff = Api(client, "staff_a")
    before = snapshot(app)
    answer = staff.post("/users", json=_resident_account(unit_id, neighbours[person]))
    body = assert_problem(answer, 422)
    assert {"unit_id", "person_id"} <= set(body["errors"]), body
    assert snapshot(app) == before


def test_a_resident_account_binds_a_person_of_its_unit(
    client: FlaskClient, world: WorldIds, neighbours: dict[str, str]
) -> None:
    answer = Api(client, "staff_a").post(
        "/users", json=_resident_account(neighbours["unit_102"], neighbours["lives_there"])
    )
    assert answer.status_code == 201, answer.json
    assert (answer.json["unit_id"], answer.json["person_id"]) == (
        neighbours["unit_102"],
        neighbours["lives_there"],
    )


def test_staff_changes_residents_but_not_other_staff(client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "staff_a")
    assert api.patch(f"/users/{world.resident_a}", json={"disabled": True}).json["disabled"]
    assert_problem(api.patch(f"/users/{world.officer_a}", json={"display_name": "X"}), 403)


def test_resident_reads_only_their_own_account(client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "resident_a")
    assert api.get("/me").json["id"] == world.resident_a
    assert api.get(f"/users/{world.resident_a}").json["username"] == "resident_a"
    assert usernames(api.get("/users")) == {"resident_a"}
    for other in (world.staff_a, world.officer_a, world.resident_b, world.admin):
        assert_problem(api.get(f"/users/{other}"), 404)


def test_resident_renames_themselves_but_cannot_disable_themselves(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    api = Api(client, "resident_a")
    answer = api.patch(f"/users/{world.resident_a}", json={"display_name": "Ann"})
    assert answer.status_code == 200, answer.json
    assert answer.json["display_name"] == "Ann"
    before = snapshot(app)
    assert_problem(api.patch(f"/users/{world.resident_a}", json={"disabled": True}), 403)
    assert_problem(api.patch(f"/users/{world.resident_a}", json={"community_ids": [world.a]}), 403)
    assert snapshot(app) == before
    with in_app(app):
        user = db.session.get(User, world.resident_a)
        assert user.display_name == "Ann"
        assert not user.disabled
