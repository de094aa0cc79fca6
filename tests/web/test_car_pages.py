"""Staff pages for car gates: cars inside, barrier decisions, remote open, blocked plates."""

from __future__ import annotations

import dataclasses
import io
from datetime import timedelta

import pytest
import time_machine
from PIL import Image
from sqlalchemy import select

from gatekeeper.vocabulary import AccessPointKind, Zone
from hardware.messages import CommandMessage
from hardware.protocol import Command
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    AuditEntry,
    BlockedPlate,
    Community,
    DeviceCommand,
    Vehicle,
)
from tests import factories
from tests.factories import Api
from tests.support.pages import csrf, login
from tests.support.passes import NOW, add_barrier, build_pass_site

BARRIER_SECRET = "barrier-secret-for-car-pages"


@dataclasses.dataclass(frozen=True)
class CarSite:
    a: str
    b: str
    barrier: str
    barrier_device: str
    credential: str
    owner_car: str


@pytest.fixture
def site(app) -> CarSite:
    with app.app_context():
        base = build_pass_site()
        barrier = add_barrier(base, BARRIER_SECRET)
        built = CarSite(
            base.a, base.b, barrier.point, barrier.device, barrier.credential, barrier.owner_car
        )
        db.session.remove()
    return built


def _post(client, path: str, data: dict | None = None, **kwargs):
    token = csrf(client.get("/").text)
    return client.post(path, data={"csrf_token": token, **(data or {})}, **kwargs)


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 360), (90, 90, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


def _read(client, site: CarSite, plate: str, snapshot: bytes | None = None, **fields) -> dict:
    """What the barrier camera sends; the decision it gets back."""
    headers = {"Authorization": f"Bearer {site.credential}"}
    if snapshot is None:
        answer = client.post(
            "/api/v1/verify/plate", json={"plate": plate, **fields}, headers=headers
        )
    else:
        data = {"plate": plate, **{k: str(v) for k, v in fields.items()}}
        data["snapshot"] = (io.BytesIO(snapshot), "snap.jpg")
        answer = client.post(
            "/api/v1/verify/plate",
            data=data,
            headers=headers,
            content_type="multipart/form-data",
        )
    assert answer.status_code == 200, answer.json
    return answer.json


def _settings(app, community_id: str, **values) -> None:
    with app.app_context():
        community = db.session.get(Community, community_id)
        community.settings = {**(community.settings or {}), **values}
        db.session.commit()


def _section(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start : html.index("</section>", start)]


# The cars page ---------------------------------------------------------------------------------


def test_cars_inside_and_the_barriers_decisions(app, client, site) -> None:
    _settings(app, site.a, fuzzy_plates=True)
    picture = _jpeg()
    with time_machine.travel(NOW, tick=False):
        Api(client, "resident_a").post(
            "/passes",
            json={
                "guest_name": "李四",
                "plate": "苏E6G789",
                "valid_until": (NOW + timedelta(hours=1)).isoformat(),
            },
        )
        assert _read(client, site, "浙B82345", confidence=0.97, direction="in")["decision"] == (
            "grant"
        )
        assert _read(client, site, "苏E6G789", direction="in")["reason"] == "visitor_vehicle"
        # A near read of the resident's car, accepted: it was already inside.
        fuzzy = _read(client, site, "浙B8Z345", confidence=0.62, direction="in")
        assert fuzzy["decision"] == "grant"
        unknown = _read(client, site, "京N·1234学", picture, confidence=0.91, direction="in")
        assert unknown["reason"] == "unknown_plate"
        near_refused = _read(client, site, "浙B8Z345", confidence=0.97, direction="in")
        assert near_refused["decision"] == "deny"

    with time_machine.travel(NOW + timedelta(hours=2, minutes=5), tick=False):
        login(client, "staff_a")  # the session is made in the frozen time it is used in
        page = client.get(f"/communities/{site.a}/cars")
        snapshot = f"/api/v1/events/{unknown['event_id']}/snapshot"
        served = client.get(snapshot)  # the page's session is enough
    assert page.status_code == 200
    html = page.text
    inside = _section(html, "inside")
    assert 'id="inside-count">2<' in inside
    assert "1 resident, 1 visitor." in inside
    resident_row = inside[inside.index('data-plate="浙B82345"') :].split("</tr>")[0]
    assert "resident" in resident_row and "王小明" in resident_row
    assert "/people/" in resident_row  # staff follow the link to the owner's page
    assert "2026-11-21 16:30 CST" in resident_row and "2 h 05 min" in resident_row
    visitor_row = inside[inside.index('data-plate="苏E6G789"') :].split("</tr>")[0]
    assert "visitor" in visitor_row and "李四" in visitor_row
    assert "2 h 05 min" in visitor_row and "overstay" in visitor_row  # the pass ended an hour ago
    assert "overstay" not in resident_row

    barrier = _section(html, f"barrier-{site.barrier}")
    assert "South barrier" in barrier and "Open barrier" in barrier
    rows = barrier.split('<tr data-event="')[1:]
    assert len(rows) == 5
    newest, unknown_row, fuzzy_row = rows[0], rows[1], rows[2]
    assert 'class="pill fuzzy refused"' in newest and "not accepted" in newest
    assert "the camera was sure of its read" in newest
    assert 'class="pill fuzzy accepted"' in fuzzy_row
    assert "read 浙B8Z345, registered 浙B82345; accepted" in fuzzy_row
    assert "Household car" in fuzzy_row and "came in again" in fuzzy_row
    assert "Plate not known" in unknown_row and "京N1234学" in unknown_row
    assert f'<a href="{snapshot}"' in unknown_row and f'<img class="snapshot" src="{snapshot}"' in (
        unknown_row
    )
    assert "snapshot" not in fuzzy_row.split("<td")[-1]  # grants keep none by default
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert served.data == picture


def test_a_blocked_plate_shows_why(app, client, site) -> None:
    with time_machine.travel(NOW, tick=False):
        Api(client, "staff_a").post(
            f"/communities/{site.a}/blocked-plates", json={"plate": "沪C88888", "reason": "Stolen"}
        )
        _read(client, site, "沪C8B888", confidence=0.99, direction="in")
    login(client, "staff_a")
    row = _section(client.get(f"/communities/{site.a}/cars").text, f"barrier-{site.barrier}")
    assert "Plate blocked" in row and "blocked plate 沪C88888: Stolen" in row
    assert "沪C8B888" in row


def test_the_car_pages_speak_chinese(app, client, site, published) -> None:
    _settings(app, site.a, fuzzy_plates=True)
    with time_machine.travel(NOW, tick=False):
        Api(client, "staff_a").post(
            f"/communities/{site.a}/blocked-plates", json={"plate": "沪C88888", "reason": "被盗"}
        )
        _read(client, site, "浙B82345", confidence=0.97, direction="in")
        _read(client, site, "沪C8B888", confidence=0.99, direction="in")
        _read(client, site, "浙B8Z345", confidence=0.97, direction="in")
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    login(client, "staff_a")
    answer = _post(client, f"/barriers/{site.barrier}/open", follow_redirects=True)
    html = answer.text
    assert "<h1>车辆 · Community A</h1>" in html
    assert "South barrier 正在开闸（1 台设备）。" in html
    inside = _section(html, "inside")
    assert "场内共 1 辆车： 住户 1 辆，访客 0 辆。" in inside
    assert '<span class="pill on">住户</span>' in inside and 'data-label="进场时间"' in inside
    barrier = _section(html, f"barrier-{site.barrier}")
    assert ">开闸</button>" in barrier and "→ 进" in barrier
    assert "由 staff_a 开闸" in barrier and "手机远程开门" in barrier
    assert "黑名单车牌 沪C88888：被盗" in barrier and ">已拒绝</span>" in barrier
    assert "识别为 浙B8Z345，登记为 浙B82345；未采纳：相机对识别结果有把握" in barrier
    blocked = client.get(f"/communities/{site.a}/blocked-plates").text
    assert "<h1>黑名单车牌 · Community A</h1>" in blocked
    assert 'aria-label="将 沪C88888 移出黑名单"' in blocked and "由 staff_a 添加" in blocked
    refused = _post(client, f"/communities/{site.a}/blocked-plates", {"plate": "", "reason": ""})
    assert refused.status_code == 422
    assert "未保存任何内容：请检查。" in refused.text and "请输入车牌。" in refused.text


def test_an_empty_community_says_so(client, site) -> None:
    login(client, "staff_b")
    html = client.get(f"/communities/{site.b}/cars").text
    assert "No car inside." in html and "This community has no barrier yet." in html


def test_open_barrier_sends_open_and_is_recorded(app, client, site, published) -> None:
    login(client, "staff_a")
    answer = _post(client, f"/barriers/{site.barrier}/open")
    assert answer.status_code == 303
    assert answer.location.endswith(f"/communities/{site.a}/cars#barrier-{site.barrier}")
    [message] = published
    assert site.barrier_device in message.topic
    assert CommandMessage.decode(message.payload).cmd is Command.OPEN
    page = client.get(answer.location)
    assert "South barrier is opening (1 device(s))." in page.text
    with app.app_context():
        [command] = db.session.scalars(select(DeviceCommand)).all()
        event = db.session.get(AccessEvent, command.event_id)
        assert (event.reason, event.rule) == ("remote_open", "remote.staff")
        assert event.access_point_id == site.barrier
        assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "access_point.open"))
    # It is among the barrier's decisions, with who opened it.
    barrier = _section(page.text, f"barrier-{site.barrier}")
    assert "Opened from the phone" in barrier and "opened by staff_a" in barrier


