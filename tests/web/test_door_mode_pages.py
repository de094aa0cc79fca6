"""The door-modes page (start, lift) and the banner every console shows while a mode holds."""

from __future__ import annotations

import time_machine
from sqlalchemy import select

from server.extensions import db
from server.models import AuditEntry, DoorMode
from tests.support.pages import csrf, login, logout
from tests.support.passes import NOW, pass_site
from tests.support.published import commands


def banner(html: str) -> str:
    """The banner's section of a page ('' when there is none)."""
    start = html.find('id="door-modes-banner"')
    if start < 0:
        return ""
    return html[start : html.index("</section>", start)]


@time_machine.travel(NOW, tick=False)
def test_staff_start_a_lockdown_on_the_page_and_every_console_shows_it(
    app, client, published
) -> None:
    site = pass_site(app)
    login(client, "staff_a")
    page = client.get(f"/communities/{site.a}/door-modes")
    assert page.status_code == 200
    assert banner(page.text) == ""
    # Every door of the community is a checkbox: several are chosen for one mode.
    for point in (site.door, site.other_door, site.gate):
        assert f'name="access_point_ids" value="{point}"' in page.text
    answer = client.post(
        f"/communities/{site.a}/door-modes",
        data={
            "csrf_token": csrf(page.text),
            "kind": "lockdown",
            "scope": "access_point",
            "access_point_ids": [site.door, site.other_door],
            "building_id": "ignored for an access point",
            "reason": "Intruder in the lobby",
            "exempt_roles": ["worker", "staff"],
        },
    )
    assert answer.status_code == 303, answer.text
    with app.app_context():
        row = db.session.scalar(select(DoorMode))
        assert (row.kind.value, sorted(row.access_point_ids), row.exempt_roles) == (
            "lockdown",
            sorted([site.door, site.other_door]),
            ["worker", "staff"],
        )
        assert db.session.scalar(
            select(AuditEntry.actor).where(AuditEntry.action == "door_mode.lockdown.start")
        ) == ("staff_a")
    other_device = site.other_credential.split(".")[0]
    assert sorted(m.topic.split("/")[-2] for m in commands(published)) == sorted(
        [site.door_device, other_device]
    )
    listed = client.get(f"/communities/{site.a}/door-modes").text
    held = listed[listed.index('id="active-door-modes"') : listed.index('id="past-door-modes"')]
    assert "A door、A2 door" in held and "North gate" not in held

    for path in ("/", f"/communities/{site.a}/devices", f"/communities/{site.a}/cars"):
        shown = banner(client.get(path).text)
        assert "<strong>lockdown</strong>" in shown and "Intruder in the lobby" in shown, path
        assert "A door、A2 door" in shown and "2026-11-21 16:30 CST" in shown, path
        assert "still passing: worker" in shown, path
    logout(client)
    login(client, "officer_a")
    assert "Intruder in the lobby" in banner(client.get("/officer").text)
    logout(client)
    for other in ("staff_b", "resident_a"):
        login(client, other)
        assert banner(client.get("/").text) == "", other
        logout(client)

    # Lifted on the page: the banner goes, the row stays among the lifted ones.
    login(client, "staff_a")
    page = client.get(f"/communities/{site.a}/door-modes")
    published.clear()
    lifted = client.post(f"/door-modes/{row.id}/lift", data={"csrf_token": csrf(page.text)})
    assert lifted.status_code == 303
    assert commands(published) == []  # lifting a lockdown sends nothing
    after = client.get(f"/communities/{site.a}/door-modes").text
    assert banner(after) == ""
    assert 'id="past-door-modes"' in after and "Intruder in the lobby" in after


@time_machine.travel(NOW, tick=False)
def test_a_refused_start_shows_the_form_again_and_stores_nothing(app, client, published) -> None:
    site = pass_site(app)
    login(client, "staff_a")
    page = client.get(f"/communities/{site.a}/door-modes")
    answer = client.post(
        f"/communities/{site.a}/door-modes",
        data={
            "csrf_token": csrf(page.text),
            "kind": "emergency_release",
            "scope": "building",
            "building_id": "bld_01JZZZZZZZZZZZZZZZZZZZZZZZ",
            "reason": "Fire",
        },
    )
    assert answer.status_code == 422
    assert "Nothing was started" in answer.text
    assert "No building with this id in the community." in answer.text
    with app.app_context():
        assert db.session.scalars(select(DoorMode)).all() == []
    assert published == []


@time_machine.travel(NOW, tick=False)
def test_a_start_over_no_chosen_door_or_a_door_of_another_community_is_refused(
    app, client, published
) -> None:
    site = pass_site(app)
    login(client, "staff_a")
    page = client.get(f"/communities/{site.a}/door-modes")
    base = {
        "csrf_token": csrf(page.text),
        "kind": "emergency_release",
        "scope": "access_point",
        "reason": "Fire",
    }
    none_chosen = client.post(f"/communities/{site.a}/door-modes", data=base)
    assert none_chosen.status_code == 422
    assert "Choose 1 to 100 access points." in none_chosen.text
    foreign = client.post(
        f"/communities/{site.a}/door-modes",
        data={**base, "access_point_ids": [site.door, site.door_b]},
    )
    assert foreign.status_code == 422
    assert f"Not an access point of this community: {site.door_b}" in foreign.text
    # The choice is kept on the form shown again.
    assert f'name="access_point_ids" value="{site.door}" checked' in foreign.text
    with app.app_context():
        assert db.session.scalars(select(DoorMode)).all() == []
    assert published == []


def test_residents_find_no_such_page(app, client) -> None:
    site = pass_site(app)
    login(client, "resident_a")
    assert client.get(f"/communities/{site.a}/door-modes").status_code == 404
