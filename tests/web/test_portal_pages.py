"""The resident portal's pages: passes, the rotating code, doors, history, and who may use them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from gatekeeper.vocabulary import Zone
from hardware.messages import CommandMessage
from hardware.protocol import Command
from hardware.topics import device_topic
from server.extensions import db
from server.models import AccessEvent, Community, Unit, UserRole, VisitorPass
from tests import factories
from tests.factories import Api
from tests.support.pages import csrf, login
from tests.support.passes import LEASE_END, NOW, pass_site

PAGES = ("/my/passes", "/my/passes/new", "/my/code", "/my/doors", "/my/history")


@pytest.fixture
def site(app):
    return pass_site(app)


@pytest.fixture
def resident(client, site, frozen):
    """The test client, signed in as resident_a (owner of unit A1-101)."""
    login(client, "resident_a")
    return client


def _new_pass(client, site, **fields):
    """Submit the pass form; the defaults are what the form offers ticked."""
    token = csrf(client.get("/my/passes/new").text)
    data = {
        "guest_name": "快递 小李",
        "duration": "24h",
        "max_uses": "1",
        "access_point_ids": [site.door, site.gate],
        "csrf_token": token,
        **fields,
    }
    return client.post("/my/passes/new", data=data)


def _created_id(answer) -> str:
    assert answer.status_code == 303, answer.text
    match = re.fullmatch(r"/my/passes/(pas_\w+)", answer.location)
    assert match, answer.location
    return match.group(1)


def _post(client, path: str, page: str = "/my/doors"):
    return client.post(path, data={"csrf_token": csrf(client.get(page).text)})


def _count_passes(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(VisitorPass))


def test_home_links_to_every_portal_section(resident) -> None:
    home = resident.get("/").text
    for label, path in (
        ("Invite a guest", "/my/passes/new"),
        ("My passes", "/my/passes"),
        ("My code", "/my/code"),
        ("Open a door", "/my/doors"),
        ("History", "/my/history"),
    ):
        assert f'href="{path}">{label}</a>' in home


def test_each_page_renders_for_a_resident(resident, site) -> None:
    pass_id = _created_id(_new_pass(resident, site))
    for path in (*PAGES, f"/my/passes/{pass_id}", "/my/passes?show=used"):
        answer = resident.get(path)
        assert answer.status_code == 200, path
        assert 'name="viewport"' in answer.text and 'class="portal-nav"' in answer.text
    form = resident.get("/my/passes/new").text
    # The defaults are ticked: the building's door and the perimeter gate; no other building's.
    assert re.search(rf'value="{site.door}" checked', form)
    assert re.search(rf'value="{site.gate}" checked', form)
    assert site.other_door not in form
    assert 'value="24h" checked' in form and 'name="max_uses" value="1" checked' in form
    assert "2026-11-21 23:59 CST" in form  # "until tonight", in the community's zone
    doors = resident.get("/my/doors").text
    assert "A door" in doors and "North gate" in doors and "A2 door" not in doors


# One Chinese text of each page, and one of the pass page once a pass exists.
CHINESE = {
    "/my/passes": "<h1>我的通行证</h1>",
    "/my/passes/new": "<legend>有效时长</legend>",
    "/my/code": "秒后更新",
    "/my/doors": "<h1>远程开门</h1>",
    "/my/history": "<h1>通行记录</h1>",
}


def test_the_portal_is_chinese_for_a_phone_that_asks_for_nothing(resident, site) -> None:
    pass_id = _created_id(_new_pass(resident, site, guest_name="Ann"))
    resident.environ_base.pop("HTTP_ACCEPT_LANGUAGE", None)
    for path, text in CHINESE.items():
        page = resident.get(path).text
        assert '<html lang="zh-CN">' in page and text in page, path
        assert ">通行证</a>" in page, path  # the portal's own links
    page = resident.get(f"/my/passes/{pass_id}").text
    assert '<span class="pill on" id="pass-status">有效</span>' in page
    assert "<dt>已使用</dt><dd>0 / 1 次</dd>" in page
    # The words the share buttons use (share.js reads them from the page).
    assert 'data-copied="链接已复制。"' in page
    assert f'data-share-text="您的访客通行证（{_community_name(resident, site)}）：' in page
    refused = _new_pass(resident, site, guest_name=" ")
    assert refused.status_code == 422 and "<li>访客姓名：请输入访客姓名。</li>" in refused.text


def _community_name(client, site) -> str:
    with client.application.app_context():
        return db.session.get(Community, site.a).name


def test_a_pass_made_in_a_few_taps(app, resident, site) -> None:
    answer = _new_pass(resident, site, plate="浙a 12345", max_uses="5")
    pass_id = _created_id(answer)
    with app.app_context():
        row = db.session.get(VisitorPass, pass_id)
        assert row.guest_name == "快递 小李" and row.unit_id == site.unit_a
        assert (row.valid_from, row.valid_until) == (NOW, NOW + timedelta(hours=24))
        assert row.max_uses == 5 and row.plate == "浙A12345"
        assert {p.id for p in row.access_points} == {site.door, site.gate}
    page = resident.get(answer.location).text
    assert "Pass for 快递 小李 created" in page
    assert f'src="/api/v1/passes/{pass_id}/qr.png"' in page
    share = re.search(r'id="share-link" value="([^"]+)"', page).group(1)
    assert share.startswith("http://localhost/g/")
    guest = resident.get(share.removeprefix("http://localhost"))
    assert guest.status_code == 200 and "快递 小李" in guest.text
    listed = resident.get("/my/passes").text
    assert f"/my/passes/{pass_id}" in listed and '<span class="pill on">valid</span>' in listed
    assert f"/my/passes/{pass_id}" not in resident.get("/my/passes?show=ended").text

    tonight = _created_id(_new_pass(resident, site, duration="tonight", guest_name="Ann"))
    later = _created_id(
        _new_pass(resident, site, duration="2h", guest_name="Bob", starts_at="2026-11-22T09:00")
    )
    with app.app_context():
        assert db.session.get(VisitorPass, tonight).valid_until == datetime(
            2026, 11, 21, 15, 59, tzinfo=UTC
        )
        upcoming = db.session.get(VisitorPass, later)
        assert upcoming.valid_from == datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
        assert upcoming.valid_until == datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    assert '<span class="pill ">not yet valid</span>' in resident.get("/my/passes").text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"guest_name": "  "}, "Enter your guest&#39;s name."),
        ({"access_point_ids": []}, "Choose at least one door."),
        ({"duration": "30d"}, "Choose how long the pass lasts."),
        ({"max_uses": "7"}, "Choose how many times the pass opens."),
        ({"guest_name": "x" * 81}, "Length must be between 1 and 80."),
        ({"plate": "x" * 17}, "Length must be between 2 and 16."),
        ({"starts_at": "2026-11-20T09:00"}, "A pass cannot start in the past."),
        ({"starts_at": "2026-11-27T09:00", "duration": "3d"}, "at most 7 days from now"),
        ({"starts_at": "tomorrow"}, "Enter a date and time like"),
    ],
)
def test_bad_input_is_shown_and_nothing_is_stored(app, resident, site, fields, message) -> None:
    answer = _new_pass(resident, site, **{"guest_name": "Carol", **fields})
    assert answer.status_code == 422
    assert "No pass was made" in answer.text and message in answer.text
    assert _count_passes(app) == 0


def test_a_door_of_another_building_is_refused_by_the_service(app, resident, site) -> None:
    answer = _new_pass(resident, site, access_point_ids=[site.door, site.other_door])
    assert answer.status_code == 422
    assert "Not a door of this unit&#39;s building" in answer.text
    assert 'value="Carol"' not in answer.text and 'value="快递 小李"' in answer.text  # kept
    assert _count_passes(app) == 0


def test_presets_follow_the_communitys_longest_pass(app, resident, site) -> None:
    with app.app_context():
        db.session.get(Community, site.a).settings = {"pass_max_days": 1}
        db.session.commit()
    form = resident.get("/my/passes/new").text
    assert 'value="24h"' in form and 'value="3d"' not in form and 'value="7d"' not in form
    assert "at most 1 day." in form
    assert _new_pass(resident, site, duration="7d").status_code == 422
    assert _count_passes(app) == 0


def test_late_at_night_until_tonight_is_not_offered(resident, frozen) -> None:
    frozen.move_to(datetime(2026, 11, 21, 15, 45, tzinfo=UTC))  # 23:45 in Shanghai
    form = resident.get("/my/passes/new").text
    assert 'value="tonight"' not in form and 'value="2h"' in form


def test_a_former_tenant_gets_the_conflict_on_the_page(app, client, site) -> None:
    with time_machine.travel(LEASE_END + timedelta(hours=1), tick=False):
        login(client, "tenant_a")
        answer = _new_pass(client, site, access_point_ids=[site.gate])
        assert answer.status_code == 409
        assert "You do not live in this unit now" in answer.text
        refused = _post(client, f"/my/doors/{site.gate}/open")
        assert refused.status_code == 403 and "You cannot open" in refused.text
    assert _count_passes(app) == 0


def test_a_resident_cannot_see_another_units_pass(app, client, site, frozen) -> None:
    theirs = Api(client, "staff_a").post(
        "/passes", json={"guest_name": "x", "unit_id": site.unit_a2}
    )
    assert theirs.status_code == 201
    login(client, "resident_a")
    assert client.get(f"/my/passes/{theirs.json['id']}").status_code == 404
    assert _post(client, f"/my/passes/{theirs.json['id']}/revoke").status_code == 404
    assert theirs.json["id"] not in client.get("/my/passes").text
    with app.app_context():
        assert db.session.get(VisitorPass, theirs.json["id"]).revoked_at is None


def test_revoking_a_pass(app, resident, site) -> None:
    pass_id = _created_id(_new_pass(resident, site))
    page = resident.get(f"/my/passes/{pass_id}").text
    share = re.search(r'id="share-link" value="http://localhost([^"]+)"', page).group(1)
    assert resident.post(f"/my/passes/{pass_id}/revoke").status_code == 400  # no CSRF token
    answer = _post(resident, f"/my/passes/{pass_id}/revoke", page=f"/my/passes/{pass_id}")
    assert answer.status_code == 303 and answer.location == f"/my/passes/{pass_id}"
    after = resident.get(answer.location).text
    assert "revoked: its code no longer opens any door" in after
    assert "qr.png" not in after and "Revoke this pass" not in after
    with app.app_context():
        assert db.session.get(VisitorPass, pass_id).revoked_at == NOW
    assert pass_id in resident.get("/my/passes?show=ended").text
    assert pass_id not in resident.get("/my/passes").text
    assert "This pass was cancelled." in resident.get(share).text
    assert resident.get(share + "/qr.png").status_code == 410


def test_open_a_door_sends_open_and_shows_in_history(resident, site, published) -> None:
    answer = _post(resident, f"/my/doors/{site.door}/open")
    assert answer.status_code == 303 and answer.location == "/my/doors"
    [message] = published
    assert message.topic == device_topic(site.a, site.door_device, "cmd")
    assert CommandMessage.decode(message.payload).cmd is Command.OPEN
    assert "A door is opening." in resident.get("/my/doors").text
    history = resident.get("/my/history").text
    assert "A door · 王小明" in history and "Opened from the phone" in history
    assert "2026-11-21 16:30 CST" in history


def test_doors_that_cannot_be_opened(app, resident, site, published) -> None:
    # Another building's door does not exist for this resident.
    assert _post(resident, f"/my/doors/{site.other_door}/open").status_code == 404
    with app.app_context():
        shed = factories.access_point(
            db.session.get(Community, site.a), name="Bike shed", zone=Zone.PERIMETER
        )
        shed_id = shed.id
    doors = resident.get("/my/doors").text
    assert "Bike shed" in doors and "Cannot be opened from the phone" in doors
    answer = _post(resident, f"/my/doors/{shed_id}/open")
    assert answer.status_code == 409 and "No enabled door or barrier device serves" in answer.text
    assert published == []


@pytest.mark.parametrize("username", ["staff_a", "officer_a", "admin"])
def test_other_roles_find_no_portal(client, site, published, username) -> None:
    login(client, username)
    for path in (*PAGES, "/my/passes/pas_x"):
        assert client.get(path).status_code == 404, path
    assert _post(client, f"/my/doors/{site.door}/open", page="/").status_code == 404
    assert published == []


def test_a_resident_without_a_unit_is_told(app, client, site) -> None:
    with app.app_context():
        factories.user(UserRole.RESIDENT, username="newcomer")
    login(client, "newcomer")
    answer = client.get("/my/passes")
    assert answer.status_code == 409 and "not linked to a unit" in answer.text


def test_sign_in_first(client, site) -> None:
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 302 and answer.location.startswith("/login"), path
    for path in ("/my/passes/new", f"/my/doors/{site.door}/open"):
        answer = _post(client, path, page="/login")
        assert answer.status_code == 302 and answer.location.startswith("/login"), path


def test_the_code_page_and_its_image_change_every_step(resident, frozen) -> None:
    page = resident.get("/my/code")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    until = int(datetime(2026, 11, 21, 8, 30, 30, tzinfo=UTC).timestamp() * 1000)
    assert f'data-valid-until="{until}"' in page.text
    assert f'src="/api/v1/me/code.svg?step={until}"' in page.text
    first = resident.get("/api/v1/me/code.svg")
    assert first.status_code == 200 and first.mimetype == "image/svg+xml"
    frozen.shift(29)
    assert resident.get("/api/v1/me/code.svg").data == first.data
    frozen.shift(1)
    assert resident.get("/api/v1/me/code.svg").data != first.data


def test_a_resident_without_a_person_has_no_code(app, client, site, frozen) -> None:
    with app.app_context():
        unit = db.session.get(Unit, site.unit_a)
        factories.user(UserRole.RESIDENT, unit_of=unit, username="lodger")
    login(client, "lodger")
    answer = client.get("/my/code")
    assert answer.status_code == 409 and "not linked to a resident" in answer.text


def test_history_names_the_guest_of_a_pass(app, resident, site) -> None:
    pass_id = _created_id(_new_pass(resident, site))
    token = resident.get(f"/api/v1/passes/{pass_id}").json["token"]
    verified = resident.post(
        "/api/v1/verify/qr",
        json={"token": token},
        headers={"Authorization": f"Bearer {site.door_credential}"},
    )
    assert verified.json["decision"] == "grant", verified.json
    history = resident.get("/my/history").text
    assert "A door · Guest: 快递 小李" in history and "Visitor pass (QR code)" in history
    detail = resident.get(f"/my/passes/{pass_id}").text
    assert "Used</dt><dd>1 of 1" in detail and "Visitor pass" in detail
    assert pass_id in resident.get("/my/passes?show=used").text
    # Someone else's events are not the resident's.
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AccessEvent)) == 1
    neighbour = app.test_client()
    login(neighbour, "resident_b")
    assert "Nothing yet." in neighbour.get("/my/history").text


def test_history_pages_back(app, resident, site) -> None:
    with app.app_context():
        for minute in range(55):
            db.session.add(
                AccessEvent(
                    community_id=site.a,
                    occurred_at=NOW - timedelta(minutes=minute),
                    access_point_id=site.door,
                    credential_type="face",
                    decision="grant",
                    reason="resident",
                    person_id=site.resident_person,
                )
            )
        db.session.commit()
    first = resident.get("/my/history").text
    assert first.count("<li>") == 50 and "2026-11-21 16:30 CST" in first
    older = re.search(r'href="(/my/history\?before=[^"]+)"', first).group(1)
    second = resident.get(older).text
    assert second.count("<li>") == 5 and "2026-11-21 15:36 CST" in second
    assert 'href="/my/history?before=' not in second  # no link to an older page


def test_issuing_shares_the_budget_with_the_api(app, resident, site, monkeypatch) -> None:
    settings = app.config["SETTINGS"]
    monkeypatch.setitem(
        app.config,
        "SETTINGS",
        settings.__class__(**{**settings.__dict__, "pass_rate_limit": "2 per hour"}),
    )
    _created_id(_new_pass(resident, site))
    assert resident.get("/my/passes/new").status_code == 200  # looking costs nothing
    _created_id(_new_pass(resident, site))
    refused = _new_pass(resident, site)
    assert refused.status_code == 429 and "Too many requests" in refused.text
    assert Api(resident, "resident_a").post("/passes", json={"guest_name": "x"}).status_code == 429
    assert _count_passes(app) == 2


def test_remote_opens_share_the_budget_and_unseen_doors_spend_none(
    app, resident, site, published, monkeypatch
) -> None:
    """The page counts against the API's budget, and only for doors the resident sees: a
    door of another building answers 404 even once the budget is spent."""
    settings = app.config["SETTINGS"]
    monkeypatch.setitem(
        app.config,
        "SETTINGS",
        settings.__class__(**{**settings.__dict__, "remote_open_rate_limit": "2 per minute"}),
    )
    for _ in range(3):
        assert _post(resident, f"/my/doors/{site.other_door}/open").status_code == 404
    assert _post(resident, f"/my/doors/{site.door}/open").status_code == 303
    assert Api(resident, "resident_a").post(f"/access-points/{site.door}/open").status_code == 202
    refused = _post(resident, f"/my/doors/{site.door}/open")
    assert refused.status_code == 429 and "Too many requests" in refused.text
    assert _post(resident, f"/my/doors/{site.other_door}/open").status_code == 404
    assert len(published) == 2
