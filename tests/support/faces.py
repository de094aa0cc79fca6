"""Door-camera test data from the real photos: composed frames, depth maps, enrolments."""

from __future__ import annotations

import io

import numpy as np
from flask.testing import FlaskClient
from PIL import Image

from gatekeeper import faces as engine
from gatekeeper import liveness
from gatekeeper.vocabulary import PersonRole
from server.core import crypto
from server.extensions import db
from server.models import FaceTemplate
from server.people.galleries import record_change
from tests import factories
from tests.fetch_test_data import test_image as photo_path
from tests.support import depthmaps


def frame(
    *names: str, size: tuple[int, int] = (1280, 720), face_height: int = 560, fmt: str = "JPEG"
) -> bytes:
    """A door-camera frame: the photos scaled and pasted side by side on a grey wall."""
    canvas = Image.new("RGB", size, (110, 115, 120))
    x = (size[0] - len(names) * face_height * 4 // 5) // 2
    for name in names:
        photo = Image.open(photo_path(name)).convert("RGB")
        photo = photo.resize((photo.width * face_height // photo.height, face_height))
        canvas.paste(photo, (max(0, x), (size[1] - face_height) // 2))
        x += photo.width
    buffer = io.BytesIO()
    canvas.save(buffer, fmt)
    return buffer.getvalue()


def verify_face(client: FlaskClient, credential: str, image: bytes) -> dict:
    """POST a door-camera frame to ``/verify/face`` as the device ``credential``
    (``<device_id>.<secret>``); the answer's JSON, which must be a 200."""
    answer = client.post(
        "/api/v1/verify/face",
        data={"image": (io.BytesIO(image), "frame.jpg")},
        content_type="multipart/form-data",
        headers={"Authorization": f"Bearer {credential}"},
    )
    assert answer.status_code == 200, answer.json
    return answer.json


def enrol(community_id: str, person_id: str, photo: str) -> str:
    """Store a template the way enrolment does (quality-checked, encrypted, gallery change)."""
    result = engine.assess_enrolment_photo(photo_path(photo).read_bytes())
    assert result.ok, result.reason
    row = FaceTemplate(
        community_id=community_id,
        person_id=person_id,
        model="test",
        template_encrypted=crypto.encrypt(engine.template_to_bytes(result.template)),
    )
    db.session.add(row)
    db.session.flush()
    record_change(community_id, row.id, person_id, "add")
    return row.id


def depth_for(image_jpeg: bytes, kind: str, seed: int = 11, size=(640, 360)) -> bytes:
    """A depth map aligned with the frame's face: a live head or an attack (the synthetic
    model of ``tests.support.depthmaps``)."""
    rgb = engine.load_image(image_jpeg)
    probe = engine.probe_face(rgb)
    scene = depthmaps.Scene(
        liveness.face_landmarks(rgb, probe.face.box), (rgb.shape[1], rgb.shape[0]), size
    )
    rng = np.random.default_rng(seed)
    render = {
        "live": lambda: depthmaps.live_face(scene, 500, rng),
        "flat": lambda: depthmaps.flat_photo(scene, 500, rng),
        "tilted": lambda: depthmaps.flat_photo(scene, 500, rng, tilt_y_deg=35),
        "bent": lambda: depthmaps.bent_photo(scene, 500, rng, radius_mm=120),
        "screen": lambda: depthmaps.screen(scene, 450, rng),
    }[kind]
    return depthmaps.to_png16(render())


def enrol_resident(community_id: str, unit_id: str, name: str, photo: str) -> str:
    """Inside an app context: a resident of ``unit_id`` with ``photo`` enrolled; committed.
    The person's id."""
    person = factories.person(community_id, name)
    factories.membership(person, PersonRole.RESIDENT, unit_of=unit_id)
    enrol(community_id, person.id, photo)
    db.session.commit()
    return person.id
