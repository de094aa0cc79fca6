"""POST /api/v1/verify/qr with a camera frame: the pass's own PNG, placed in a photo."""

from __future__ import annotations

import io

import pytest

from server.extensions import db
from server.models import AccessEvent
from tests.factories import Api
from tests.support.passes import pass_site
from tests.support.qrframes import frame_with_codes, qr_png


@pytest.fixture
def site(app):
    return pass_site(app)


def scan(client, credential: str, frame: bytes, filename: str = "frame.jpg", **form):
    answer = client.post(
        "/api/v1/verify/qr",
        data={"image": (io.BytesIO(frame), filename), **form},
        headers={"Authorization": f"Bearer {credential}"},
        content_type="multipart/form-data",
    )
    return answer


def _pass_png(client, **fields) -> tuple[dict, bytes]:
    resident = Api(client, "resident_a")
    body = resident.post("/passes", json={"guest_name": "访客", **fields}).json
    png = resident.get(f"/passes/{body['id']}/qr.png")
    assert png.status_code == 200
    return body, png.data


@pytest.mark.parametrize(
    ("angle", "tilt", "width", "blur"),
    [
        (0.0, 0.0, 240, 0.0),  # straight
        (27.0, 0.15, 170, 0.0),  # at an angle, tilted away, small
        (-12.0, 0.0, 150, 0.8),  # small and slightly blurred
        (90.0, 0.0, 200, 0.0),  # phone held sideways
    ],
)
def test_the_pass_png_is_read_from_a_720p_frame(
    app, client, site, frozen, angle, tilt, width, blur
):
    body, png = _pass_png(client)
    frame = frame_with_codes([png], width=width, angle=angle, tilt=tilt, blur=blur, seed=3)
    answer = scan(client, site.door_credential, frame)
    assert answer.status_code == 200, answer.json
    assert (answer.json["decision"], answer.json["reason"]) == ("grant", "visitor_pass")
    with app.app_context():
        event = db.session.get(AccessEvent, answer.json["event_id"])
        assert event.pass_id == body["id"] and event.details["source"] == "frame"


def test_of_two_codes_in_a_frame_the_one_that_verifies_is_used(client, site, frozen) -> None:
    _body, png = _pass_png(client, max_uses=3)
    stray = qr_png("https://example.com/menu")  # a poster behind the guest
    for order in ([stray, png], [png, stray]):
        answer = scan(client, site.gate_credential, frame_with_codes(order, width=220, seed=5))
        assert (answer.json["decision"], answer.json["reason"]) == ("grant", "visitor_pass")


def test_two_passes_in_one_frame_admit_one_guest(client, site, frozen) -> None:
    _first, png_one = _pass_png(client)
    _second, png_two = _pass_png(client)
    answer = scan(client, site.door_credential, frame_with_codes([png_one, png_two], width=220))
    assert answer.json["decision"] == "grant"


def test_a_frame_without_a_code_is_pass_invalid_with_a_detail(app, client, site, frozen) -> None:
    answer = scan(client, site.door_credential, frame_with_codes([], seed=1))
    assert answer.status_code == 200
    assert (answer.json["decision"], answer.json["reason"]) == ("deny", "pass_invalid")
    with app.app_context():
        event = db.session.get(AccessEvent, answer.json["event_id"])
        assert event.details["detail"] == "no QR code found in the frame"
        assert event.rule == "token.absent"
    foreign = scan(client, site.door_credential, frame_with_codes([qr_png("hello")], width=220))
    assert foreign.json["reason"] == "pass_invalid"


def test_bad_frames_are_problems_not_crashes(client, site, frozen) -> None:
    for data, status in (
        (b"", 422),
        (b"not an image at all", 422),
        (b"\x89PNG\r\n\x1a\n" + b"0" * 50, 422),
    ):
        answer = scan(client, site.door_credential, data)
        assert answer.status_code == status, data[:10]
        assert answer.mimetype == "application/problem+json"
    missing = client.post(
        "/api/v1/verify/qr",
        data={"direction": "in"},
        headers={"Authorization": f"Bearer {site.door_credential}"},
        content_type="multipart/form-data",
    )
    assert missing.status_code == 422 and "image" in missing.json["errors"]
    bad_direction = scan(client, site.door_credential, frame_with_codes([]), direction="up")
    assert bad_direction.status_code == 422
