"""The anti-passback API: pairs made, changed and removed by staff (audited), bad input as
problems with nothing stored, scope (only the community's staff), states and resets."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gatekeeper.vocabulary import AccessPointKind, PersonRole, Zone
from server.extensions import db
from server.models import AntiPassbackPair, AntiPassbackState, AuditEntry, utcnow
from tests import factories
from tests.factories import Api
from tests.support.api import WorldIds, assert_problem, in_app, snapshot


@pytest.fixture
def gates(app: Flask, world: WorldIds) -> dict[str, str]:
    """Two gates of community A and a resident of A."""
    with in_app(app):
        community = db.session.get(factories.Community, world.a)
        entry = factories.access_point(
            community, name="Gate in", kind=AccessPointKind.GATE, zone=Zone.PERIMETER
        )
        exit_ = factories.access_point(
            community, name="Gate out", kind=AccessPointKind.GATE, zone=Zone.PERIMETER
        )
        person = factories.person(community, "李四")
        factories.membership(person, PersonRole.OWNER, unit_of=world.unit_a)
        db.session.commit()
        return {"in": entry.id, "out": exit_.id, "person": person.id}


def _body(gates: dict[str, str], **more) -> dict:
    return {
        "name": "Main gate",
        "entry_point_id": gates["in"],
        "exit_point_id": gates["out"],
    } | more


def _actions(app: Flask) -> list[str]:
    with in_app(app):
        return list(
            db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.at, AuditEntry.id))
        )


def test_staff_make_change_and_remove_a_pair_audited(
    app: Flask, client: FlaskClient, world: WorldIds, gates: dict[str, str]
) -> None:
    staff = Api(client, "staff_a")
    made = staff.post(f"/communities/{world.a}/anti-passback-pairs", _body(gates))
    assert made.status_code == 201, made.json
    pair = made.json
    assert pair["id"].startswith("apb_") and pair["community_id"] == world.a
    assert (pair["mode"], pair["forgive_minutes"]) == ("hard", None)
    assert "directional" not in pair
    listed = staff.get(f"/communities/{world.a}/anti-passback-pairs")
    assert [p["id"] for p in listed.json] == [pair["id"]]
    changed = staff.patch(
        f"/anti-passback-pairs/{pair['id']}", {"mode": "soft", "forgive_minutes": 120}
    )
    assert changed.status_code == 200, changed.json
    assert (changed.json["mode"], changed.json["forgive_minutes"]) == ("soft", 120)
    assert staff.get(f"/anti-passback-pairs/{pair['id']}").json["mode"] == "soft"
    assert staff.get(f"/anti-passback-pairs/{pair['id']}/inside").json == []
    assert staff.delete(f"/anti-passback-pairs/{pair['id']}").status_code == 204
    assert staff.get(f"/anti-passback-pairs/{pair['id']}").status_code == 404
    assert _actions(app)[-3:] == [
        "anti_passback_pair.create",
        "anti_passback_pair.update",
        "anti_passback_pair.delete",
    ]


def test_one_point_used_both_ways_needs_directional(
    app: Flask, client: FlaskClient, world: WorldIds, gates: dict[str, str]
) -> None:
    staff = Api(client, "staff_a")
    path = f"/communities/{world.a}/anti-passback-pairs"
    before = snapshot(app)
    twice = staff.post(path, _body(gates, exit_point_id=gates["in"]))
    assert "exit_point_id" in assert_problem(twice, 422)["errors"]
    stray = staff.post(path, _body(gates, directional=True))
    assert "directional" in assert_problem(stray, 422)["errors"]
    assert snapshot(app) == before
    one = staff.post(path, _body(gates, exit_point_id=gates["in"], directional=True))
    assert one.status_code == 201, one.json
    # Moving the exit away makes it a pair of two points.
    moved = staff.patch(f"/anti-passback-pairs/{one.json['id']}", {"exit_point_id": gates["out"]})
    assert moved.status_code == 200, moved.json


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"entry_point_id": "{door_b}"}, "entry_point_id"),  # community B's door
        ({"exit_point_id": "ap_01JZZZZZZZZZZZZZZZZZZZZZZZ"}, "exit_point_id"),
        ({"mode": "strict"}, "mode"),
        ({"forgive_minutes": 0}, "forgive_minutes"),
        ({"forgive_minutes": 7 * 24 * 60 + 1}, "forgive_minutes"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_pairs_are_problems_and_store_nothing(
    app: Flask, client: FlaskClient, world: WorldIds, gates: dict[str, str], change, field
) -> None:
    staff = Api(client, "staff_a")
    before = snapshot(app)
    answer = staff.post(
        f"/communities/{world.a}/anti-passback-pairs", _body(gates, **world.fill(change))
    )
    body = assert_problem(answer, 422)
    assert field in str(body.get("errors")), body
    assert snapshot(app) == before


def test_only_the_communitys_staff_reach_pairs_and_states(
    app: Flask, client: FlaskClient, world: WorldIds, gates: dict[str, str]
) -> None:
    pair = (
        Api(client, "staff_a")
        .post(f"/communities/{world.a}/anti-passback-pairs", _body(gates))
        .json
    )
    callers = {name: Api(client, name) for name in ("staff_b", "officer_a", "resident_a")}
    before = snapshot(app)
    for caller in callers.values():
        assert_problem(caller.get(f"/anti-passback-pairs/{pair['id']}"), 404)
        assert_problem(caller.patch(f"/anti-passback-pairs/{pair['id']}", {"mode": "soft"}), 404)
        assert_problem(caller.delete(f"/anti-passback-pairs/{pair['id']}"), 404)
        assert_problem(caller.get(f"/anti-passback-pairs/{pair['id']}/inside"), 404)
        assert_problem(caller.get(f"/people/{gates['person']}/anti-passback"), 404)
        assert_problem(caller.delete(f"/people/{gates['person']}/anti-passback"), 404)
    assert_problem(callers["staff_b"].get(f"/communities/{world.a}/anti-passback-pairs"), 404)
    for username in ("officer_a", "resident_a"):  # they see the community, not its pairs
        listed = callers[username].get(f"/communities/{world.a}/anti-passback-pairs")
        assert_problem(listed, 403)
        made = callers[username].post(f"/communities/{world.a}/anti-passback-pairs", _body(gates))
        assert_problem(made, 403)
    # Staff of B cannot make a pair in A, nor of A's gates in B.
    assert_problem(
        callers["staff_b"].post(f"/communities/{world.a}/anti-passback-pairs", _body(gates)),
        404,
    )
    assert_problem(
        callers["staff_b"].post(f"/communities/{world.b}/anti-passback-pairs", _body(gates)),
        422,
    )
    assert snapshot(app) == before


def test_a_persons_state_and_reset_of_one_pair(
    app: Flask, client: FlaskClient, world: WorldIds, gates: dict[str, str]
) -> None:
    staff = Api(client, "staff_a")
    path = f"/communities/{world.a}/anti-passback-pairs"
    main = staff.post(path, _body(gates)).json
    side = staff.post(
        path, _body(gates, name="Side gate", exit_point_id=gates["in"], directional=True)
    ).json
    now = utcnow()
    with in_app(app):
        for pair in (main, side):
            db.session.add(
                AntiPassbackState(
                    community_id=world.a,
                    pair_id=pair["id"],
                    person_id=gates["person"],
                    inside=True,
                    entered_at=now,
                    violations=2,
                )
            )
        db.session.commit()
    states = staff.get(f"/people/{gates['person']}/anti-passback").json
    assert {s["pair_id"] for s in states if s["inside"]} == {main["id"], side["id"]}
    inside = staff.get(f"/anti-passback-pairs/{main['id']}/inside").json
    assert [s["person_id"] for s in inside] == [gates["person"]]

    other = staff.delete(
        f"/people/{gates['person']}/anti-passback", query_string={"pair_id": world.door_a}
    )
    assert_problem(other, 404)  # not a pair
    answer = staff.delete(
        f"/people/{gates['person']}/anti-passback", query_string={"pair_id": main["id"]}
    )
    assert answer.json == {"reset": 1}
    with in_app(app):
        rows = {
            s.pair_id: (s.inside, s.violations)
            for s in db.session.scalars(select(AntiPassbackState))
        }
        assert rows == {main["id"]: (False, 0), side["id"]: (True, 2)}
        assert (
            db.session.scalar(
                select(AntiPassbackPair.name).where(AntiPassbackPair.id == side["id"])
            )
            == "Side gate"
        )
    assert staff.get(f"/anti-passback-pairs/{main['id']}/inside").json == []
    assert _actions(app)[-1] == "anti_passback.reset"