def test_open_barrier_without_a_device_flashes_why(app, client, site, published) -> None:
    with app.app_context():
        community = db.session.get(Community, site.a)
        bare = factories.access_point(
            community, name="East barrier", kind=AccessPointKind.BARRIER, zone=Zone.PERIMETER
        )
        db.session.commit()
        bare_id = bare.id
    login(client, "staff_a")
    page = client.get(f"/communities/{site.a}/cars").text
    assert "No enabled barrier device" in _section(page, f"barrier-{bare_id}")
    answer = _post(client, f"/barriers/{bare_id}/open", follow_redirects=True)
    assert "No enabled door or barrier device serves" in answer.text
    assert published == []


def test_only_barriers_open_from_the_cars_page(app, client, site, published) -> None:
    with app.app_context():
        door = db.session.scalar(
            select(AccessPoint.id).where(
                AccessPoint.community_id == site.a, AccessPoint.kind == AccessPointKind.DOOR
            )
        )
    login(client, "staff_a")
    assert _post(client, f"/barriers/{door}/open").status_code == 404
    assert published == []


# Blocked plates --------------------------------------------------------------------------------


def _blocked(app) -> list[tuple[str, str]]:
    with app.app_context():
        return [(r.plate, r.reason) for r in db.session.scalars(select(BlockedPlate))]


