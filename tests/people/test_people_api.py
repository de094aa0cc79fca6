"""Enrolment through the API: people, documents, leases, workers, credentials, move-out."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from server.extensions import db
from server.models import (
    AuditEntry,
    Card,
    Consent,
    FaceTemplate,
    Lease,
    Person,
    PersonStatus,
    RfidTag,
    Unit,
    User,
    Vehicle,
    VisitorPass,
    utcnow,
)
from server.people.service import close_ended_leases
from tests import factories
from tests.factories import Api
from tests.support.identity import make_resident_id
from tests.support.search import LITERAL_SEARCHES, add_searchable_people

ID_NUMBER = make_resident_id("330106", sequence=234)


def _iso(value: datetime) -> str:
    return value.isoformat()


def test_enrol_resident_with_encrypted_masked_document(app, client, world) -> None:
    staff = Api(client, "staff_a")
    answer = staff.post(
        f"/communities/{world.a}/people",
        {
            "name": "王小明",
            "role": "owner",
            "unit_id": world.unit_a,
            "phone": "13800000001",
            "id_document": {"type": "resident_id", "number": ID_NUMBER.lower()},
        },
    )
    assert answer.status_code == 201, answer.json
    person = answer.json
    assert person["id_document_masked"] == ID_NUMBER[:4] + "*" * 10 + ID_NUMBER[-4:]
    assert person["status"] == "active"
    assert person["memberships"] == [{"role": "owner", "unit_id": world.unit_a}]
    assert ID_NUMBER not in answer.text
    with app.app_context():
        row = db.session.get(Person, person["id"])
        assert ID_NUMBER.encode() not in row.id_document_encrypted
        from server.core.crypto import decrypt_text

        assert decrypt_text(row.id_document_encrypted) == ID_NUMBER
        for entry in db.session.scalars(select(AuditEntry)):
            assert ID_NUMBER not in str(entry.details)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "role": "owner"}, "unit_id"),
        ({"name": "x", "role": "tenant", "unit_id": "{unit}"}, "lease"),
        ({"name": "x", "role": "worker"}, "worker"),
        ({"name": "x", "role": "worker", "unit_id": "{unit}"}, "unit_id"),
        (
            {
                "name": "x",
                "role": "owner",
                "unit_id": "{unit}",
                "id_document": {"type": "resident_id", "number": "330106199001011230"},
            },
            "id_document",
        ),
        (
            {
                "name": "x",
                "role": "owner",
                "unit_id": "{unit}",
                "id_document": {"type": "martian", "number": "1"},
            },
            "id_document",
        ),
        ({"name": "x", "role": "owner", "unit_id": "unt_elsewhere"}, "unit_id"),
        ({"name": "x", "role": "king", "unit_id": "{unit}"}, "role"),
        ({"name": "x", "role": "owner", "unit_id": "{unit}", "community_id": "x"}, "community_id"),
        ({"name": "x", "role": "owner", "unit_id": "{unit}", "status": "active"}, "status"),
    ],
)
def test_enrolment_errors_store_nothing(app, client, world, body, field) -> None:
    body = {
        k: (v.replace("{unit}", world.unit_a) if isinstance(v, str) else v) for k, v in body.items()
    }
    answer = Api(client, "staff_a").post(f"/communities/{world.a}/people", body)
    assert answer.status_code == 422, answer.json
    assert field in answer.json["errors"], answer.json
    with app.app_context():
        assert db.session.scalar(select(Person.id)) is None


def _neighbour_unit(app, world) -> str:
    """Unit 102 in community A's building, next to ``world.unit_a``."""
    with app.app_context():
        building = db.session.get(Unit, world.unit_a).building
        return factories.unit(building, "102").id


def _tenant_body(world, **lease: str) -> dict:
    now = utcnow()
    return {
        "name": "租客",
        "role": "tenant",
        "unit_id": world.unit_a,
        "lease": {"starts_at": _iso(now), "ends_at": _iso(now + timedelta(days=30)), **lease},
    }


@pytest.mark.parametrize("where", ["other_community", "same_community"])
def test_a_nested_lease_of_another_unit_is_refused(app, client, world, where) -> None:
    other = world.unit_b if where == "other_community" else _neighbour_unit(app, world)
    answer = Api(client, "staff_a").post(
        f"/communities/{world.a}/people", _tenant_body(world, unit_id=other)
    )
    assert answer.status_code == 422, answer.json
    assert list(answer.json["errors"]) == ["lease.unit_id"], answer.json
    with app.app_context():
        assert db.session.scalar(select(Person.id)) is None
        assert db.session.scalar(select(Lease.id)) is None


