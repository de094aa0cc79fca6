"""Staff pages for people: list, person page, enrolment form, actions, scope."""

from __future__ import annotations

import html
import io
import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from itsdangerous import URLSafeTimedSerializer
from PIL import Image, ImageFilter
from sqlalchemy import func, select

from server.core import crypto
from server.extensions import db
from server.models import (
    Card,
    Community,
    Consent,
    FaceTemplate,
    Lease,
    Membership,
    Person,
    PersonStatus,
    WorkerPermit,
    utcnow,
)
from tests import factories
from tests.factories import Api
from tests.fetch_test_data import test_image as photo_path
from tests.support.identity import make_resident_id
from tests.support.pages import csrf, login
from tests.support.search import LITERAL_SEARCHES, add_searchable_people

ID_NUMBER = make_resident_id("330106", sequence=234)


def photo(name: str) -> bytes:
    return photo_path(name).read_bytes()


def blurred() -> bytes:
    buffer = io.BytesIO()
    image = Image.open(io.BytesIO(photo("obama.jpg"))).filter(ImageFilter.GaussianBlur(6))
    image.convert("RGB").save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


@pytest.fixture
def staff(client, world):
    """The test client, signed in as staff of community A."""
    login(client, "staff_a")
    return client


def _post(client, path: str, data: dict | None = None, page: str | None = None, **kwargs):
    """POST a page form with the CSRF token taken from ``page`` (default: the path's page)."""
    token = csrf(client.get(page or "/").text)
    return client.post(path, data={"csrf_token": token, **(data or {})}, **kwargs)


def _submit(client, page: str, path: str, data: dict | None = None):
    """Submit a form of ``page`` to ``path`` and follow the redirect: the page shown next."""
    return _post(client, path, data, page=page, follow_redirects=True)


def _person(client, world, name: str = "李华", role: str = "resident", **extra) -> str:
    body = {"name": name, "role": role, "unit_id": world.unit_a, **extra}
    answer = Api(client, "staff_a").post(f"/communities/{world.a}/people", body)
    assert answer.status_code == 201, answer.json
    return answer.json["id"]


def _tenant(client, world, name: str, starts: datetime, ends: datetime) -> str:
    lease = {"starts_at": starts.isoformat(), "ends_at": ends.isoformat()}
    return _person(client, world, name, "tenant", lease=lease)


def _upload(client, path: str, page: str, **files: bytes):
    data = {name: (io.BytesIO(content), f"{name}.jpg") for name, content in files.items()}
    return _post(
        client, path, data, page=page, content_type="multipart/form-data", follow_redirects=True
    )


def _rows(app, model, **where) -> list:
    with app.app_context():
        query = select(model).filter_by(**where)
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
        return rows


# The list --------------------------------------------------------------------------------------


def test_list_search_and_filters(app, client, world, staff) -> None:
    with app.app_context():
        building = factories.building(db.session.get(Community, world.a), "A2")
        second_unit = factories.unit(building, "201").id
    now = utcnow()
    # Noon of the community's day ten days ahead: ten calendar days left at any hour the
    # test runs (the page counts days in the community's zone).
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    ends = datetime.combine(local.date() + timedelta(days=10), time(12), tzinfo=local.tzinfo)
    _person(client, world, "王小明", "owner", phone="13800000001")
    _tenant(client, world, "张伟", now - timedelta(days=1), ends.astimezone(UTC))
    elder = Api(client, "staff_a").post(
        f"/communities/{world.a}/people",
        {"name": "赵阿姨", "role": "elder", "unit_id": second_unit},
    )
    Api(client, "staff_a").patch(f"/people/{elder.json['id']}", {"status": "suspended"})
    Api(client, "staff_b").post(
        f"/communities/{world.b}/people",
        {"name": "王其他", "role": "owner", "unit_id": world.unit_b},
    )
    Api(client, "staff_a").post(f"/people/{elder.json['id']}/cards", {"uid": "04A1B2C3"})

    def names(query: str = "") -> list[str]:
        page = client.get(f"/communities/{world.a}/people{query}")
        assert page.status_code == 200
        return re.findall(r'<a href="/people/per_[^"]+">([^<]+)</a>', page.text)

    assert names() == sorted(["王小明", "张伟", "赵阿姨"])
    assert names("?q=王") == ["王小明"]  # community B's 王 is not here
    assert names("?q=13800") == ["王小明"]
    assert names("?role=tenant") == ["张伟"]
    assert names("?status=suspended") == ["赵阿姨"]
    assert names(f"?building={world.building_a}") == sorted(["王小明", "张伟"])
    assert names(f"?unit={second_unit}") == ["赵阿姨"]
    assert names("?q=nobody") == []
    page = client.get(f"/communities/{world.a}/people").text
    assert "10 days left" in page
    assert "owner · A1 · 101" in page and "elder · A2 · 201" in page
    assert "1 card" in page
    assert "Enrol a person" in page
    chinese = client.get(
        f"/communities/{world.a}/people", headers={"Accept-Language": "zh-CN"}
    ).text
    assert "登记人员" in chinese and "剩 10 天" in chinese and "1 张门禁卡" in chinese
    assert "业主 · A1 · 101" in chinese and "已暂停" in chinese


