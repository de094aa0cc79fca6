"""POST /api/v1/verify/face with real photos composed into door-camera frames."""

from __future__ import annotations

import io
import threading
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from PIL import Image
from sqlalchemy import select

from gatekeeper import faces as engine
from gatekeeper import liveness
from gatekeeper.vocabulary import PersonRole
from server import create_app
from server.access import snapshots
from server.core import crypto
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    Community,
    FaceTemplate,
    Membership,
    utcnow,
)
from server.people.galleries import record_change
from tests import factories
from tests.conftest import Recorder, app_environment
from tests.support.faces import depth_for, enrol, frame
from tests.support.published import commands

SECRET = "face-door-secret"


SHANGHAI = ZoneInfo("Asia/Shanghai")  # the factories' communities


@pytest.fixture
def site(app):
    with app.app_context():
        w = factories.world(door_secret=SECRET)
        door = w.device_a
        db.session.get(AccessPoint, w.door_a.id).requires_depth = False
        obama = factories.person(w.a, "奥巴马")
        factories.membership(obama, PersonRole.RESIDENT, unit_of=w.unit_a)
        template_id = enrol(w.a.id, obama.id, "obama.jpg")
        db.session.commit()
        ids = {
            "a": w.a.id,
            "door": door.id,
            "point": w.door_a.id,
            "obama": obama.id,
            "unit": w.unit_a.id,
            "template": template_id,
        }
        db.session.remove()
    return ids


def verify(
    client, site, image: bytes | None, *, depth: bytes | None = None, direction: str | None = None
):
    data: dict[str, object] = {}
    if image is not None:
        data["image"] = (io.BytesIO(image), "frame.jpg")
    if depth is not None:
        data["depth"] = (io.BytesIO(depth), "depth.png")
    if direction:
        data["direction"] = direction
    return client.post(
        "/api/v1/verify/face",
        data=data,
        content_type="multipart/form-data",
        headers={"Authorization": f"Bearer {site['door']}.{SECRET}"},
    )


@pytest.mark.parametrize("photo", ["obama2.jpg", "obama3.jpg"])
def test_enrolled_resident_is_let_in(app, client, site, published, photo) -> None:
    answer = verify(client, site, frame(photo), direction="in")
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert (body["decision"], body["reason"]) == ("grant", "resident")
    assert body["subject"] == {"kind": "resident", "display_name": "奥*马"}
    assert body["liveness"]["checked"] is False and body["liveness"]["method"] == "2d"
    assert len(published) == 1
    with app.app_context():
        event = db.session.get(AccessEvent, body["event_id"])
        assert event.person_id == site["obama"] and event.direction == "in"
        assert event.details["distance"] < event.details["tolerance"]
        assert event.template_encrypted is None and event.snapshot_path is None


def test_unknown_face_keeps_its_template_for_strangers(app, client, site, published) -> None:
    # At noon in the community: a stranger at night would also raise an alert (tests/alerts).
    noon = datetime.now(SHANGHAI).replace(hour=12, minute=0, second=0, microsecond=0)
    with time_machine.travel(noon, tick=True):
        body = verify(client, site, frame("biden.jpg")).json
    assert (body["decision"], body["reason"]) == ("deny", "unknown_face")
    assert "subject" not in body and published == []
    with app.app_context():
        event = db.session.get(AccessEvent, body["event_id"])
        template = engine.template_from_bytes(crypto.decrypt(event.template_encrypted))
        assert template.shape == (128,)
        assert event.details["match"] == "too_far" and event.rule == "face.too_far"


def test_no_face_and_two_faces(app, client, site, published) -> None:
    empty = io.BytesIO()
    Image.new("RGB", (1280, 720), (90, 90, 90)).save(empty, "JPEG")
    assert verify(client, site, empty.getvalue()).json["reason"] == "no_face"
    two = verify(client, site, frame("obama2.jpg", "obama2.jpg")).json  # two alike faces
    assert two["reason"] == "multiple_faces"
    assert published == []


