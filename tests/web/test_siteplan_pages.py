"""The site plan on the pages: the drawing itself, staff uploading and placing on the site
page (the forms that work without a script), and what officers see: an alert's spot on
its page, the open alerts' spots in the console and on their home page (the city view)."""

from __future__ import annotations

import hashlib
import io
from xml.etree import ElementTree

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select

from gatekeeper.vocabulary import AlertType, DeviceKind, Severity, Zone
from server.alerts import service as alerts
from server.community.plan_drawing import PlanMark, PlanPicture, plan_svg
from server.devices.service import set_secret
from server.extensions import db
from server.models import AccessPoint, AuditEntry, Community, Device, SitePlan, UserRole
from server.web import drawings
from tests import factories
from tests.support.api import WorldIds, in_app
from tests.support.pages import csrf, login

SVG = {"svg": "http://www.w3.org/2000/svg"}


def _png(size: tuple[int, int] = (400, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (235, 240, 245)).save(out, "PNG")
    return out.getvalue()


def _parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)  # noqa: S314 - the server's own drawing


def _svg_of(html: str, css_class: str) -> str:
    start = html.index(f'<svg class="{css_class}"')
    return html[start : html.index("</svg>", start) + len("</svg>")]


# The drawing ----------------------------------------------------------------------------------


def test_the_spot_is_at_its_fraction_of_the_picture_and_red() -> None:
    picture = PlanPicture(
        title="Community <A>",
        href="/plan.png?v=1",
        width=1000,
        height=500,
        marks=(
            PlanMark("ap_gate", "North gate", "gate", 0.5, 0.1),
            PlanMark(
                "dev_panic",
                "Panic <button>",
                DeviceKind.PANIC_BUTTON,
                0.2,
                0.8,
                device=True,
                hit=True,
            ),
        ),
    )
    svg = str(drawings.site_plan(picture))
    root = _parse(svg)
    assert root.get("viewBox").startswith("0 0 1000 ")
    assert root.find("svg:image", SVG).get("href") == "/plan.png?v=1"
    assert root.find("svg:image", SVG).get("width") == "1000"
    gate = root.find(".//svg:g[@data-access-point='ap_gate']", SVG)
    assert gate.get("class") == "plan-mark"
    circle = gate.find("svg:circle", SVG)
    assert (float(circle.get("cx")), float(circle.get("cy"))) == (500.0, 50.0)
    spot = root.find(".//svg:g[@data-device='dev_panic']", SVG)
    assert spot.get("class") == "plan-mark spot"
    diamond = spot.find("svg:polygon", SVG)
    assert diamond.get("fill") == "#cf222e"
    corners = [tuple(map(float, p.split(","))) for p in diamond.get("points").split()]
    assert (sum(x for x, _ in corners) / 4, sum(y for _, y in corners) / 4) == (200.0, 400.0)
    assert spot.find("svg:circle[@class='pulse']/svg:animate", SVG) is not None
    assert "Panic &lt;button&gt;" in svg  # names are escaped
    assert "Where the alert happened" in svg
    assert root.get("aria-label") == "Site plan of Community <A>; marked: Panic <button>"
    assert "not placed" not in svg


def test_an_unplaced_spot_is_said_not_claimed() -> None:
    picture = PlanPicture(
        title="A",
        href="data:image/png;base64,AAAA",
        width=300,
        height=300,
        marks=(PlanMark("ap_gate", "North gate", "gate", 0.5, 0.5),),
        unplaced=("East door",),
    )
    svg = plan_svg(picture)
    root = _parse(svg)
    assert root.find(".//svg:g[@class='plan-mark spot']", SVG) is None
    note = root.find(".//svg:text[@class='unplaced']", SVG)
    assert note.text == "East door is not placed on the site plan."
    assert "Where the alert happened" not in svg


# Staff on the site page -----------------------------------------------------------------------


def _site(client: FlaskClient, cid: str) -> str:
    page = client.get(f"/communities/{cid}/site")
    assert page.status_code == 200, page.text
    return page.text


