"""Text that cannot be stored is refused where a JSON body comes in (``server.core.bodies``).

Every operation of the OpenAPI document that reads a JSON body is sent one with a lone
UTF-16 surrogate: each answers a 422 problem document naming the field, before anything
else reads the body, and nothing is stored. A new endpoint is covered without anyone
remembering to add it here.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from server.core.bodies import LONE_SURROGATE
from server.devices.service import set_secret
from server.extensions import db
from server.models import Device
from tests.factories import Api
from tests.support.api import WorldIds, assert_problem, in_app, snapshot

# "\ud800" as JSON spells it: valid JSON, and Python decodes it to a lone surrogate.
BODY = b'{"name": "Gate \\ud800", "username": "u"}'
DEVICE_SECRET = "door-secret-for-text-tests"


def json_operations(client: FlaskClient) -> list[tuple[str, str, bool]]:
    """(method, path, is a device endpoint) of every operation that reads a JSON body."""
    spec = client.get("/api/v1/openapi.json").json
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in ("post", "put", "patch", "delete"):
                continue  # "parameters" shared by the path's operations
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                device = any("deviceAuth" in s for s in operation.get("security", []))
                found.append((method.upper(), path, device))
    return sorted(found)


def test_every_json_body_with_a_lone_surrogate_is_a_422(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    operations = json_operations(client)
    assert len(operations) >= 20  # the document lists them (a broken read would list none)
    with in_app(app):
        set_secret(db.session.get(Device, world.device_a), DEVICE_SECRET)
        db.session.commit()
    staff = Api(client, "admin").headers
    door = {"Authorization": f"Bearer {world.device_a}.{DEVICE_SECRET}"}
    before = snapshot(app)
    for method, path, device in operations:
        # Any id will do: the body is read before the view looks anything up.
        url = "/api/v1" + re.sub(r"\{[^}]+\}", world.a, path.removeprefix("/api/v1"))
        answer = client.open(
            url,
            method=method,
            data=BODY,
            headers={**(door if device else staff), "Content-Type": "application/json"},
        )
        where = f"{method} {path}"
        assert answer.status_code == 422, (where, answer.get_data(as_text=True))
        body: dict[str, Any] = assert_problem(answer, 422)
        assert body["errors"] == {"name": [LONE_SURROGATE]}, where
    assert snapshot(app) == before


def test_the_token_endpoint_refuses_a_lone_surrogate(client: FlaskClient, world: WorldIds) -> None:
    answer = client.post(
        "/api/v1/auth/token",
        data=b'{"username": "u\\ud800", "password": "long-enough-pw"}',
        content_type="application/json",
    )
    assert assert_problem(answer, 422)["errors"] == {"username": [LONE_SURROGATE]}


def test_paired_surrogates_are_text_like_any_other(client: FlaskClient, world: WorldIds) -> None:
    api = Api(client, "staff_a")
    answer = api.client.post(
        f"/api/v1/communities/{world.a}/buildings",
        data='{"name": "Tower \\ud83c\\udfe2"}',
        headers={**api.headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 201, answer.json
    assert answer.json["name"] == "Tower \U0001f3e2"