def test_tenant_after_the_lease(app, client, site, published) -> None:
    with app.app_context():
        membership = db.session.scalar(
            select(Membership).where(Membership.person_id == site["obama"])
        )
        membership.role = PersonRole.TENANT
        now = utcnow()
        factories.lease(
            site["obama"],
            site["unit"],
            starts_at=now - timedelta(days=30),
            ends_at=now - timedelta(seconds=1),
        )
    assert verify(client, site, frame("obama2.jpg")).json["reason"] == "lease_expired"
    assert published == []


def test_door_requiring_depth_refuses_a_2d_frame(app, client, site, published) -> None:
    with app.app_context():
        db.session.get(AccessPoint, site["point"]).requires_depth = True
        db.session.commit()
    body = verify(client, site, frame("obama2.jpg")).json
    assert (body["decision"], body["reason"]) == ("deny", "spoof_suspected")
    assert body["liveness"]["live"] is False
    assert "depth missing" in body["liveness"]["detail"]


def test_bad_frames_are_problems(app, client, site, published) -> None:
    assert verify(client, site, None).status_code == 422
    assert verify(client, site, b"definitely not a jpeg").status_code == 422
    assert verify(client, site, frame("obama2.jpg")[:5000]).status_code == 422  # truncated
    assert verify(client, site, b"\xff" * (9 * 1024 * 1024)).status_code == 413
    bomb = io.BytesIO()
    Image.new("L", (5000, 100)).save(bomb, "PNG")
    assert verify(client, site, bomb.getvalue()).status_code == 413
    assert verify(client, site, frame("obama2.jpg"), direction="sideways").status_code == 422
    assert (
        client.post(
            "/api/v1/verify/face",
            json={"image": "x"},
            headers={"Authorization": f"Bearer {site['door']}.{SECRET}"},
        ).status_code
        == 415
    )
    with app.app_context():
        assert db.session.scalar(select(AccessEvent.id)) is None


def test_snapshots_kept_only_when_asked_and_erased_after_retention(
    app, client, site, published
) -> None:
    with app.app_context():
        community = db.session.get(Community, site["a"])
        community.settings = {"keep_snapshots": True, "snapshot_retention_days": 3}
        db.session.commit()
    body = verify(client, site, frame("obama2.jpg")).json
    with app.app_context():
        event = db.session.get(AccessEvent, body["event_id"])
        crop = Image.open(io.BytesIO(snapshots.load(event)))
        assert crop.width < 1280 and crop.height < 720  # the face, not the frame
        assert b"JFIF" not in (snapshots._root() / event.snapshot_path).read_bytes()
        assert snapshots.erase_expired() == 0
        event.occurred_at = utcnow() - timedelta(days=4)
        db.session.commit()
        path = snapshots._root() / event.snapshot_path
        assert snapshots.erase_expired() == 1
        db.session.commit()
        assert not path.exists() and db.session.get(AccessEvent, event.id).snapshot_path is None


def test_a_second_process_sees_new_and_removed_faces(
    app, client, site, published, workdir: Path, database_url: str
) -> None:
    """Two apps on one database stand for two web workers: no restart between changes."""
    other = create_app(app_environment(workdir, database_url))
    other.extensions["mqtt_publisher"] = Recorder()
    other_client = other.test_client()
    assert verify(other_client, site, frame("biden.jpg")).json["reason"] == "unknown_face"
    with app.app_context():
        biden = factories.person(site["a"], "拜登")
        factories.membership(biden, PersonRole.RESIDENT, unit_of=site["unit"])
        biden_row = enrol(site["a"], biden.id, "biden.jpg")
        db.session.commit()
        biden_id = biden.id
    granted = verify(other_client, site, frame("biden.jpg")).json
    assert (granted["reason"], granted["subject"]["display_name"]) == ("resident", "拜*")
    with app.app_context():
        db.session.delete(db.session.get(FaceTemplate, biden_row))
        record_change(site["a"], biden_row, biden_id, "remove")
        db.session.commit()
    assert verify(other_client, site, frame("biden.jpg")).json["reason"] == "unknown_face"


