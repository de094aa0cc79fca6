"""Test data with sensible defaults, written straight to the database.

Use inside an application context (the ``ctx`` fixture); every helper commits. Rows are
passed as rows or, where a test holds only ids (``tests.support.api.WorldIds``), as ids;
the defaults are overridden by keyword.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask.testing import FlaskClient

from gatekeeper.vocabulary import AccessPointKind, DeviceKind, PersonRole, Zone
from server.core.auth import hash_password
from server.devices.service import set_secret
from server.extensions import db
from server.models import (
    AccessPoint,
    Building,
    Card,
    Community,
    Device,
    Lease,
    Membership,
    Person,
    Unit,
    User,
    UserRole,
    Vehicle,
    VisitorPass,
    utcnow,
)

PASSWORD = "correct-horse-battery"
_counter = itertools.count(1)
_Row = TypeVar("_Row")


def _n() -> int:
    return next(_counter)


def _save(row: Any) -> Any:
    db.session.add(row)
    db.session.commit()
    return row


def _id(row: Any) -> str:
    """The id of a row, or the id itself (tests often hold only ids, e.g. ``WorldIds``)."""
    return row if isinstance(row, str) else row.id


def _row(model: type[_Row], row: _Row | str) -> _Row:
    """The row itself, or the row of ``model`` with that id."""
    if isinstance(row, model):
        return row
    found = db.session.get(model, row)
    assert found is not None, f"no {model.__name__} {row!r}"
    return found


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


def person(of: Community | str, name: str | None = None, **values: Any) -> Person:
    """A person of community ``of`` (no membership: add one with :func:`membership`)."""
    return _save(Person(community_id=_id(of), name=name or f"Person {_n()}", **values))


def membership(
    of: Person | str,
    role: PersonRole = PersonRole.RESIDENT,
    *,
    unit_of: Unit | str | None = None,
    **values: Any,
) -> Membership:
    """``of``'s membership of its community in ``role``, of ``unit_of`` when given."""
    who = _row(Person, of)
    return _save(
        Membership(
            community_id=who.community_id,
            person_id=who.id,
            unit_id=_id(unit_of) if unit_of is not None else None,
            role=role,
            **values,
        )
    )


def lease(
    of: Person | str,
    unit_of: Unit | str,
    *,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    **values: Any,
) -> Lease:
    """``of`` rents ``unit_of``: from a day ago to 30 days ahead unless told otherwise."""
    who = _row(Person, of)
    now = utcnow()
    return _save(
        Lease(
            community_id=who.community_id,
            person_id=who.id,
            unit_id=_id(unit_of),
            starts_at=starts_at or now - timedelta(days=1),
            ends_at=ends_at or now + timedelta(days=30),
            **values,
        )
    )


def card(of: Person | str, uid: str | None = None, **values: Any) -> Card:
    """An IC card of ``of`` (``uid``: upper-case hex)."""
    who = _row(Person, of)
    return _save(
        Card(community_id=who.community_id, person_id=who.id, uid=uid or f"04{_n():06X}", **values)
    )


def vehicle(of: Person | str, plate: str | None = None, **values: Any) -> Vehicle:
    """A registered car of ``of`` (``plate``: normalised, e.g. ``浙A12345``)."""
    who = _row(Person, of)
    return _save(
        Vehicle(
            community_id=who.community_id,
            person_id=who.id,
            plate=plate or f"浙A{_n() % 100_000:05d}",
            **values,
        )
    )


def visitor_pass(
    unit_of: Unit | str,
    *,
    access_points: Iterable[AccessPoint | str] = (),
    guest_name: str = "访客",
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    **values: Any,
) -> VisitorPass:
    """A visitor pass of ``unit_of`` for ``access_points``: from an hour ago to an hour ahead,
    one use, unless told otherwise."""
    home = _row(Unit, unit_of)
    now = utcnow()
    return _save(
        VisitorPass(
            community_id=home.community_id,
            unit_id=home.id,
            guest_name=guest_name,
            valid_from=valid_from or now - timedelta(hours=1),
            valid_until=valid_until or now + timedelta(hours=1),
            access_points=[_row(AccessPoint, point) for point in access_points],
            **values,
        )
    )


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


def world(*, door_secret: str | None = None) -> World:
    """Communities A and B; ``door_secret``: the secret of A's door device (else a new one)."""
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
        device_a=device(door_a, secret=door_secret)[0],
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
