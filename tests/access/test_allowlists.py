"""Offline allowlists (docs/protocol.md section 6, "Allowlists"): built from the online
policy, signed, published as deltas and retained full lists when a change touches them, and
served to devices over HTTP."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask

from gatekeeper import allowlist as signed
from gatekeeper.holidays import HolidayEffect
from gatekeeper.vocabulary import PersonRole
from hardware.messages import format_ts
from hardware.topics import allowlist_delta_topic, allowlist_topic
from server.access import allowlists
from server.core import crypto
from server.core.messaging import OutgoingMessage
from server.extensions import db
from server.models import (
    AccessPoint,
    Card,
    Consent,
    Device,
    FaceTemplate,
    Holiday,
    Person,
    WorkerPermit,
)
from server.models.people import WorkerTag
from server.passes import keys as passkeys
from server.people.service import FACE_PURPOSE
from tests import factories
from tests.factories import Api
from tests.support.api import assert_problem
from tests.support.passes import LEASE_END, LEASE_START, NOW, PassSite, pass_site

CARD = "04C0FFEE"
TENANT_CARD = "04BEEF01"
VECTOR = [round(0.01 * i - 0.5, 2) for i in range(128)]
pytestmark = pytest.mark.usefixtures("frozen")


@pytest.fixture
def site(app: Flask) -> PassSite:
    site = pass_site(app)
    with app.app_context():
        factories.card(db.session.get(Person, site.resident_person), CARD)
        factories.card(db.session.get(Person, site.tenant_person), TENANT_CARD)
        db.session.commit()
    return site


def device_of(credential: str) -> str:
    return credential.split(".")[0]


def key_set(app: Flask) -> dict[int, bytes]:
    with app.app_context():
        return {key.key_id: key.public_key for key in passkeys.public_keys()}


def run_job(app: Flask, *, everything: bool = False) -> int:
    """The leader's job, as the worker runs it (one transaction)."""
    with app.app_context():
        changed = allowlists.publish_changes(everything=everything)
        db.session.commit()
        db.session.remove()
        return changed


def messages(published: list[OutgoingMessage], topic: str, app: Flask) -> list[dict[str, Any]]:
    """The bodies published on ``topic``, each checked against the key set."""
    keys = key_set(app)
    found = []
    for message in published:
        if message.topic == topic:
            body = json.loads(message.payload)
            signed.verify(body, keys)
            found.append(body)
    return found


def full(published, app, site_a: str, device: str) -> dict[str, Any]:
    [body] = messages(published, allowlist_topic(site_a, device), app)[-1:]
    assert [m.retain for m in published if m.topic == allowlist_topic(site_a, device)][-1]
    assert body["kind"] == "full" and body["device_id"] == device
    return body


def deltas(published, app, site_a: str, device: str) -> list[dict[str, Any]]:
    found = messages(published, allowlist_delta_topic(site_a, device), app)
    assert not any(m.retain for m in published if m.topic.endswith("/delta"))
    return found


def entry(body: dict[str, Any], pid: str) -> dict[str, Any] | None:
    entries = body["entries"] if body["kind"] == "full" else body["upsert"]
    return next((e for e in entries if e["pid"] == pid), None)


def test_lists_follow_the_online_policy(app, site, published) -> None:
    assert run_job(app, everything=True) >= 4
    door = full(published, app, site.a, site.door_device)
    assert (door["v"], door["version"], door["access_point_id"]) == (1, 1, site.door)
    assert door["issued_at"] == format_ts(NOW)
    assert (door["timezone"], door["open_ms"], door["mode"], door["enc"]) == (
        "Asia/Shanghai",
        5000,
        None,
        None,
    )
    assert [e["pid"] for e in door["entries"]] == sorted(e["pid"] for e in door["entries"])
    owner = entry(door, site.resident_person)
    assert owner == {
        "pid": site.resident_person,
        "name": "王*明",
        "role": "owner",
        "grant": "resident",
        "windows": [{"from": None, "until": None}],
        "schedule": None,
        "cards": [CARD],
        "code_serials": [],
        "faces": [],
    }
    assert entry(door, site.tenant_person) is None  # rents in building A2
    # A2's door and the shared gate: the tenant, whose window ends with the lease.
    other = full(published, app, site.a, device_of(site.other_credential))
    tenant = entry(other, site.tenant_person)
    assert tenant is not None and entry(other, site.resident_person) is None
    assert (tenant["role"], tenant["grant"], tenant["cards"]) == ("tenant", "tenant", [TENANT_CARD])
    assert tenant["windows"] == [{"from": format_ts(LEASE_START), "until": format_ts(LEASE_END)}]
    gate = full(published, app, site.a, site.gate_device)
    assert {e["pid"] for e in gate["entries"]} == {site.resident_person, site.tenant_person}
    # Community B's device gets B's list only.
    b_list = full(published, app, site.b, device_of(site.b_credential))
    assert b_list["community_id"] == site.b
    assert site.resident_person not in {e["pid"] for e in b_list["entries"]}

    # Nothing changed: the job publishes nothing; a verify at the door changes nothing.
    published.clear()
    answer = app.test_client().post(
        "/api/v1/verify/card",
        json={"uid": CARD},
        headers={"Authorization": f"Bearer {site.door_credential}"},
    )
    assert answer.json["decision"] == "grant"
    assert run_job(app) == 0
    assert not [m for m in published if "allowlist" in m.topic]


