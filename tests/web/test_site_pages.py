"""The site from the pages: buildings, units and access points; devices provisioned with their
secret and QR code shown once, rotated, disabled; webhooks; patrol routes; who may see them."""

from __future__ import annotations

import base64
import html
import json
import re

import pytest
from sqlalchemy import select

from gatekeeper.qrcodes import decode_frame
from server.extensions import db
from server.models import AccessPoint, AuditEntry, Building, Device, PatrolRoute, Unit, Webhook
from tests.support.alerts import fake_dns
from tests.support.api import in_app
from tests.support.pages import csrf, login

ZH = {"Accept-Language": "zh-CN"}
CARD = {"uid": "04A1B2C3"}


def _post(client, path: str, data: dict | None = None, page: str = "/"):
    """POST a page's form with the CSRF token of ``page``."""
    token = csrf(client.get(page).text)
    return client.post(path, data={"csrf_token": token, **(data or {})})


def _verify(client, credential: str) -> int:
    """The status a device with ``credential`` gets from a card check."""
    answer = client.post(
        "/api/v1/verify/card", json=CARD, headers={"Authorization": f"Bearer {credential}"}
    )
    return answer.status_code


def _shown(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]+)<', page)
    assert match, element_id
    return html.unescape(match.group(1))


def _qr_text(page: str) -> str:
    """The text of the page's QR code, read from its PNG as a terminal's camera would."""
    match = re.search(r'id="provisioning-qr" src="data:image/png;base64,([^"]+)"', page)
    assert match, page
    [text] = decode_frame(base64.b64decode(match.group(1)))
    return text


# The site page, buildings and units -----------------------------------------------------------


def test_the_staff_home_links_to_the_site_pages(client, world) -> None:
    login(client, "staff_a")
    home = client.get("/").text
    for path in ("site", "patrol-routes", "webhooks"):
        assert f'href="/communities/{world.a}/{path}"' in home, path
    site = client.get(f"/communities/{world.a}/site")
    assert site.status_code == 200
    assert "Site · Community A" in site.text
    assert f'href="/buildings/{world.building_a}">A1</a>' in site.text
    assert f'href="/access-points/{world.door_a}">A door</a>' in site.text
    assert f'href="/devices/{world.device_a}"' in site.text
    chinese = client.get(f"/communities/{world.a}/site", headers=ZH).text
    assert '<html lang="zh-CN">' in chinese
    for text in ("楼栋与门禁点 · Community A", "新增楼栋", "新建门禁点", "开门时长"):
        assert text in chinese, text


def test_buildings_are_added_renamed_and_deleted_once_empty(app, client, world) -> None:
    login(client, "staff_a")
    site = f"/communities/{world.a}/site"
    empty = _post(client, f"/communities/{world.a}/buildings", {"name": " "}, site)
    assert empty.status_code == 422
    assert "Enter a name (at most 80 characters)." in empty.text
    taken = _post(client, f"/communities/{world.a}/buildings", {"name": "A1"}, site)
    assert taken.status_code == 422
    assert "Building &#39;A1&#39; exists in this community." in taken.text
    assert 'value="A1"' in taken.text  # what was typed is kept

    made = _post(client, f"/communities/{world.a}/buildings", {"name": "C3"}, site)
    assert made.status_code == 303
    page_path = made.location
    with in_app(app):
        building = db.session.scalar(select(Building).where(Building.name == "C3"))
        bid = building.id
    assert page_path == f"/buildings/{bid}"
    page = client.get(page_path)
    assert "Building C3 added." in page.text and "Building C3</h1>" in page.text

    renamed = _post(client, page_path, {"name": "C4"}, page_path)
    assert renamed.status_code == 303
    assert "Building C4</h1>" in client.get(page_path).text

    # A unit: every message at once, and what was typed stays.
    units = f"/buildings/{bid}/units"
    wrong = _post(client, units, {"number": "", "floor": "third"}, page_path)
    assert wrong.status_code == 422
    assert "Enter the unit&#39;s number (at most 40 characters)." in wrong.text
    assert "A floor is a whole number from -10 to 300." in wrong.text
    assert 'value="third"' in wrong.text
    assert _post(client, units, {"number": "301", "floor": "3"}, page_path).status_code == 303
    twice = _post(client, units, {"number": "301", "floor": ""}, page_path)
    assert twice.status_code == 422
    assert "Unit &#39;301&#39; exists in C4." in twice.text
    with in_app(app):
        unit = db.session.scalar(select(Unit).where(Unit.building_id == bid))
        uid = unit.id
        assert (unit.number, unit.floor) == ("301", 3)

    kept = _post(client, f"/buildings/{bid}/delete", {}, page_path)
    assert kept.status_code == 303 and kept.location == page_path
    assert "Building &#39;C4&#39; still has units: delete them first." in client.get(page_path).text

    bad = _post(client, f"/units/{uid}", {"number": "302", "floor": "x"}, page_path)
    assert bad.status_code == 422 and 'value="x"' in bad.text
    assert (
        _post(client, f"/units/{uid}", {"number": "302", "floor": ""}, page_path).status_code == 303
    )
    with in_app(app):
        unit = db.session.get(Unit, uid)
        assert (unit.number, unit.floor) == ("302", None)

    assert _post(client, f"/units/{uid}/delete", {}, page_path).status_code == 303
    assert "Unit 302 deleted." in client.get(page_path).text
    gone = _post(client, f"/buildings/{bid}/delete", {}, page_path)
    assert gone.status_code == 303 and gone.location == site
    assert "Building C4 deleted." in client.get(site).text
    with in_app(app):
        assert db.session.get(Building, bid) is None
        actions = set(db.session.scalars(select(AuditEntry.action)))
        assert {"building.create", "unit.delete", "building.delete"} <= actions


