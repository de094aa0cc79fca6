"""The holiday calendar page: staff add and delete holidays, officers read, residents and
other communities find nothing; dates and "today" are the community's."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine
from sqlalchemy import func, select

from server.extensions import db
from server.models import AuditEntry, Holiday
from tests.factories import Api
from tests.support.api import in_app
from tests.support.pages import csrf, login

# 2027-02-04 16:30 UTC is 5 February 00:30 in Shanghai: the first day of 春节 there.
FIRST_NIGHT = datetime(2027, 2, 4, 16, 30, tzinfo=UTC)


def _post(client, path: str, data: dict, page: str):
    token = csrf(client.get(page).text)
    return client.post(path, data={"csrf_token": token, **data})


def _count(app) -> int:
    with in_app(app):
        return db.session.scalar(select(func.count()).select_from(Holiday))


@time_machine.travel(FIRST_NIGHT, tick=False)
def test_staff_add_and_delete_holidays_on_the_page(app, client, world) -> None:
    login(client, "staff_a")
    page = f"/communities/{world.a}/holidays"
    assert f'href="{page}"' in client.get(f"/communities/{world.a}/site").text
    empty = client.get(page).text
    assert "No holidays yet" in empty and "today is 2027-02-05" in empty
    assert "A door" in empty  # the community's points to choose from

    wrong = _post(
        client,
        page,
        {"name": "", "first_day": "2027-02-11", "last_day": "2027-02-05", "effect": "hours"},
        page,
    )
    assert wrong.status_code == 422
    for message in (
        "Enter a name (at most 80 characters).",
        "Give the hours the points keep: a start and an end.",
    ):
        assert message in wrong.text, message
    assert 'value="2027-02-11"' in wrong.text  # what was typed stays
    everything = _post(
        client,
        page,
        {"name": "春节", "first_day": "2027-02-05", "effect": "closed", "all_points": "on"},
        page,
    )
    assert everywhere_refused(everything.text) and everything.status_code == 422
    backwards = _post(
        client,
        page,
        {
            "name": "春节",
            "first_day": "2027-02-11",
            "last_day": "2027-02-05",
            "point": world.door_a,
        },
        page,
    )
    assert (
        backwards.status_code == 422 and "The last day is before the first day." in backwards.text
    )
    assert _count(app) == 0

    made = _post(
        client,
        page,
        {
            "name": "春节",
            "first_day": "2027-02-05",
            "last_day": "2027-02-11",
            "effect": "closed",
            "point": world.door_a,
        },
        page,
    )
    assert made.status_code == 303, made.text
    hours = _post(
        client,
        page,
        {
            "name": "元宵",
            "first_day": "2027-02-20",
            "effect": "hours",
            "start": "10:00",
            "end": "00:00",
            "all_points": "on",
        },
        page,
    )
    assert hours.status_code == 303, hours.text
    with in_app(app):
        spring = db.session.scalar(select(Holiday).where(Holiday.name == "春节"))
        lantern = db.session.scalar(select(Holiday).where(Holiday.name == "元宵"))
        assert [p.id for p in spring.access_points] == [world.door_a]
        assert (lantern.first_day.isoformat(), lantern.last_day.isoformat()) == ("2027-02-20",) * 2
        assert lantern.hours == [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "10:00", "end": "24:00"}]
        spring_id = spring.id
    listed = client.get(page).text
    assert "Holiday 元宵 added." in listed
    assert "2027-02-05 to 2027-02-11" in listed and "2027-02-20" in listed
    assert f'id="holiday-{spring_id}" class="current"' in listed  # in force in Shanghai now
    assert "All access points" in listed

    overlap = _post(
        client,
        page,
        {"name": "again", "first_day": "2027-02-08", "effect": "closed", "point": world.door_a},
        page,
    )
    assert overlap.status_code == 422 and "overlaps 春节" in overlap.text

    edit = f"/holidays/{spring_id}"
    form = client.get(edit).text
    assert 'value="2027-02-05"' in form and 'value="2027-02-11"' in form
    assert f'value="{world.door_a}" checked' in form
    refused = _post(
        client, edit, {"name": "春节", "first_day": "2027-02-05", "effect": "hours"}, edit
    )
    assert refused.status_code == 422
    assert "Give the hours the points keep: a start and an end." in refused.text
    changed = _post(
        client,
        edit,
        {
            "name": "春节",
            "first_day": "2027-02-05",
            "last_day": "2027-02-07",
            "effect": "hours",
            "start": "08:00",
            "end": "20:00",
            "point": world.door_a,
        },
        edit,
    )
    assert changed.status_code == 303, changed.text
    with in_app(app):
        spring = db.session.get(Holiday, spring_id)
        assert (spring.effect.value, spring.last_day.isoformat()) == ("hours", "2027-02-07")
        assert spring.hours == [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "08:00", "end": "20:00"}]

    deleted = _post(client, f"/holidays/{spring_id}/delete", {}, page)
    assert deleted.status_code == 303
    assert "Holiday 春节 deleted." in client.get(page).text
    assert _count(app) == 1
    with in_app(app):
        actions = db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.action.like("holiday.%"))
        ).all()
    assert sorted(actions) == [
        "holiday.create",
        "holiday.create",
        "holiday.delete",
        "holiday.update",
    ]


def everywhere_refused(text: str) -> bool:
    return "A holiday cannot close every access point" in text


def test_officers_read_the_calendar_others_find_nothing(app, client, world) -> None:
    login(client, "staff_a")
    page = f"/communities/{world.a}/holidays"
    made = _post(
        client,
        page,
        {
            "name": "国庆",
            "first_day": "2027-10-01",
            "last_day": "2027-10-07",
            "point": world.door_a,
        },
        page,
    )
    assert made.status_code == 303
    with in_app(app):
        hid = db.session.scalar(select(Holiday.id))
    officer = app.test_client()
    login(officer, "officer_a")
    seen = officer.get(page)
    assert seen.status_code == 200 and "国庆" in seen.text and "holiday-form" not in seen.text
    assert 'action="/holidays/' not in seen.text  # no delete buttons either
    assert _post(officer, page, {"name": "x", "first_day": "2027-01-01"}, page).status_code == 404
    assert _post(officer, f"/holidays/{hid}/delete", {}, page).status_code == 404
    assert officer.get(f"/holidays/{hid}").status_code == 404
    for username in ("resident_a", "staff_b"):
        other = app.test_client()
        login(other, username)
        assert other.get(page).status_code == 404, username
    assert _count(app) == 1 and hid


@time_machine.travel(FIRST_NIGHT, tick=False)
def test_saving_a_holiday_on_the_page_keeps_hours_finer_than_the_form(app, client, world) -> None:
    weekend = [{"days": [6, 7], "start": "09:00", "end": "12:00"}]
    made = Api(client, "staff_a").post(
        f"/communities/{world.a}/holidays",
        json={
            "name": "国庆",
            "first_day": "2027-10-01",
            "last_day": "2027-10-07",
            "effect": "hours",
            "hours": weekend,
            "access_point_ids": [world.door_a],
        },
    )
    assert made.status_code == 201, made.json
    login(client, "staff_a")
    page = f"/holidays/{made.json['id']}"
    shown = client.get(page).text
    assert 'value="09:00"' in shown and 'value="12:00"' in shown
    renamed = _post(
        client,
        page,
        {
            "name": "国庆节",
            "first_day": "2027-10-01",
            "last_day": "2027-10-07",
            "effect": "hours",
            "start": "09:00",
            "end": "12:00",
            "point": world.door_a,
        },
        page,
    )
    assert renamed.status_code == 303, renamed.text
    with in_app(app):
        holiday = db.session.get(Holiday, made.json["id"])
        assert (holiday.name, holiday.hours) == ("国庆节", weekend)
    widened = _post(
        client,
        page,
        {
            "name": "国庆节",
            "first_day": "2027-10-01",
            "last_day": "2027-10-07",
            "effect": "hours",
            "start": "08:00",
            "end": "12:00",
            "point": world.door_a,
        },
        page,
    )
    assert widened.status_code == 303, widened.text
    with in_app(app):
        hours = db.session.get(Holiday, made.json["id"]).hours
        assert hours == [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "08:00", "end": "12:00"}]