@pytest.mark.parametrize("q", ["%", "_", "n_L", "annx", "0%", "\\", "wang", "138", "王"])
def test_list_search_is_the_apis(app, client, world, staff, q) -> None:
    """The page and the API ask one search: the same people for the same words."""
    with app.app_context():
        db.session.add_all(
            Person(community_id=world.a, name=name, phone=phone, status=PersonStatus.ACTIVE)
            for name, phone in (
                ("Ann_Lee", None),
                ("AnnXLee", "13800000001"),
                ("50% Wang", None),
                ("500 Wang", "138_0000%1"),
                ("Back\\slash", None),
                ("王小明", None),
            )
        )
        db.session.commit()
    page = client.get(f"/communities/{world.a}/people", query_string={"q": q})
    assert page.status_code == 200
    on_page = re.findall(r'<a href="/people/per_[^"]+">([^<]+)</a>', page.text)
    answer = Api(client, "staff_a").get(f"/communities/{world.a}/people", query_string={"q": q})
    assert on_page == [p["name"] for p in answer.json]
    assert on_page  # every word here finds someone


@pytest.mark.parametrize(("q", "expected"), LITERAL_SEARCHES)
def test_the_list_takes_wildcards_literally(app, client, world, staff, q, expected) -> None:
    """The page searches like the API: ``%``, ``_`` and ``\\`` are letters, not patterns."""
    add_searchable_people(app, world.a)
    page = client.get(f"/communities/{world.a}/people", query_string={"q": q})
    assert page.status_code == 200
    found = re.findall(r'<a href="/people/per_[^"]+">([^<]+)</a>', page.text)
    assert [html.unescape(name) for name in found] == sorted(expected)


def test_list_pages_fifty_at_a_time(app, client, world, staff) -> None:
    with app.app_context():
        db.session.add_all(
            Person(community_id=world.a, name=f"Person {n:03d}", status=PersonStatus.ACTIVE)
            for n in range(55)
        )
        db.session.commit()
    first = client.get(f"/communities/{world.a}/people").text
    assert "Person 049" in first and "Person 050" not in first and "Page 1 of 2" in first
    second = client.get(f"/communities/{world.a}/people?page=2&q=Person").text
    assert "Person 054" in second and "Person 049" not in second
    assert 'rel="prev"' in second and "q=Person" in second


def test_home_links_to_people(client, world, staff) -> None:
    assert f"/communities/{world.a}/people" in client.get("/").text


# The person page -------------------------------------------------------------------------------


def test_person_page_shows_only_the_masked_document(client, world, staff) -> None:
    pid = _person(
        client,
        world,
        "王小明",
        "owner",
        phone="13800000001",
        id_document={"type": "resident_id", "number": ID_NUMBER},
    )
    page = client.get(f"/people/{pid}")
    assert page.status_code == 200
    assert ID_NUMBER[:4] + "*" * 10 + ID_NUMBER[-4:] in page.text
    assert ID_NUMBER not in page.text
    assert "resident identity card" in page.text and "13800000001" in page.text
    assert "owner · A1 · 101" in page.text
    assert ID_NUMBER not in client.get(f"/communities/{world.a}/people").text
    chinese = client.get(f"/people/{pid}", headers={"Accept-Language": "zh-CN"}).text
    assert '<html lang="zh-CN">' in chinese
    assert "居民身份证" in chinese and "业主 · A1 · 101" in chinese
    assert "<h2>人脸识别授权</h2>" in chinese and "Consent to face recognition" not in chinese