def test_a_unit_in_use_is_not_deleted(app, client, world) -> None:
    login(client, "staff_a")
    page = f"/buildings/{world.building_a}"
    answer = _post(client, f"/units/{world.unit_a}/delete", {}, page)
    assert answer.status_code == 303
    assert "Unit &#39;101&#39; is in use" in client.get(page).text
    with in_app(app):
        assert db.session.get(Unit, world.unit_a) is not None


# Access points --------------------------------------------------------------------------------


def test_an_access_point_form_reports_every_error_and_keeps_what_was_typed(
    app, client, world
) -> None:
    login(client, "staff_a")
    new = f"/communities/{world.a}/access-points/new"
    form = client.get(new)
    assert form.status_code == 200 and "New access point" in form.text
    wrong = _post(
        client,
        new,
        {
            "name": "",
            "kind": "gate",
            "zone": "perimeter",
            "open_seconds": "soon",
            "requires_depth": "auto",
            "windows": "1",
            "w0_days": ["1", "2"],
            "w0_start": "07:00",
        },
        new,
    )
    assert wrong.status_code == 422
    text = wrong.text
    assert "Enter a name (at most 80 characters)." in text
    assert "Between 0.5 and 60 seconds." in text
    assert "Give the days, a start and an end time" in text
    assert 'value="soon"' in text and 'value="07:00"' in text
    assert '<option value="gate" selected>' in text

    made = _post(
        client,
        new,
        {
            "name": "East gate",
            "kind": "gate",
            "zone": "perimeter",
            "building_id": "",
            "open_seconds": "2.5",
            "requires_depth": "auto",
            "windows": "2",
            "w0_days": ["1", "2", "3", "4", "5"],
            "w0_start": "07:00",
            "w0_end": "22:00",
        },
        new,
    )
    assert made.status_code == 303, made.text
    with in_app(app):
        point = db.session.scalar(select(AccessPoint).where(AccessPoint.name == "East gate"))
        apid = point.id
        assert (point.open_ms, point.requires_depth, point.building_id) == (2500, False, None)
        assert point.schedule == [{"days": [1, 2, 3, 4, 5], "start": "07:00", "end": "22:00"}]
    page = client.get(made.location).text
    assert "Access point East gate added." in page
    assert 'value="2.5"' in page and 'name="w0_start" value="07:00"' in page

    # A building door needs the depth check unless told otherwise (the service's default).
    door = _post(
        client,
        new,
        {"name": "A1 back door", "kind": "door", "zone": "building"}
        | {"building_id": world.building_a, "open_seconds": "5", "requires_depth": "auto"},
        new,
    )
    assert door.status_code == 303
    twice = _post(client, new, {"name": "A1 back door", "kind": "door", "zone": "building"}, new)
    assert twice.status_code == 422
    assert "Access point &#39;A1 back door&#39; exists in this community." in twice.text

    edit = f"/access-points/{apid}"
    too_long = _post(
        client,
        edit,
        {"name": "East gate", "zone": "perimeter", "open_seconds": "61", "windows": "1"},
        edit,
    )
    assert too_long.status_code == 422 and "Between 0.5 and 60 seconds." in too_long.text
    saved = _post(
        client,
        edit,
        {
            "name": "East gate (main)",
            "zone": "perimeter",
            "building_id": "",
            "open_seconds": "8",
            "requires_depth": "yes",
            "windows": "2",
        },
        edit,
    )
    assert saved.status_code == 303
    with in_app(app):
        point = db.session.get(AccessPoint, apid)
        assert (point.name, point.open_ms, point.requires_depth) == ("East gate (main)", 8000, True)
        assert point.schedule is None
        back_door = db.session.scalar(select(AccessPoint).where(AccessPoint.name == "A1 back door"))
        assert back_door.requires_depth is True
    chinese = client.get(edit, headers=ZH).text
    assert "门禁点 East gate (main)" in chinese and "开门时长（秒）" in chinese


