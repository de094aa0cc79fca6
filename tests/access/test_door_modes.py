"""Lockdowns and emergency releases through the API: what doors decide, what they are sent,
who may start them, and that they outlive the app."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from gatekeeper.vocabulary import AlertType, PersonRole, Severity
from hardware.messages import CommandMessage
from hardware.protocol import Command
from server import create_app
from server.extensions import db
from server.models import AccessEvent, AccessPoint, Alert, AuditEntry, DoorMode, Person, VisitorPass
from tests import factories
from tests.factories import Api
from tests.support.passes import NOW, pass_site
from tests.support.published import commands

CARD = "04C0FFEE"


@pytest.fixture
def site(app):
    site = pass_site(app)
    with app.app_context():
        factories.card(db.session.get(Person, site.resident_person), CARD)
        db.session.commit()
    return site


def card_at(client, credential: str, uid: str = CARD) -> dict:
    answer = client.post(
        "/api/v1/verify/card", json={"uid": uid}, headers={"Authorization": f"Bearer {credential}"}
    )
    assert answer.status_code == 200, answer.json
    return answer.json


def qr_at(client, credential: str, token: str) -> dict:
    answer = client.post(
        "/api/v1/verify/qr",
        json={"token": token},
        headers={"Authorization": f"Bearer {credential}"},
    )
    assert answer.status_code == 200, answer.json
    return answer.json


def start(client, username: str, community: str, **body) -> object:
    return Api(client, username).post(f"/communities/{community}/door-modes", json=body)


def sent(published) -> list[tuple[str, Command]]:
    """(device id, command) of every command published, in order."""
    return [
        (m.topic.split("/")[-2], CommandMessage.decode(m.payload).cmd) for m in commands(published)
    ]


@time_machine.travel(NOW, tick=False)
def test_a_building_lockdown_denies_a_card_a_pass_and_a_code_and_locks_its_doors(
    app, client, site, published
):
    guest = Api(client, "resident_a").post("/passes", json={"guest_name": "王小二"}).json
    code = Api(client, "resident_a").get("/me/code").json["token"]
    with app.app_context():
        building = db.session.get(AccessPoint, site.door).building_id
    answer = start(
        client,
        "staff_a",
        site.a,
        kind="lockdown",
        scope="building",
        building_id=building,
        reason="Suspect in building A1",
    )
    assert answer.status_code == 201, answer.json
    mode = answer.json
    assert (mode["kind"], mode["scope"], mode["active"]) == ("lockdown", "building", True)
    assert mode["exempt_roles"] == ["staff", "officer"]
    assert mode["started_at"] == NOW.isoformat()
    # The building's door is sent lock; the gate and the other building's door nothing.
    assert sent(published) == [(site.door_device, Command.LOCK)]
    published.clear()

    assert card_at(client, site.door_credential)["reason"] == "lockdown"
    assert qr_at(client, site.door_credential, guest["token"])["reason"] == "lockdown"
    assert qr_at(client, site.door_credential, code)["reason"] == "lockdown"
    opened = Api(client, "resident_a").post(f"/access-points/{site.door}/open")
    assert opened.status_code == 403 and opened.json["reason"] == "lockdown"
    # The shared gate is not in the building: the owner's card still opens it.
    assert card_at(client, site.gate_credential)["reason"] == "resident"
    assert sent(published) == [(site.gate_device, Command.OPEN)]
    with app.app_context():
        assert db.session.get(VisitorPass, guest["id"]).uses == 0  # the denial spent nothing
        rules = db.session.scalars(
            select(AccessEvent.rule).where(AccessEvent.reason == "lockdown")
        ).all()
        assert rules == ["door_mode.lockdown"] * 3
        audit = db.session.scalar(
            select(AuditEntry).where(AuditEntry.action == "door_mode.lockdown.start")
        )
        assert audit.details["reason"] == "Suspect in building A1"
    # Staff (named by default) still open it from the console.
    published.clear()
    assert Api(client, "staff_a").post(f"/access-points/{site.door}/open").status_code == 202
    assert sent(published) == [(site.door_device, Command.OPEN)]

    # Lifting sends nothing; the card opens again.
    published.clear()
    lifted = Api(client, "officer_a").post(f"/door-modes/{mode['id']}/lift")
    assert lifted.status_code == 200 and lifted.json["lifted_at"] == NOW.isoformat()
    assert sent(published) == []
    again = Api(client, "staff_a").post(f"/door-modes/{mode['id']}/lift")
    assert again.status_code == 409 and again.headers["Content-Type"] == "application/problem+json"
    assert card_at(client, site.door_credential)["reason"] == "resident"


@time_machine.travel(NOW, tick=False)
def test_a_community_lockdown_lets_the_roles_it_names_through(app, client, site, published):
    answer = start(
        client,
        "officer_a",
        site.a,
        kind="lockdown",
        scope="community",
        reason="Police operation",
        exempt_roles=["owner"],
    )
    assert answer.status_code == 201, answer.json
    doors = {device for device, command in sent(published) if command is Command.LOCK}
    assert {site.door_device, site.gate_device} <= doors
    assert card_at(client, site.door_credential)["reason"] == "resident"  # an owner
    # Staff are not named this time: their console's open and unlock_hold are refused.
    staff = Api(client, "staff_a")
    refused = staff.post(f"/access-points/{site.door}/open")
    assert refused.status_code == 403 and refused.json["reason"] == "lockdown"
    hold = staff.post(f"/access-points/{site.door}/commands", json={"command": "unlock_hold"})
    assert hold.status_code == 403
    lock = staff.post(f"/access-points/{site.door}/commands", json={"command": "lock"})
    assert lock.status_code == 202
    # The tenant's account (not named) is refused too.
    tenant = Api(client, "tenant_a").post(f"/access-points/{site.other_door}/open")
    assert tenant.status_code == 403 and tenant.json["reason"] == "lockdown"


def test_a_lockdown_survives_a_restart_of_the_app(app, client, site, workdir, database_url):
    with time_machine.travel(NOW, tick=False):
        answer = start(
            client,
            "staff_a",
            site.a,
            kind="lockdown",
            scope="access_point",
            access_point_ids=[site.door],
            reason="Gas leak",
        )
        assert answer.status_code == 201
    from tests.conftest import app_environment

    again = create_app(app_environment(workdir, database_url))
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        denied = card_at(again.test_client(), site.door_credential)
    assert denied["decision"] == "deny" and denied["reason"] == "lockdown"


@time_machine.travel(NOW, tick=False)
def test_an_emergency_release_holds_doors_open_and_alerts(app, client, site, published):
    answer = start(
        client,
        "staff_a",
        site.a,
        kind="emergency_release",
        scope="access_point",
        access_point_ids=[site.gate],
        reason="Fire in the car park",
    )
    assert answer.status_code == 201, answer.json
    assert answer.json["access_point_ids"] == [site.gate]
    assert sent(published) == [(site.gate_device, Command.UNLOCK_HOLD)]
    with app.app_context():
        alert = db.session.scalar(select(Alert).where(Alert.type == AlertType.EMERGENCY_RELEASE))
        assert alert.severity is Severity.CRITICAL
        assert alert.summary == "Emergency release of North gate: Fire in the car park"
        assert alert.evidence["door_mode_id"] == answer.json["id"]
        assert alert.access_point_id == site.gate  # one chosen door: the alert names it
    # Staff and officers see it among their alerts.
    assert [a["type"] for a in Api(client, "officer_a").get("/alerts").json] == [
        "emergency_release"
    ]
    assert "emergency_release" in [a["type"] for a in Api(client, "staff_a").get("/alerts").json]
    # A lockdown over the same door does not close it: the release holds it open.
    published.clear()
    start(client, "staff_a", site.a, kind="lockdown", scope="community", reason="Intruder")
    assert (site.gate_device, Command.LOCK) not in sent(published)
    assert (site.door_device, Command.LOCK) in sent(published)
    # Lifting the release locks the gate again.
    published.clear()
    lifted = Api(client, "officer_a").post(f"/door-modes/{answer.json['id']}/lift")
    assert lifted.status_code == 200
    assert sent(published) == [(site.gate_device, Command.LOCK)]


def other_device(site) -> str:
    return site.other_credential.split(".")[0]


@time_machine.travel(NOW, tick=False)
def test_an_emergency_release_over_two_chosen_doors_of_two_buildings(app, client, site, published):
    answer = start(
        client,
        "staff_a",
        site.a,
        kind="emergency_release",
        scope="access_point",
        access_point_ids=[site.other_door, site.door],
        reason="Fire on the second floor",
    )
    assert answer.status_code == 201, answer.json
    mode = answer.json
    assert (mode["scope"], sorted(mode["access_point_ids"])) == (
        "access_point",
        sorted([site.door, site.other_door]),
    )
    # Both doors (of buildings A1 and A2) are held open; the gate is sent nothing.
    assert sorted(sent(published)) == sorted(
        [(site.door_device, Command.UNLOCK_HOLD), (other_device(site), Command.UNLOCK_HOLD)]
    )
    with app.app_context():
        from server.access import doormodes
        from server.models import Device

        building_a1 = db.session.get(AccessPoint, site.door).building_id
        building_a2 = db.session.get(AccessPoint, site.other_door).building_id
        assert building_a1 != building_a2
        alert = db.session.scalar(select(Alert).where(Alert.type == AlertType.EMERGENCY_RELEASE))
        assert alert.access_point_id is None  # several doors: the evidence lists them
        assert sorted(alert.evidence["access_point_ids"]) == sorted([site.door, site.other_door])
        assert "A2 door" in alert.summary
        audit = db.session.scalar(
            select(AuditEntry).where(AuditEntry.action == "door_mode.emergency_release.start")
        )
        assert sorted(audit.details["access_point_ids"]) == sorted([site.door, site.other_door])
        # Both are held: each device back online is sent unlock_hold again, the gate nothing.
        held = {
            device: doormodes.on_device_online(db.session.get(Device, device))
            for device in (site.door_device, other_device(site), site.gate_device)
        }
        assert {d: c.command if c else None for d, c in held.items()} == {
            site.door_device: Command.UNLOCK_HOLD,
            other_device(site): Command.UNLOCK_HOLD,
            site.gate_device: None,
        }
        db.session.rollback()
    listed = Api(client, "officer_a").get(f"/communities/{site.a}/door-modes?active=true").json
    assert [(m["id"], sorted(m["access_point_ids"])) for m in listed] == [
        (mode["id"], sorted([site.door, site.other_door]))
    ]
    # One lift locks both doors again.
    published.clear()
    lifted = Api(client, "officer_a").post(f"/door-modes/{mode['id']}/lift")
    assert lifted.status_code == 200, lifted.json
    assert sorted(lifted.json["access_point_ids"]) == sorted([site.door, site.other_door])
    assert sorted(sent(published)) == sorted(
        [(site.door_device, Command.LOCK), (other_device(site), Command.LOCK)]
    )


@time_machine.travel(NOW, tick=False)
def test_a_lockdown_over_two_chosen_points_denies_at_both_and_not_at_a_third(
    app, client, site, published
):
    answer = start(
        client,
        "officer_a",
        site.a,
        kind="lockdown",
        scope="access_point",
        access_point_ids=[site.door, site.gate],
        reason="Suspect seen",
        exempt_roles=[],
    )
    assert answer.status_code == 201, answer.json
    assert sorted(sent(published)) == sorted(
        [(site.door_device, Command.LOCK), (site.gate_device, Command.LOCK)]
    )
    assert card_at(client, site.door_credential)["reason"] == "lockdown"
    assert card_at(client, site.gate_credential)["reason"] == "lockdown"
    # The third point, building A2's door, is not locked down: its tenant opens it.
    tenant = Api(client, "tenant_a")
    assert tenant.post(f"/access-points/{site.other_door}/open").status_code == 202
    refused = tenant.post(f"/access-points/{site.gate}/open")
    assert refused.status_code == 403 and refused.json["reason"] == "lockdown"
    published.clear()
    assert Api(client, "staff_a").post(f"/door-modes/{answer.json['id']}/lift").status_code == 200
    assert sent(published) == []  # lifting a lockdown sends nothing
    assert card_at(client, site.gate_credential)["reason"] == "resident"


@time_machine.travel(NOW, tick=False)
def test_a_mode_whose_chosen_points_are_all_gone_covers_nothing(app, client, site, published):
    answer = start(
        client,
        "staff_a",
        site.a,
        kind="lockdown",
        scope="access_point",
        access_point_ids=[site.gate],
        reason="Suspect seen",
    )
    assert answer.status_code == 201, answer.json
    with app.app_context():
        from server.models.doormodes import door_mode_access_points

        # What deleting the gate's row cascades to (its devices are kept here).
        db.session.execute(door_mode_access_points.delete())
        db.session.commit()
    assert card_at(client, site.door_credential)["reason"] == "resident"
    listed = Api(client, "staff_a").get(f"/communities/{site.a}/door-modes").json
    assert [(m["id"], m["access_point_ids"]) for m in listed] == [(answer.json["id"], [])]


@time_machine.travel(NOW, tick=False)
def test_who_may_start_and_lift(app, client, site, published):
    release = {"kind": "emergency_release", "scope": "community", "reason": "Fire"}
    refused = start(client, "resident_a", site.a, **release)
    assert refused.status_code == 403
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert start(client, "staff_b", site.a, **release).status_code == 404
    assert start(client, "staff_a", site.b, **release).status_code == 404
    mode = start(client, "staff_a", site.a, **release).json
    assert Api(client, "staff_b").post(f"/door-modes/{mode['id']}/lift").status_code == 404
    assert Api(client, "resident_a").post(f"/door-modes/{mode['id']}/lift").status_code == 404
    assert Api(client, "resident_a").get(f"/communities/{site.a}/door-modes").status_code == 404
    listed = Api(client, "officer_a").get(f"/communities/{site.a}/door-modes?active=true").json
    assert [m["id"] for m in listed] == [mode["id"]]
    assert Api(client, "staff_a").get(f"/communities/{site.a}/door-modes?active=false").json == []
    assert Api(client, "staff_b").get(f"/communities/{site.a}/door-modes").status_code == 404


@time_machine.travel(NOW, tick=False)
def test_bad_input_is_a_problem_and_stores_nothing(app, client, site, published):
    with app.app_context():
        b_building = db.session.get(AccessPoint, site.door_b).building_id
    cases = [
        (
            {"kind": "lockdown", "scope": "access_point", "access_point_ids": ["apt_nope"]},
            "access_point_ids",
        ),
        # One of another community among the community's own: nothing is started.
        (
            {
                "kind": "emergency_release",
                "scope": "access_point",
                "access_point_ids": [site.door, site.door_b],
            },
            "access_point_ids",
        ),
        ({"kind": "lockdown", "scope": "access_point", "access_point_ids": []}, "access_point_ids"),
        ({"kind": "lockdown", "scope": "access_point"}, "access_point_ids"),
        (
            {"kind": "lockdown", "scope": "access_point", "access_point_ids": [site.door] * 2},
            "access_point_ids",
        ),
        (
            {
                "kind": "lockdown",
                "scope": "access_point",
                "access_point_ids": [f"apt_{n}" for n in range(101)],
            },
            "access_point_ids",
        ),
        (
            {
                "kind": "lockdown",
                "scope": "access_point",
                "access_point_ids": [site.door],
                "building_id": b_building,
            },
            "building_id",
        ),
        ({"kind": "lockdown", "scope": "building", "building_id": b_building}, "building_id"),
        (
            {"kind": "lockdown", "scope": "community", "access_point_ids": [site.door]},
            "access_point_ids",
        ),
        ({"kind": "lockdown", "scope": "community", "reason": "   "}, "reason"),
        (
            {"kind": "emergency_release", "scope": "community", "exempt_roles": ["owner"]},
            "exempt_roles",
        ),
    ]
    staff = Api(client, "staff_a")  # one token: the token endpoint is rate-limited
    for body, field in cases:
        answer = staff.post(f"/communities/{site.a}/door-modes", json={"reason": "Test", **body})
        assert answer.status_code == 422, (body, answer.json)
        assert field in answer.json["errors"], (body, answer.json)
        assert answer.headers["Content-Type"] == "application/problem+json"
    wrong_role = start(
        client,
        "staff_a",
        site.a,
        kind="lockdown",
        scope="community",
        reason="x",
        exempt_roles=["janitor"],
    )
    assert wrong_role.status_code == 422
    with app.app_context():
        assert db.session.scalars(select(DoorMode)).all() == []
    assert published == []


@time_machine.travel(NOW, tick=False)
def test_a_worker_named_by_the_lockdown_passes(app, client, site, published):
    with app.app_context():
        from server.models import WorkerPermit

        worker = factories.person(site.a, "李师傅")
        factories.membership(worker, PersonRole.WORKER)
        permit = WorkerPermit(
            community_id=site.a,
            person_id=worker.id,
            tag="repair",
            valid_from=NOW - timedelta(days=1),
            valid_until=NOW + timedelta(days=1),
        )
        permit.access_points = [db.session.get(AccessPoint, site.door)]
        db.session.add(permit)
        factories.card(worker, "04BEEF01")
        db.session.commit()
    start(
        client,
        "staff_a",
        site.a,
        kind="lockdown",
        scope="community",
        reason="x",
        exempt_roles=["worker"],
    )
    assert card_at(client, site.door_credential, "04BEEF01")["reason"] == "worker"
    assert card_at(client, site.door_credential)["reason"] == "lockdown"


def test_a_face_is_denied_lockdown_and_no_open_is_sent(app, client, published) -> None:
    from tests.support.faces import enrol, frame

    secret = "face-door-secret-for-lockdowns"
    with app.app_context():
        w = factories.world(door_secret=secret)
        db.session.get(AccessPoint, w.door_a.id).requires_depth = False
        obama = factories.person(w.a, "奥巴马")
        factories.membership(obama, PersonRole.RESIDENT, unit_of=w.unit_a)
        enrol(w.a.id, obama.id, "obama.jpg")
        db.session.commit()
        a, door, device = w.a.id, w.door_a.id, w.device_a.id
        db.session.remove()

    def face() -> dict:
        answer = client.post(
            "/api/v1/verify/face",
            data={"image": (io.BytesIO(frame("obama2.jpg")), "frame.jpg")},
            content_type="multipart/form-data",
            headers={"Authorization": f"Bearer {device}.{secret}"},
        )
        assert answer.status_code == 200, answer.json
        return answer.json

    with time_machine.travel(NOW, tick=False):
        started = start(
            client,
            "staff_a",
            a,
            kind="lockdown",
            scope="access_point",
            access_point_ids=[door],
            reason="Intruder",
        )
        assert started.status_code == 201, started.json
        published.clear()
        answer = face()
        assert (answer["decision"], answer["reason"]) == ("deny", "lockdown")
        assert answer["subject"]["kind"] == "resident"  # who it was is still recorded
        assert published == []
        Api(client, "staff_a").post(f"/door-modes/{started.json['id']}/lift")
        assert face()["reason"] == "resident"
