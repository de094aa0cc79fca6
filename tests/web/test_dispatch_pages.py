"""Dispatch on the officer's pages: the console's duty form, and the alert page's panel with
"dispatch the nearest", the list to pick from and the assignee's acknowledgement."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from server.extensions import db
from server.models import AccessPoint, Alert, Community, OfficerDuty, UserRole
from tests import factories
from tests.support.alerts import raise_in
from tests.support.api import WorldIds, in_app
from tests.support.pages import csrf, login


def signed_in(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    login(client, username)
    return client


def test_the_console_puts_an_officer_on_duty_at_a_place(app: Flask, world: WorldIds) -> None:
    officer = signed_in(app, "officer_a")
    page = officer.get("/officer")
    assert page.status_code == 200
    assert 'id="duty-on"' in page.text and "A door" in page.text and "B door" not in page.text
    answer = officer.post(
        "/officer/duty",
        data={"csrf_token": csrf(page.text), "on_duty": "1", "access_point_id": world.door_a},
    )
    assert answer.status_code == 303
    page = officer.get("/officer")
    assert 'data-on-duty="true"' in page.text and 'id="duty-off"' in page.text
    assert re.search(rf'<option value="{world.door_a}" selected>', page.text)
    # Another community's door is refused, and nothing changes.
    officer.post(
        "/officer/duty",
        data={"csrf_token": csrf(page.text), "on_duty": "0", "access_point_id": world.door_b},
    )
    with in_app(app):
        duty = db.session.get(OfficerDuty, world.officer_a)
        assert (duty.on_duty, duty.access_point_id) == (True, world.door_a)
    # Staff have no duty form; their console is not the officers'.
    assert "duty-form" not in signed_in(app, "staff_a").get("/").text


def test_the_alert_page_dispatches_the_nearest_and_the_assignee_acknowledges(
    app: Flask, world: WorldIds, published: list
) -> None:
    with in_app(app):
        a = db.session.get(Community, world.a)
        door = db.session.get(AccessPoint, world.door_a)
        door.plan_x, door.plan_y = 0.2, 0.2
        gate = factories.access_point(a, name="东门")
        gate.plan_x, gate.plan_y = 0.9, 0.9
        factories.user(UserRole.OFFICER, communities=[a], username="wang").display_name = "王警官"
        db.session.commit()
        gate_id = gate.id
    for username, point in (("officer_a", world.door_a), ("wang", gate_id)):
        client = signed_in(app, username)
        page = client.get("/officer")
        client.post(
            "/officer/duty",
            data={"csrf_token": csrf(page.text), "on_duty": "1", "access_point_id": point},
        )
    alert_id = raise_in(app, world.a, access_point_id=gate_id)
    officer = signed_in(app, "officer_a")
    page = officer.get(f"/alerts/{alert_id}")
    assert '<p class="muted" id="dispatch-state">' in page.text  # nobody yet
    assert 'id="dispatch-nearest"' in page.text and "王警官" in page.text
    rows = re.findall(r'<tr data-officer="([^"]+)">', page.text)
    assert len(rows) == 2
    answer = officer.post(f"/alerts/{alert_id}/dispatch", data={"csrf_token": csrf(page.text)})
    assert answer.status_code == 303
    with in_app(app):
        alert = db.session.get(Alert, alert_id)
        assert alert.assignee_id == rows[0]
        wang_id = alert.assignee_id
    # Wang sees the button to acknowledge it; officer A does not.
    assert 'id="dispatch-accept"' not in officer.get(f"/alerts/{alert_id}").text
    wang = signed_in(app, "wang")
    page = wang.get(f"/alerts/{alert_id}")
    assert 'id="dispatch-accept"' in page.text
    answer = wang.post(f"/alerts/{alert_id}/dispatch/accept", data={"csrf_token": csrf(page.text)})
    assert answer.status_code == 303
    with in_app(app):
        alert = db.session.get(Alert, alert_id)
        assert alert.assignment_acknowledged_at is not None and alert.assignee_id == wang_id
    assert 'id="dispatch-accept"' not in wang.get(f"/alerts/{alert_id}").text
