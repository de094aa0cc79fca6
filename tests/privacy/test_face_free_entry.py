"""Face is never the only way in: a resident who withdraws face consent is no longer known by
face at the door, and their card and their own QR code still open it."""

from __future__ import annotations

import io

import time_machine

from server.extensions import db
from server.models import AccessPoint, Consent, Person
from tests import factories
from tests.factories import Api
from tests.support.faces import enrol, frame
from tests.support.passes import NOW, build_pass_site

CARD = "04FACE0FF1"


def _verify(client, credential: str, kind: str, **body):
    if kind == "face":
        answer = client.post(
            "/api/v1/verify/face",
            data={"image": (io.BytesIO(body["image"]), "frame.jpg")},
            content_type="multipart/form-data",
            headers={"Authorization": f"Bearer {credential}"},
        )
    else:
        answer = client.post(
            f"/api/v1/verify/{kind}", json=body, headers={"Authorization": f"Bearer {credential}"}
        )
    assert answer.status_code == 200, answer.json
    return answer.json["decision"], answer.json["reason"]


def test_withdrawing_face_consent_keeps_the_card_and_the_qr_code(app, client, published) -> None:
    with app.app_context():
        site = build_pass_site()
        owner = db.session.get(Person, site.resident_person)
        db.session.get(AccessPoint, site.door).requires_depth = False
        db.session.add(
            Consent(
                community_id=site.a,
                person_id=owner.id,
                purpose="face_recognition",
                granted_at=NOW,
            )
        )
        enrol(site.a, owner.id, "obama.jpg")
        factories.card(owner, CARD)
        db.session.commit()
    door = site.door_credential
    face = frame("obama2.jpg")
    with time_machine.travel(NOW, tick=False):
        assert _verify(client, door, "face", image=face) == ("grant", "resident")
        staff = Api(client, "staff_a")
        withdrawn = staff.delete(f"/people/{site.resident_person}/consents/face_recognition")
        assert withdrawn.status_code == 204
        # Withdrawing consent erased the templates: the face is no one's any more.
        assert _verify(client, door, "face", image=face) == ("deny", "unknown_face")
        assert _verify(client, door, "card", uid=CARD.lower()) == ("grant", "resident")
        code = Api(client, "resident_a").get("/me/code")
        assert code.status_code == 200, code.json
        assert _verify(client, door, "qr", token=code.json["token"]) == ("grant", "resident")
