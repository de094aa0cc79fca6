"""The door intercom's pages without a browser: the ring panel on a resident's pages, the
visitor's snapshot for the unit and the guard only (and only while it is kept), the guard
booth's console and its answers, the resident's stream of their own unit's calls, and the
worker's job that settles calls and erases snapshots."""

from __future__ import annotations

import base64
import io
from datetime import timedelta

import pytest
import time_machine
from PIL import Image

from server.access import intercom
from server.core.scope import Scope
from server.extensions import db
from server.models import IntercomCall, Unit, User, UserRole
from tests import factories
from tests.support.pages import csrf, login, logout
from tests.support.passes import NOW, pass_site


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (90, 90, 200)).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
def site(app):
    built = pass_site(app)
    with app.app_context():
        factories.user(
            UserRole.RESIDENT, unit_of=db.session.get(Unit, built.unit_a), username="spouse_a"
        )
        db.session.commit()
        db.session.remove()
    return built


def _place(client, site) -> str:
    answer = client.post(
        "/api/v1/intercom/calls",
        json={"unit": "101", "snapshot": base64.b64encode(_jpeg()).decode()},
        headers={"Authorization": f"Bearer {site.door_credential}"},
    )
    assert answer.status_code == 201, answer.json
    return answer.json["id"]


# Every page of the resident's portal: the home page and each page on portal_base.html.
PORTAL_PAGES = (
    "/",
    "/my/passes",
    "/my/passes/new",
    "/my/code",
    "/my/codes",
    "/my/doors",
    "/my/history",
    "/my/notifications",
    "/my/notifications/settings",
)
RING = 'data-mode="resident"'


@time_machine.travel(NOW, tick=False)
def test_the_ring_panel_is_on_every_portal_page_of_a_resident_and_on_no_staff_page(client, site):
    login(client, "resident_a")
    for path in PORTAL_PAGES:
        answer = client.get(path)
        assert answer.status_code == 200, path
        page = answer.text
        assert page.count(RING) == 1 and page.count("/my/intercom/live") == 1, path
        assert page.count("intercom.js") == 1, path  # one ring stream per page
        if path != "/":  # on top of the page, above the portal's own links
            assert page.index(RING) < page.index('class="portal-nav"'), path
    logout(client)
    login(client, "staff_a")
    for path in ("/", f"/communities/{site.a}/intercom", *PORTAL_PAGES[1:]):
        answer = client.get(path)
        assert RING not in answer.text and "/my/intercom/live" not in answer.text, path
    assert client.get("/my/intercom/live").status_code == 404


@time_machine.travel(NOW, tick=False)
def test_the_snapshot_is_for_the_unit_and_the_guard_while_it_is_kept(app, client, site, published):
    call_id = _place(client, site)
    path = f"/intercom/calls/{call_id}/snapshot"
    for username, status in (
        ("resident_a", 200),
        ("spouse_a", 200),
        ("staff_a", 200),
        ("tenant_a", 404),
        ("resident_b", 404),
        ("staff_b", 404),
        ("officer_a", 404),
    ):
        login(client, username)
        answer = client.get(path)
        assert answer.status_code == status, username
        if status == 200:
            assert answer.data == _jpeg() and answer.mimetype == "image/jpeg"
            assert "no-store" in answer.headers["Cache-Control"]
        logout(client)
    # Refused at NOW; kept 10 minutes, then not shown, then erased by the worker's job.
    with app.app_context():
        intercom.answer(
            Scope(db.session.scalar(db.select(User).where(User.username == "resident_a"))),
            call_id,
            open_door=False,
        )
        db.session.commit()
    login(client, "resident_a")
    with time_machine.travel(NOW + timedelta(minutes=9, seconds=59), tick=False):
        assert client.get(path).status_code == 200
    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        assert client.get(path).status_code == 404
    with app.app_context():
        assert intercom.erase_snapshots(NOW + timedelta(minutes=9)) == 0
        assert intercom.erase_snapshots(NOW + timedelta(minutes=10)) == 1
        db.session.commit()
        call = db.session.get(IntercomCall, call_id)
        assert call.snapshot is None and call.snapshot_erased_at == NOW + timedelta(minutes=10)
        assert call.event_id is not None  # the call and its event stay