def test_live_depth_passes_and_attacks_fail(app, client, site, published) -> None:
    with app.app_context():
        db.session.get(AccessPoint, site["point"]).requires_depth = True
        db.session.commit()
    image = frame("obama2.jpg")
    live = verify(client, site, image, depth=depth_for(image, "live")).json
    assert (live["decision"], live["reason"]) == ("grant", "resident"), live
    assert live["liveness"]["checked"] is True and live["liveness"]["method"] == "depth"
    assert live["liveness"]["live"] is True and live["liveness"]["score"] >= 0.5
    for attack in ("flat", "tilted", "bent", "screen"):
        body = verify(client, site, image, depth=depth_for(image, attack)).json
        assert (body["decision"], body["reason"]) == ("deny", "spoof_suspected"), (attack, body)
        assert body["liveness"]["live"] is False
    assert len(commands(published)) == 1  # only the live face opened the door
    with app.app_context():
        spoof = db.session.scalar(
            select(AccessEvent).where(AccessEvent.reason == "spoof_suspected")
        )
        assert spoof.details["liveness"]["checked"] is True and spoof.person_id is None
        assert spoof.details["liveness"]["measurements"]  # the numbers behind the refusal


def test_garbage_depth_is_a_problem_not_a_crash(app, client, site, published) -> None:
    image = frame("obama2.jpg")
    eight_bit = io.BytesIO()
    Image.new("L", (640, 360)).save(eight_bit, "PNG")
    wrong_aspect = io.BytesIO()
    Image.new("I;16", (640, 480)).save(wrong_aspect, "PNG")
    zeros = io.BytesIO()
    Image.new("I;16", (640, 360)).save(zeros, "PNG")
    for depth, reason in (
        (eight_bit.getvalue(), "not_16_bit"),
        (wrong_aspect.getvalue(), "wrong_aspect"),
        (b"garbage", "not_png"),
        (b"", "empty"),
    ):
        answer = verify(client, site, image, depth=depth)
        assert answer.status_code == 422, answer.json  # docs/protocol.md: an unusable depth map
        assert answer.mimetype == "application/problem+json"
        assert answer.json["reason"] == reason and "depth" in answer.json["errors"]
    all_zero = verify(client, site, image, depth=zeros.getvalue())
    assert all_zero.status_code == 200
    assert all_zero.json["reason"] == "spoof_suspected"
    assert all_zero.json["liveness"]["live"] is False


def test_the_depth_map_is_decoded_beside_the_face_search(
    app, client, site, published, monkeypatch
) -> None:
    """The depth PNG is decoded on a helper thread while the request's thread looks for the
    face; a frame without a face gets its decision whatever its depth map holds."""
    threads: list[str] = []
    load_depth = liveness.load_depth

    def recording(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return load_depth(*args, **kwargs)

    monkeypatch.setattr(liveness, "load_depth", recording)
    image = frame("obama2.jpg")
    live = verify(client, site, image, depth=depth_for(image, "live")).json
    assert (live["reason"], live["liveness"]["live"]) == ("resident", True)
    assert len(threads) == 1 and threads[0].startswith("depth-decode")
    assert threading.current_thread().name not in threads
    empty = io.BytesIO()
    Image.new("RGB", (1280, 720), (90, 90, 90)).save(empty, "JPEG")
    answer = verify(client, site, empty.getvalue(), depth=b"garbage")
    assert answer.status_code == 200 and answer.json["reason"] == "no_face"


def _reencoded(image: Image.Image, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **save)
    return buffer.getvalue()


@pytest.mark.parametrize("variant", ["exif_rotated", "darker", "smaller", "png_alpha", "grey"])
def test_what_real_door_cameras_send(app, client, site, published, variant) -> None:
    """Frames as cameras send them still find the resident."""
    from PIL import ImageEnhance

    base = Image.open(io.BytesIO(frame("obama2.jpg")))
    if variant == "exif_rotated":
        # The sensor is mounted sideways: pixels rotated, the EXIF Orientation tag says so.
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 degrees clockwise to display
        data = _reencoded(base.rotate(90, expand=True), format="JPEG", exif=exif)
    elif variant == "darker":
        data = _reencoded(ImageEnhance.Brightness(base).enhance(0.45), format="JPEG")
    elif variant == "smaller":
        data = frame("obama2.jpg", face_height=380)
    elif variant == "png_alpha":
        data = _reencoded(base.convert("RGBA"), format="PNG")
    else:
        data = _reencoded(base.convert("L"), format="JPEG")
    body = verify(client, site, data).json
    assert (body["decision"], body["reason"]) == ("grant", "resident"), (variant, body)
