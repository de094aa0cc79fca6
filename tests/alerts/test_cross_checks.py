"""The cross-checks against the real database, through the real verify path.

Cards and plates are checked by ``/api/v1/verify/card`` and ``/verify/plate`` as the
devices send them; a stranger's face and an elder's face go through ``decide`` (the path
``/verify/face`` ends in) without a real photo; tag reads go through the ingest as a
reader's MQTT message would. Time is frozen at each step.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from gatekeeper.vocabulary import (
    AccessPointKind,
    AlertType,
    CredentialType,
    DeviceKind,
    PersonRole,
    Reason,
    Severity,
    Zone,
)
from hardware.messages import EventMessage
from hardware.protocol import EventType
from hardware.topics import device_topic
from server.access.decision import Door, Presented, decide
from server.alerts import cross_checks
from server.extensions import db
from server.models import AccessEvent, Community, Device, DeviceEvent, Person, RfidTag, utcnow
from server.worker.ingest import DeviceIngest
from tests import factories
from tests.factories import Api
from tests.support.alerts import alerts

# Tuesday 2026-11-24 10:00 in Shanghai (UTC+8).
DAY = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
S = timedelta(seconds=1)
PLATE, CARD, ELDER_TAG = "浙A12345", "04C0FFEE", "E1DE5001"
SECRET = "device-secret-for-tests-0001"
_seq = itertools.count(1)


@dataclass(frozen=True)
class Site:
    community: str
    barrier: str  # the car barrier at the south gate
    south: str  # the pedestrian gate beside it (one gate with the barrier)
    north: str  # another perimeter gate
    barrier_device: str
    south_door: str
    north_door: str
    south_reader: str
    resident: str
    elder: str


@pytest.fixture
def site(app, published) -> Site:
    with app.app_context():
        world = factories.world()
        community = world.a

        def gate(name: str, kind: AccessPointKind = AccessPointKind.GATE):
            return factories.access_point(community, name=name, kind=kind, zone=Zone.PERIMETER)

        barrier, south, north = (
            gate("South barrier", AccessPointKind.BARRIER),
            gate("South gate"),
            gate("North gate"),
        )
        barrier_device = factories.device(barrier, kind=DeviceKind.BARRIER, secret=SECRET)[0]
        south_door = factories.device(south, secret=SECRET)[0]
        north_door = factories.device(north, secret=SECRET)[0]
        south_reader = factories.device(south, kind=DeviceKind.RFID_READER)[0]
        resident = factories.person(community, "王小明")
        factories.membership(resident, PersonRole.OWNER, unit_of=world.unit_a)
        factories.vehicle(resident, PLATE)
        factories.card(resident, CARD)
        elder = factories.person(community, "王老明")
        factories.membership(elder, PersonRole.ELDER, unit_of=world.unit_a)
        db.session.add(RfidTag(community_id=community.id, person_id=elder.id, epc=ELDER_TAG))
        community.settings = {"gate_groups": [[barrier.id, south.id]]}
        db.session.commit()
        return Site(
            community.id,
            barrier.id,
            south.id,
            north.id,
            barrier_device.id,
            south_door.id,
            north_door.id,
            south_reader.id,
            resident.id,
            elder.id,
        )


def settings(app, site: Site, **values) -> None:
    with app.app_context():
        community = db.session.get(Community, site.community)
        community.settings = {**community.settings, **values}
        db.session.commit()


def verify(client, device: str, path: str, body: dict) -> dict:
    answer = client.post(
        f"/api/v1/verify/{path}", json=body, headers={"Authorization": f"Bearer {device}.{SECRET}"}
    )
    assert answer.status_code == 200, answer.json
    return answer.json


def face(app, device: str, person: str | None = None) -> None:
    """A face at ``device``'s door: ``person``'s, or a stranger's (unknown_face)."""
    with app.app_context():
        door = Door.of(db.session.get(Device, device))
        if person is None:
            presented = Presented(
                CredentialType.FACE, unknown_reason=Reason.UNKNOWN_FACE, unknown_rule="face.unknown"
            )
        else:
            presented = Presented(CredentialType.FACE, person=db.session.get(Person, person))
        decide(door, presented)
        db.session.commit()