def test_a_nested_lease_may_repeat_the_tenants_unit(app, client, world) -> None:
    staff = Api(client, "staff_a")
    answer = staff.post(f"/communities/{world.a}/people", _tenant_body(world, unit_id=world.unit_a))
    assert answer.status_code == 201, answer.json
    [lease] = staff.get(f"/people/{answer.json['id']}/leases").json
    assert lease["unit_id"] == world.unit_a


@pytest.mark.parametrize(("role", "part"), [("owner", "lease"), ("tenant", "worker")])
def test_a_lease_or_permit_of_another_role_is_refused(app, client, world, role, part) -> None:
    """Only tenants have leases and only workers permits: one sent for another role is
    refused, not dropped."""
    body = {**_tenant_body(world), "role": role}
    if part == "worker":
        now = utcnow()
        body["worker"] = {
            "tag": "cleaner",
            "access_point_ids": [world.door_a],
            "valid_from": _iso(now),
            "valid_until": _iso(now + timedelta(days=1)),
        }
    answer = Api(client, "staff_a").post(f"/communities/{world.a}/people", body)
    assert answer.status_code == 422, answer.json
    assert list(answer.json["errors"]) == [part], answer.json
    with app.app_context():
        assert db.session.scalar(select(Person.id)) is None


def test_people_are_staff_only(app, client, world) -> None:
    staff = Api(client, "staff_a")
    created = staff.post(
        f"/communities/{world.a}/people",
        {"name": "李华", "role": "resident", "unit_id": world.unit_a},
    ).json
    for username in ("staff_b", "officer_a", "resident_a"):
        other = Api(client, username)
        assert other.get(f"/people/{created['id']}").status_code == 404, username
        assert other.patch(f"/people/{created['id']}", {"name": "x"}).status_code == 404
        assert other.delete(f"/people/{created['id']}").status_code == 404
        assert other.post(f"/people/{created['id']}/cards", {"uid": "04A1B2C3"}).status_code == 404
    newcomer = {"name": "x", "role": "resident", "unit_id": world.unit_a}
    for username, refused in (("staff_b", 404), ("officer_a", 403)):
        answer = Api(client, username).post(f"/communities/{world.a}/people", newcomer)
        assert answer.status_code == refused, username


@pytest.mark.parametrize(
    ("username", "status"),
    [
        ("officer_a", 403),  # sees community A, but its people are the property office's
        ("resident_a", 403),
        ("resident_b", 404),  # community A does not exist for them
        ("staff_b", 404),
    ],
)
def test_the_people_list_is_refused_not_empty(client, world, username, status) -> None:
    answer = Api(client, username).get(f"/communities/{world.a}/people")
    assert answer.status_code == status, answer.json
    assert answer.mimetype == "application/problem+json"


def test_search_and_filters(app, client, world) -> None:
    staff = Api(client, "staff_a")
    start = utcnow()
    staff.post(
        f"/communities/{world.a}/people",
        {"name": "王小明", "role": "owner", "unit_id": world.unit_a, "phone": "13800000001"},
    )
    staff.post(
        f"/communities/{world.a}/people",
        {
            "name": "张伟",
            "role": "tenant",
            "unit_id": world.unit_a,
            "lease": {"starts_at": _iso(start), "ends_at": _iso(start + timedelta(days=30))},
        },
    )
    assert [p["name"] for p in staff.get(f"/communities/{world.a}/people?q=王").json] == ["王小明"]
    assert [p["name"] for p in staff.get(f"/communities/{world.a}/people?q=13800").json] == [
        "王小明"
    ]
    assert [p["name"] for p in staff.get(f"/communities/{world.a}/people?role=tenant").json] == [
        "张伟"
    ]
    assert len(staff.get(f"/communities/{world.a}/people?unit_id={world.unit_a}").json) == 2
    assert staff.get(f"/communities/{world.a}/people?role=wizard").status_code == 422


@pytest.mark.parametrize(("q", "expected"), LITERAL_SEARCHES)
def test_search_takes_wildcards_literally_in_any_case(app, client, world, q, expected) -> None:
    add_searchable_people(app, world.a)
    answer = Api(client, "staff_a").get(f"/communities/{world.a}/people", query_string={"q": q})
    assert answer.status_code == 200, answer.json
    assert [p["name"] for p in answer.json] == sorted(expected)


