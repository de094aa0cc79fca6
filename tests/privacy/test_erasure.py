"""POST /api/v1/people/{pid}/erasure: biometrics, ID number, phone and name go; history stays
pseudonymised; held evidence keeps its crop; asking twice changes nothing."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import time_machine
from PIL import Image
from sqlalchemy import func, select

from gatekeeper.vocabulary import AlertType, CredentialType, Decision, Severity
from server.access import snapshots
from server.core import crypto
from server.extensions import db
from server.models import (
    AccessEvent,
    Alert,
    AuditEntry,
    Card,
    Consent,
    FaceTemplate,
    IdCheck,
    Notification,
    Person,
    PersonStatus,
    Unit,
    User,
    UserRole,
    Vehicle,
)
from server.privacy.erasure import PSEUDONYM_PREFIX
from tests import factories
from tests.factories import Api
from tests.support.api import assert_problem
from tests.support.identity import make_resident_id
from tests.support.passes import NOW, PassSite, build_pass_site

ID_NUMBER = make_resident_id("330106", sequence=321)
PHONE = "13800000009"
PLATE = "浙A12345"


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (20, 30, 200)).save(out, "JPEG")
    return out.getvalue()


def _event(person: Person, door: str, minutes: int, **values: object) -> AccessEvent:
    event = AccessEvent(
        community_id=person.community_id,
        occurred_at=NOW - timedelta(minutes=minutes),
        access_point_id=door,
        credential_type=CredentialType.FACE,
        decision=Decision.GRANT,
        reason="resident",
        person_id=person.id,
        **values,
    )
    db.session.add(event)
    db.session.flush()
    snapshots.store(event, _jpeg())
    return event


def _crop_exists(path: str) -> bool:
    return (snapshots._root() / path).exists()


def _site(app) -> tuple[PassSite, dict[str, str]]:
    """The owner 王小明 with everything erasure removes, and an open alert holding one event."""
    with app.app_context():
        site = build_pass_site()
        owner = db.session.get(Person, site.resident_person)
        owner.phone = PHONE
        owner.id_document_type = "resident_id"
        owner.id_document_encrypted = crypto.encrypt(ID_NUMBER.encode())
        owner.id_document_masked = ID_NUMBER[:4] + "*" * 10 + ID_NUMBER[-4:]
        consent = Consent(
            community_id=site.a,
            person_id=owner.id,
            purpose="face_recognition",
            granted_at=NOW - timedelta(days=9),
        )
        db.session.add(consent)
        db.session.flush()
        db.session.add(
            FaceTemplate(
                community_id=site.a,
                person_id=owner.id,
                model="test",
                template_encrypted=crypto.encrypt(b"\0" * 1024),
                photo_encrypted=crypto.encrypt(_jpeg()),
                consent_id=consent.id,
            )
        )
        db.session.add(IdCheck(community_id=site.a, person_id=owner.id, match=True, tolerance=0.5))
        factories.card(owner, "04C0FFEE11")
        factories.vehicle(owner, PLATE)
        plain = _event(owner, site.door, 30, details={"plate": PLATE})
        answered = AccessEvent(
            community_id=site.a,
            occurred_at=NOW - timedelta(minutes=20),
            access_point_id=site.door,
            credential_type=CredentialType.INTERCOM,
            decision=Decision.GRANT,
            reason="intercom_answered",
            details={"answered_by": "resident_a", "call_id": "icl_1"},
        )
        db.session.add(answered)
        guardian_user = factories.user(UserRole.RESIDENT, unit_of=db.session.get(Unit, site.unit_a))
        db.session.add(
            Notification(
                community_id=site.a,
                user_id=guardian_user.id,
                kind="tag_left_perimeter",
                params={"name": "王小明", "place": "North gate"},
            )
        )
        held = _event(owner, site.door, 60)
        db.session.add(
            Alert(
                community_id=site.a,
                type=AlertType.ELDER_WANDERING,
                severity=Severity.HIGH,
                summary="王*明 left through the North gate",
                evidence={"event_ids": [held.id], "person_id": owner.id},
            )
        )
        db.session.commit()
        ids = {
            "answered": answered.id,
            "plain": plain.id,
            "plain_crop": plain.snapshot_path,
            "held": held.id,
            "held_crop": held.snapshot_path,
        }
        db.session.remove()
    return site, ids


def test_erasure_removes_biometrics_and_identity_and_keeps_history_pseudonymised(
    app, client
) -> None:
    site, ids = _site(app)
    pid = site.resident_person
    staff = Api(client, "staff_a")
    with time_machine.travel(NOW, tick=False):
        answer = staff.post(f"/people/{pid}/erasure")
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert body["person_id"] == pid and body["already_erased"] is False
    assert body["counts"]["event_crops"] == 1 and body["counts"]["held_events_kept"] == 1
    assert body["counts"]["credentials"] == 2 and body["counts"]["id_checks"] == 1
    assert {k["what"] for k in body["kept"]} == {
        "access_events",
        "held_evidence",
        "audit_log",
        "data_reads",
    }
    with app.app_context():
        person = db.session.get(Person, pid)
        assert person.name == PSEUDONYM_PREFIX + pid[-6:]
        assert (person.phone, person.id_document_encrypted, person.id_document_masked) == (
            None,
            None,
            None,
        )
        assert person.status is PersonStatus.MOVED_OUT and person.erased_at is not None
        for model in (FaceTemplate, IdCheck, Card, Vehicle):
            count = select(func.count()).select_from(model).where(model.person_id == pid)
            assert db.session.scalar(count) == 0, model
        # The events stay, with the person's id and no crop, template or plate ...
        plain = db.session.get(AccessEvent, ids["plain"])
        assert plain.person_id == pid and plain.snapshot_path is None and plain.plate is None
        assert "plate" not in plain.details and not _crop_exists(ids["plain_crop"])
        # ... but held evidence keeps its crop.
        held = db.session.get(AccessEvent, ids["held"])
        assert held.snapshot_path == ids["held_crop"] and _crop_exists(ids["held_crop"])
        alert = db.session.scalar(select(Alert))
        assert alert.summary == f"{person.name} left through the North gate"
        account = db.session.scalar(select(User).where(User.person_id == pid))
        assert account.disabled_at is not None and account.username.startswith("erased-")
        answered = db.session.get(AccessEvent, ids["answered"]).details
        assert answered == {"answered_by": account.username, "call_id": "icl_1"}
        note = db.session.scalar(select(Notification))
        assert note.params == {"name": person.name, "place": "North gate"}
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "person.erasure"))
        assert entry.target_id == pid and entry.actor == "staff_a"
        everything_audited = json.dumps(
            [e.details for e in db.session.scalars(select(AuditEntry))], ensure_ascii=False
        )
        for erased in ("王小明", PHONE, ID_NUMBER, "04C0FFEE11", PLATE):
            assert erased not in everything_audited, erased
    # The export now says nothing of who they were.
    text = json.dumps(staff.get(f"/people/{pid}/export").json, ensure_ascii=False)
    for erased in ("王小明", "王*明", PHONE, ID_NUMBER, ID_NUMBER[-4:], PLATE):
        assert erased not in text, erased

    # Asking again changes nothing and says so.
    again = staff.post(f"/people/{pid}/erasure")
    assert again.status_code == 200
    assert again.json["already_erased"] is True and again.json["erased_at"] == body["erased_at"]
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.action == "person.erasure")
        ).all()
        assert actions == ["person.erasure"]


def test_only_the_persons_staff_may_erase(app, client) -> None:
    site, _ids = _site(app)
    path = f"/people/{site.resident_person}/erasure"
    for username in ("staff_b", "officer_a", "resident_a", "tenant_a"):
        assert_problem(Api(client, username).post(path), 404)
    assert_problem(Api(client, "staff_a").post("/people/per_nobody/erasure"), 404)
    with app.app_context():
        person = db.session.get(Person, site.resident_person)
        assert person.name == "王小明" and person.erased_at is None
