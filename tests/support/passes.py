"""A community for pass tests: residents with accounts, a tenant, doors with known secrets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import time_machine
from flask import Flask

from gatekeeper.vocabulary import AccessPointKind, DeviceKind, PersonRole, Zone
from server.devices.service import set_secret
from server.extensions import db
from server.models import Community, Device, Person, User, UserRole
from tests import factories

DOOR_SECRET = "door-secret-for-pass-tests"
GATE_SECRET = "gate-secret-for-pass-tests"
OTHER_SECRET = "other-door-secret-for-passes"
B_SECRET = "community-b-door-secret-pass"
OWNER_PLATE = "浙B82345"  # the owner 王小明's car, with ``add_barrier``
# The tenant's lease: all of November 2026 (UTC).
LEASE_START = datetime(2026, 11, 1, tzinfo=UTC)
LEASE_END = datetime(2026, 12, 1, tzinfo=UTC)
# "Now" in the pass tests: 16:30 in Shanghai on 21 November 2026, inside the tenant's lease.
NOW = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[time_machine.Traveller]:
    """The clock stopped at ``NOW`` for the test (registered in ``tests/conftest.py``)."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@dataclass(frozen=True)
class PassSite:
    """Ids and device credentials (``<device_id>.<secret>``) of the pass test community."""

    a: str
    b: str
    unit_a: str
    unit_a2: str
    unit_b: str
    door: str  # building A1's door (the resident's)
    gate: str  # the perimeter gate of A
    other_door: str  # building A2's door
    door_b: str  # community B's door
    door_device: str
    gate_device: str
    door_credential: str
    gate_credential: str
    other_credential: str
    b_credential: str
    resident_person: str
    tenant_person: str


def _person(community_id: str, name: str, unit_id: str, role: PersonRole) -> Person:
    person = factories.person(community_id, name)
    factories.membership(person, role, unit_of=unit_id)
    return person


def build_pass_site() -> PassSite:
    """Inside an app context: ``factories.world()`` plus what passes need.

    ``resident_a`` (unit A1-101) is linked to the owner 王小明; ``tenant_a`` (password
    ``factories.PASSWORD``) rents unit A2-201 for November 2026; A has a perimeter gate;
    every device's secret is known.
    """
    w = factories.world()
    building_a2 = factories.building(w.a, "A2")
    unit_a2 = factories.unit(building_a2, "201")
    gate = factories.access_point(
        w.a, name="North gate", kind=AccessPointKind.GATE, zone=Zone.PERIMETER
    )
    other_door = factories.access_point(w.a, name="A2 door", building_of=building_a2)
    gate_device, _ = factories.device(gate, kind=DeviceKind.DOOR)
    other_device, _ = factories.device(other_door)
    door_device = db.session.get(Device, w.device_a.id)
    door_b = db.session.get(Device, w.device_b.id)
    for device, secret in (
        (door_device, DOOR_SECRET),
        (gate_device, GATE_SECRET),
        (other_device, OTHER_SECRET),
        (door_b, B_SECRET),
    ):
        set_secret(device, secret)
    owner = _person(w.a.id, "王小明", w.unit_a.id, PersonRole.OWNER)
    tenant = _person(w.a.id, "张伟", unit_a2.id, PersonRole.TENANT)
    factories.lease(tenant, unit_a2, starts_at=LEASE_START, ends_at=LEASE_END)
    db.session.get(User, w.resident_a.id).person_id = owner.id
    tenant_user = factories.user(UserRole.RESIDENT, unit_of=unit_a2, username="tenant_a")
    tenant_user.person_id = tenant.id
    resident_b = _person(w.b.id, "李华", w.unit_b.id, PersonRole.RESIDENT)
    db.session.get(User, w.resident_b.id).person_id = resident_b.id
    db.session.commit()
    return PassSite(
        a=w.a.id,
        b=w.b.id,
        unit_a=w.unit_a.id,
        unit_a2=unit_a2.id,
        unit_b=w.unit_b.id,
        door=w.door_a.id,
        gate=gate.id,
        other_door=other_door.id,
        door_b=w.door_b.id,
        door_device=door_device.id,
        gate_device=gate_device.id,
        door_credential=f"{door_device.id}.{DOOR_SECRET}",
        gate_credential=f"{gate_device.id}.{GATE_SECRET}",
        other_credential=f"{other_device.id}.{OTHER_SECRET}",
        b_credential=f"{door_b.id}.{B_SECRET}",
        resident_person=owner.id,
        tenant_person=tenant.id,
    )


def pass_site(app: Flask) -> PassSite:
    """``build_pass_site()`` in an app context of its own (for a test's ``site`` fixture)."""
    with app.app_context():
        built = build_pass_site()
        db.session.remove()
    return built


@dataclass(frozen=True)
class BarrierIds:
    """Community A's barrier: the access point, its device and credential, the owner's car."""

    point: str
    device: str
    credential: str
    owner_car: str


def add_barrier(site: PassSite, secret: str, owner_plate: str = OWNER_PLATE) -> BarrierIds:
    """Inside an app context, after ``build_pass_site()``: a perimeter barrier "South barrier"
    in community A whose device has ``secret``, and the owner 王小明's car; committed."""
    community = db.session.get(Community, site.a)
    point = factories.access_point(
        community, name="South barrier", kind=AccessPointKind.BARRIER, zone=Zone.PERIMETER
    )
    device, _ = factories.device(point, kind=DeviceKind.BARRIER, secret=secret)
    car = factories.vehicle(site.resident_person, owner_plate)
    return BarrierIds(point.id, device.id, f"{device.id}.{secret}", car.id)
