"""The guest's page /g/<secret>: no login, the code and its limits, nothing about the host."""

from __future__ import annotations

import io

import pytest
import time_machine
from PIL import Image
from pyzbar import pyzbar

from server.extensions import db
from server.models import Community
from tests.factories import Api
from tests.support.api import in_app
from tests.support.passes import NOW, pass_site


@pytest.fixture
def site(app):
    return pass_site(app)


@time_machine.travel(NOW, tick=False)
def test_the_share_link_shows_the_code_without_login(app, client, site) -> None:
    resident = Api(client, "resident_a")
    body = resident.post("/passes", json={"guest_name": "李四", "max_uses": 2}).json
    path = body["share_url"].removeprefix("http://localhost")
    guest = app.test_client()  # no session, no token
    page = guest.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "李四" in html and "North gate" in html and "A door" in html
    # Validity in the community's zone (Asia/Shanghai): 16:30 on the 21st to the 22nd.
    assert "2026-11-21 16:30" in html and "2026-11-22 16:30" in html
    assert "2 of 2" in html
    # Nothing about the resident: not their name, unit, building or phone.
    for secret in ("王小明", "101", site.unit_a, site.resident_person):
        assert secret not in html, secret
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "no-store" in page.headers["Cache-Control"]
    image = guest.get(f"{path}/qr.png")
    assert image.status_code == 200 and image.mimetype == "image/png"
    [code] = pyzbar.decode(Image.open(io.BytesIO(image.data)))
    assert code.data.decode() == body["token"]
    # The same link every time the resident asks for it.
    assert resident.get(f"/passes/{body['id']}").json["share_url"] == body["share_url"]


@time_machine.travel(NOW, tick=False)
def test_a_wrong_or_dead_link_shows_no_code(app, client, site) -> None:
    resident = Api(client, "resident_a")
    body = resident.post("/passes", json={"guest_name": "李四"}).json
    path = body["share_url"].removeprefix("http://localhost")
    guest = app.test_client()
    assert guest.get(path[:-2] + "xx").status_code == 404
    assert guest.get("/g/" + "A" * 500).status_code == 404
    resident.delete(f"/passes/{body['id']}")
    page = guest.get(path)
    assert page.status_code == 200 and "cancelled" in page.get_data(as_text=True)
    assert "qr.png" not in page.get_data(as_text=True)
    assert guest.get(f"{path}/qr.png").status_code == 410


@time_machine.travel(NOW, tick=False)
def test_the_guest_page_is_chinese_unless_the_guest_asks_for_english(app, client, site) -> None:
    resident = Api(client, "resident_a")
    body = resident.post("/passes", json={"guest_name": "李四", "max_uses": 2}).json
    path = body["share_url"].removeprefix("http://localhost")
    guest = app.test_client()
    guest.environ_base.pop("HTTP_ACCEPT_LANGUAGE", None)  # a courier's phone that asks for none
    html = guest.get(path).get_data(as_text=True)
    assert '<html lang="zh-CN">' in html
    assert "<h1>访客通行证</h1>" in html and "请在距门口摄像头约 30 厘米处出示此二维码。" in html
    assert "<dt>剩余次数</dt><dd>剩余 2 次（共 2 次）</dd>" in html
    assert "时间为 Asia/Shanghai 时区。" in html and "Visitor pass" not in html
    english = guest.get(path, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="en">' in english and "<h1>Visitor pass</h1>" in english
    assert "<dt>Uses left</dt><dd>2 of 2</dd>" in english and "访客通行证" not in english
    # Asking for nothing, the guest gets the community's own default language.
    with in_app(app):
        db.session.get(Community, site.a).settings = {"default_locale": "en"}
        db.session.commit()
    assert "<h1>Visitor pass</h1>" in guest.get(path).get_data(as_text=True)
    resident.delete(f"/passes/{body['id']}")
    assert "This pass was cancelled." in guest.get(path).get_data(as_text=True)
    assert "此通行证已被取消。" in guest.get(path, headers={"Accept-Language": "zh-CN"}).text
