"""The car-gate page's temporary cars: the tariff, the cars waiting to pay with their fee in
yuan, and the guard's confirmation that records the payment and opens the exit barrier."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from hardware.messages import CommandMessage
from hardware.protocol import Command
from server.extensions import db
from server.models import AuditEntry, Community, ParkingTicket
from tests.support.pages import csrf, login
from tests.support.passes import NOW, add_barrier, build_pass_site
from tests.support.published import commands

BARRIER_SECRET = "barrier-secret-for-parking-pages"
GUEST = "京N1234学"


@dataclasses.dataclass(frozen=True)
class CarSite:
    a: str
    barrier: str
    device: str
    credential: str


@pytest.fixture
def site(app) -> CarSite:
    with app.app_context():
        base = build_pass_site()
        barrier = add_barrier(base, BARRIER_SECRET)
        community = db.session.get(Community, base.a)
        community.settings = {
            "temporary_cars": True,
            "parking_free_minutes": 15,
            "parking_hour_fen": 500,
            "parking_night_hour_fen": 250,
            "parking_daily_cap_fen": 3000,
        }
        db.session.commit()
        built = CarSite(base.a, barrier.point, barrier.device, barrier.credential)
        db.session.remove()
    return built


def _read(client, site: CarSite, plate: str, direction: str) -> dict:
    answer = client.post(
        "/api/v1/verify/plate",
        json={"plate": plate, "direction": direction},
        headers={"Authorization": f"Bearer {site.credential}"},
    )
    assert answer.status_code == 200, answer.json
    return answer.json


def _section(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start : html.index("</section>", start)]


def test_the_guard_sees_who_waits_to_pay_and_confirms_the_payment(
    app, client, site, published
) -> None:
    with time_machine.travel(NOW, tick=False):
        _read(client, site, GUEST, "in")
    with time_machine.travel(NOW + timedelta(hours=2, minutes=30), tick=False) as traveller:
        out = _read(client, site, GUEST, "out")
        assert (out["reason"], out["parking"]["fee_fen"]) == ("payment_required", 1500)
        published.clear()
        login(client, "staff_a")
        page = client.get(f"/communities/{site.a}/cars")
        assert page.status_code == 200
        inside = _section(page.text, "inside")
        assert "temporary" in inside[inside.index(f'data-plate="{GUEST}"') :].split("</tr>")[0]
        card = _section(page.text, "parking")
        assert 'id="parking-count">1<' in card
        assert "¥5.00 per started hour" in card and "at most ¥30.00 a day" in card
        assert "¥2.50 per hour starting 22:00-07:00" in card
        row = card[card.index(f'data-plate="{GUEST}"') :].split("</tr>")[0]
        assert "¥15.00" in row and "2 h 30 min" in row and "South barrier" in row
        assert "2026-11-21 16:30 CST" in row
        assert 'name="amount_fen" value="1500"' in row
        assert 'value="wechat"' in row and "WeChat Pay" in row

        # The fee grew since the page was shown (read again an hour later): refused, shown anew.
        traveller.shift(timedelta(hours=1))
        again = _read(client, site, GUEST, "out")
        assert again["parking"]["fee_fen"] == 2000
        action = f"/parking-tickets/{out['parking']['ticket_id']}/pay"
        stale = client.post(
            action,
            data={"csrf_token": csrf(page.text), "method": "cash", "amount_fen": "1500"},
        )
        assert stale.status_code == 303 and stale.headers["Location"].endswith("#parking")
        shown = client.get(f"/communities/{site.a}/cars").text
        assert "The fee due is ¥20.00." in shown
        assert commands(published) == []
        # A method nobody offers: refused.
        odd = client.post(
            action, data={"csrf_token": csrf(shown), "method": "bitcoin", "amount_fen": "2000"}
        )
        assert odd.status_code == 303
        assert "Choose how the fee was paid." in client.get(f"/communities/{site.a}/cars").text

        paid = client.post(
            action, data={"csrf_token": csrf(shown), "method": "alipay", "amount_fen": "2000"}
        )
        assert paid.status_code == 303
        after = client.get(f"/communities/{site.a}/cars").text
    assert f"{GUEST} paid ¥20.00 (Alipay): the barrier is opening." in after
    assert 'id="parking-count">0<' in _section(after, "parking")
    [message] = commands(published)
    assert CommandMessage.decode(message.payload).cmd is Command.OPEN
    assert message.topic.endswith(f"/{site.device}/cmd")
    with app.app_context():
        ticket = db.session.get(ParkingTicket, out["parking"]["ticket_id"])
        assert (ticket.status.value, ticket.paid_fen, ticket.payment_method.value) == (
            "paid",
            2000,
            "alipay",
        )
        [audit] = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "parking.payment")
        ).all()
        assert audit.actor == "staff_a" and audit.details["method"] == "alipay"


def test_officers_read_the_list_without_a_button(app, client, site) -> None:
    with time_machine.travel(NOW, tick=False):
        _read(client, site, GUEST, "in")
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        ticket_id = _read(client, site, GUEST, "out")["parking"]["ticket_id"]
        login(client, "officer_a")
        page = client.get(f"/communities/{site.a}/cars")
        card = _section(page.text, "parking")
        assert "¥5.00" in card and "confirm-payment" not in card
        token = csrf(client.get("/").text)
        refused = client.post(
            f"/parking-tickets/{ticket_id}/pay",
            data={"csrf_token": token, "method": "cash", "amount_fen": "500"},
        )
        assert refused.status_code == 403
        resident = app.test_client()
        login(resident, "resident_a")
        token = csrf(resident.get("/", follow_redirects=True).text)
        hidden = resident.post(
            f"/parking-tickets/{ticket_id}/pay",
            data={"csrf_token": token, "method": "cash", "amount_fen": "500"},
        )
        assert hidden.status_code == 404


def test_staff_change_the_tariff_on_its_page(app, client, site) -> None:
    login(client, "staff_a")
    page = client.get(f"/communities/{site.a}/parking-tariff")
    assert page.status_code == 200
    assert 'name="hour" value="5.00"' in page.text
    assert 'name="night_hour" value="2.50"' in page.text
    assert 'name="daily_cap" value="30.00"' in page.text
    assert 'name="temporary_cars" value="on" checked' in page.text
    form = {
        "csrf_token": csrf(page.text),
        "temporary_cars": "on",
        "free_minutes": "30",
        "hour": "¥6.5",
        "night_hour": "",
        "night_start": "23:00",
        "night_end": "06:00",
        "daily_cap": "40",
    }
    saved = client.post(f"/communities/{site.a}/parking-tariff", data=form)
    assert saved.status_code == 303, saved.text
    with app.app_context():
        settings = db.session.get(Community, site.a).settings
        assert (settings["parking_free_minutes"], settings["parking_hour_fen"]) == (30, 650)
        assert settings["parking_night_hour_fen"] is None
        assert settings["parking_daily_cap_fen"] == 4000
        assert settings["parking_night_start"] == "23:00"
        [entry] = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "community.update")
        ).all()
        assert entry.actor == "staff_a"
    shown = client.get(f"/communities/{site.a}/parking-tariff").text
    assert "The tariff is saved" in shown and "¥6.50 per started hour" in shown

    # Bad values: the form again with its messages (422), nothing stored.
    for field, value in (
        ("hour", "-1"),
        ("hour", "5.555"),
        ("free_minutes", "ten"),
        ("daily_cap", "abc"),
        ("night_start", "25:00"),
        ("free_minutes", "2000"),
    ):
        bad = client.post(f"/communities/{site.a}/parking-tariff", data={**form, field: value})
        assert bad.status_code == 422, (field, value)
        assert "Nothing was stored" in bad.text
        assert f'aria-describedby="{field}-error"' in bad.text, (field, bad.text)
    with app.app_context():
        assert db.session.get(Community, site.a).settings["parking_hour_fen"] == 650
    # Turning temporary cars off: the box left unticked.
    off = {**form}
    del off["temporary_cars"]
    assert client.post(f"/communities/{site.a}/parking-tariff", data=off).status_code == 303
    with app.app_context():
        assert db.session.get(Community, site.a).settings["temporary_cars"] is False


def test_officers_read_the_tariff_and_residents_find_no_page(app, client, site) -> None:
    login(client, "officer_a")
    page = client.get(f"/communities/{site.a}/parking-tariff")
    assert page.status_code == 200 and "¥5.00 per started hour" in page.text
    assert 'id="tariff"' not in page.text  # no form
    token = csrf(client.get("/").text)
    refused = client.post(
        f"/communities/{site.a}/parking-tariff",
        data={"csrf_token": token, "free_minutes": "0", "hour": "1"},
    )
    assert refused.status_code == 403
    resident = app.test_client()
    login(resident, "resident_a")
    assert resident.get(f"/communities/{site.a}/parking-tariff").status_code == 404
    staff_b = app.test_client()
    login(staff_b, "staff_b")
    assert staff_b.get(f"/communities/{site.a}/parking-tariff").status_code == 404
    with app.app_context():
        assert db.session.get(Community, site.a).settings["parking_hour_fen"] == 500