def test_consent_record_and_withdraw(app, client, world, staff) -> None:
    pid = _person(client, world)
    page = f"/people/{pid}"
    assert "No consent recorded" in client.get(page).text
    done = _submit(client, page, f"/people/{pid}/consent")
    assert "Consent to face recognition recorded." in done.text
    assert "recorded by staff_a" in done.text
    [consent] = _rows(app, Consent, person_id=pid)
    assert consent.purpose == "face_recognition" and consent.withdrawn_at is None
    done = _submit(client, page, f"/people/{pid}/consent/withdraw")
    assert "Consent withdrawn; 0 face photos erased." in done.text
    assert _rows(app, Consent, person_id=pid)[0].withdrawn_at is not None


def test_face_upload_blurred_is_refused_with_reason(app, client, world, staff) -> None:
    pid = _person(client, world)
    page = f"/people/{pid}"
    _post(client, f"/people/{pid}/consent", page=page)
    answer = _upload(client, f"/people/{pid}/faces", page, photo=blurred())
    assert answer.status_code == 200
    assert "Photo refused: The photo is too blurry." in answer.text
    assert "Nothing was stored" in answer.text
    assert "sharpness" in answer.text and "(at least 15)" in answer.text
    assert "No face enrolled." in answer.text
    assert _rows(app, FaceTemplate) == []
    # The verdict is shown once, like a flash message.
    assert "Photo refused" not in client.get(page).text


def test_face_upload_of_a_good_photo_lists_the_face(app, client, world, staff) -> None:
    pid = _person(client, world)
    page = f"/people/{pid}"
    refused = _upload(client, f"/people/{pid}/faces", page, photo=photo("obama.jpg"))
    assert "Record consent first" in refused.text and _rows(app, FaceTemplate) == []
    _post(client, f"/people/{pid}/consent", page=page)
    answer = _upload(client, f"/people/{pid}/faces", page, photo=photo("obama.jpg"))
    assert "Photo accepted." in answer.text
    assert "Faces (1 of 5)" in answer.text
    assert "eye distance" in answer.text
    [face] = _rows(app, FaceTemplate, person_id=pid)
    unreadable = _upload(client, f"/people/{pid}/faces", page, photo=b"not an image")
    assert "Photo not stored" in unreadable.text
    deleted = _submit(client, page, f"/faces/{face.id}/delete")
    assert "Face photo deleted." in deleted.text and _rows(app, FaceTemplate) == []


def _id_photo() -> bytes:
    """obama.jpg cropped and shrunk to the 102x126 of an ID card's chip photo."""
    image = Image.open(io.BytesIO(photo("obama.jpg"))).convert("RGB")
    width, height = image.size
    crop = image.crop(
        (int(width * 0.25), int(height * 0.05), int(width * 0.75), int(height * 0.75))
    )
    buffer = io.BytesIO()
    crop.resize((102, 126)).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def test_person_id_match_form(app, client, world, staff) -> None:
    pid = _person(client, world)
    page = f"/people/{pid}"
    yes = _upload(
        client,
        f"/people/{pid}/id-check",
        page,
        id_photo=_id_photo(),
        live_photo=photo("obama2.jpg"),
    )
    assert re.search(r"Match: distance 0\.\d\d \(tolerance 0\.55\)", yes.text)
    no = _upload(
        client, f"/people/{pid}/id-check", page, id_photo=_id_photo(), live_photo=photo("biden.jpg")
    )
    assert "No match: distance" in no.text
    assert no.text.count('class="pill on">match<') == 1
    assert no.text.count('class="pill off">no match<') == 1


