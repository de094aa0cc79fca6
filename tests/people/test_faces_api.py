"""Face enrolment and the person-ID match through the API, with real photos."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter
from sqlalchemy import select

from gatekeeper import faces as engine
from server.core.crypto import decrypt
from server.extensions import db
from server.models import AuditEntry, FaceTemplate, IdCheck
from tests.factories import Api
from tests.fetch_test_data import test_image as photo_path


def photo(name: str) -> bytes:
    return photo_path(name).read_bytes()


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


@pytest.fixture
def person(client, world) -> str:
    staff = Api(client, "staff_a")
    created = staff.post(
        f"/communities/{world.a}/people",
        {"name": "Barack", "role": "resident", "unit_id": world.unit_a},
    )
    return created.json["id"]


def _upload(api: Api, path: str, **files: bytes):
    data = {name: (io.BytesIO(content), f"{name}.jpg") for name, content in files.items()}
    return api.client.post(
        "/api/v1" + path, headers=api.headers, data=data, content_type="multipart/form-data"
    )


def test_consent_comes_before_any_face(client, world, person) -> None:
    staff = Api(client, "staff_a")
    refused = _upload(staff, f"/people/{person}/faces", image=photo("obama.jpg"))
    assert refused.status_code == 409 and "consent" in refused.json["detail"]
    assert staff.post(f"/people/{person}/consents", {}).status_code == 201
    assert _upload(staff, f"/people/{person}/faces", image=photo("obama.jpg")).status_code == 201


def test_enrolled_template_is_encrypted_and_matches_the_same_person(
    app, client, world, person
) -> None:
    staff = Api(client, "staff_a")
    staff.post(f"/people/{person}/consents", {})
    answer = _upload(staff, f"/people/{person}/faces", image=photo("obama.jpg"))
    assert answer.status_code == 201, answer.json
    assert answer.json["photo_kept"] is False
    assert answer.json["quality"]["eye_distance_px"] > 28
    with app.app_context():
        row = db.session.get(FaceTemplate, answer.json["id"])
        stored = row.template_encrypted
        # Not readable as floats without the key: no run of 128 plausible floats in there.
        raw = np.frombuffer(stored[: len(stored) // 4 * 4], dtype="<f4")
        assert not (np.isfinite(raw).all() and np.abs(raw).max() < 1)
        template = engine.template_from_bytes(decrypt(stored))
        assert row.photo_encrypted is None
    same = engine.assess_photo(photo("obama3.jpg"), engine.ID_PHOTO_THRESHOLDS).template
    other = engine.assess_photo(photo("biden.jpg"), engine.ID_PHOTO_THRESHOLDS).template
    assert engine.face_distance(template, same) < engine.PERSON_ID_TOLERANCE
    assert engine.face_distance(template, other) > engine.PERSON_ID_TOLERANCE


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: _jpeg(Image.new("RGB", (640, 480), (120, 140, 160))), "no_face"),
        (
            lambda: _jpeg(Image.open(io.BytesIO(photo("obama.jpg"))).resize((182, 227))),
            "face_too_small",
        ),
        (
            lambda: _jpeg(
                Image.open(io.BytesIO(photo("obama.jpg"))).filter(ImageFilter.GaussianBlur(6))
            ),
            "too_blurry",
        ),
    ],
)
def test_bad_photos_are_rejected_with_a_reason(app, client, world, person, make, reason) -> None:
    staff = Api(client, "staff_a")
    staff.post(f"/people/{person}/consents", {})
    answer = _upload(staff, f"/people/{person}/faces", image=make())
    assert answer.status_code == 422, answer.json
    assert answer.json["reason"] == reason and answer.json["errors"] == {"image": [reason]}
    with app.app_context():
        assert db.session.scalar(select(FaceTemplate.id)) is None


def test_two_faces_are_rejected(app, client, world, person) -> None:
    left = Image.open(io.BytesIO(photo("obama.jpg"))).convert("RGB")
    right = Image.open(io.BytesIO(photo("biden.jpg"))).convert("RGB")
    right = right.resize((right.width * left.height // right.height, left.height))
    both = Image.new("RGB", (left.width + right.width, left.height))
    both.paste(left, (0, 0))
    both.paste(right, (left.width, 0))
    staff = Api(client, "staff_a")
    staff.post(f"/people/{person}/consents", {})
    answer = _upload(staff, f"/people/{person}/faces", image=_jpeg(both))
    assert answer.json["reason"] == "multiple_faces"


def test_upload_errors(client, world, person) -> None:
    staff = Api(client, "staff_a")
    staff.post(f"/people/{person}/consents", {})
    assert _upload(staff, f"/people/{person}/faces", image=b"not an image").status_code == 422
    assert _upload(staff, f"/people/{person}/faces", other=b"x").status_code == 422
    assert staff.post(f"/people/{person}/faces", {"image": "base64?"}).status_code == 415
    assert (
        _upload(
            Api(client, "staff_b"), f"/people/{person}/faces", image=photo("obama.jpg")
        ).status_code
        == 404
    )


def test_withdrawing_consent_erases_faces(app, client, world, person) -> None:
    staff = Api(client, "staff_a")
    staff.post(f"/people/{person}/consents", {})
    face = _upload(staff, f"/people/{person}/faces", image=photo("obama.jpg")).json
    assert staff.get(f"/people/{person}/faces").json[0]["id"] == face["id"]
    assert staff.delete(f"/people/{person}/consents/face_recognition").status_code == 204
    assert staff.get(f"/people/{person}/faces").json == []
    with app.app_context():
        actions = {e.action for e in db.session.scalars(select(AuditEntry))}
    assert {"consent.grant", "face.enrol", "consent.withdraw"} <= actions


def test_keep_photos_setting(app, client, world, person) -> None:
    Api(client, "admin").patch(
        f"/communities/{world.a}", {"settings": {"keep_enrolment_photos": True}}
    )
    staff = Api(client, "staff_a")
    staff.post(f"/people/{person}/consents", {})
    face = _upload(staff, f"/people/{person}/faces", image=photo("obama.jpg")).json
    assert face["photo_kept"] is True
    with app.app_context():
        kept = db.session.get(FaceTemplate, face["id"]).photo_encrypted
        assert decrypt(kept) == photo("obama.jpg")
    assert staff.delete(f"/faces/{face['id']}").status_code == 204
    assert staff.get(f"/people/{person}/faces").json == []


def _id_photo() -> bytes:
    """obama.jpg cropped and shrunk to the 102x126 of an ID card's chip photo."""
    image = Image.open(io.BytesIO(photo("obama.jpg"))).convert("RGB")
    width, height = image.size
    crop = image.crop(
        (int(width * 0.25), int(height * 0.05), int(width * 0.75), int(height * 0.75))
    )
    return _jpeg(crop.resize((102, 126)))