def test_suspended_moved_out_and_ended_people_are_left_out(app, site, published) -> None:
    with app.app_context():
        gone = factories.person(site.a, "赵六", status="suspended")
        factories.membership(gone, PersonRole.RESIDENT, unit_of=site.unit_a)
        past = factories.person(site.a, "钱七")
        factories.membership(
            past, PersonRole.RESIDENT, unit_of=site.unit_a, valid_until=NOW - timedelta(days=1)
        )
        future = factories.person(site.a, "孙八", valid_from=NOW + timedelta(days=3))
        factories.membership(future, PersonRole.RESIDENT, unit_of=site.unit_a)
        factories.card(future, "04AA0001", valid_from=NOW + timedelta(days=5))
        ids = gone.id, past.id, future.id
        db.session.commit()
    run_job(app, everything=True)
    door = full(published, app, site.a, site.door_device)
    assert entry(door, ids[0]) is None and entry(door, ids[1]) is None
    later = entry(door, ids[2])
    assert later is not None
    assert later["windows"] == [{"from": format_ts(NOW + timedelta(days=3)), "until": None}]
    assert later["cards"] == []  # not valid yet: listed when it starts
    published.clear()
    with time_machine.travel(NOW + timedelta(days=5, seconds=1), tick=False):
        assert run_job(app) >= 1  # the card's start was the list's refresh time
    [change] = deltas(published, app, site.a, site.door_device)
    assert entry(change, ids[2])["cards"] == ["04AA0001"]


def test_a_disabled_card_leaves_the_list_by_a_delta(app, client, site, published) -> None:
    run_job(app, everything=True)
    published.clear()
    with app.app_context():
        card_id = db.session.query(Card.id).filter_by(uid=CARD).scalar()
    answer = Api(client, "staff_a").patch(f"/cards/{card_id}", json={"disabled": True})
    assert answer.status_code == 200, answer.json
    assert run_job(app) == 2  # the owner's door and the gate
    for device in (site.door_device, site.gate_device):
        [change] = deltas(published, app, site.a, device)
        assert (change["from_version"], change["version"], change["remove"]) == (1, 2, [])
        assert [e["pid"] for e in change["upsert"]] == [site.resident_person]
        assert change["upsert"][0]["cards"] == []
        assert change["header"]["mode"] is None and change["enc"] is None
        assert full(published, app, site.a, device)["version"] == 2
    assert not deltas(published, app, site.a, device_of(site.other_credential))

    # Moving out removes the entry.
    published.clear()
    answer = Api(client, "staff_a").delete(f"/people/{site.resident_person}")
    assert answer.status_code in (200, 204), answer.get_data(as_text=True)
    run_job(app)
    [change] = deltas(published, app, site.a, site.door_device)
    assert (change["from_version"], change["remove"], change["upsert"]) == (
        2,
        [site.resident_person],
        [],
    )