def test_lease_end_early_and_renew_from_the_page(app, client, world, staff) -> None:
    now = utcnow().replace(microsecond=0)
    pid = _tenant(client, world, "张伟", now - timedelta(days=1), now + timedelta(days=10))
    page = f"/people/{pid}"
    assert "days left" in client.get(page).text
    [lease] = _rows(app, Lease, person_id=pid)
    renewed = _submit(client, page, f"/leases/{lease.id}/renew", {"ends_at": "2031-06-30T18:00"})
    assert "Lease now ends 2031-06-30 18:00." in renewed.text
    assert _rows(app, Lease, id=lease.id)[0].ends_at == datetime(2031, 6, 30, 10, tzinfo=UTC)
    before_start = _submit(
        client, page, f"/leases/{lease.id}/renew", {"ends_at": "2001-01-01T00:00"}
    )
    assert "The end must come after the start." in before_start.text
    ended = _submit(client, page, f"/leases/{lease.id}/end")
    assert "Lease ended now." in ended.text and "ended early" in ended.text
    stored = _rows(app, Lease, id=lease.id)[0]
    assert stored.ended_early_at is not None and stored.ends_at <= utcnow()
    added = _submit(
        client,
        page,
        f"/people/{pid}/leases",
        {"unit_id": world.unit_a, "starts_at": "2031-07-01T00:00", "ends_at": "2032-06-30T00:00"},
    )
    assert "Lease added." in added.text
    assert len(_rows(app, Lease, person_id=pid)) == 2


def test_card_add_and_disable(app, client, world, staff) -> None:
    pid = _person(client, world)
    page = f"/people/{pid}"
    added = _submit(client, page, f"/people/{pid}/credentials/cards", {"uid": "04a1b2c3"})
    assert "Card 04A1B2C3 added." in added.text
    [card] = _rows(app, Card, person_id=pid)
    again = _submit(client, page, f"/people/{pid}/credentials/cards", {"uid": "04A1B2C3"})
    assert "already registered" in again.text
    bad = _submit(client, page, f"/people/{pid}/credentials/cards", {"uid": "zz"})
    assert "Hex, 8 to 32 digits." in bad.text
    off = _submit(client, page, f"/credentials/cards/{card.id}", {"disabled": "1"})
    assert "Card 04A1B2C3 disabled." in off.text
    assert _rows(app, Card, id=card.id)[0].disabled_at is not None
    on = _submit(client, page, f"/credentials/cards/{card.id}", {"disabled": "0"})
    assert "Card 04A1B2C3 enabled." in on.text
    plate = _submit(
        client,
        page,
        f"/people/{pid}/credentials/vehicles",
        {"plate": "浙Ａ·１２３４５", "color": "blue"},
    )
    assert "Vehicle 浙A12345 added." in plate.text
    tag = _submit(client, page, f"/people/{pid}/credentials/tags", {"epc": "e2000017"})
    assert "Tag E2000017 added." in tag.text


def test_move_out(app, client, world, staff) -> None:
    pid = _person(client, world)
    page = f"/people/{pid}"
    _post(client, f"/people/{pid}/credentials/cards", {"uid": "04A1B2C3"}, page=page)
    done = _submit(client, page, f"/people/{pid}/move-out")
    assert "has moved out" in done.text
    assert "moved out" in done.text and "Move out</button>" not in done.text
    assert _rows(app, Person, id=pid)[0].status is PersonStatus.MOVED_OUT
    assert _rows(app, Card, person_id=pid)[0].disabled_at is not None


def test_suspend_and_reactivate(app, client, world, staff) -> None:
    pid = _person(client, world)
    page = f"/people/{pid}"
    done = _post(client, f"/people/{pid}/status", {"status": "suspended"}, page=page)
    assert done.status_code == 302
    assert _rows(app, Person, id=pid)[0].status is PersonStatus.SUSPENDED
    _post(client, f"/people/{pid}/status", {"status": "active"}, page=page)
    assert _rows(app, Person, id=pid)[0].status is PersonStatus.ACTIVE


def test_guardians(app, client, world, staff) -> None:
    child = _person(client, world, "小明", "child")
    mother = _person(client, world, "妈妈", "owner")
    page = f"/people/{child}"
    added = _submit(client, page, f"/people/{child}/guardians", {"add": mother})
    assert "Guardians saved." in added.text and f'href="/people/{mother}"' in added.text
    assert "Guardian of:" in client.get(f"/people/{mother}").text
    _post(client, f"/people/{child}/guardians", {"remove": mother}, page=page)
    assert "No guardian." in client.get(page).text


# Enrolment -------------------------------------------------------------------------------------


def _enrol(client, world, **fields):
    page = f"/communities/{world.a}/people/new"
    form = client.get(page)
    assert form.status_code == 200
    data = {"csrf_token": csrf(form.text), "name": "张伟", "role": "resident", **fields}
    return client.post(page, data=data, content_type="multipart/form-data")