def test_person_id_match_activates_a_pending_resident(app, client, world) -> None:
    Api(client, "admin").patch(f"/communities/{world.a}", {"settings": {"require_id_match": True}})
    staff = Api(client, "staff_a")
    pending = staff.post(
        f"/communities/{world.a}/people",
        {"name": "Barack", "role": "resident", "unit_id": world.unit_a},
    ).json
    assert pending["status"] == "pending"
    no = _upload(
        staff,
        f"/people/{pending['id']}/id-check",
        id_photo=_id_photo(),
        live_photo=photo("biden.jpg"),
    )
    assert no.status_code == 200 and no.json["match"] is False
    assert no.json["person_status"] == "pending"
    yes = _upload(
        staff,
        f"/people/{pending['id']}/id-check",
        id_photo=_id_photo(),
        live_photo=photo("obama2.jpg"),
    )
    assert yes.json["match"] is True and yes.json["distance"] < yes.json["tolerance"]
    assert yes.json["person_status"] == "active"
    with app.app_context():
        checks = list(db.session.scalars(select(IdCheck).order_by(IdCheck.checked_at)))
        assert [c.match for c in checks] == [False, True]


def test_a_face_already_enrolled_for_another_person_is_refused_naming_them(
    app, client, world, person
) -> None:
    """Two people with one face would both be refused at the door (ambiguous): the second
    enrolment is refused, naming the first person masked and their unit; nothing is stored."""
    staff = Api(client, "staff_a")
    staff.patch(f"/people/{person}", {"name": "王小明"})
    staff.post(f"/people/{person}/consents", {})
    assert _upload(staff, f"/people/{person}/faces", image=photo("obama.jpg")).status_code == 201
    other = staff.post(
        f"/communities/{world.a}/people",
        {"name": "李华", "role": "resident", "unit_id": world.unit_a},
    ).json["id"]
    staff.post(f"/people/{other}/consents", {})
    refused = _upload(staff, f"/people/{other}/faces", image=photo("obama2.jpg"))
    assert refused.status_code == 409, refused.json
    assert refused.json["reason"] == "duplicate_face"
    assert refused.json["duplicate_of"]["person_id"] == person
    assert refused.json["duplicate_of"]["name"] == "王*明"
    assert refused.json["duplicate_of"]["unit"] == "A1 · 101"
    assert "王*明" in refused.json["detail"] and "A1 · 101" in refused.json["detail"]
    with app.app_context():
        assert (
            db.session.scalar(select(FaceTemplate.id).where(FaceTemplate.person_id == other))
            is None
        )
    # The same person's second photo is fine, and so is another person's own face.
    assert _upload(staff, f"/people/{person}/faces", image=photo("obama2.jpg")).status_code == 201
    assert _upload(staff, f"/people/{other}/faces", image=photo("biden.jpg")).status_code == 201


def test_a_duplicate_face_is_explained_in_chinese(client, world, person) -> None:
    staff = Api(client, "staff_a")
    staff.post(f"/people/{person}/consents", {})
    _upload(staff, f"/people/{person}/faces", image=photo("obama.jpg"))
    other = staff.post(
        f"/communities/{world.a}/people",
        {"name": "李华", "role": "resident", "unit_id": world.unit_a},
    ).json["id"]
    staff.post(f"/people/{other}/consents", {})
    staff.headers["Accept-Language"] = "zh-CN"
    refused = _upload(staff, f"/people/{other}/faces", image=photo("obama3.jpg"))
    assert refused.status_code == 409
    assert "已登记" in refused.json["detail"], refused.json["detail"]
