"""The anti-passback page: staff add a gate pair, see who is inside, reset a person, delete the
pair; bad forms are answered on the page with nothing stored; others find no page."""

from __future__ import annotations

from sqlalchemy import select

from gatekeeper.vocabulary import AccessPointKind, PersonRole, Zone
from server.extensions import db
from server.models import AntiPassbackPair, AntiPassbackState, AuditEntry, Community, utcnow
from tests import factories
from tests.support.api import in_app
from tests.support.pages import csrf, login, logout

ZH = {"Accept-Language": "zh-CN"}


def _post(client, path: str, data: dict, page: str):
    token = csrf(client.get(page).text)
    return client.post(path, data={"csrf_token": token, **data})


def _gates(app, world) -> dict[str, str]:
    with in_app(app):
        community = db.session.get(Community, world.a)
        points = {
            side: factories.access_point(
                community, name=f"Gate {side}", kind=AccessPointKind.GATE, zone=Zone.PERIMETER
            ).id
            for side in ("in", "out")
        }
        person = factories.person(community, "赵六")
        factories.membership(person, PersonRole.OWNER, unit_of=world.unit_a)
        db.session.commit()
        return points | {"person": person.id}


def test_staff_add_a_pair_reset_a_person_and_delete_it(app, client, world) -> None:
    gates = _gates(app, world)
    login(client, "staff_a")
    page = f"/communities/{world.a}/anti-passback"
    assert f'href="{page}"' in client.get(f"/communities/{world.a}/site").text
    shown = client.get(page)
    assert shown.status_code == 200
    assert "No gate pairs yet: anti-passback is off." in shown.text
    assert "Gate in" in shown.text and "Gate out" in shown.text
    assert '<html lang="zh-CN">' in client.get(page, headers=ZH).text

    wrong = _post(
        client,
        page,
        {
            "name": "",
            "entry_point_id": "",
            "exit_point_id": gates["out"],
            "mode": "hard",
            "forgive_minutes": "0",
        },
        page,
    )
    assert wrong.status_code == 422
    for message in (
        "Enter a name (at most 80 characters).",
        "Choose the access point where people enter.",
        "Forgive after 1 to 10080 minutes, or leave it empty for never.",
    ):
        assert message in wrong.text, message
    with in_app(app):
        assert db.session.scalar(select(AntiPassbackPair)) is None

    made = _post(
        client,
        page,
        {
            "name": "Main gate",
            "entry_point_id": gates["in"],
            "exit_point_id": gates["out"],
            "mode": "soft",
            "forgive_minutes": "90",
        },
        page,
    )
    assert made.status_code == 303, made.text
    with in_app(app):
        pair = db.session.scalars(select(AntiPassbackPair)).one()
        assert (pair.mode.value, pair.forgive_minutes) == ("soft", 90)
        assert (pair.entry_point_id, pair.exit_point_id) == (gates["in"], gates["out"])
        db.session.add(
            AntiPassbackState(
                community_id=world.a,
                pair_id=pair.id,
                person_id=gates["person"],
                inside=True,
                entered_at=utcnow(),
                violations=1,
            )
        )
        db.session.commit()
        pair_id = pair.id
    listing = client.get(page).text
    assert "Gate pair Main gate added." in listing
    assert "Inside through Main gate" in listing and "赵六" in listing
    assert "90 minutes" in listing

    reset = f"/anti-passback-pairs/{pair_id}/reset/{gates['person']}"
    assert f'action="{reset}"' in listing
    person_page = f"/people/{gates['person']}"
    assert f'action="{reset}"' in client.get(person_page).text  # the person's page has it too
    done = _post(client, reset, {"back": "person"}, person_page)
    assert done.status_code == 303
    assert done.headers["Location"].endswith(f"{person_page}#anti-passback")
    back = client.get(person_page).text
    assert "赵六 may enter through Main gate again." in back
    assert 'id="anti-passback"' not in back  # nothing left to reset
    with in_app(app):
        state = db.session.scalars(select(AntiPassbackState)).one()
        assert (state.inside, state.violations) == (False, 0)
        assert (
            db.session.scalar(
                select(AuditEntry.actor).where(AuditEntry.action == "anti_passback.reset")
            )
            == "staff_a"
        )
    assert "Nobody is inside through this pair." in client.get(page).text

    assert _post(client, f"/anti-passback-pairs/{pair_id}/delete", {}, page).status_code == 303
    with in_app(app):
        assert db.session.scalar(select(AntiPassbackPair)) is None


def test_one_point_both_ways_is_offered_and_others_find_no_page(app, client, world) -> None:
    gates = _gates(app, world)
    login(client, "staff_a")
    page = f"/communities/{world.a}/anti-passback"
    one = _post(
        client,
        page,
        {
            "name": "Side gate",
            "entry_point_id": gates["in"],
            "exit_point_id": gates["in"],
            "mode": "hard",
            "forgive_minutes": "",
        },
        page,
    )
    assert one.status_code == 303, one.text
    listing = client.get(page).text
    assert "the same point, by direction" in listing and "never (only a reset)" in listing
    with in_app(app):
        pair_id = db.session.scalars(select(AntiPassbackPair.id)).one()
    logout(client)
    for username in ("staff_b", "officer_a", "resident_a"):
        login(client, username)
        assert client.get(page).status_code == 404, username
        token = csrf(client.get("/").text)
        delete = client.post(f"/anti-passback-pairs/{pair_id}/delete", data={"csrf_token": token})
        assert delete.status_code == 404, username
        logout(client)
    with in_app(app):
        assert db.session.scalar(select(AntiPassbackPair.id)) == pair_id