def test_enrol_a_tenant_with_local_lease_times(app, client, world, staff) -> None:
    answer = _enrol(
        client,
        world,
        role="tenant",
        unit_id=world.unit_a,
        phone="13800000002",
        id_type="resident_id",
        id_number=ID_NUMBER,
        lease_starts_at="2026-12-01T09:00",
        lease_ends_at="2027-11-30T18:00",
    )
    assert answer.status_code == 302, answer.text
    [person] = _rows(app, Person)
    assert answer.location == f"/people/{person.id}"
    [lease] = _rows(app, Lease, person_id=person.id)
    # Asia/Shanghai is UTC+8 all year.
    assert lease.starts_at == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    assert lease.ends_at == datetime(2027, 11, 30, 10, 0, tzinfo=UTC)
    assert person.id_document_masked == ID_NUMBER[:4] + "*" * 10 + ID_NUMBER[-4:]
    page = client.get(answer.location).text
    assert "张伟 enrolled." in page
    assert "2026-12-01 09:00 CST" in page and "2027-11-30 18:00 CST" in page
    assert ID_NUMBER not in page
    assert _rows(app, Consent) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"unit_id": "{unit}", "id_type": "resident_id", "id_number": "330106199001011230"},
            "check digit",
        ),
        ({"name": "", "unit_id": "{unit}"}, "Enter the person&#39;s name."),
        ({}, "Choose the unit."),
        ({"unit_id": "uni_elsewhere"}, "No such unit in this community."),
        ({"unit_id": "{unit}", "phone": "call me"}, "Digits, spaces and dashes"),
        ({"role": "tenant", "unit_id": "{unit}"}, "Enter a date and time."),
        (
            {
                "role": "tenant",
                "unit_id": "{unit}",
                "lease_starts_at": "2026-12-01T09:00",
                "lease_ends_at": "2026-11-01T09:00",
            },
            "The end must come after the start.",
        ),
        ({"role": "worker"}, "Choose at least one access point."),
        # Refused by the service after the person row was flushed: rolled back.
        (
            {
                "role": "worker",
                "worker_tag": "plumber",
                "worker_access_point_ids": "{door_b}",
                "worker_valid_from": "2026-12-01T00:00",
                "worker_valid_until": "2026-12-08T00:00",
            },
            "No such access point in this community.",
        ),
    ],
)
def test_enrolment_errors_re_render_and_store_nothing(
    app, client, world, staff, fields, message
) -> None:
    fields = {
        k: v.replace("{unit}", world.unit_a).replace("{door_b}", world.door_b)
        for k, v in fields.items()
    }
    answer = _enrol(client, world, face_consent="on", **fields)
    assert answer.status_code == 422
    assert message in answer.text
    assert "Nothing was stored" in answer.text
    assert 'name="csrf_token"' in answer.text
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Person)) == 0
        assert db.session.scalar(select(func.count()).select_from(Membership)) == 0
        assert db.session.scalar(select(func.count()).select_from(Consent)) == 0
        assert db.session.scalar(select(func.count()).select_from(Lease)) == 0
    if "id_number" in fields:
        assert fields["id_number"] not in answer.text  # not echoed back


def test_enrolment_errors_in_chinese(app, client, world, staff) -> None:
    page = f"/communities/{world.a}/people/new"
    form = client.get(page, headers={"Accept-Language": "zh-CN"})
    assert "登记人员" in form.text and "走失风险（老人、儿童）" in form.text
    data = {"csrf_token": csrf(form.text), "name": "", "role": "owner", "unit_id": world.unit_a}
    answer = client.post(page, data=data, headers={"Accept-Language": "zh-CN"})
    assert answer.status_code == 422
    assert "未保存任何内容，请检查" in answer.text and "请输入姓名。" in answer.text