def test_block_and_unblock_a_plate(app, client, site) -> None:
    login(client, "staff_a")
    path = f"/communities/{site.a}/blocked-plates"
    assert "No plate is blocked." in client.get(path).text
    answer = _post(client, path, {"plate": " 沪c·88888 ", "reason": "Stolen car"})
    assert answer.status_code == 303 and answer.location.endswith(path)
    page = client.get(path).text
    assert "沪C88888 is blocked" in page
    assert 'data-plate="沪C88888"' in page and "Stolen car" in page and "by staff_a" in page
    assert _blocked(app) == [("沪C88888", "Stolen car")]
    # The cars page links here; the home page links both.
    assert path in client.get(f"/communities/{site.a}/cars").text
    home = client.get("/").text
    assert path in home and f"/communities/{site.a}/cars" in home

    with app.app_context():
        bid = db.session.scalar(select(BlockedPlate.id))
    assert 'data-confirm="Unblock 沪C88888?' in page and f"/blocked-plates/{bid}/remove" in page
    answer = _post(client, f"/blocked-plates/{bid}/remove", follow_redirects=True)
    assert "沪C88888 is no longer blocked." in answer.text
    assert _blocked(app) == []
    with app.app_context():
        actions = set(db.session.scalars(select(AuditEntry.action)))
        assert {"plate.block", "plate.unblock"} <= actions


