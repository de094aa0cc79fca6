"""The person page's share of a person's rights: the staff download the JSON and erase."""

from __future__ import annotations

import json

import pytest

from server.extensions import db
from server.models import Person
from server.privacy.erasure import PSEUDONYM_PREFIX
from tests.factories import Api
from tests.support.pages import csrf, login


def _person(client, world) -> str:
    body = {"name": "李华", "role": "resident", "unit_id": world.unit_a, "phone": "13800000077"}
    answer = Api(client, "staff_a").post(f"/communities/{world.a}/people", body)
    assert answer.status_code == 201, answer.json
    return answer.json["id"]


def test_staff_download_a_persons_data_and_erase_it(app, client, world) -> None:
    pid = _person(client, world)
    login(client, "staff_a")
    page = client.get(f"/people/{pid}").text
    assert "Export personal information" in page and "Erase personal information" in page
    download = client.get(f"/people/{pid}/export.json")
    assert download.status_code == 200 and download.mimetype == "application/json"
    assert download.headers["Content-Disposition"] == f'attachment; filename="person-{pid}.json"'
    document = json.loads(download.get_data(as_text=True))
    assert document["person"]["name"] == "李华" and document["person"]["phone"] == "13800000077"

    token = csrf(client.get(f"/people/{pid}").text)
    done = client.post(f"/people/{pid}/erasure", data={"csrf_token": token}, follow_redirects=True)
    assert done.status_code == 200 and "Personal information erased" in done.text
    assert "Erase personal information" not in done.text
    with app.app_context():
        person = db.session.get(Person, pid)
        assert person.name == PSEUDONYM_PREFIX + pid[-6:] and person.phone is None
    assert "李华" not in done.text


@pytest.mark.parametrize("username", ["officer_a", "resident_a", "staff_b"])
def test_no_one_else_finds_these_pages(app, client, world, username) -> None:
    pid = _person(client, world)
    login(client, username)
    assert client.get(f"/people/{pid}/export.json").status_code == 404
    token = csrf(client.get("/").text)
    assert client.post(f"/people/{pid}/erasure", data={"csrf_token": token}).status_code == 404
    with app.app_context():
        assert db.session.get(Person, pid).name == "李华"