def _tenant(staff, world, starts, ends) -> dict:
    return staff.post(
        f"/communities/{world.a}/people",
        {
            "name": "张伟",
            "role": "tenant",
            "unit_id": world.unit_a,
            "lease": {"starts_at": _iso(starts), "ends_at": _iso(ends)},
        },
    ).json


def test_lease_renew_and_end_early_are_audited(app, client, world) -> None:
    staff = Api(client, "staff_a")
    now = utcnow().replace(microsecond=0)
    tenant = _tenant(staff, world, now - timedelta(days=1), now + timedelta(days=10))
    [lease] = staff.get(f"/people/{tenant['id']}/leases").json
    renewed = staff.patch(f"/leases/{lease['id']}", {"ends_at": _iso(now + timedelta(days=40))})
    assert renewed.status_code == 200
    assert datetime.fromisoformat(renewed.json["ends_at"]) == now + timedelta(days=40)
    assert (
        staff.patch(
            f"/leases/{lease['id']}", {"ends_at": _iso(now - timedelta(days=5))}
        ).status_code
        == 422
    )  # before the start
    assert staff.patch(f"/leases/{lease['id']}", {}).status_code == 422
    ended = staff.patch(f"/leases/{lease['id']}", {"end_now": True})
    assert ended.status_code == 200 and ended.json["ended_early_at"] is not None
    with app.app_context():
        actions = [
            e.action
            for e in db.session.scalars(
                select(AuditEntry)
                .where(AuditEntry.target_id == lease["id"])
                .order_by(AuditEntry.at)
            )
        ]
    assert actions == ["lease.renew", "lease.end_early"]


def test_lease_end_cascade(app, client, world) -> None:
    staff = Api(client, "staff_a")
    now = utcnow()
    tenant = _tenant(staff, world, now - timedelta(days=30), now + timedelta(days=1))
    assert staff.post(f"/people/{tenant['id']}/cards", {"uid": "04a1b2c3"}).status_code == 201
    assert (
        staff.post(f"/people/{tenant['id']}/vehicles", {"plate": "浙Ａ·１２３４５"}).json["plate"]
        == "浙A12345"
    )
    assert staff.post(f"/people/{tenant['id']}/tags", {"epc": "e2000017"}).status_code == 201
    assert staff.post(f"/people/{tenant['id']}/consents", {}).status_code == 201
    with app.app_context():
        db.session.add(
            FaceTemplate(
                community_id=world.a, person_id=tenant["id"], template_encrypted=b"x", model="dlib"
            )
        )
        guest_pass = factories.visitor_pass(
            world.unit_a,
            issued_by_person_id=tenant["id"],
            guest_name="客人",
            valid_from=now,
            valid_until=now + timedelta(days=5),
        )
        assert close_ended_leases(now) == []  # not yet
        ended = close_ended_leases(now + timedelta(days=2))
        db.session.commit()
        assert len(ended) == 1
        for model in (Card, Vehicle, RfidTag):
            rows = list(db.session.scalars(select(model)))
            assert rows and all(r.disabled_at for r in rows), model
        assert db.session.get(VisitorPass, guest_pass.id).revoked_at is not None
        assert db.session.scalar(select(FaceTemplate.id)) is None
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "lease.ended"))
        assert entry.details["templates_erased"] == 1
        assert close_ended_leases(now + timedelta(days=3)) == []  # once per lease
    cards = staff.get(f"/people/{tenant['id']}/cards").json
    assert cards[0]["disabled"] is True and cards[0]["uid"] == "04A1B2C3"


def test_lease_end_keeps_faces_of_someone_staying_under_another_role(app, client, world) -> None:
    staff = Api(client, "staff_a")
    now = utcnow()
    tenant = _tenant(staff, world, now - timedelta(days=30), now - timedelta(seconds=1))
    with app.app_context():
        from gatekeeper.vocabulary import PersonRole

        factories.membership(tenant["id"], PersonRole.RESIDENT, unit_of=world.unit_a)
        db.session.add(
            FaceTemplate(
                community_id=world.a, person_id=tenant["id"], template_encrypted=b"x", model="dlib"
            )
        )
        db.session.commit()
        close_ended_leases()
        db.session.commit()
        assert db.session.scalar(select(FaceTemplate.id)) is not None