def test_enrol_a_worker_and_edit_the_permit(app, client, world, staff) -> None:
    answer = _enrol(
        client,
        world,
        name="刘师傅",
        role="worker",
        unit_id=world.unit_a,  # ignored for a worker
        worker_tag="plumber",
        worker_access_point_ids=world.door_a,
        worker_days=["1", "2", "3", "4", "5"],
        worker_start="08:00",
        worker_end="18:00",
        worker_valid_from="2026-12-01T00:00",
        worker_valid_until="2026-12-08T00:00",
    )
    assert answer.status_code == 302, answer.text
    [permit] = _rows(app, WorkerPermit)
    assert permit.schedule == [{"days": [1, 2, 3, 4, 5], "start": "08:00", "end": "18:00"}]
    assert permit.valid_from == datetime(2026, 11, 30, 16, tzinfo=UTC)
    page = client.get(answer.location).text
    assert "Mon-Fri 08:00-18:00" in page and "A door" in page and "plumber" in page
    assert "staff_a (staff)" in page
    edited = _submit(
        client,
        answer.location,
        f"/worker-permits/{permit.id}",
        {
            "tag": "cleaner",
            "access_point_ids": world.door_a,
            "days": ["5"],
            "start": "22:00",
            "end": "00:00",
            "valid_from": "2026-12-01T00:00",
            "valid_until": "2026-12-31T00:00",
        },
    )
    assert "Permit saved." in edited.text
    assert "Fri 22:00-24:00" in edited.text and "cleaner" in edited.text
    [permit] = _rows(app, WorkerPermit)
    assert permit.schedule == [{"days": [5], "start": "22:00", "end": "24:00"}]
    bad = _submit(
        client,
        answer.location,
        f"/worker-permits/{permit.id}",
        {"tag": "cleaner", "access_point_ids": world.door_b, "valid_from": "x", "valid_until": ""},
    )
    assert "Enter a date and time" in bad.text
    assert _rows(app, WorkerPermit)[0].tag.value == "cleaner"


def test_enrol_with_consent_and_photo(app, client, world, staff) -> None:
    answer = _enrol(
        client,
        world,
        unit_id=world.unit_a,
        face_consent="on",
        photo=(io.BytesIO(photo("obama.jpg")), "obama.jpg"),
    )
    assert answer.status_code == 302
    page = client.get(answer.location).text
    assert "Photo accepted." in page and "Faces (1 of 5)" in page
    [person] = _rows(app, Person)
    assert len(_rows(app, FaceTemplate, person_id=person.id)) == 1
    assert _rows(app, Consent, person_id=person.id)[0].recorded_by_id == world.staff_a


def test_enrol_with_a_refused_photo_stores_nothing(app, client, world, staff) -> None:
    answer = _enrol(
        client,
        world,
        unit_id=world.unit_a,
        face_consent="on",
        photo=(io.BytesIO(blurred()), "blurred.jpg"),
    )
    assert answer.status_code == 422
    assert "Photo rejected: The photo is too blurry." in _field_messages(answer.text, "photo")
    assert "sharpness" in answer.text and "(at least 15)" in answer.text
    assert 'name="photo_token"' not in answer.text
    assert _rows(app, Person) == [] and _rows(app, FaceTemplate) == []
    assert _rows(app, Consent) == []


def test_enrol_photo_without_consent_is_an_error(app, client, world, staff) -> None:
    answer = _enrol(
        client, world, unit_id=world.unit_a, photo=(io.BytesIO(photo("obama.jpg")), "obama.jpg")
    )
    assert answer.status_code == 422
    [message] = _field_messages(answer.text, "face_consent")
    assert "consent to face recognition" in message
    assert "Photo accepted — kept for this form." in answer.text  # tick consent and go on
    assert _rows(app, Person) == [] and _rows(app, FaceTemplate) == []
    assert _rows(app, Consent) == []


def _field_messages(page: str, field: str) -> list[str]:
    """The messages shown next to one input (its ``<field>-error`` paragraphs)."""
    found = re.findall(rf'<p class="field-error" id="{re.escape(field)}-error">([^<]*)</p>', page)
    return [html.unescape(text) for text in found]


def _token(page: str) -> str:
    return re.search(r'name="photo_token" value="([^"]+)"', page).group(1)


