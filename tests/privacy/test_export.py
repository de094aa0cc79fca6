"""GET /api/v1/people/{pid}/export: one person's data, all of it and no one else's."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from gatekeeper.vocabulary import CredentialType, Decision, PersonRole
from server.extensions import db
from server.models import (
    AccessEvent,
    AuditEntry,
    Consent,
    Notification,
    Person,
    User,
    UserRole,
)
from server.models.privacy import DataRead
from tests import factories
from tests.factories import Api
from tests.support.passes import NOW, PassSite, build_pass_site

OWNER_CARD = "04A1B2C3D4"
OWNER_PHONE = "13800000001"
OTHER_CARD = "04E5F6A7B8"
OTHER_PHONE = "13900000002"
OTHER_NAME = "李四海"


def _event(person: Person, door: str, minutes: int) -> str:
    event = AccessEvent(
        community_id=person.community_id,
        occurred_at=NOW - timedelta(minutes=minutes),
        access_point_id=door,
        credential_type=CredentialType.CARD,
        decision=Decision.GRANT,
        reason="resident",
        person_id=person.id,
    )
    db.session.add(event)
    db.session.flush()
    return event.id


def _read(person: Person, what: str, purpose: str | None = None) -> None:
    db.session.add(
        DataRead(
            community_id=person.community_id,
            actor="officer_a",
            actor_role="officer",
            person_id=person.id,
            what=what,
            purpose=purpose,
        )
    )


@pytest.fixture
def household(app) -> tuple[PassSite, dict[str, list[str]]]:
    """The pass site's owner 王小明 (``resident_a``) and a second resident of the same unit,
    each with a phone, a card, a consent, events, a notification and reads of their data;
    per person, the ids and values that must appear only in their own export."""
    with app.app_context():
        site = build_pass_site()
        owner = db.session.get(Person, site.resident_person)
        owner.phone = OWNER_PHONE
        other = factories.person(site.a, OTHER_NAME, phone=OTHER_PHONE)
        factories.membership(other, PersonRole.RESIDENT, unit_of=site.unit_a)
        other_user = factories.user(UserRole.RESIDENT, username="resident_a_second")
        other_user.unit_id, other_user.person_id = site.unit_a, other.id
        factories.card(owner, OWNER_CARD)
        factories.card(other, OTHER_CARD)
        marks: dict[str, list[str]] = {"owner": [owner.id], "other": [other.id, other_user.id]}
        for person, key in ((owner, "owner"), (other, "other")):
            db.session.add(
                Consent(
                    community_id=site.a,
                    person_id=person.id,
                    purpose="face_recognition",
                    granted_at=NOW - timedelta(days=3),
                )
            )
            marks[key] += [_event(person, site.door, m) for m in (5, 50, 500)]
        owner_user = db.session.scalar(select(User).where(User.person_id == owner.id))
        for user, key in ((owner_user, "owner"), (other_user, "other")):
            note = Notification(
                community_id=site.a,
                user_id=user.id,
                kind="visitor_arrived",
                params={"mark": f"note-of-{key}"},
                created_at=NOW,
            )
            db.session.add(note)
            db.session.flush()
            marks[key] += [note.id, f"note-of-{key}"]
        _read(owner, "person_page")
        _read(other, "read-of-other", "investigation")
        marks["other"] += [OTHER_NAME, OTHER_PHONE, OTHER_CARD, "read-of-other", "investigation"]
        marks["owner"] += ["王小明", OWNER_PHONE]
        db.session.commit()
        db.session.remove()
    return site, marks


def test_an_export_holds_one_persons_data_and_no_one_elses(app, client, household) -> None:
    site, marks = household
    answer = Api(client, "staff_a").get(f"/people/{site.resident_person}/export")
    assert answer.status_code == 200, answer.json
    assert answer.headers["Content-Disposition"] == (
        f'attachment; filename="person-{site.resident_person}.json"'
    )
    document = answer.json
    text = json.dumps(document, ensure_ascii=False)
    for value in marks["owner"]:
        assert value in text, value
    for value in marks["other"]:
        assert value not in text, value
    assert document["person"]["id"] == site.resident_person
    assert document["person"]["phone"] == OWNER_PHONE
    assert [m["role"] for m in document["memberships"]] == ["owner"]
    assert len(document["access_events"]) == 3
    assert [c["uid"] for c in document["cards"]] == ["******C3D4"]  # no full card number
    assert OWNER_CARD not in text
    assert [c["purpose"] for c in document["consents"]] == ["face_recognition"]
    assert document["faces"] == {"count": 0, "templates": []}
    assert [r["what"] for r in document["data_reads"]] == ["person_page"]
    assert document["truncated"] == []
    # The export is itself a read of the person's data, and audited.
    with app.app_context():
        reads = db.session.scalars(
            select(DataRead.what).where(DataRead.person_id == site.resident_person)
        ).all()
        assert sorted(reads) == ["export", "person_page"]
        assert db.session.scalar(
            select(AuditEntry.target_id).where(AuditEntry.action == "person.export")
        ) == (site.resident_person)

    # And the other resident's export holds none of the owner's.
    other_id = marks["other"][0]
    text = Api(client, "staff_a").get(f"/people/{other_id}/export").get_data(as_text=True)
    text = json.dumps(json.loads(text), ensure_ascii=False)
    for value in marks["owner"]:
        assert value not in text, value
    for value in marks["other"]:
        assert value in text or value == OTHER_CARD, value  # cards show their last four


def test_who_may_export(client, household) -> None:
    site, marks = household
    path = f"/people/{site.resident_person}/export"
    # The resident themself, through their own account.
    own = Api(client, "resident_a").get(path)
    assert own.status_code == 200 and own.json["person"]["id"] == site.resident_person
    assert Api(client, "admin").get(path).status_code == 200
    # Another community's staff, an officer, another resident: no such person.
    for username in ("staff_b", "officer_a", "tenant_a", "resident_b"):
        refused = Api(client, username).get(path)
        assert refused.status_code == 404, username
        assert refused.headers["Content-Type"] == "application/problem+json"
    assert Api(client, "resident_a").get(f"/people/{marks['other'][0]}/export").status_code == 404


def test_a_long_history_is_cut_at_the_newest_rows_and_says_so(
    client, household, monkeypatch
) -> None:
    from server.privacy import export

    site, marks = household
    monkeypatch.setattr(export, "MAX_ROWS", 2)
    document = Api(client, "staff_a").get(f"/people/{site.resident_person}/export").json
    # The owner's three events (5, 50 and 500 minutes ago): the newest two.
    assert [e["id"] for e in document["access_events"]] == marks["owner"][1:3]
    assert document["truncated"] == ["access_events"]
