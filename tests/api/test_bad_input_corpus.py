"""A corpus of bad input on every upload and every device endpoint, generated from the
OpenAPI document: each answers a 4xx problem document and stores nothing.

Every file part of every multipart operation gets each bad file in turn (the other parts
are good, so the bad one is what is judged), and every JSON device endpoint each bad body.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from gatekeeper.vocabulary import AccessPointKind, DeviceKind, PersonRole, Zone
from server.extensions import db
from server.models import Community
from server.people.service import FACE_PURPOSE
from tests import factories
from tests.factories import Api
from tests.gatekeeper.face_images import encode, photo_bytes, png_header_claiming, upright_rgb
from tests.support.api import WorldIds, assert_problem, in_app, snapshot

BAD_STATUSES = {400, 413, 415, 422}


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (64, 64)).save(buffer, "GIF")
    return buffer.getvalue()


def bad_files() -> dict[str, bytes]:
    good = photo_bytes("obama.jpg")
    return {
        "empty": b"",
        "truncated-jpeg": good[: len(good) // 3],
        "jpeg-header-only": good[:200],
        "text": "这不是图片 not an image".encode(),
        "gif": _gif(),
        "bomb-png": png_header_claiming(50_000, 50_000),
        "over-8-mib": b"\xff\xd8\xff\xe0" + b"\0" * (9 * 1024 * 1024),
        "zip": b"PK\x03\x04" + b"\0" * 100,
    }


# The bodies a JSON device endpoint might be sent by broken or hostile firmware.
BAD_BODIES = {
    "deep-nesting": "[" * 50_000,
    "huge-number": '{"uid": ' + "9" * 5000 + "}",
    "float-overflow": '{"uid": 1e999, "confidence": 1e999}',
    "lone-surrogate": '{"uid": "04\\ud800", "plate": "浙A\\udfff", "token": "\\ud800"}',
    "nan": '{"uid": NaN, "confidence": NaN}',
    "wrong-top-level": "[1, 2, 3]",
    "wrong-types": '{"uid": {"$gt": ""}, "plate": [1], "token": 5, "direction": 7}',
    "very-long": json.dumps(
        {"uid": "A" * 100_000, "plate": "浙" * 100_000, "token": "x" * 100_000}
    ),
    "not-json": "uid=04A1B2C3",
    # (Any text as a QR token is a decision, "pass_invalid": a camera reads what it is shown.)
    "nul": '{"uid": "04\\u0000A1", "plate": "\\u0000", "direction": "\\u0000"}',
}


def operations(client: FlaskClient) -> list[tuple[str, str, dict[str, Any], bool]]:
    """(method, path, body schema, multipart) of the upload operations and of every device
    endpoint that reads JSON."""
    spec = client.get("/api/v1/openapi.json").json
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in ("post", "patch", "put"):
                continue
            content = operation.get("requestBody", {}).get("content", {})
            device = any("deviceAuth" in s for s in operation.get("security") or [])
            for media, multipart in (("multipart/form-data", True), ("application/json", False)):
                if media in content and (multipart or device):
                    schema = content[media].get("schema", {})
                    if "$ref" in schema:
                        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
                    found.append((method.upper(), path, schema, multipart))
    return found


@pytest.fixture
def site(app: Flask, world: WorldIds) -> dict[str, str]:
    """A person with consent to face recognition, a door without depth, a barrier."""
    with in_app(app):
        person = factories.person(world.a, "王小明")
        factories.membership(person, PersonRole.OWNER, unit_of=world.unit_a)
        community = db.session.get(Community, world.a)
        lobby = factories.access_point(community, name="Lobby", requires_depth=False)
        door, door_secret = factories.device(lobby)
        barrier_point = factories.access_point(
            community, name="Gate", kind=AccessPointKind.BARRIER, zone=Zone.PERIMETER
        )
        barrier, barrier_secret = factories.device(barrier_point, kind=DeviceKind.BARRIER)
        db.session.commit()
        ids = {
            "pid": person.id,
            "cid": world.a,
            "door": f"{door.id}.{door_secret}",
            "barrier": f"{barrier.id}.{barrier_secret}",
        }
    api = Api(app.test_client(), "staff_a")  # signed in before any snapshot is taken
    consent = api.post(f"/people/{ids['pid']}/consents", json={"purpose": FACE_PURPOSE})
    assert consent.status_code == 201, consent.json
    officer = Api(app.test_client(), "officer_a")
    return {
        **ids,
        "staff": api.headers["Authorization"],
        "officer": officer.headers["Authorization"],
    }


def _headers(site: dict[str, str], path: str) -> dict[str, str]:
    # The doors' own endpoints (verify, intercom calls, their offline allowlist).
    if "/verify/" in path or path == "/api/v1/intercom/calls" or "/devices/me/" in path:
        device = site["barrier"] if path.endswith("/plate") else site["door"]
        return {"Authorization": f"Bearer {device}"}
    if "/watchlist" in path:  # the officer's, not the property office's
        return {"Authorization": site["officer"]}
    return {"Authorization": site["staff"]}


def _good_form(schema: dict[str, Any]) -> dict[str, Any]:
    """Good values for every part: the real photo for files, plain text for the rest."""
    photo = encode(upright_rgb("obama.jpg"))
    text = {"plate": "浙A12345", "direction": "in", "name": "某某", "category": "wanted"}
    form: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        if prop.get("format") == "binary":
            form[name] = (io.BytesIO(photo), f"{name}.jpg")
        elif name in text:
            form[name] = text[name]
    return form


def test_every_bad_file_on_every_upload_is_a_4xx_and_stores_nothing(
    app: Flask, client: FlaskClient, site: dict[str, str]
) -> None:
    uploads = [op for op in operations(client) if op[3]]
    assert len(uploads) >= 6, [op[1] for op in uploads]
    before = snapshot(app)
    tried = 0
    for method, path, schema, _ in uploads:
        url = path.replace("{pid}", site["pid"]).replace("{cid}", site["cid"])
        headers = _headers(site, path)
        files = [n for n, p in schema.get("properties", {}).items() if p.get("format") == "binary"]
        assert files, path
        for part in files:
            for label, data in bad_files().items():
                form = _good_form(schema)
                form[part] = (io.BytesIO(data), f"{part}.jpg")
                answer = client.open(url, method=method, data=form, headers=headers)
                where = f"{method} {path} {part}={label}"
                assert answer.status_code in BAD_STATUSES, (where, answer.get_data(as_text=True))
                assert_problem(answer, answer.status_code)
                tried += 1
    assert snapshot(app) == before
    assert tried >= 9 * 7


def test_every_bad_body_on_every_device_endpoint_is_a_4xx_and_stores_nothing(
    app: Flask, client: FlaskClient, site: dict[str, str]
) -> None:
    endpoints = [op for op in operations(client) if not op[3]]
    assert {path for _, path, _, _ in endpoints} >= {
        "/api/v1/verify/card",
        "/api/v1/verify/qr",
        "/api/v1/verify/plate",
    }
    before = snapshot(app)
    for method, path, _, _ in endpoints:
        headers = {**_headers(site, path), "Content-Type": "application/json"}
        for label, body in BAD_BODIES.items():
            data = body.encode("utf-8", "surrogatepass")
            answer = client.open(path, method=method, data=data, headers=headers)
            where = f"{method} {path} {label}"
            assert answer.status_code in BAD_STATUSES, (where, answer.get_data(as_text=True))
            assert_problem(answer, answer.status_code)
    assert snapshot(app) == before
