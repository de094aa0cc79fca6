"""The guest's page /g/<secret>: no login, the code and its limits, nothing about the host."""

from __future__ import annotations

import io

import pytest
import time_machine
from PIL import Image
from pyzbar import pyzbar

from tests.factories import Api
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
