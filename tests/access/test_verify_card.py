"""POST /api/v1/verify/card: device auth, the policy, the event, the open command."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy import select

from gatekeeper.vocabulary import DeviceKind, PersonRole, Zone
from server.devices.service import set_secret
from server.extensions import db
from server.models import AccessEvent, Card, Community, Device, Person
from tests import factories
from tests.support.published import assert_one_open

SECRET = "door-secret-for-card-tests"


@pytest.fixture
def site(app):
    """Community A with a resident's card, a tenant's card (lease Nov 2026) and devices."""
    with app.app_context():
        w = factories.world(door_secret=SECRET)
        resident = factories.person(w.a, "王小明")
        tenant = factories.person(w.a, "张伟")
        factories.membership(resident, PersonRole.OWNER, unit_of=w.unit_a)
        factories.membership(tenant, PersonRole.TENANT, unit_of=w.unit_a)
        factories.lease(
            tenant,
            w.unit_a,
            starts_at=datetime(2026, 11, 1, tzinfo=UTC),
            ends_at=datetime(2026, 12, 1, tzinfo=UTC),
        )
        factories.card(resident, "04A1B2C3")
        factories.card(tenant, "04D4E5F6")
        other_building = factories.building(w.a, "A2")
        other_door = factories.access_point(w.a, name="A2 door", building_of=other_building)
        other_device, other_secret = factories.device(other_door)
        reader_point = factories.access_point(w.a, name="Fence", zone=Zone.PERIMETER)
        reader, reader_secret = factories.device(reader_point, kind=DeviceKind.RFID_READER)
        reader.access_point_id = None
        db.session.commit()
        ids = {
            "door": w.device_a.id,
            "resident": resident.id,
            "tenant": tenant.id,
            "other_door": f"{other_device.id}.{other_secret}",
            "reader": f"{reader.id}.{reader_secret}",
            "a": w.a.id,
            "door_b": w.device_b.id,
        }
        db.session.remove()
    return ids


def _verify(client, credential: str, body) -> object:
    return client.post(
        "/api/v1/verify/card", json=body, headers={"Authorization": f"Bearer {credential}"}
    )


@time_machine.travel(datetime(2026, 11, 21, 8, 30, tzinfo=UTC), tick=False)
def test_resident_card_opens_the_door(app, client, site, published) -> None:
    answer = _verify(client, f"{site['door']}.{SECRET}", {"uid": "04a1b2c3", "extra": "ignored"})
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert (body["decision"], body["reason"], body["open_ms"]) == ("grant", "resident", 5000)
    assert body["subject"] == {"kind": "resident", "display_name": "王*明"}
    assert_one_open(published, site["door"], body["event_id"])
    with app.app_context():
        event = db.session.get(AccessEvent, body["event_id"])
        assert (event.decision.value, event.reason, event.rule) == (
            "grant",
            "resident",
            "resident.own_building",
        )
        assert event.person_id == site["resident"] and event.device_id == site["door"]
        assert event.credential_type.value == "card"


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        (datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC), "lease_not_started"),
        (datetime(2026, 11, 1, 0, 0, 0, tzinfo=UTC), "tenant"),
        (datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC), "tenant"),
        (datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC), "lease_expired"),
        (datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC), "lease_expired"),
    ],
)
def test_tenant_card_follows_the_lease_to_the_second(
    app, client, site, published, when, reason
) -> None:
    with time_machine.travel(when, tick=False):
        answer = _verify(client, f"{site['door']}.{SECRET}", {"uid": "04D4E5F6"})
    assert answer.json["reason"] == reason
    assert len(published) == (1 if reason == "tenant" else 0)


def test_denials_store_events_and_open_nothing(app, client, site, published) -> None:
    credential = f"{site['door']}.{SECRET}"
    assert _verify(client, credential, {"uid": "FFFFFFFF"}).json["reason"] == "unknown_card"
    with app.app_context():
        card = db.session.scalar(select(Card).where(Card.uid == "04A1B2C3"))
        card.disabled_at = datetime.now(UTC)
        db.session.commit()
    assert _verify(client, credential, {"uid": "04A1B2C3"}).json["reason"] == "card_disabled"
    # The same resident at another building's door.
    with app.app_context():
        card.disabled_at = None
        db.session.merge(card)
        db.session.commit()
    assert (
        _verify(client, site["other_door"], {"uid": "04A1B2C3"}).json["reason"]
        == "not_authorized_here"
    )
    with app.app_context():
        person = db.session.get(Person, site["resident"])
        from server.models import PersonStatus

        person.status = PersonStatus.SUSPENDED
        db.session.commit()
    assert _verify(client, credential, {"uid": "04A1B2C3"}).json["reason"] == "person_suspended"
    assert published == []
    with app.app_context():
        events = list(db.session.scalars(select(AccessEvent)))
        assert len(events) == 4 and {e.decision.value for e in events} == {"deny"}


def test_bad_requests_are_problems(app, client, site, published) -> None:
    credential = f"{site['door']}.{SECRET}"
    for body in ({}, {"uid": "xyz"}, {"uid": 12345678}, [1], {"uid": "0" * 40}):
        answer = _verify(client, credential, body)
        assert answer.status_code == 422, body
        assert answer.mimetype == "application/problem+json"
    assert (
        client.post(
            "/api/v1/verify/card",
            data="{",
            content_type="application/json",
            headers={"Authorization": f"Bearer {credential}"},
        ).status_code
        == 400
    )
    assert _verify(client, f"{site['door']}.wrong", {"uid": "04A1B2C3"}).status_code == 401
    assert _verify(client, "no-dot", {"uid": "04A1B2C3"}).status_code == 401
    assert client.post("/api/v1/verify/card", json={"uid": "04A1B2C3"}).status_code == 401
    assert _verify(client, site["reader"], {"uid": "04A1B2C3"}).status_code == 403
    with app.app_context():
        db.session.get(Device, site["door"]).disabled_at = datetime.now(UTC)
        db.session.commit()
    assert _verify(client, credential, {"uid": "04A1B2C3"}).status_code == 403
    with app.app_context():
        assert db.session.scalar(select(AccessEvent.id)) is None
    assert published == []


def test_a_card_of_another_community_is_unknown_here(app, client, site, published) -> None:
    with app.app_context():
        b = db.session.scalar(select(Community).where(Community.id != site["a"]))
        door_b = db.session.get(Device, site["door_b"])
        set_secret(door_b, SECRET)
        db.session.commit()
        assert b is not None
    answer = _verify(client, f"{site['door_b']}.{SECRET}", {"uid": "04A1B2C3"})
    assert answer.json["reason"] == "unknown_card"