# Devices --------------------------------------------------------------------------------------


def test_a_device_is_provisioned_with_its_secret_and_qr_code_shown_once(app, client, world) -> None:
    login(client, "staff_a")
    console = client.get(f"/communities/{world.a}/devices").text
    assert f'href="/communities/{world.a}/devices/new"' in console
    assert f'href="/devices/{world.device_a}"' in console
    new = f"/communities/{world.a}/devices/new"
    assert client.get(new).status_code == 200

    wrong = _post(client, new, {"name": "", "kind": "door", "access_point_id": ""}, new)
    assert wrong.status_code == 422
    assert "Enter a name (at most 80 characters)." in wrong.text
    assert "A door terminal must serve an access point." in wrong.text

    shown = _post(
        client, new, {"name": "A door, left", "kind": "door", "access_point_id": world.door_a}, new
    )
    assert shown.status_code == 200, shown.text
    assert shown.headers["Cache-Control"] == "no-store" and shown.mimetype == "text/html"
    device_id, secret = _shown(shown.text, "device-id"), _shown(shown.text, "device-secret")
    assert device_id.startswith("dev_") and len(secret) == 43
    payload = json.loads(_qr_text(shown.text))
    assert payload == {
        "v": 1,
        "server": "http://localhost",
        "device_id": device_id,
        "secret": secret,
    }
    typed = re.search(r'id="provisioning-text" readonly value="([^"]+)"', shown.text)
    assert json.loads(html.unescape(typed.group(1))) == payload
    assert _verify(client, f"{device_id}.{secret}") == 200

    page = client.get(f"/devices/{device_id}")
    assert page.status_code == 200 and "A door, left" in page.text
    assert secret not in page.text  # shown once only

    rotated = _post(client, f"/devices/{device_id}/rotate-secret", {}, f"/devices/{device_id}")
    assert rotated.status_code == 200
    assert rotated.headers["Cache-Control"] == "no-store"
    assert "The old secret no longer works" in rotated.text
    new_secret = _shown(rotated.text, "device-secret")
    assert new_secret != secret
    assert _verify(client, f"{device_id}.{secret}") == 401
    assert _verify(client, f"{device_id}.{new_secret}") == 200

    disabled = _post(client, f"/devices/{device_id}/disable", {}, f"/devices/{device_id}")
    assert disabled.status_code == 303
    assert "is disabled" in client.get(f"/devices/{device_id}").text
    assert _verify(client, f"{device_id}.{new_secret}") == 403
    assert (
        _post(client, f"/devices/{device_id}/enable", {}, f"/devices/{device_id}").status_code
        == 303
    )
    assert _verify(client, f"{device_id}.{new_secret}") == 200

    renamed = _post(
        client,
        f"/devices/{device_id}",
        {"name": "", "access_point_id": "ap_nope"},
        f"/devices/{device_id}",
    )
    assert renamed.status_code == 422
    assert "Enter a name (at most 80 characters)." in renamed.text
    ok = _post(
        client,
        f"/devices/{device_id}",
        {"name": "A door, right", "access_point_id": world.door_a, "zone": ""},
        f"/devices/{device_id}",
    )
    assert ok.status_code == 303
    with in_app(app):
        device = db.session.get(Device, device_id)
        assert device.name == "A door, right" and device.access_point_id == world.door_a

    chinese = client.post(
        f"/devices/{device_id}/rotate-secret",
        data={"csrf_token": csrf(client.get(f"/devices/{device_id}").text)},
        headers=ZH,
    )
    assert chinese.status_code == 200
    assert '<html lang="zh-CN">' in chinese.text and "设备编号" in chinese.text