def test_staff_upload_the_plan_and_place_a_door_with_the_form(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    login(client, "staff_a")
    html = _site(client, world.a)
    assert "No site plan yet." in html and 'class="site-plan"' not in html
    png = _png()
    answer = client.post(
        f"/communities/{world.a}/site-plan",
        data={"csrf_token": csrf(html), "image": (io.BytesIO(png), "plan.png")},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 303
    html = _site(client, world.a)
    digest = hashlib.sha256(png).hexdigest()
    plan = _parse(_svg_of(html, "site-plan"))
    assert plan.find("svg:image", SVG).get("href") == (
        f"/api/v1/communities/{world.a}/site-plan?v={digest[:16]}"
    )
    assert client.get(f"/api/v1/communities/{world.a}/site-plan").data == png  # the session
    assert "Site plan saved." in html
    # Nothing is placed yet: the door and the device are listed as such.
    unplaced = html[html.index('class="plan-unplaced"') :]
    assert "A door" in unplaced[: unplaced.index("</p>")]
    answer = client.post(
        f"/communities/{world.a}/site-plan/place",
        data={
            "csrf_token": csrf(html),
            "target": f"access_point:{world.door_a}",
            "plan_x": "0,25",
            "plan_y": "0.5",
        },
    )
    assert answer.status_code == 303
    html = _site(client, world.a)
    assert "A door placed on the site plan." in html
    mark = _parse(_svg_of(html, "site-plan")).find(
        f".//svg:g[@data-access-point='{world.door_a}']", SVG
    )
    circle = mark.find("svg:circle", SVG)
    assert (float(circle.get("cx")), float(circle.get("cy"))) == (100.0, 100.0)
    assert "x 0.25, y 0.50" in client.get(f"/access-points/{world.door_a}").text
    assert "not placed" in client.get(f"/devices/{world.device_a}").text
    with in_app(app):
        door = db.session.get(AccessPoint, world.door_a)
        assert (door.plan_x, door.plan_y) == (0.25, 0.5)
        entry = db.session.scalar(
            select(AuditEntry).where(AuditEntry.action == "access_point.update")
        )
        assert entry.details == {"plan_x": 0.25, "plan_y": 0.5}
    # Both empty clears it.
    client.post(
        f"/communities/{world.a}/site-plan/place",
        data={
            "csrf_token": csrf(html),
            "target": f"device:{world.device_a}",
            "plan_x": "0.9",
            "plan_y": "0.9",
        },
    )
    client.post(
        f"/communities/{world.a}/site-plan/place",
        data={
            "csrf_token": csrf(html),
            "target": f"device:{world.device_a}",
            "plan_x": "",
            "plan_y": "",
        },
    )
    with in_app(app):
        device = db.session.get(Device, world.device_a)
        assert (device.plan_x, device.plan_y) == (None, None)


@pytest.mark.parametrize(
    ("x", "y", "wrong"),
    [("1.5", "0.5", "plan_x"), ("0.5", "", "plan_y"), ("left", "0.2", "plan_x")],
)
def test_a_bad_position_keeps_what_was_typed_and_stores_nothing(
    app: Flask, client: FlaskClient, world: WorldIds, x: str, y: str, wrong: str
) -> None:
    login(client, "staff_a")
    html = _site(client, world.a)
    answer = client.post(
        f"/communities/{world.a}/site-plan/place",
        data={
            "csrf_token": csrf(html),
            "target": f"access_point:{world.door_a}",
            "plan_x": x,
            "plan_y": y,
        },
    )
    assert answer.status_code == 422
    assert "A position is two numbers from 0 to 1, or both left empty to clear it." in answer.text
    row = answer.text[answer.text.index(f'data-target="access_point:{world.door_a}"') :]
    assert f'name="{wrong}"' in row and f'value="{x}"' in row
    with in_app(app):
        door = db.session.get(AccessPoint, world.door_a)
        assert (door.plan_x, door.plan_y) == (None, None)


def test_a_bad_picture_on_the_page_is_refused_in_words(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    login(client, "staff_a")
    html = _site(client, world.a)
    client.post(
        f"/communities/{world.a}/site-plan",
        data={"csrf_token": csrf(html), "image": (io.BytesIO(b"GIF89a..."), "plan.gif")},
        content_type="multipart/form-data",
    )
    assert "A site plan must be a PNG or JPEG picture." in _site(client, world.a)
    with in_app(app):
        assert db.session.get(SitePlan, world.a) is None


def test_other_staff_and_officers_reach_none_of_the_site_plan_forms(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    login(client, "staff_b")
    token = csrf(client.get(f"/communities/{world.b}/site").text)
    place = {
        "csrf_token": token,
        "target": f"access_point:{world.door_a}",
        "plan_x": "0.1",
        "plan_y": "0.1",
    }
    assert client.post(f"/communities/{world.a}/site-plan/place", data=place).status_code == 404
    # A's door named under B's community: no such door there.
    assert client.post(f"/communities/{world.b}/site-plan/place", data=place).status_code == 404
    upload = {"csrf_token": token, "image": (io.BytesIO(_png()), "plan.png")}
    assert (
        client.post(
            f"/communities/{world.a}/site-plan", data=upload, content_type="multipart/form-data"
        ).status_code
        == 404
    )
    with in_app(app):
        assert db.session.get(AccessPoint, world.door_a).plan_x is None
        assert db.session.get(SitePlan, world.a) is None


# What officers see ----------------------------------------------------------------------------


def _plan_for(app: Flask, cid: str) -> None:
    with in_app(app):
        png = _png()
        db.session.add(
            SitePlan(
                community_id=cid,
                content_type="image/png",
                image=png,
                width=400,
                height=200,
                sha256=hashlib.sha256(png).hexdigest(),
            )
        )
        db.session.commit()


def _panic(app: Flask, world: WorldIds, *, placed: bool) -> tuple[str, str]:
    """A panic button in A (placed at 0.75, 0.25 or not), pressed: its alert and its id."""
    with in_app(app):
        button = Device(
            community_id=world.a,
            name="Panic button 1",
            kind=DeviceKind.PANIC_BUTTON,
            zone=Zone.BUILDING,
            plan_x=0.75 if placed else None,
            plan_y=0.25 if placed else None,
        )
        set_secret(button)
        db.session.add(button)
        door = db.session.get(AccessPoint, world.door_a)
        door.plan_x, door.plan_y = 0.1, 0.1
        db.session.flush()
        alert = alerts.raise_alert(
            community_id=world.a,
            type=AlertType.PANIC,
            severity=Severity.CRITICAL,
            summary="Panic button pressed",
            device_id=button.id,
        )
        db.session.commit()
        return alert.id, button.id


def test_the_alert_page_marks_the_panic_buttons_spot_on_the_plan(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    _plan_for(app, world.a)
    alert_id, button = _panic(app, world, placed=True)
    login(client, "officer_a")
    html = client.get(f"/alerts/{alert_id}").text
    assert "Marked in red: where this alert happened." in html
    root = _parse(_svg_of(html, "site-plan"))
    spot = root.find(f".//svg:g[@data-device='{button}']", SVG)
    assert spot.get("class") == "plan-mark spot"
    assert root.find(f".//svg:g[@data-access-point='{world.door_a}']", SVG).get("class") == (
        "plan-mark"
    )
    # The console and the home page (the city view) mark it too.
    for page in ("/officer", "/"):
        html = client.get(page).text
        root = _parse(_svg_of(html, "site-plan"))
        assert root.find(f".//svg:g[@data-device='{button}']", SVG).get("class") == (
            "plan-mark spot"
        ), page
        assert "1 open alert" in html


def test_an_unplaced_panic_button_is_said_not_placed(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    alert_id, _button = _panic(app, world, placed=False)
    login(client, "officer_a")
    html = client.get(f"/alerts/{alert_id}").text  # no plan: the schematic
    assert 'class="site-map"' in html and 'class="site-plan"' not in html
    assert "This point is not placed on the site plan." in html
    assert "Marked in red" not in html
    _plan_for(app, world.a)
    html = client.get(f"/alerts/{alert_id}").text  # a plan, the button not on it
    svg = _svg_of(html, "site-plan")
    assert "Panic button 1 is not placed on the site plan." in svg
    assert "plan-mark spot" not in svg
    assert "The community's site plan. This point is not placed on the site plan." in html


def test_home_page_shows_one_plan_per_covered_community(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    with in_app(app):
        officer = factories.user(
            UserRole.OFFICER,
            communities=[db.session.get(Community, world.a), db.session.get(Community, world.b)],
            username="city_officer",
        )
        assert officer.id
    _plan_for(app, world.a)
    _plan_for(app, world.b)
    with in_app(app):
        door = db.session.get(AccessPoint, world.door_b)
        door.plan_x, door.plan_y = 0.5, 0.5
        alerts.raise_alert(
            community_id=world.b,
            type=AlertType.DOOR_FORCED,
            severity=Severity.HIGH,
            summary="Door forced open",
            access_point_id=world.door_b,
        )
        db.session.commit()
    login(client, "city_officer")
    html = client.get("/").text
    section = html[html.index('id="site-plans"') :]
    assert section.count('<svg class="site-plan"') == 2
    # The community with an open alert comes first, its door marked; the other has none.
    assert section.index("Community B · 1 open alert") < section.index("Community A · No open")
    spot = _parse(_svg_of(section, "site-plan")).find(".//svg:g[@class='plan-mark spot']", SVG)
    assert spot.get("data-access-point") == world.door_b


def test_an_alert_with_no_place_of_its_own_keeps_the_schematic(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    _plan_for(app, world.a)
    with in_app(app):
        alert = alerts.raise_alert(
            community_id=world.a,
            type=AlertType.STRANGER,
            severity=Severity.MEDIUM,
            summary="Unknown person seen 3 times",
        )
        db.session.commit()
        alert_id = alert.id
    login(client, "officer_a")
    html = client.get(f"/alerts/{alert_id}").text
    assert 'class="site-map"' in html and 'class="site-plan"' not in html
    assert "This point is not placed on the site plan." in html
    assert "Marked in red" not in html