def test_enrolment_reports_every_error_at_once(app, client, world, staff) -> None:
    """One submission: every problem next to its input, what was typed kept, nothing stored."""
    answer = _enrol(
        client,
        world,
        name="",
        role="tenant",
        phone="call me",
        id_type="resident_id",
        id_number="330106199001011230",  # a wrong check digit
        lease_starts_at="2026-12-01T09:00",
        lease_ends_at="2026-11-01T09:00",
        photo=(io.BytesIO(photo("obama.jpg")), "obama.jpg"),  # no consent ticked
    )
    assert answer.status_code == 422
    page = answer.text
    assert _field_messages(page, "name") == ["Enter the person's name."]
    assert _field_messages(page, "unit_id") == ["Choose the unit."]
    assert "Digits, spaces and dashes" in _field_messages(page, "phone")[0]
    assert "check digit" in _field_messages(page, "id_number")[0]
    assert _field_messages(page, "lease_ends_at") == ["The end must come after the start."]
    assert "consent to face recognition" in _field_messages(page, "face_consent")[0]
    assert _field_messages(page, "photo") == []
    # The summary lists them all, and the form keeps what was typed (the number excepted).
    summary = page[page.index('id="errors-title"') : page.index("</section>")]
    assert summary.count("<li>") == 6
    assert 'value="call me"' in page and 'value="2026-11-01T09:00"' in page
    assert 'value="tenant" selected' in page and "330106199001011230" not in page
    assert "Photo accepted — kept for this form." in page
    assert _rows(app, Person) == [] and _rows(app, Lease) == [] and _rows(app, Consent) == []


def test_a_worker_s_errors_at_once(app, client, world, staff) -> None:
    answer = _enrol(
        client,
        world,
        role="worker",
        worker_days=["1"],
        worker_valid_from="2026-12-08T00:00",
        worker_valid_until="2026-12-01T00:00",
        id_type="resident_id",
        id_number="12",
    )
    assert answer.status_code == 422
    page = answer.text
    assert _field_messages(page, "worker_access_point_ids") == ["Choose at least one access point."]
    assert _field_messages(page, "worker_schedule")
    assert _field_messages(page, "worker_valid_until") == ["The end must come after the start."]
    assert _field_messages(page, "id_number")
    assert _rows(app, Person) == [] and _rows(app, WorkerPermit) == []


def test_a_checked_photo_is_kept_for_the_next_try(app, client, world, staff) -> None:
    """The photo passed but the name was missing: the next try enrols it, not chosen again."""
    first = _enrol(
        client,
        world,
        name="",
        unit_id=world.unit_a,
        face_consent="on",
        photo=(io.BytesIO(photo("obama.jpg")), "obama.jpg"),
    )
    assert first.status_code == 422
    assert "Photo accepted — kept for this form." in first.text
    assert "eye distance" in first.text
    assert 'id="photo-kept"' in first.text and "Replace the photo" in first.text
    token = _token(first.text)
    assert _rows(app, Person) == []
    # The token holds the template encrypted: nothing in it reads as the template or photo.
    with app.app_context():
        payload = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="enrolment-photo").loads(
            token
        )
        assert set(payload) == {"community_id", "user_id", "template", "quality"}
        assert payload["community_id"] == world.a
        assert len(crypto.decrypt(payload["template"].encode())) == 512

    again = _enrol(client, world, unit_id=world.unit_a, face_consent="on", photo_token=token)
    assert again.status_code == 302, again.text
    [person] = _rows(app, Person)
    [face] = _rows(app, FaceTemplate, person_id=person.id)
    assert face.quality["eye_distance_px"] > 0 and face.photo_encrypted is None
    assert _rows(app, Consent, person_id=person.id)
    page = client.get(again.location).text
    assert "张伟 enrolled." in page and "Photo accepted." in page and "Faces (1 of 5)" in page


def test_a_kept_photo_can_be_left_out(app, client, world, staff) -> None:
    first = _enrol(
        client, world, name="", face_consent="on", photo=(io.BytesIO(photo("obama.jpg")), "x.jpg")
    )
    token = _token(first.text)
    again = _enrol(client, world, unit_id=world.unit_a, photo_token=token, photo_discard="on")
    assert again.status_code == 302, again.text
    assert len(_rows(app, Person)) == 1 and _rows(app, FaceTemplate) == []


@pytest.mark.parametrize("spoil", ["tampered", "expired", "garbage"])
def test_a_spoilt_photo_token_is_ignored(app, client, world, staff, monkeypatch, spoil) -> None:
    first = _enrol(
        client, world, name="", face_consent="on", photo=(io.BytesIO(photo("obama.jpg")), "x.jpg")
    )
    token = _token(first.text)
    if spoil == "tampered":
        body, _dot, rest = token.partition(".")
        token = body[:-3] + ("AAA" if body[-3:] != "AAA" else "BBB") + "." + rest
    elif spoil == "expired":
        monkeypatch.setattr("server.web.people.PHOTO_TOKEN_MAX_AGE", -1)
    else:
        token = "not-a-token"
    # With something else wrong, the form asks for the photo again (no "kept" notice) ...
    again = _enrol(client, world, name="", face_consent="on", photo_token=token)
    assert again.status_code == 422
    assert 'name="photo_token"' not in again.text and "kept for this form" not in again.text
    # ... and with nothing wrong, the person is enrolled without a face.
    done = _enrol(client, world, unit_id=world.unit_a, face_consent="on", photo_token=token)
    assert done.status_code == 302, done.text
    assert len(_rows(app, Person)) == 1 and _rows(app, FaceTemplate) == []