def test_a_reader_without_a_zone_is_refused_on_the_form(client, world) -> None:
    login(client, "staff_a")
    new = f"/communities/{world.a}/devices/new"
    answer = _post(client, new, {"name": "Reader", "kind": "rfid_reader"}, new)
    assert answer.status_code == 422
    assert "An RFID reader must watch a zone." in answer.text
    assert 'value="Reader"' in answer.text


# Webhooks -------------------------------------------------------------------------------------


def test_webhooks_are_added_with_their_secret_shown_once_and_deleted(
    app, client, world, monkeypatch
) -> None:
    fake_dns(monkeypatch, {"hooks.example": ["93.184.216.34"], "inside.example": ["10.0.0.7"]})
    login(client, "staff_a")
    page = f"/communities/{world.a}/webhooks"
    assert "No webhooks yet" in client.get(page).text
    wrong = _post(client, page, {"url": "not a url"}, page)
    assert wrong.status_code == 422
    assert "Enter a full address starting with https://" in wrong.text
    assert 'value="not a url"' in wrong.text
    private = _post(client, page, {"url": "https://inside.example/hook"}, page)
    assert private.status_code == 422
    assert "not a public address" in private.text
    assert 'value="https://inside.example/hook"' in private.text

    made = _post(client, page, {"url": "https://hooks.example/a"}, page)
    assert made.status_code == 200
    assert made.headers["Cache-Control"] == "no-store" and made.mimetype == "text/html"
    secret = re.search(r'id="webhook-secret" readonly value="([^"]+)"', made.text).group(1)
    assert secret.startswith("whsec_")
    listed = client.get(page).text
    assert "https://hooks.example/a" in listed and secret not in listed
    chinese = client.get(page, headers=ZH).text
    assert "Webhook 推送" in chinese

    with in_app(app):
        wid = db.session.scalar(select(Webhook.id))
    assert _post(client, f"/webhooks/{wid}/delete", {}, page).status_code == 303
    assert "Alerts are no longer sent to https://hooks.example/a." in client.get(page).text
    with in_app(app):
        assert db.session.get(Webhook, wid) is None


# Patrol routes --------------------------------------------------------------------------------


def _readers(client, community: str) -> list[str]:
    """Two checkpoint readers, provisioned from the page; their ids."""
    new = f"/communities/{community}/devices/new"
    ids = []
    for name in ("Checkpoint north", "Checkpoint south"):
        shown = _post(
            client, new, {"name": name, "kind": "rfid_reader", "zone": "patrol_checkpoint"}, new
        )
        assert shown.status_code == 200, shown.text
        ids.append(_shown(shown.text, "device-id"))
    return ids


