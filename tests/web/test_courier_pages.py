"""Courier codes on the pages: the portal's Courier codes, the building's Delivery codes, the
keypad box on the access point page."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from server.extensions import db
from server.models import AccessPoint, AuditEntry, CourierCode
from tests.support.pages import csrf, login
from tests.support.passes import pass_site


@pytest.fixture
def site(app, frozen):
    built = pass_site(app)
    with app.app_context():
        for point_id in (built.door, built.gate):
            db.session.get(AccessPoint, point_id).has_keypad = True
        db.session.commit()
    return built


def _pin(page: str) -> str:
    match = re.search(r'<p class="pin" id="issued-pin">(\d{6})</p>', page)
    assert match, page
    return match.group(1)


def _type(client, credential: str, digits: str) -> dict:
    headers = {"Authorization": f"Bearer {credential}"}
    return client.post("/api/v1/verify/pin", json={"pin": digits}, headers=headers).json


def test_a_resident_makes_a_code_sees_it_once_and_cancels_it(app, client, site) -> None:
    login(client, "resident_a")
    assert 'href="/my/codes"' in client.get("/").text
    page = client.get("/my/codes")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert site.door in page.text and site.gate in page.text
    assert site.other_door not in page.text  # another building's door
    made = client.post(
        "/my/codes",
        data={
            "csrf_token": csrf(page.text),
            "access_point_id": site.door,
            "minutes": "60",
            "label": "顺丰",
        },
    )
    assert made.status_code == 200, made.text
    digits = _pin(made.text)
    assert "顺丰" in made.text
    # Shown once: the list shows it masked.
    listed = client.get("/my/codes").text
    assert digits not in listed and f"••••{digits[-2:]}" in listed
    with app.app_context():
        code = db.session.scalar(select(CourierCode))
        assert (code.access_point_id, code.unit_id, code.max_uses) == (site.door, site.unit_a, 1)
        assert (code.valid_until - code.valid_from).total_seconds() == 3600
        code_id = code.id

    cancelled = client.post(
        f"/my/codes/{code_id}/revoke", data={"csrf_token": csrf(listed)}, follow_redirects=True
    )
    assert cancelled.status_code == 200 and "Cancel code" not in cancelled.text
    assert _type(client, site.door_credential, digits)["reason"] == "pass_revoked"


def test_the_portal_form_refuses_bad_choices(app, client, site) -> None:
    login(client, "resident_a")
    token = csrf(client.get("/my/codes").text)
    for data in (
        {"access_point_id": site.door, "minutes": "7"},
        {"access_point_id": "", "minutes": "30"},
        {"access_point_id": site.other_door, "minutes": "30"},
    ):
        answer = client.post("/my/codes", data={"csrf_token": token, **data})
        assert answer.status_code in (404, 422), (data, answer.status_code)
        assert 'id="issued-pin"' not in answer.text
    with app.app_context():
        assert db.session.scalar(select(CourierCode.id)) is None


def test_staff_make_a_buildings_delivery_code(app, client, site) -> None:
    login(client, "staff_a")
    with app.app_context():
        building_id = db.session.get(AccessPoint, site.door).building_id
    assert "/delivery-codes" in client.get(f"/buildings/{building_id}").text
    page = client.get(f"/buildings/{building_id}/delivery-codes")
    assert page.status_code == 200
    made = client.post(
        f"/buildings/{building_id}/delivery-codes",
        data={
            "csrf_token": csrf(page.text),
            "access_point_id": site.door,
            "minutes": "1440",
            "max_uses": "5",
            "label": "美团",
        },
    )
    assert made.status_code == 200, made.text
    digits = _pin(made.text)
    for _ in range(2):
        assert _type(client, site.door_credential, digits)["reason"] == "courier_code"
    with app.app_context():
        code = db.session.scalar(select(CourierCode))
        assert (code.max_uses, code.uses, code.unit_id, code.label) == (5, 2, None, "美团")
        assert db.session.scalar(
            select(AuditEntry.id).where(AuditEntry.action == "courier_code.create")
        )
    # Residents find no such page.
    client.post("/logout", data={"csrf_token": csrf(page.text)})
    login(client, "resident_a")
    assert client.get(f"/buildings/{building_id}/delivery-codes").status_code == 404


def test_staff_give_a_door_a_keypad_on_its_page(app, client, site) -> None:
    login(client, "staff_a")
    page = client.get(f"/access-points/{site.other_door}")
    assert page.status_code == 200 and 'name="has_keypad"' in page.text
    assert 'name="has_keypad" value="yes" checked' not in page.text
    with app.app_context():
        point = db.session.get(AccessPoint, site.other_door)
        form = {
            "csrf_token": csrf(page.text),
            "name": point.name,
            "zone": point.zone.value,
            "building_id": point.building_id,
            "open_seconds": "5",
            "requires_depth": "yes",
            "has_keypad": "yes",
        }
    saved = client.post(f"/access-points/{site.other_door}", data=form)
    assert saved.status_code == 303, saved.text
    with app.app_context():
        assert db.session.get(AccessPoint, site.other_door).has_keypad is True
    assert (
        'name="has_keypad" value="yes" checked'
        in client.get(f"/access-points/{site.other_door}").text
    )