def test_a_duplicate_face_is_the_photo_s_error(app, client, world, staff) -> None:
    first = _enrol(
        client,
        world,
        name="王小明",
        unit_id=world.unit_a,
        face_consent="on",
        photo=(io.BytesIO(photo("obama.jpg")), "obama.jpg"),
    )
    assert first.status_code == 302
    answer = _enrol(
        client,
        world,
        name="李华",
        unit_id=world.unit_a,
        face_consent="on",
        photo=(io.BytesIO(photo("obama2.jpg")), "obama2.jpg"),
    )
    assert answer.status_code == 422
    [message] = _field_messages(answer.text, "photo")
    assert "already enrolled for 王*明 (A1 · 101)" in message
    assert "王小明" not in answer.text
    assert 'name="photo_token"' not in answer.text
    assert [p.name for p in _rows(app, Person)] == ["王小明"]
    assert len(_rows(app, FaceTemplate)) == 1
    chinese = client.post(
        f"/communities/{world.a}/people/new",
        data={
            "csrf_token": csrf(client.get("/").text),
            "name": "李华",
            "role": "resident",
            "unit_id": world.unit_a,
            "face_consent": "on",
            "photo": (io.BytesIO(photo("obama2.jpg")), "obama2.jpg"),
        },
        headers={"Accept-Language": "zh-CN"},
        content_type="multipart/form-data",
    )
    assert chinese.status_code == 422
    assert "王*明" in _field_messages(chinese.text, "photo")[0]
    assert "已登记" in _field_messages(chinese.text, "photo")[0]


def test_a_community_keeping_photos_asks_for_the_photo_again(app, client, world, staff) -> None:
    """Keeping the photo itself in the form would be too big: such a community chooses it again."""
    with app.app_context():
        community = db.session.get(Community, world.a)
        community.settings = {**(community.settings or {}), "keep_enrolment_photos": True}
        db.session.commit()
    first = _enrol(
        client, world, name="", face_consent="on", photo=(io.BytesIO(photo("obama.jpg")), "x.jpg")
    )
    assert first.status_code == 422
    assert 'name="photo_token"' not in first.text
    assert "choose it again" in first.text
    done = _enrol(
        client,
        world,
        unit_id=world.unit_a,
        face_consent="on",
        photo=(io.BytesIO(photo("obama.jpg")), "x.jpg"),
    )
    assert done.status_code == 302
    [face] = _rows(app, FaceTemplate)
    assert face.photo_encrypted is not None


# Scope -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["staff_b", "officer_a", "resident_a"])
def test_people_pages_are_404_outside_scope(app, client, world, username) -> None:
    pid = _person(client, world)
    card = Api(client, "staff_a").post(f"/people/{pid}/cards", {"uid": "04A1B2C3"}).json
    login(client, username)
    for path in (
        f"/communities/{world.a}/people",
        f"/communities/{world.a}/people/new",
        f"/people/{pid}",
    ):
        assert client.get(path).status_code == 404, (username, path)
    for path, data in (
        (
            f"/communities/{world.a}/people/new",
            {"name": "x", "role": "owner", "unit_id": world.unit_a},
        ),
        (f"/people/{pid}/move-out", {}),
        (f"/people/{pid}/consent", {}),
        (f"/people/{pid}/credentials/cards", {"uid": "04A1B2C3D4"}),
        (f"/credentials/cards/{card['id']}", {"disabled": "1"}),
    ):
        assert _post(client, path, data).status_code == 404, (username, path)
    assert _rows(app, Person, id=pid)[0].status is PersonStatus.ACTIVE
    assert len(_rows(app, Person)) == 1 and _rows(app, Consent) == []
    assert _rows(app, Card)[0].disabled_at is None


def test_people_pages_need_sign_in(client, world) -> None:
    assert client.get(f"/communities/{world.a}/people").status_code == 302