def test_patrol_routes_are_made_changed_and_deleted(app, client, world) -> None:
    login(client, "staff_a")
    north, south = _readers(client, world.a)
    listing = f"/communities/{world.a}/patrol-routes"
    assert "No patrol routes yet." in client.get(listing).text
    new = f"/communities/{world.a}/patrol-routes/new"
    form = client.get(new).text
    assert "Checkpoint north" in form and "Checkpoint south" in form

    wrong = _post(
        client,
        new,
        {
            "name": "",
            "round_minutes": "1",
            "windows": "1",
            "w0_days": ["6"],
            "w0_start": "08:00",
            "w0_end": "08:00",
        },
        new,
    )
    assert wrong.status_code == 422
    for message in (
        "Enter a name (at most 80 characters).",
        "A round lasts 5 to 1440 minutes.",
        "Give at least one checkpoint a place in the round.",
        "The start and the end are the same time",
    ):
        assert message in wrong.text, message
    assert 'value="1"' in wrong.text

    made = _post(
        client,
        new,
        {
            "name": "Night round",
            "round_minutes": "45",
            f"cp_{south}": "1",
            f"cp_{north}": "2",
            "windows": "1",
            "w0_days": ["1", "2", "3", "4", "5", "6", "7"],
            "w0_start": "22:00",
            "w0_end": "06:00",
        },
        new,
    )
    assert made.status_code == 303, made.text
    with in_app(app):
        route = db.session.scalar(select(PatrolRoute))
        rid = route.id
        assert route.checkpoint_device_ids == [south, north]
        assert route.round_minutes == 45
        assert route.schedule == [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "22:00", "end": "06:00"}]
    listed = client.get(listing).text
    assert "Patrol route Night round added." in listed
    assert "Checkpoint south → Checkpoint north" in listed
    assert "Every day 22:00-06:00 (next day)" in listed

    edit = f"/patrol-routes/{rid}"
    page = client.get(edit).text
    assert f'name="cp_{south}" value="1"' in page and f'name="cp_{north}" value="2"' in page
    saved = _post(
        client,
        edit,
        {
            "name": "Night round",
            "round_minutes": "30",
            f"cp_{north}": "1",
            "windows": "1",
            "ordered": "on",
        },
        edit,
    )
    assert saved.status_code == 303
    with in_app(app):
        route = db.session.get(PatrolRoute, rid)
        assert (route.checkpoint_device_ids, route.round_minutes, route.schedule) == (
            [north],
            30,
            None,
        )
        assert route.ordered is True
    assert 'name="ordered" checked' in client.get(edit).text
    assert "(in this order only)" in client.get(listing).text
    chinese = client.get(listing, headers=ZH).text
    assert "巡更路线 · Community A" in chinese

    assert _post(client, f"/patrol-routes/{rid}/delete", {}, listing).status_code == 303
    assert "Patrol route Night round deleted." in client.get(listing).text


# Who may see the pages ------------------------------------------------------------------------


@pytest.fixture
def route_b(app, world) -> str:
    with in_app(app):
        route = PatrolRoute(community_id=world.b, name="B round", checkpoint_device_ids=[])
        db.session.add(route)
        db.session.commit()
        return route.id


def test_other_communities_residents_and_officers_find_no_such_pages(
    client, world, route_b
) -> None:
    a = world.a
    staff_pages = [
        f"/communities/{a}/site",
        f"/buildings/{world.building_a}",
        f"/communities/{a}/access-points/new",
        f"/access-points/{world.door_a}",
        f"/communities/{a}/devices/new",
        f"/devices/{world.device_a}",
        f"/communities/{a}/webhooks",
        f"/communities/{a}/patrol-routes/new",
    ]
    for username in ("staff_b", "resident_a", "officer_a"):
        login(client, username)
        for path in staff_pages:
            assert client.get(path).status_code == 404, (username, path)
        token = csrf(client.get("/").text)
        for path in (
            f"/communities/{a}/buildings",
            f"/units/{world.unit_a}/delete",
            f"/devices/{world.device_a}/rotate-secret",
            f"/devices/{world.device_a}/disable",
            f"/communities/{a}/webhooks",
        ):
            answer = client.post(path, data={"csrf_token": token, "name": "X"})
            assert answer.status_code == 404, (username, path)
        client.post("/logout", data={"csrf_token": token})

    # Officers read the routes of the communities they cover (as in the API), and no more.
    login(client, "officer_a")
    routes = client.get(f"/communities/{a}/patrol-routes")
    assert routes.status_code == 200
    assert "New patrol route" not in routes.text
    assert client.get(f"/communities/{world.b}/patrol-routes").status_code == 404
    assert client.get(f"/patrol-routes/{route_b}").status_code == 404
    devices = client.get(f"/communities/{a}/devices").text
    assert f'href="/devices/{world.device_a}"' not in devices

    # Staff see their own community's pages only.
    client.post("/logout", data={"csrf_token": csrf(client.get("/").text)})
    login(client, "staff_a")
    assert client.get(f"/patrol-routes/{route_b}").status_code == 404
    assert client.get(f"/devices/{world.device_b}").status_code == 404
    assert client.get(f"/buildings/{world.building_b}").status_code == 404


def test_a_form_without_its_csrf_token_is_refused(app, client, world) -> None:
    login(client, "staff_a")
    answer = client.post(f"/communities/{world.a}/buildings", data={"name": "C9"})
    assert answer.status_code == 400
    with in_app(app):
        assert db.session.scalar(select(Building).where(Building.name == "C9")) is None