def at(offset: timedelta):
    return time_machine.travel(DAY + offset, tick=False)


# Plate against face -------------------------------------------------------------------------


def plate(client, site: Site) -> None:
    assert verify(client, site.barrier_device, "plate", {"plate": PLATE})["decision"] == "grant"


@pytest.mark.parametrize("face_first", [True, False])
def test_a_known_car_with_a_strangers_face_at_its_gate_raises_one_alert(
    app, client, site, face_first
) -> None:
    """The window's edge (60 s by default) on either side; the face at the pedestrian gate
    the community lists as one gate with the barrier."""
    if face_first:
        with at(timedelta(0)):
            face(app, site.south_door)
        with at(60 * S):
            plate(client, site)
    else:
        with at(timedelta(0)):
            plate(client, site)
        with at(60 * S):
            face(app, site.south_door)
    [alert] = alerts(app)
    assert (alert.type, alert.severity, alert.access_point_id) == (
        AlertType.PLATE_FACE_MISMATCH,
        Severity.MEDIUM,
        site.barrier,
    )
    with app.app_context():
        car = db.session.scalar(
            select(AccessEvent.id).where(AccessEvent.credential_type == CredentialType.PLATE)
        )
        stranger = db.session.scalar(
            select(AccessEvent.id).where(AccessEvent.reason == Reason.UNKNOWN_FACE.value)
        )
    assert alert.dedup_key == f"plate_face_mismatch:{car}"
    assert alert.evidence["plate_event_id"] == car
    assert alert.evidence["face_event_ids"] == [stranger]
    assert alert.evidence["person_id"] == site.resident
    assert "South barrier" in alert.summary and PLATE in alert.summary


def test_more_strangers_in_the_window_add_to_the_one_alert(app, client, site) -> None:
    with at(timedelta(0)):
        plate(client, site)
    with at(-30 * S):
        face(app, site.barrier_device)  # a face camera at the barrier itself counts too
    with at(61 * S):
        face(app, site.south_door)  # outside the window: not this car's
    with at(30 * S):
        face(app, site.south_door)
    [alert] = alerts(app)
    assert len(alert.evidence["face_event_ids"]) == 2


@pytest.mark.parametrize("face_first", [True, False])
def test_a_stranger_just_outside_the_window_or_at_another_gate_raises_nothing(
    app, client, site, face_first
) -> None:
    settings(app, site, plate_face_window_seconds=30)
    with at(timedelta(0)):
        face(app, site.north_door)  # another gate, at the same instant
        if face_first:
            face(app, site.south_door)
        else:
            plate(client, site)
    with at(31 * S):
        if face_first:
            plate(client, site)
        else:
            face(app, site.south_door)
    assert alerts(app) == []


# Card against the walk ----------------------------------------------------------------------


def card(client, device: str) -> None:
    assert verify(client, device, "card", {"uid": CARD})["decision"] == "grant"


def test_one_card_at_two_gates_sooner_than_the_walk_raises_one_alert(app, client, site) -> None:
    """``min_gate_seconds`` (60 by default) between two perimeter gates: 59 s alerts."""
    with at(timedelta(0)):
        card(client, site.north_door)
    with at(59 * S):
        card(client, site.south_door)
    [alert] = alerts(app)
    assert (alert.type, alert.severity, alert.access_point_id, alert.device_id) == (
        AlertType.IMPOSSIBLE_TRAVEL,
        Severity.HIGH,
        site.south,
        site.south_door,
    )
    assert alert.dedup_key == f"impossible_travel:{site.resident}"
    assert alert.evidence["access_point_ids"] == [site.north, site.south]
    assert len(alert.evidence["event_ids"]) == 2
    assert "王*明" in alert.summary and "王小明" not in alert.summary
    with at(70 * S):
        card(client, site.north_door)  # back again too soon: the same open alert grows
    [alert] = alerts(app)
    assert len(alert.evidence["event_ids"]) == 3


def test_a_walk_that_takes_the_time_or_one_gate_raises_nothing(app, client, site) -> None:
    with at(timedelta(0)):
        card(client, site.north_door)
    with at(60 * S):
        card(client, site.south_door)  # exactly the walk
    with at(61 * S):
        card(client, site.barrier_device)  # the barrier is one gate with the south gate
    assert alerts(app) == []


