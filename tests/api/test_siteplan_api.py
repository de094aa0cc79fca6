"""The site plan API: upload, read (with its ETag), remove; positions of access points and
devices on it (``plan_x``/``plan_y``); who may do what; bad pictures and bad positions are
refused with a problem document and store nothing."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select

from server.community import siteplan
from server.extensions import db
from server.models import AccessPoint, AuditEntry, Device, SitePlan
from tests.factories import Api
from tests.support.api import WorldIds, assert_problem, in_app, snapshot


def picture(kind: str = "PNG", size: tuple[int, int] = (400, 300)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (230, 240, 250)).save(out, kind)
    return out.getvalue()


def upload(api: Api, cid: str, data: bytes, name: str = "plan.png") -> Any:
    return api.client.put(
        f"/api/v1/communities/{cid}/site-plan",
        headers=api.headers,
        data={"image": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_staff_upload_a_plan_officers_read_it_with_its_etag(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    png = picture()
    answer = upload(Api(client, "staff_a"), world.a, png)
    assert answer.status_code == 200, answer.json
    digest = hashlib.sha256(png).hexdigest()
    assert answer.json | {"updated_at": None} == {
        "community_id": world.a,
        "content_type": "image/png",
        "width": 400,
        "height": 300,
        "sha256": digest,
        "updated_at": None,
    }
    officer = Api(client, "officer_a")
    read = officer.get(f"/communities/{world.a}/site-plan")
    assert read.status_code == 200
    assert read.mimetype == "image/png"
    assert read.data == png
    assert read.headers["ETag"] == f'"{digest}"'
    again = client.get(
        f"/api/v1/communities/{world.a}/site-plan",
        headers={**officer.headers, "If-None-Match": f'"{digest}"'},
    )
    assert again.status_code == 304
    with in_app(app):
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action.like("site_plan.%")))
        assert (entry.action, entry.community_id, entry.details["sha256"]) == (
            "site_plan.upload",
            world.a,
            digest,
        )


def test_a_new_picture_replaces_the_plan_and_delete_removes_it(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    staff = Api(client, "staff_a")
    assert upload(staff, world.a, picture()).status_code == 200
    jpeg = picture("JPEG", (800, 600))
    answer = upload(staff, world.a, jpeg, "plan.jpg")
    assert (answer.json["content_type"], answer.json["width"]) == ("image/jpeg", 800)
    assert staff.get(f"/communities/{world.a}/site-plan").data == jpeg
    assert staff.delete(f"/communities/{world.a}/site-plan").status_code == 204
    assert_problem(staff.get(f"/communities/{world.a}/site-plan"), 404)
    assert_problem(staff.delete(f"/communities/{world.a}/site-plan"), 404)
    with in_app(app):
        actions = db.session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.action.like("site_plan.%"))
            .order_by(AuditEntry.at, AuditEntry.id)
        ).all()
        assert sorted(actions) == ["site_plan.delete", "site_plan.replace", "site_plan.upload"]


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (b"", 422, "empty"),
        (b"GIF89a not a plan at all", 422, "unsupported_format"),
        (picture("GIF"), 422, "unsupported_format"),
        (picture()[:120], 422, "unreadable"),
        (picture(size=(8, 8)), 422, "too_small"),
        (picture(size=(siteplan.MAX_SIDE + 1, 20)), 413, "too_many_pixels"),
        (b"\x89PNG" + b"0" * siteplan.MAX_BYTES, 413, "too_many_bytes"),
    ],
    ids=["empty", "text", "gif", "cut-short", "tiny", "too-wide", "too-big"],
)
def test_a_bad_picture_is_refused_and_nothing_stored(
    app: Flask, client: FlaskClient, world: WorldIds, data: bytes, status: int, reason: str
) -> None:
    staff = Api(client, "staff_a")
    before = snapshot(app)
    body = assert_problem(upload(staff, world.a, data), status)
    assert body["reason"] == reason
    assert snapshot(app) == before


def test_a_body_that_is_not_multipart_is_415(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    staff = Api(client, "staff_a")
    answer = client.put(
        f"/api/v1/communities/{world.a}/site-plan",
        headers={**staff.headers, "Content-Type": "image/png"},
        data=picture(),
    )
    assert_problem(answer, 415)
    without = client.put(
        f"/api/v1/communities/{world.a}/site-plan",
        headers=staff.headers,
        data={"other": (io.BytesIO(picture()), "plan.png")},
        content_type="multipart/form-data",
    )
    assert "image" in assert_problem(without, 422)["errors"]
    with in_app(app):
        assert db.session.get(SitePlan, world.a) is None


@pytest.mark.parametrize(
    ("username", "method", "status"),
    [
        ("staff_b", "PUT", 404),
        ("staff_b", "GET", 404),
        ("staff_b", "DELETE", 404),
        ("resident_a", "GET", 404),
        ("resident_a", "PUT", 404),
        ("officer_a", "PUT", 403),
        ("officer_a", "DELETE", 403),
    ],
)
def test_only_staff_change_and_only_staff_and_officers_of_the_community_read(
    app: Flask, client: FlaskClient, world: WorldIds, username: str, method: str, status: int
) -> None:
    assert upload(Api(client, "staff_a"), world.a, picture()).status_code == 200
    api = Api(client, username)
    before = snapshot(app)
    path = f"/communities/{world.a}/site-plan"
    if method == "PUT":
        answer = upload(api, world.a, picture(size=(100, 100)))
    else:
        answer = getattr(api, method.lower())(path)
    assert_problem(answer, status)
    assert snapshot(app) == before


def test_access_points_and_devices_take_positions_and_null_clears(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    staff = Api(client, "staff_a")
    answer = staff.patch(f"/access-points/{world.door_a}", json={"plan_x": 0.25, "plan_y": 0.75})
    assert (answer.json["plan_x"], answer.json["plan_y"]) == (0.25, 0.75)
    answer = staff.patch(f"/devices/{world.device_a}", json={"plan_x": 1, "plan_y": 0})
    assert (answer.json["plan_x"], answer.json["plan_y"]) == (1.0, 0.0)
    created = staff.post(
        f"/communities/{world.a}/access-points",
        json={
            "name": "North gate",
            "kind": "gate",
            "zone": "perimeter",
            "plan_x": 0.5,
            "plan_y": 0.1,
        },
    )
    assert (created.json["plan_x"], created.json["plan_y"]) == (0.5, 0.1)
    listed = staff.get(f"/communities/{world.a}/devices").json
    assert [(d["plan_x"], d["plan_y"]) for d in listed] == [(1.0, 0.0)]
    cleared = staff.patch(f"/devices/{world.device_a}", json={"plan_x": None, "plan_y": None})
    assert (cleared.json["plan_x"], cleared.json["plan_y"]) == (None, None)
    with in_app(app):
        point = db.session.get(AccessPoint, world.door_a)
        device = db.session.get(Device, world.device_a)
        assert (point.plan_x, point.plan_y, device.plan_x) == (0.25, 0.75, None)
        moves = db.session.scalars(
            select(AuditEntry.details).where(AuditEntry.action == "device.update")
        ).all()
        assert {"plan_x": 1.0, "plan_y": 0.0} in moves


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plan_x": 0.5}, "plan_y"),
        ({"plan_y": 0.5}, "plan_x"),
        ({"plan_x": 1.5, "plan_y": 0.5}, "plan_x"),
        ({"plan_x": 0.5, "plan_y": -0.1}, "plan_y"),
        ({"plan_x": None, "plan_y": 0.5}, "plan_x"),
        ({"plan_x": "left", "plan_y": 0.5}, "plan_x"),
    ],
)
@pytest.mark.parametrize("path", ["/access-points/{door_a}", "/devices/{device_a}"])
def test_bad_positions_are_422_and_change_nothing(
    app: Flask, client: FlaskClient, world: WorldIds, body: dict[str, Any], field: str, path: str
) -> None:
    staff = Api(client, "staff_a")
    before = snapshot(app)
    problem = assert_problem(staff.patch(world.fill(path), json=body), 422)
    assert field in problem["errors"]
    assert snapshot(app) == before


def test_staff_of_another_community_cannot_place_a_point(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    staff_b = Api(client, "staff_b")
    before = snapshot(app)
    answer = staff_b.patch(f"/access-points/{world.door_a}", json={"plan_x": 0.5, "plan_y": 0.5})
    assert_problem(answer, 404)
    assert snapshot(app) == before
    with in_app(app):
        assert db.session.get(SitePlan, world.a) is None
