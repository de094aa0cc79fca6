"""Test data with sensible defaults, written straight to the database.

Use inside an application context (the ``ctx`` fixture); every helper commits.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient

from gatekeeper.vocabulary import AccessPointKind, DeviceKind, Zone
from server.core.auth import hash_password
from server.devices.service import set_secret
from server.extensions import db
from server.models import AccessPoint, Building, Community, Device, Unit, User, UserRole

PASSWORD = "correct-horse-battery"
_counter = itertools.count(1)


def _n() -> int:
    return next(_counter)


def _save(row: Any) -> Any:
    db.session.add(row)
    db.session.commit()
    return row


def community(name: str | None = None, **values: Any) -> Community:
    return _save(
        Community(name=name or f"Community {_n()}", timezone="Asia/Shanghai", settings={}, **values)
    )


def building(of: Community, name: str | None = None) -> Building:
    return _save(Building(community_id=of.id, name=name or f"Building {_n()}"))


def unit(of: Building, number: str | None = None) -> Unit:
    return _save(
        Unit(community_id=of.community_id, building_id=of.id, number=number or str(100 + _n()))
    )


def access_point(
    of: Community,
    *,
    kind: AccessPointKind = AccessPointKind.DOOR,
    zone: Zone = Zone.BUILDING,
    building_of: Building | None = None,
    **values: Any,
) -> AccessPoint:
    return _save(
        AccessPoint(
            community_id=of.id,
            name=values.pop("name", f"Door {_n()}"),
            kind=kind,
            zone=zone,
            building_id=building_of.id if building_of else None,
            **values,
        )
    )


def device(
    at: AccessPoint, *, kind: DeviceKind = DeviceKind.DOOR, secret: str | None = None
) -> tuple[Device, str]:
    row = Device(
        community_id=at.community_id,
        name=f"Device {_n()}",
        kind=kind,
        access_point_id=at.id,
        zone=at.zone,
    )
    plain = set_secret(row, secret)
    _save(row)
    return row, plain


def user(
    role: UserRole,
    *,
    communities: list[Community] = (),
    unit_of: Unit | None = None,
    username: str | None = None,
    password: str = PASSWORD,
) -> User:
    row = User(
        username=username or f"{role.value}{_n()}", role=role, password_hash=hash_password(password)
    )
    row.communities = list(communities)
    if unit_of is not None:
        row.unit_id = unit_of.id
    return _save(row)


@dataclass
class World:
    """Two communities, A and B, each with a building, a unit, a door, a device and people."""

    a: Community
    b: Community
    building_a: Building
    building_b: Building
    unit_a: Unit
    unit_b: Unit
    door_a: AccessPoint
    door_b: AccessPoint
    device_a: Device
    device_b: Device
    admin: User
    staff_a: User
    staff_b: User
    officer_a: User
    resident_a: User
    resident_b: User


def world() -> World:
    a, b = community("Community A"), community("Community B")
    building_a, building_b = building(a, "A1"), building(b, "B1")
    unit_a, unit_b = unit(building_a, "101"), unit(building_b, "101")
    door_a = access_point(a, name="A door", building_of=building_a)
    door_b = access_point(b, name="B door", building_of=building_b)
    return World(
        a=a,
        b=b,
        building_a=building_a,
        building_b=building_b,
        unit_a=unit_a,
        unit_b=unit_b,
        door_a=door_a,
        door_b=door_b,
        device_a=device(door_a)[0],
        device_b=device(door_b)[0],
        admin=user(UserRole.ADMIN, username="admin"),
        staff_a=user(UserRole.STAFF, communities=[a], username="staff_a"),
        staff_b=user(UserRole.STAFF, communities=[b], username="staff_b"),
        officer_a=user(UserRole.OFFICER, communities=[a], username="officer_a"),
        resident_a=user(UserRole.RESIDENT, unit_of=unit_a, username="resident_a"),
        resident_b=user(UserRole.RESIDENT, unit_of=unit_b, username="resident_b"),
    )


class Api:
    """A test client that sends a bearer token and JSON."""

    def __init__(self, client: FlaskClient, username: str, password: str = PASSWORD):
        answer = client.post(
            "/api/v1/auth/token", json={"username": username, "password": password}
        )
        assert answer.status_code == 201, answer.json
        self.client = client
        self.headers = {"Authorization": f"Bearer {answer.json['token']}"}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get("/api/v1" + path, headers=self.headers, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.client.post("/api/v1" + path, headers=self.headers, json=json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.client.patch("/api/v1" + path, headers=self.headers, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.client.delete("/api/v1" + path, headers=self.headers, **kwargs)