def test_the_communitys_table_sets_the_walk_between_two_points(app, client, site) -> None:
    settings(app, site, walk_seconds=[{"from": site.south, "to": site.north, "seconds": 300}])
    with at(timedelta(0)):
        card(client, site.north_door)
    with at(300 * S):
        card(client, site.south_door)
    assert alerts(app) == []
    with at(599 * S):
        card(client, site.north_door)
    assert [a.type for a in alerts(app)] == [AlertType.IMPOSSIBLE_TRAVEL]


def test_the_settings_are_validated(app, client, site) -> None:
    staff = Api(client, "staff_a")
    for bad in (
        {"walk_seconds": [{"from": site.south, "seconds": 10}]},
        {"walk_seconds": [{"from": site.south, "to": site.north, "seconds": 0}]},
        {"gate_groups": [[site.south]]},
        {"plate_face_window_seconds": 1},
        {"min_gate_seconds": -1},
    ):
        answer = staff.patch(f"/communities/{site.community}", json={"settings": bad})
        assert answer.status_code == 422, (bad, answer.json)
    answer = staff.patch(
        f"/communities/{site.community}",
        json={"settings": {"min_gate_seconds": 0, "tag_face_window_seconds": 60}},
    )
    assert answer.status_code == 200, answer.json
    walk = [{"from": site.south, "to": site.north, "seconds": 300}]
    answer = staff.patch(
        f"/communities/{site.community}", json={"settings": {"walk_seconds": walk}}
    )
    assert answer.status_code == 200, answer.json
    assert answer.json["settings"]["walk_seconds"] == walk


# Tag against face ---------------------------------------------------------------------------


def read_tag(app, site: Site) -> None:
    message = EventMessage(
        EventType.TAG_READ, next(_seq), utcnow(), {"tag": ELDER_TAG, "rssi": -48}
    )
    ingest = DeviceIngest(app)
    ingest.handle(device_topic(site.community, site.south_reader, "evt"), message.encode())
    assert ingest.stats["event"] == 1, ingest.stats


def judge(app) -> int:
    with app.app_context():
        raised = cross_checks.judge_tag_exits()
        db.session.commit()
        return raised


def test_an_elders_tag_out_with_no_face_raises_once_the_window_passed(app, site) -> None:
    with at(timedelta(0)):
        read_tag(app, site)
        assert judge(app) == 0
    with at(119 * S):
        assert judge(app) == 0  # the face may still come
    with at(120 * S):
        assert judge(app) == 1
    [alert] = alerts(app)
    assert (alert.type, alert.severity, alert.access_point_id, alert.device_id) == (
        AlertType.TAG_EXIT_WITHOUT_FACE,
        Severity.MEDIUM,
        site.south,
        site.south_reader,
    )
    with app.app_context():
        read = db.session.scalar(select(DeviceEvent.id))
    assert alert.evidence["device_event_ids"] == [read]
    assert alert.dedup_key == f"tag_exit_without_face:{site.elder}"
    assert "王*明" in alert.summary and "South gate" in alert.summary
    with at(180 * S):
        assert judge(app) == 0  # judged once


@pytest.mark.parametrize(("device", "offset"), [("south_door", -120), ("barrier_device", 120)])
def test_the_elders_face_at_that_gate_within_the_window_means_no_alert(
    app, site, device, offset
) -> None:
    with at(timedelta(0)):
        read_tag(app, site)
    with at(offset * S):
        face(app, getattr(site, device), site.elder)
    with at(10 * 60 * S):
        assert judge(app) == 0
    assert alerts(app) == []


@pytest.mark.parametrize(("device", "offset"), [("north_door", 0), ("south_door", 121)])
def test_a_face_at_another_gate_or_outside_the_window_does_not_count(
    app, site, device, offset
) -> None:
    with at(timedelta(0)):
        read_tag(app, site)
    with at(offset * S):
        face(app, getattr(site, device), site.elder)
        face(app, site.south_door)  # a stranger at the same gate is not the elder
    with at(10 * 60 * S):
        assert judge(app) == 1
    assert [a.type for a in alerts(app)] == [AlertType.TAG_EXIT_WITHOUT_FACE]