def test_a_workers_permit_gives_its_points_its_hours_and_dates(app, site, published) -> None:
    hours = [{"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}]
    with app.app_context():
        worker = factories.person(site.a, "周师傅")
        factories.membership(worker, PersonRole.WORKER)
        factories.card(worker, "04CAFE01")
        door = db.session.get(AccessPoint, site.door)
        db.session.add(
            WorkerPermit(
                community_id=site.a,
                person_id=worker.id,
                tag=WorkerTag.CLEANER,
                schedule=hours,
                valid_from=NOW - timedelta(days=1),
                valid_until=NOW + timedelta(days=10),
                access_points=[door],
            )
        )
        worker_id = worker.id
        db.session.commit()
    run_job(app, everything=True)
    listed = entry(full(published, app, site.a, site.door_device), worker_id)
    assert listed is not None
    assert (listed["role"], listed["grant"], listed["schedule"]) == ("worker", "worker", hours)
    assert listed["windows"] == [
        {"from": format_ts(NOW - timedelta(days=1)), "until": format_ts(NOW + timedelta(days=10))}
    ]
    assert listed["cards"] == ["04CAFE01"]
    assert entry(full(published, app, site.a, site.gate_device), worker_id) is None  # not listed


def _enrol_face(app: Flask, person_id: str, community_id: str) -> str:
    with app.app_context():
        consent = Consent(
            community_id=community_id, person_id=person_id, purpose=FACE_PURPOSE, granted_at=NOW
        )
        db.session.add(consent)
        db.session.flush()
        face = FaceTemplate(
            community_id=community_id,
            person_id=person_id,
            template_encrypted=crypto.encrypt(signed.pack_template(VECTOR)),
            model="test",
            consent_id=consent.id,
        )
        db.session.add(face)
        db.session.commit()
        return face.id


def test_faces_are_encrypted_to_the_device_and_go_with_consent(
    app, client, site, published
) -> None:
    _enrol_face(app, site.resident_person, site.a)
    private = X25519PrivateKey.generate()
    auth = {"Authorization": f"Bearer {site.door_credential}"}
    answer = client.put(
        "/api/v1/devices/me/allowlist-key",
        json={"public_key": signed.b64(private.public_key().public_bytes_raw())},
        headers=auth,
    )
    assert answer.status_code == 204, answer.get_data(as_text=True)
    # Registering the key republished the device's full list, with the face sealed to it.
    door = full(published, app, site.a, site.door_device)
    assert door["enc"]["alg"] == signed.FACE_ALG
    [sealed] = entry(door, site.resident_person)["faces"]
    opener = signed.FaceOpener(private, site.door_device, door["enc"])
    template = signed.unpack_template(opener.open(site.resident_person, sealed))
    assert list(template) == pytest.approx(VECTOR)
    # Another device's key does not open it; a gate device without a key gets no faces.
    with pytest.raises(signed.AllowlistError):
        signed.FaceOpener(X25519PrivateKey.generate(), site.door_device, door["enc"]).open(
            site.resident_person, sealed
        )
    run_job(app)
    gate = full(published, app, site.a, site.gate_device)
    assert gate["enc"] is None and entry(gate, site.resident_person)["faces"] == []

    # Consent withdrawn: a delta drops the face.
    published.clear()
    answer = Api(client, "staff_a").delete(
        f"/people/{site.resident_person}/consents/{FACE_PURPOSE}"
    )
    assert answer.status_code in (200, 204), answer.get_data(as_text=True)
    run_job(app)
    [change] = deltas(published, app, site.a, site.door_device)
    assert entry(change, site.resident_person)["faces"] == []


def test_get_and_put_over_http(app, client, site, published) -> None:
    auth = {"Authorization": f"Bearer {site.door_credential}"}
    answer = client.get("/api/v1/devices/me/allowlist", headers=auth)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.json
    signed.verify(body, key_set(app))
    assert (body["kind"], body["device_id"], body["access_point_id"]) == (
        "full",
        site.door_device,
        site.door,
    )
    assert answer.headers["ETag"] == f'"{body["version"]}"'
    assert entry(body, site.resident_person)["cards"] == [CARD]
    current = client.get(f"/api/v1/devices/me/allowlist?since={body['version']}", headers=auth)
    assert current.status_code == 304 and current.headers["ETag"] == answer.headers["ETag"]
    stale = client.get(f"/api/v1/devices/me/allowlist?since={body['version'] - 1}", headers=auth)
    assert stale.status_code == 200 and stale.json["version"] == body["version"]
    assert_problem(client.get("/api/v1/devices/me/allowlist?since=x", headers=auth), 422)

    # Community B's device gets B's list; no credentials, no list; a device with no point, 403.
    other = client.get(
        "/api/v1/devices/me/allowlist", headers={"Authorization": f"Bearer {site.b_credential}"}
    )
    assert other.status_code == 200 and other.json["community_id"] == site.b
    assert entry(other.json, site.resident_person) is None
    assert_problem(client.get("/api/v1/devices/me/allowlist"), 401)
    with app.app_context():
        reader = db.session.get(Device, site.door_device)
        reader.access_point_id = None
        db.session.commit()
    assert_problem(client.get("/api/v1/devices/me/allowlist", headers=auth), 403)
    with app.app_context():
        db.session.get(Device, site.door_device).access_point_id = site.door
        db.session.commit()

    for bad in ("", "not base64!", signed.b64(b"short"), signed.b64(bytes(33))):
        problem = assert_problem(
            client.put("/api/v1/devices/me/allowlist-key", json={"public_key": bad}, headers=auth),
            422,
        )
        assert "public_key" in problem["errors"], problem
    with app.app_context():
        assert db.session.get(Device, site.door_device).allowlist_public_key is None


def test_a_lockdown_is_the_lists_mode_and_its_lift_a_delta(app, client, site, published) -> None:
    run_job(app, everything=True)
    published.clear()
    with app.app_context():
        building = db.session.get(AccessPoint, site.door).building_id
    started = Api(client, "staff_a").post(
        f"/communities/{site.a}/door-modes",
        json={
            "kind": "lockdown",
            "scope": "building",
            "building_id": building,
            "reason": "Suspect in building A1",
            "exempt_roles": ["owner", "staff"],
        },
    )
    assert started.status_code == 201, started.json
    run_job(app)
    [change] = deltas(published, app, site.a, site.door_device)
    assert change["header"]["mode"] == {"kind": "lockdown", "exempt_roles": ["owner", "staff"]}
    assert change["upsert"] == [] and change["remove"] == []
    assert full(published, app, site.a, site.door_device)["mode"] == change["header"]["mode"]
    assert not deltas(published, app, site.a, site.gate_device)  # the gate is not in A1

    published.clear()
    lifted = Api(client, "staff_a").post(f"/door-modes/{started.json['id']}/lift")
    assert lifted.status_code == 200, lifted.json
    run_job(app)
    [change] = deltas(published, app, site.a, site.door_device)
    assert change["header"]["mode"] is None and change["from_version"] == 2


def test_holidays_are_closures_of_the_next_sixty_days(app, site, published) -> None:
    """NOW is Saturday 2026-11-21, 16:30 in Shanghai: the gate closes on the 23rd, keeps
    09:00-12:00 on the 25th, and a holiday 70 days ahead is beyond the horizon."""
    with app.app_context():
        gate = db.session.get(AccessPoint, site.gate)
        for name, first, effect, hours in (
            ("Closed", date(2026, 11, 23), HolidayEffect.CLOSED, None),
            (
                "Short",
                date(2026, 11, 25),
                HolidayEffect.HOURS,
                [{"start": "09:00", "end": "12:00"}],
            ),
            ("Far", date(2027, 1, 30), HolidayEffect.CLOSED, None),
        ):
            db.session.add(
                Holiday(
                    community_id=site.a,
                    name=name,
                    first_day=first,
                    last_day=first,
                    effect=effect,
                    hours=hours,
                    access_points=[gate],
                )
            )
        db.session.commit()
    run_job(app, everything=True)
    closures = full(published, app, site.a, site.gate_device)["closures"]
    assert closures == [
        {"from": "2026-11-22T16:00:00.000+00:00", "until": "2026-11-23T16:00:00.000+00:00"},
        {"from": "2026-11-24T16:00:00.000+00:00", "until": "2026-11-25T01:00:00.000+00:00"},
        {"from": "2026-11-25T04:00:00.000+00:00", "until": "2026-11-25T16:00:00.000+00:00"},
    ]
    assert full(published, app, site.a, site.door_device)["closures"] == []  # not listed


def test_a_new_device_gets_the_full_list_though_nothing_changed(
    app, client, site, published
) -> None:
    run_job(app, everything=True)
    published.clear()
    answer = Api(client, "staff_a").post(
        f"/communities/{site.a}/devices",
        json={"name": "Second door terminal", "kind": "door", "access_point_id": site.door},
    )
    assert answer.status_code == 201, answer.json
    assert run_job(app) == 0  # no list changed
    new = full(published, app, site.a, answer.json["id"])
    assert new["version"] == 1 and entry(new, site.resident_person)["cards"] == [CARD]
    assert [m.topic for m in published] == [allowlist_topic(site.a, answer.json["id"])]
    published.clear()
    assert run_job(app) == 0
    assert published == []  # sent once