def test_worker_enrolment_and_permit(app, client, world) -> None:
    staff = Api(client, "staff_a")
    now = utcnow()
    answer = staff.post(
        f"/communities/{world.a}/people",
        {
            "name": "刘师傅",
            "role": "worker",
            "phone": "13800000004",
            "worker": {
                "tag": "plumber",
                "access_point_ids": [world.door_a],
                "schedule": [{"days": [1, 2, 3, 4, 5], "start": "08:00", "end": "18:00"}],
                "valid_from": _iso(now),
                "valid_until": _iso(now + timedelta(days=7)),
            },
        },
    )
    assert answer.status_code == 201, answer.json
    permit = staff.get(f"/people/{answer.json['id']}/worker-permit").json
    assert permit["tag"] == "plumber" and permit["access_point_ids"] == [world.door_a]
    assert permit["sponsor_user_id"] == world.staff_a
    bad = staff.patch(f"/worker-permits/{permit['id']}", {"access_point_ids": [world.door_b]})
    assert bad.status_code == 422
    bad = staff.post(
        f"/communities/{world.a}/people",
        {
            "name": "x",
            "role": "worker",
            "worker": {
                "tag": "astronaut",
                "access_point_ids": [world.door_a],
                "valid_from": _iso(now),
                "valid_until": _iso(now),
            },
        },
    )
    assert bad.status_code == 422


def test_credentials_unique_and_switchable(app, client, world) -> None:
    staff = Api(client, "staff_a")
    person = staff.post(
        f"/communities/{world.a}/people",
        {"name": "李华", "role": "resident", "unit_id": world.unit_a},
    ).json
    card = staff.post(f"/people/{person['id']}/cards", {"uid": "04A1B2C3D4"}).json
    assert staff.post(f"/people/{person['id']}/cards", {"uid": "04a1b2c3d4"}).status_code == 409
    assert staff.post(f"/people/{person['id']}/cards", {"uid": "zz"}).status_code == 422
    assert staff.patch(f"/cards/{card['id']}", {"disabled": True}).json["disabled"] is True
    assert staff.patch(f"/cards/{card['id']}", {"disabled": False}).json["disabled"] is False
    assert (
        Api(client, "staff_b").patch(f"/cards/{card['id']}", {"disabled": True}).status_code == 404
    )


def test_move_out(app, client, world) -> None:
    staff = Api(client, "staff_a")
    person = staff.post(
        f"/communities/{world.a}/people",
        {"name": "王小明", "role": "owner", "unit_id": world.unit_a},
    ).json
    staff.post(f"/people/{person['id']}/cards", {"uid": "04A1B2C3"})
    staff.post(f"/people/{person['id']}/consents", {})
    with app.app_context():
        db.session.add(
            FaceTemplate(
                community_id=world.a, person_id=person["id"], template_encrypted=b"x", model="dlib"
            )
        )
        account = db.session.get(User, world.resident_a)
        account.person_id = person["id"]
        db.session.commit()
    gone = staff.delete(f"/people/{person['id']}")
    assert gone.status_code == 200 and gone.json["status"] == "moved_out"
    with app.app_context():
        assert db.session.scalar(select(FaceTemplate.id)) is None
        assert db.session.scalar(select(Card)).disabled_at is not None
        assert db.session.scalar(select(Consent)).withdrawn_at is not None
        assert db.session.get(User, world.resident_a).disabled_at is not None
        assert db.session.get(Person, person["id"]).status is PersonStatus.MOVED_OUT
    assert staff.get(f"/people/{person['id']}").status_code == 200  # history kept
    assert staff.patch(f"/people/{person['id']}", {"name": "x"}).status_code == 409


def test_require_id_match_keeps_new_residents_pending(app, client, world) -> None:
    admin = Api(client, "admin")
    admin.patch(f"/communities/{world.a}", {"settings": {"require_id_match": True}})
    staff = Api(client, "staff_a")
    person = staff.post(
        f"/communities/{world.a}/people",
        {"name": "李华", "role": "resident", "unit_id": world.unit_a},
    ).json
    assert person["status"] == "pending"
    elder = staff.post(
        f"/communities/{world.a}/people",
        {"name": "赵阿姨", "role": "elder", "unit_id": world.unit_a},
    ).json
    assert elder["status"] == "active"
    for created in (person["created_at"], elder["created_at"]):  # times carry their offset
        assert datetime.fromisoformat(created).utcoffset() == timedelta(0)
    with app.app_context():
        assert db.session.scalar(select(Lease.id)) is None