@pytest.mark.parametrize(
    ("form", "field", "message", "status"),
    [
        ({"plate": "hello", "reason": "x"}, "plate", "province", 422),
        ({"plate": "浙O12345", "reason": "x"}, "plate", "letter", 422),
        ({"plate": "", "reason": "x"}, "plate", "Enter the plate.", 422),
        ({"plate": "沪C88888", "reason": "   "}, "reason", "Say why", 422),
        ({"plate": "沪C88888", "reason": "y" * 201}, "reason", "between 1 and 200", 422),
    ],
)
def test_a_wrong_form_re_renders_and_stores_nothing(
    app, client, site, form, field, message, status
) -> None:
    login(client, "staff_a")
    answer = _post(client, f"/communities/{site.a}/blocked-plates", form)
    assert answer.status_code == status
    html = answer.text
    assert "Nothing was stored" in html
    assert f'id="{field}-error"' in html and f'aria-describedby="{field}-error"' in html
    assert message.lower() in html.lower()
    assert f'value="{form["plate"]}"' in html  # what was typed stays
    assert _blocked(app) == []


def test_blocking_twice_says_so(app, client, site) -> None:
    login(client, "staff_a")
    path = f"/communities/{site.a}/blocked-plates"
    assert _post(client, path, {"plate": "沪C88888", "reason": "Stolen"}).status_code == 303
    again = _post(client, path, {"plate": "沪C·88888", "reason": "Again"})
    assert again.status_code == 409 and "沪C88888 is already blocked." in again.text
    assert _blocked(app) == [("沪C88888", "Stolen")]


# Scope -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["staff_b", "resident_a", "tenant_a"])
def test_car_pages_are_404_outside_scope(app, client, site, published, username) -> None:
    Api(client, "staff_a").post(
        f"/communities/{site.a}/blocked-plates", json={"plate": "沪C88888", "reason": "Stolen"}
    )
    with app.app_context():
        bid = db.session.scalar(select(BlockedPlate.id))
    login(client, username)
    for path in (f"/communities/{site.a}/cars", f"/communities/{site.a}/blocked-plates"):
        assert client.get(path).status_code == 404, (username, path)
    for path, data in (
        (f"/barriers/{site.barrier}/open", {}),
        (f"/communities/{site.a}/blocked-plates", {"plate": "沪D12345", "reason": "x"}),
        (f"/blocked-plates/{bid}/remove", {}),
    ):
        assert _post(client, path, data).status_code == 404, (username, path)
    assert published == [] and _blocked(app) == [("沪C88888", "Stolen")]


def test_officers_read_but_do_not_act(app, client, site, published) -> None:
    with time_machine.travel(NOW, tick=False):
        _read(client, site, "浙B82345", direction="in")
    Api(client, "staff_a").post(
        f"/communities/{site.a}/blocked-plates", json={"plate": "沪C88888", "reason": "Stolen"}
    )
    published.clear()
    with app.app_context():
        bid = db.session.scalar(select(BlockedPlate.id))
    login(client, "officer_a")
    cars = client.get(f"/communities/{site.a}/cars")
    assert cars.status_code == 200
    inside = _section(cars.text, "inside")
    assert 'data-plate="浙B82345"' in inside and "resident" in inside
    assert "王小明" not in inside  # people are the property office's
    assert "Open barrier" not in cars.text and "Household car" in cars.text
    blocked = client.get(f"/communities/{site.a}/blocked-plates")
    assert blocked.status_code == 200 and "沪C88888" in blocked.text
    assert "Block plate" not in blocked.text and "Unblock" not in blocked.text
    for path, data in (
        (f"/barriers/{site.barrier}/open", {}),
        (f"/communities/{site.a}/blocked-plates", {"plate": "沪D12345", "reason": "x"}),
        (f"/blocked-plates/{bid}/remove", {}),
    ):
        assert _post(client, path, data).status_code == 403, path
    assert published == [] and _blocked(app) == [("沪C88888", "Stolen")]


def test_car_pages_need_sign_in(client, site) -> None:
    for path in (f"/communities/{site.a}/cars", f"/communities/{site.a}/blocked-plates"):
        answer = client.get(path)
        assert answer.status_code == 302 and "/login" in answer.location


def test_a_persons_page_lists_their_vehicles(app, client, site) -> None:
    with app.app_context():
        owner = db.session.get(Vehicle, site.owner_car).person_id
    login(client, "staff_a")
    html = client.get(f"/people/{owner}").text
    credentials = _section(html, "credentials")
    assert "<code>浙B82345</code>" in credentials and "enabled" in credentials