def test_the_guard_booth_lists_live_calls_and_answers_them(app, client, site, published):
    with time_machine.travel(NOW, tick=False):
        call_id = _place(client, site)
    with time_machine.travel(NOW + timedelta(seconds=50), tick=False):
        login(client, "staff_a")
        page = client.get(f"/communities/{site.a}/intercom")
        assert page.status_code == 200
        assert f'data-call="{call_id}"' in page.text and "A door" in page.text
        assert "at the guard booth" in page.text  # rolled over when the page was read
        answer = client.post(
            f"/intercom/calls/{call_id}/answer",
            data={"csrf_token": csrf(page.text), "action": "open", "next": page.request.path},
        )
        assert answer.status_code == 303
        assert answer.headers["Location"].endswith(f"/communities/{site.a}/intercom")
        again = client.get(f"/communities/{site.a}/intercom")
        assert f'data-call="{call_id}"' not in again.text and "No call is waiting." in again.text
        late = client.post(
            f"/intercom/calls/{call_id}/answer",
            data={"csrf_token": csrf(again.text), "action": "refuse"},
            headers={"Accept": "application/json"},
        )
        assert late.status_code == 409 and late.json["ok"] is False
        logout(client)
        for username in ("staff_b", "resident_a", "officer_a"):
            login(client, username)
            assert client.get(f"/communities/{site.a}/intercom").status_code == 404, username
            logout(client)
    with app.app_context():
        assert db.session.get(IntercomCall, call_id).status.value == "answered"


@time_machine.travel(NOW, tick=False)
def test_a_resident_answers_from_the_page_with_json(app, client, site, published):
    call_id = _place(client, site)
    login(client, "resident_b")
    token = csrf(client.get("/").text)
    stranger = client.post(
        f"/intercom/calls/{call_id}/answer",
        data={"csrf_token": token, "action": "open"},
        headers={"Accept": "application/json"},
    )
    assert stranger.status_code == 404
    logout(client)
    login(client, "spouse_a")
    token = csrf(client.get("/my/doors").text)
    answer = client.post(
        f"/intercom/calls/{call_id}/answer",
        data={"csrf_token": token, "action": "open"},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 200
    assert answer.json == {
        "ok": True,
        "opened": True,
        "message": "The door is opening for your visitor.",
    }
    bad = client.post(
        f"/intercom/calls/{call_id}/answer",
        data={"csrf_token": token, "action": "maybe"},
        headers={"Accept": "application/json"},
    )
    assert bad.status_code == 422


def test_a_residents_stream_carries_only_their_units_calls(app, client, site):
    with app.app_context():
        users = {
            name: db.session.scalar(db.select(User).where(User.username == name))
            for name in ("resident_a", "tenant_a")
        }
        mine = intercom.unit_subscriber(Scope(users["resident_a"]))
        theirs = intercom.unit_subscriber(Scope(users["tenant_a"]))
        with time_machine.travel(NOW, tick=False):
            _place(client, site)
        call = db.session.scalar(db.select(IntercomCall))
        [change] = intercom.INTERCOM.build([call])
        assert change.payload["unit"] == "A1-101" and change.payload["door"] == "A door"
        assert "snapshot" not in change.payload and change.payload["has_snapshot"] is True
        assert mine.wants(change) and not theirs.wants(change)


def test_the_workers_job_settles_due_calls(app, client, site, published):
    with time_machine.travel(NOW, tick=False):
        call_id = _place(client, site)
    with app.app_context():
        assert intercom.settle_due(NOW + timedelta(seconds=44)) == 0
        assert intercom.settle_due(NOW + timedelta(seconds=45)) == 1
        db.session.commit()
        assert db.session.get(IntercomCall, call_id).status.value == "rolled_over"
        assert intercom.settle_due(NOW + timedelta(seconds=105)) == 1
        db.session.commit()
        call = db.session.get(IntercomCall, call_id)
        assert call.status.value == "timed_out" and call.ended_at == NOW + timedelta(seconds=105)
        assert intercom.settle_due(NOW + timedelta(seconds=200)) == 0
    assert len(published) == 1  # the display with the outcome, once


@pytest.mark.postgresql  # notifications (migration 0024's trigger)
def test_a_call_rings_by_notification_on_postgresql(app, client, site):
    """With polling off, only the ``intercom_calls`` trigger can bring the call to the ring."""
    from server.core import live
    from tests.support.e2e import eventually

    hub = live.Broadcaster(app, poll_s=3600.0, safety_poll_s=3600.0)
    try:
        with app.app_context():
            user = db.session.scalar(db.select(User).where(User.username == "resident_a"))
            ring = intercom.unit_subscriber(Scope(user))
            db.session.remove()
        hub.subscribe(ring, 10)
        assert eventually(lambda: hub.listening)
        call_id = _place(client, site)
        change = ring.changes.get(timeout=10)
        assert (change.row_id, change.event, change.payload["status"]) == (
            call_id,
            "intercom",
            "ringing",
        )
    finally:
        hub.stop()
