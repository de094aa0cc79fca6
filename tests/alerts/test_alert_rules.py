"""The alert rules against the real database: wandering, not seen, patrol rounds, spoofing.

Tag reads go through the ingest as a reader's MQTT messages would; the worker's jobs are
called directly at frozen instants.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from gatekeeper.vocabulary import (
    AccessPointKind,
    AlertStatus,
    AlertType,
    CredentialType,
    Decision,
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
from server.alerts import rules as alert_rules
from server.extensions import db
from server.models import (
    AccessEvent,
    Alert,
    Community,
    Device,
    DeviceEvent,
    PatrolRoute,
    Person,
    RfidTag,
    utcnow,
)
from server.worker.ingest import DeviceIngest
from tests import factories
from tests.factories import Api
from tests.support.alerts import alerts

# Tuesday 2026-11-24 10:00 in Shanghai (UTC+8): daytime, school hours.
DAY = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
# The same Tuesday, 23:00 in Shanghai.
NIGHT = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)  # guardian_window_minutes' default
ELDER_TAG, CHILD_TAG, MUM_TAG, OTHER_TAG = "E1DE5001", "C41D0001", "0A0A0001", "FFFF0001"
GUARD_TAG = "9A4D0001"  # the patrol guard's (the ``checkpoints`` fixture)
_seq = itertools.count(1)


@dataclass(frozen=True)
class Site:
    community: str
    gate: str  # the perimeter access point
    gate_reader: str
    back_reader: str  # another perimeter reader, its own access point
    building_reader: str
    kindergarten_reader: str
    door: str  # a face terminal at the gate
    elder: str
    child: str
    mum: str  # the guardian of both
    other: str  # a resident with a tag, no risk


@pytest.fixture
def site(app, published) -> Site:
    """One community with readers at each zone, an elder, a child and their guardian.

    ``published`` keeps alert messages (MQTT after commit) in memory.
    """
    with app.app_context():
        world = factories.world()
        community = world.a
        gate = factories.access_point(
            community, name="North gate", kind=AccessPointKind.GATE, zone=Zone.PERIMETER
        )
        back = factories.access_point(
            community, name="Back gate", kind=AccessPointKind.GATE, zone=Zone.PERIMETER
        )
        school = factories.access_point(community, name="Kindergarten", zone=Zone.KINDERGARTEN)
        gate_reader = factories.device(gate, kind=DeviceKind.RFID_READER)[0]
        back_reader = factories.device(back, kind=DeviceKind.RFID_READER)[0]
        kindergarten_reader = factories.device(school, kind=DeviceKind.RFID_READER)[0]
        building_reader = factories.device(world.door_a, kind=DeviceKind.RFID_READER)[0]
        door = factories.device(gate, kind=DeviceKind.DOOR)[0]

        def person(name: str, role: PersonRole, tag: str, **values) -> Person:
            row = factories.person(community, name, **values)
            factories.membership(row, role, unit_of=world.unit_a)
            db.session.add(RfidTag(community_id=community.id, person_id=row.id, epc=tag))
            return row

        mum = person("王芳", PersonRole.OWNER, MUM_TAG)
        elder = person("王老明", PersonRole.ELDER, ELDER_TAG, wander_risk=True, lives_alone=True)
        child = person("王小宝", PersonRole.CHILD, CHILD_TAG)
        other = person("李四", PersonRole.RESIDENT, OTHER_TAG)
        elder.guardians = [mum]
        child.guardians = [mum]
        db.session.commit()
        return Site(
            community=community.id,
            gate=gate.id,
            gate_reader=gate_reader.id,
            back_reader=back_reader.id,
            building_reader=building_reader.id,
            kindergarten_reader=kindergarten_reader.id,
            door=door.id,
            elder=elder.id,
            child=child.id,
            mum=mum.id,
            other=other.id,
        )


def read_tag(app, site: Site, reader: str, tag: str) -> None:
    """The reader publishes a ``tag_read`` now (the frozen now); the ingest stores it."""
    message = EventMessage(EventType.TAG_READ, next(_seq), utcnow(), {"tag": tag, "rssi": -48})
    ingest = DeviceIngest(app)
    ingest.handle(device_topic(site.community, reader, "evt"), message.encode())
    assert ingest.stats["event"] == 1, ingest.stats


def judge(app) -> int:
    with app.app_context():
        raised = alert_rules.judge_wandering_reads()
        db.session.commit()
        return raised


def settings(app, site: Site, **values) -> None:
    with app.app_context():
        community = db.session.get(Community, site.community)
        community.settings = {**community.settings, **values}
        db.session.commit()


# Wandering ----------------------------------------------------------------------------------


def test_an_elder_out_of_the_perimeter_alone_raises_once_the_window_passed(app, site) -> None:
    with time_machine.travel(DAY, tick=False):
        read_tag(app, site, site.gate_reader, ELDER_TAG)
        assert judge(app) == 0  # a guardian may still follow
    with time_machine.travel(DAY + WINDOW - timedelta(seconds=1), tick=False):
        assert judge(app) == 0
    with time_machine.travel(DAY + WINDOW, tick=False):
        assert judge(app) == 1
    [alert] = alerts(app)
    assert (alert.type, alert.severity, alert.status) == (
        AlertType.ELDER_WANDERING,
        Severity.MEDIUM,
        AlertStatus.OPEN,
    )
    assert (alert.access_point_id, alert.device_id) == (site.gate, site.gate_reader)
    assert alert.dedup_key == f"wandering:{site.elder}"
    with app.app_context():
        event_id = db.session.scalar(select(DeviceEvent.id))
    assert alert.evidence["device_event_ids"] == [event_id]
    assert alert.evidence["person_id"] == site.elder
    assert alert.evidence["reader_device_ids"] == [site.gate_reader]
    assert "王*明" in alert.summary and "North gate" in alert.summary
    assert "王老明" not in alert.summary
    # Judged again by later runs: nothing new, the alert is not touched.
    updated = alert.updated_at
    with time_machine.travel(DAY + WINDOW + timedelta(minutes=1), tick=False):
        assert judge(app) == 0
    assert alerts(app)[0].updated_at == updated


def test_at_night_the_alert_is_high(app, site) -> None:
    with time_machine.travel(NIGHT, tick=False):
        read_tag(app, site, site.gate_reader, ELDER_TAG)
    with time_machine.travel(NIGHT + WINDOW, tick=False):
        assert judge(app) == 1
    [alert] = alerts(app)
    assert (alert.type, alert.severity) == (AlertType.ELDER_WANDERING, Severity.HIGH)


def test_a_guardian_at_the_same_reader_just_before_means_no_alert(app, site) -> None:
    with time_machine.travel(DAY - timedelta(minutes=3), tick=False):
        read_tag(app, site, site.gate_reader, MUM_TAG)
    with time_machine.travel(DAY, tick=False):
        read_tag(app, site, site.gate_reader, ELDER_TAG)
    with time_machine.travel(DAY + WINDOW + timedelta(minutes=1), tick=False):
        assert judge(app) == 0
    assert alerts(app) == []


def test_a_guardian_leaving_by_another_gate_does_not_count(app, site) -> None:
    with time_machine.travel(DAY, tick=False):
        read_tag(app, site, site.back_reader, MUM_TAG)
        read_tag(app, site, site.gate_reader, ELDER_TAG)
    with time_machine.travel(DAY + WINDOW, tick=False):
        assert judge(app) == 1
    assert [a.type for a in alerts(app)] == [AlertType.ELDER_WANDERING]


def test_a_guardians_face_at_the_same_exit_just_after_means_no_alert(app, site) -> None:
    with time_machine.travel(DAY, tick=False):
        read_tag(app, site, site.gate_reader, ELDER_TAG)
    with time_machine.travel(DAY + timedelta(minutes=2), tick=False), app.app_context():
        db.session.add(
            AccessEvent(
                community_id=site.community,
                occurred_at=utcnow(),
                access_point_id=site.gate,
                device_id=site.door,
                credential_type=CredentialType.FACE,
                decision=Decision.GRANT,
                reason=Reason.RESIDENT.value,
                person_id=site.mum,
            )
        )
        db.session.commit()
    with time_machine.travel(DAY + WINDOW, tick=False):
        assert judge(app) == 0
    assert alerts(app) == []


def test_a_strangers_face_or_a_remote_open_is_no_guardian(app, site) -> None:
    with time_machine.travel(DAY, tick=False):
        read_tag(app, site, site.gate_reader, ELDER_TAG)
        with app.app_context():
            common = {
                "community_id": site.community,
                "occurred_at": utcnow(),
                "access_point_id": site.gate,
                "decision": Decision.GRANT,
                "reason": Reason.RESIDENT.value,
            }
            db.session.add_all(
                [
                    AccessEvent(
                        credential_type=CredentialType.FACE, person_id=site.other, **common
                    ),
                    AccessEvent(
                        credential_type=CredentialType.REMOTE, person_id=site.mum, **common
                    ),
                ]
            )
            db.session.commit()
    with time_machine.travel(DAY + WINDOW, tick=False):
        assert judge(app) == 1


@pytest.mark.parametrize("where", ["building_reader", "gate_reader"])
def test_reads_the_rule_does_not_watch_stay_quiet(app, site, where) -> None:
    with time_machine.travel(DAY, tick=False):
        read_tag(app, site, getattr(site, where), OTHER_TAG)  # a resident without risk
        read_tag(app, site, site.gate_reader, CHILD_TAG)  # a child without the risk flag
        read_tag(app, site, site.building_reader, ELDER_TAG)  # the elder inside
        read_tag(app, site, site.gate_reader, "ABCDEF99")  # a tag nobody wears
    with time_machine.travel(DAY + WINDOW, tick=False):
        assert judge(app) == 0
    assert alerts(app) == []


def test_a_child_at_the_kindergarten_reader_in_school_hours_only(app, site) -> None:
    saturday = DAY + timedelta(days=4)
    evening = DAY + timedelta(hours=8)  # 18:00 in Shanghai
    for at in (saturday, evening):
        with time_machine.travel(at, tick=False):
            read_tag(app, site, site.kindergarten_reader, CHILD_TAG)
        with time_machine.travel(at + WINDOW, tick=False):
            assert judge(app) == 0
    with time_machine.travel(DAY, tick=False):
        read_tag(app, site, site.kindergarten_reader, CHILD_TAG)
        read_tag(app, site, site.kindergarten_reader, ELDER_TAG)  # grandpa visiting
    with time_machine.travel(DAY + WINDOW, tick=False):
        assert judge(app) == 1
    [alert] = alerts(app)
    assert (alert.type, alert.severity) == (AlertType.CHILD_WANDERING, Severity.MEDIUM)
    assert "kindergarten" in alert.summary


def test_one_open_alert_per_person_and_a_new_one_after_it_is_resolved(app, site) -> None:
    with time_machine.travel(DAY, tick=False):
        read_tag(app, site, site.gate_reader, ELDER_TAG)
    with time_machine.travel(DAY + timedelta(minutes=1), tick=False):
        read_tag(app, site, site.back_reader, ELDER_TAG)
    with time_machine.travel(DAY + timedelta(minutes=10), tick=False):
        assert judge(app) == 2  # one raised, then updated with the second read
        [alert] = alerts(app)
        assert len(alert.evidence["device_event_ids"]) == 2
        assert alert.evidence["reader_device_ids"] == [site.gate_reader, site.back_reader]
        with app.app_context():
            db.session.get(Alert, alert.id).status = AlertStatus.RESOLVED
            db.session.commit()
    with time_machine.travel(DAY + timedelta(minutes=11), tick=False):
        assert judge(app) == 0  # the reads already judged stay judged
    with time_machine.travel(DAY + timedelta(minutes=30), tick=False):
        read_tag(app, site, site.gate_reader, ELDER_TAG)  # out again
    with time_machine.travel(DAY + timedelta(minutes=40), tick=False):
        assert judge(app) == 1
    assert [a.status for a in alerts(app)] == [AlertStatus.RESOLVED, AlertStatus.OPEN]


def test_without_a_guardian_window_the_ingest_alerts_at_once(app, site) -> None:
    settings(app, site, guardian_window_minutes=0)
    with time_machine.travel(DAY, tick=False):
        read_tag(app, site, site.gate_reader, ELDER_TAG)
        [alert] = alerts(app)
        assert alert.type is AlertType.ELDER_WANDERING
        assert judge(app) == 0  # the job leaves it to the ingest


def test_a_disabled_tag_is_not_watched(app, site) -> None:
    with app.app_context():
        db.session.scalar(select(RfidTag).where(RfidTag.epc == ELDER_TAG)).disabled_at = utcnow()
        db.session.commit()
    with time_machine.travel(DAY, tick=False):
        read_tag(app, site, site.gate_reader, ELDER_TAG)
    with time_machine.travel(DAY + WINDOW, tick=False):
        assert judge(app) == 0


# Not seen -----------------------------------------------------------------------------------


def flag(app) -> int:
    with app.app_context():
        raised = alert_rules.flag_inactive_elders()
        db.session.commit()
        return raised


def test_an_elder_living_alone_not_seen_raises_once_per_absence(app, site) -> None:
    with time_machine.travel(DAY, tick=False):
        read_tag(app, site, site.building_reader, ELDER_TAG)
    with time_machine.travel(DAY + timedelta(hours=23, minutes=59), tick=False):
        assert flag(app) == 0
    with time_machine.travel(DAY + timedelta(hours=24), tick=False):
        assert flag(app) == 1
        assert flag(app) == 0
    [alert] = alerts(app, AlertType.ELDER_INACTIVE)
    assert alert.severity is Severity.HIGH and alert.evidence["person_id"] == site.elder
    assert alert.evidence["last_seen_at"] == DAY.isoformat()
    assert "2026-11-24 10:00" in alert.summary  # community time
    with app.app_context():
        db.session.get(Alert, alert.id).status = AlertStatus.RESOLVED
        db.session.commit()
    with time_machine.travel(DAY + timedelta(hours=30), tick=False):
        assert flag(app) == 0  # the same absence, even resolved
    # Seen again (a face at a door), then absent again: a new absence, a new alert.
    seen = DAY + timedelta(hours=31)
    with time_machine.travel(seen, tick=False), app.app_context():
        db.session.add(
            AccessEvent(
                community_id=site.community,
                occurred_at=utcnow(),
                access_point_id=site.gate,
                credential_type=CredentialType.FACE,
                decision=Decision.GRANT,
                reason=Reason.RESIDENT.value,
                person_id=site.elder,
            )
        )
        db.session.commit()
    with time_machine.travel(seen + timedelta(hours=12), tick=False):
        assert flag(app) == 0
    with time_machine.travel(seen + timedelta(hours=24), tick=False):
        assert flag(app) == 1
    assert len(alerts(app, AlertType.ELDER_INACTIVE)) == 2


def test_only_elders_who_live_alone_are_watched(app, site) -> None:
    with app.app_context():
        db.session.get(Person, site.elder).lives_alone = False
        db.session.get(Person, site.other).lives_alone = True  # not an elder
        db.session.commit()
    with time_machine.travel(utcnow() + timedelta(days=3), tick=False):
        assert flag(app) == 0


def test_an_elder_never_seen_counts_from_enrolment(app, site) -> None:
    with app.app_context():
        created = db.session.get(Person, site.elder).created_at
    settings(app, site, elder_inactive_hours=6)
    with time_machine.travel(created + timedelta(hours=6), tick=False):
        assert flag(app) == 1
    [alert] = alerts(app, AlertType.ELDER_INACTIVE)
    assert "never seen" in alert.summary


# Patrol -------------------------------------------------------------------------------------


@pytest.fixture
def checkpoints(app, site) -> list[str]:
    with app.app_context():
        community = db.session.get(Community, site.community)
        ids = []
        for name in ("Checkpoint A", "Checkpoint B"):
            point = factories.access_point(community, name=name, zone=Zone.PATROL_CHECKPOINT)
            reader = factories.device(point, kind=DeviceKind.RFID_READER)[0]
            reader.name = name
            ids.append(reader.id)
        # The guard who walks the rounds: only a guard's tag counts at a checkpoint.
        guard = factories.person(community, "保安老张")
        factories.membership(guard, PersonRole.WORKER)
        db.session.add(
            RfidTag(community_id=community.id, person_id=guard.id, epc=GUARD_TAG, guard=True)
        )
        db.session.commit()
        return ids


def patrol(app) -> int:
    with app.app_context():
        missed = alert_rules.judge_patrol_rounds()
        db.session.commit()
        return missed


def test_a_round_with_a_checkpoint_unvisited_raises_patrol_missed(app, site, checkpoints) -> None:
    start = DAY  # 10:00 local, a round boundary
    with time_machine.travel(start - timedelta(minutes=30), tick=False):
        route = Api(app.test_client(), "staff_a").post(
            f"/communities/{site.community}/patrol-routes",
            {"name": "Night walk", "checkpoint_device_ids": checkpoints, "round_minutes": 60},
        )
        assert route.status_code == 201, route.json
    route_id = route.json["id"]
    # 09:00-10:00: the round that ends first after the route was made; nobody walked.
    # 10:00-11:00: complete. 11:00-12:00: B is missed (A is seen at 11:50).
    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        read_tag(app, site, checkpoints[0], "9A4D0001")
        read_tag(app, site, checkpoints[1], "9A4D0001")
    with time_machine.travel(start + timedelta(minutes=50), tick=False):
        read_tag(app, site, checkpoints[0], "9A4D0001")
    with time_machine.travel(start + timedelta(hours=1, minutes=50), tick=False):
        read_tag(app, site, checkpoints[0], "9A4D0001")
    with time_machine.travel(start + timedelta(hours=2), tick=False):
        assert patrol(app) == 1  # 09:00-10:00; 11:00-12:00 waits for the grace
    [first] = alerts(app, AlertType.PATROL_MISSED)
    assert first.evidence["missed_device_ids"] == checkpoints
    with time_machine.travel(start + timedelta(hours=2, minutes=1), tick=False):
        assert patrol(app) == 1
        assert patrol(app) == 0  # each round is judged once
    [alert] = alerts(app, AlertType.PATROL_MISSED)
    assert alert.severity is Severity.MEDIUM
    rounds = alert.evidence["rounds"]
    assert [r["missed_device_ids"] for r in rounds] == [checkpoints, [checkpoints[1]]]
    assert rounds[1]["start"] == (start + timedelta(hours=1)).isoformat()
    assert "missed 1 of 2 checkpoints: Checkpoint B" in alert.summary
    assert "11:00" in alert.summary
    with app.app_context():
        route = db.session.get(PatrolRoute, route_id)
        assert route.checked_until == start + timedelta(hours=2)


def test_a_complete_round_raises_nothing_and_a_schedule_limits_rounds(
    app, site, checkpoints
) -> None:
    with app.app_context():
        db.session.add(
            PatrolRoute(
                community_id=site.community,
                name="Morning",
                checkpoint_device_ids=checkpoints,
                round_minutes=30,
                # Tuesdays 10:00-11:00 local only.
                schedule=[{"days": [2], "start": "10:00", "end": "11:00"}],
                created_at=DAY - timedelta(hours=5),
            )
        )
        db.session.commit()
    for minutes in (5, 20, 40, 59):
        with time_machine.travel(DAY + timedelta(minutes=minutes), tick=False):
            read_tag(app, site, checkpoints[minutes % 2], "9A4D0001")
    with time_machine.travel(DAY + timedelta(hours=8), tick=False):
        assert patrol(app) == 0
    assert alerts(app) == []


def test_patrol_routes_api(app, client, site, checkpoints) -> None:
    staff = Api(client, "staff_a")
    base = f"/communities/{site.community}/patrol-routes"
    bad = staff.post(
        base, {"name": "Bad", "checkpoint_device_ids": [checkpoints[0], site.gate_reader]}
    )
    assert bad.status_code == 422
    assert site.gate_reader in bad.json["errors"]["checkpoint_device_ids"][0]
    assert staff.post(base, {"name": "No checkpoints"}).status_code == 422
    twice = staff.post(base, {"name": "Twice", "checkpoint_device_ids": [checkpoints[0]] * 2})
    assert twice.status_code == 422
    with app.app_context():
        other = factories.access_point(
            db.session.get(Community, factories_community_b()),
            zone=Zone.PATROL_CHECKPOINT,
        )
        foreign = factories.device(other, kind=DeviceKind.RFID_READER)[0].id
    assert (
        staff.post(base, {"name": "Foreign", "checkpoint_device_ids": [foreign]}).status_code == 422
    )
    created = staff.post(
        base,
        {
            "name": "Night walk",
            "checkpoint_device_ids": checkpoints,
            "round_minutes": 45,
            "schedule": [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "22:00", "end": "06:00"}],
        },
    )
    assert created.status_code == 201, created.json
    route = created.json
    assert route["round_minutes"] == 45 and route["checked_until"] is None
    assert route["schedule"][0] == {"days": [1, 2, 3, 4, 5, 6, 7], "start": "22:00", "end": "06:00"}
    changed = staff.patch(f"/patrol-routes/{route['id']}", {"round_minutes": 60, "schedule": None})
    assert changed.status_code == 200 and changed.json["schedule"] is None
    assert staff.patch(f"/patrol-routes/{route['id']}", {"round_minutes": 2}).status_code == 422
    # Officers read, but change nothing; residents and other communities see nothing.
    officer = Api(client, "officer_a")
    assert [r["id"] for r in officer.get(base).json] == [route["id"]]
    assert officer.get(f"/patrol-routes/{route['id']}").status_code == 200
    assert officer.patch(f"/patrol-routes/{route['id']}", {"name": "x"}).status_code == 403
    assert officer.delete(f"/patrol-routes/{route['id']}").status_code == 403
    assert Api(client, "staff_b").get(f"/patrol-routes/{route['id']}").status_code == 404
    assert Api(client, "resident_a").get(f"/patrol-routes/{route['id']}").status_code == 404
    assert staff.delete(f"/patrol-routes/{route['id']}").status_code == 204
    assert staff.get(f"/patrol-routes/{route['id']}").status_code == 404


def factories_community_b() -> str:
    return db.session.scalar(select(Community.id).where(Community.name == "Community B"))


# Spoofing -----------------------------------------------------------------------------------


def spoof(app, site: Site) -> None:
    with app.app_context():
        device = db.session.get(Device, site.door)
        decide(
            Door.of(device),
            Presented(
                CredentialType.FACE,
                unknown_reason=Reason.SPOOF_SUSPECTED,
                unknown_rule="face.liveness",
            ),
        )
        db.session.commit()


def test_spoof_attempts_at_one_door_within_the_window_raise_one_alert(app, site) -> None:
    for minutes in (0, 4):
        with time_machine.travel(DAY + timedelta(minutes=minutes), tick=False):
            spoof(app, site)
    assert alerts(app) == []
    with time_machine.travel(DAY + timedelta(minutes=9), tick=False):
        spoof(app, site)
    [alert] = alerts(app)
    assert (alert.type, alert.severity, alert.access_point_id, alert.device_id) == (
        AlertType.SPOOF_ATTEMPT,
        Severity.HIGH,
        site.gate,
        site.door,
    )
    assert len(alert.evidence["event_ids"]) == 3
    with time_machine.travel(DAY + timedelta(minutes=10), tick=False):
        spoof(app, site)  # the open alert grows
    [alert] = alerts(app)
    assert len(alert.evidence["event_ids"]) == 4
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AccessEvent)) == 4


def test_spoof_attempts_spread_beyond_the_window_stay_quiet(app, site) -> None:
    settings(app, site, spoof_attempts=3, spoof_window_minutes=10)
    for minutes in (0, 6, 12, 18):
        with time_machine.travel(DAY + timedelta(minutes=minutes), tick=False):
            spoof(app, site)
    assert alerts(app) == []
