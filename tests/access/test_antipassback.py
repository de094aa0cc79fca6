"""Anti-passback at a gate pair, through the card endpoint: one resident, two cards.

A resident who entered by one card cannot enter again by another until they left through the
pair's exit (hard: ``anti_passback``, no ``open``); a staff reset lets them in; soft mode
grants and records; the forgiveness time lets them in at its edge.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from prometheus_client import REGISTRY
from sqlalchemy import select

from gatekeeper.antipassback import PassbackMode
from gatekeeper.vocabulary import AccessPointKind, PersonRole, Zone
from server.extensions import db
from server.models import AccessEvent, AntiPassbackPair, AntiPassbackState, AuditEntry, Card
from tests import factories
from tests.factories import Api
from tests.support.passes import NOW, OWNER_PLATE, add_barrier, build_pass_site
from tests.support.published import commands

T0 = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)
CARD_1, CARD_2 = "04A1B2C3", "04D4E5F6"


@pytest.fixture
def site(app):
    """Community A's gate pair (an entry gate, an exit gate, each with a reader) and a resident
    holding two cards."""
    with app.app_context():
        w = factories.world()
        resident = factories.person(w.a, "王小明")
        factories.membership(resident, PersonRole.OWNER, unit_of=w.unit_a)
        factories.card(resident, CARD_1)
        factories.card(resident, CARD_2)
        ids = {"a": w.a.id, "resident": resident.id}
        for side in ("in", "out"):
            point = factories.access_point(
                w.a, name=f"Gate {side}", kind=AccessPointKind.GATE, zone=Zone.PERIMETER
            )
            device, secret = factories.device(point)
            ids[f"point_{side}"] = point.id
            ids[f"gate_{side}"] = f"{device.id}.{secret}"
        db.session.commit()
        db.session.remove()
    return ids


def _pair(app, site, mode: PassbackMode, forgive_minutes: int | None = None) -> str:
    with app.app_context():
        pair = AntiPassbackPair(
            community_id=site["a"],
            name="Main gate",
            entry_point_id=site["point_in"],
            exit_point_id=site["point_out"],
            mode=mode,
            forgive_minutes=forgive_minutes,
        )
        db.session.add(pair)
        db.session.commit()
        return pair.id


def _card(client, credential: str, uid: str) -> dict:
    answer = client.post(
        "/api/v1/verify/card", json={"uid": uid}, headers={"Authorization": f"Bearer {credential}"}
    )
    assert answer.status_code == 200, answer.json
    return answer.json


def _violations(mode: str) -> float:
    return REGISTRY.get_sample_value("gk_anti_passback_violations_total", {"mode": mode}) or 0.0


@time_machine.travel(T0, tick=False)
def test_hard_pair_denies_a_second_card_until_staff_reset(app, client, site, published) -> None:
    pair_id = _pair(app, site, PassbackMode.HARD)
    first = _card(client, site["gate_in"], CARD_1)
    assert (first["decision"], first["reason"]) == ("grant", "resident")
    assert len(commands(published)) == 1
    before = _violations("hard")

    second = _card(client, site["gate_in"], CARD_2)
    assert (second["decision"], second["reason"]) == ("deny", "anti_passback")
    assert "open_ms" not in second
    assert len(commands(published)) == 1  # no open for the denial
    assert _violations("hard") == before + 1
    with app.app_context():
        event = db.session.get(AccessEvent, second["event_id"])
        assert (event.reason, event.rule) == ("anti_passback", "anti_passback.reentry")
        assert event.details["anti_passback"]["pair_id"] == pair_id
        assert event.details["anti_passback"]["mode"] == "hard"
        state = db.session.scalar(select(AntiPassbackState))
        assert (state.inside, state.entered_at) == (True, T0)

    staff = Api(client, "staff_a")
    answer = staff.delete(f"/people/{site['resident']}/anti-passback")
    assert answer.status_code == 200, answer.json
    assert answer.json == {"reset": 1}
    with app.app_context():
        audit = db.session.scalar(
            select(AuditEntry).where(AuditEntry.action == "anti_passback.reset")
        )
        assert audit.target_id == site["resident"] and audit.details["pairs_reset"] == [pair_id]
    third = _card(client, site["gate_in"], CARD_2)
    assert (third["decision"], third["reason"]) == ("grant", "resident")
    assert len(commands(published)) == 2


def test_exit_through_the_pair_lets_one_in_again(app, client, site, published) -> None:
    _pair(app, site, PassbackMode.HARD)
    with time_machine.travel(T0, tick=False):
        assert _card(client, site["gate_in"], CARD_1)["decision"] == "grant"
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        assert _card(client, site["gate_out"], CARD_2)["decision"] == "grant"  # exits
        with app.app_context():
            state = db.session.scalar(select(AntiPassbackState))
            assert (state.inside, state.exited_at) == (False, T0 + timedelta(minutes=1))
    with time_machine.travel(T0 + timedelta(minutes=2), tick=False):
        assert _card(client, site["gate_in"], CARD_2)["decision"] == "grant"
        assert _card(client, site["gate_in"], CARD_1)["reason"] == "anti_passback"
    assert len(commands(published)) == 3


def test_soft_pair_grants_and_records_the_violation(app, client, site, published) -> None:
    _pair(app, site, PassbackMode.SOFT)
    before = _violations("soft")
    with time_machine.travel(T0, tick=False):
        first = _card(client, site["gate_in"], CARD_1)
    with time_machine.travel(T0 + timedelta(minutes=3), tick=False):
        second = _card(client, site["gate_in"], CARD_2)
    assert (second["decision"], second["reason"]) == ("grant", "resident")
    assert len(commands(published)) == 2
    assert _violations("soft") == before + 1
    with app.app_context():
        assert "anti_passback" not in db.session.get(AccessEvent, first["event_id"]).details
        flagged = db.session.get(AccessEvent, second["event_id"]).details["anti_passback"]
        assert flagged["violation"] is True and flagged["mode"] == "soft"
        assert flagged["entered_at"] == T0.isoformat()
        state = db.session.scalar(select(AntiPassbackState))
        assert (state.violations, state.last_violation_at) == (1, T0 + timedelta(minutes=3))
        assert state.entered_at == T0 + timedelta(minutes=3)


@pytest.mark.parametrize(
    ("after", "reason"),
    [(timedelta(minutes=10, seconds=-1), "anti_passback"), (timedelta(minutes=10), "resident")],
)
def test_forgiveness_time_lets_one_in_at_its_edge(app, client, site, published, after, reason):
    _pair(app, site, PassbackMode.HARD, forgive_minutes=10)
    with time_machine.travel(T0, tick=False):
        assert _card(client, site["gate_in"], CARD_1)["decision"] == "grant"
    with time_machine.travel(T0 + after, tick=False):
        assert _card(client, site["gate_in"], CARD_2)["reason"] == reason


@time_machine.travel(T0, tick=False)
def test_denied_presentations_and_doors_outside_pairs_change_nothing(
    app, client, site, published
) -> None:
    _pair(app, site, PassbackMode.HARD)
    with app.app_context():
        card = db.session.scalar(select(Card).where(Card.uid == CARD_1))
        card.disabled_at = T0 - timedelta(days=1)
        db.session.commit()
    assert _card(client, site["gate_in"], CARD_1)["reason"] == "card_disabled"
    with app.app_context():
        assert db.session.scalar(select(AntiPassbackState)) is None
    assert _card(client, site["gate_in"], CARD_2)["decision"] == "grant"


@pytest.mark.parametrize("had_left", [False, True], ids=["first-entry", "after-an-exit"])
@time_machine.travel(T0, tick=False)
def test_two_cards_at_once_let_one_in(app, client, site, published, had_left) -> None:
    """Two simultaneous entries by the resident's two cards at a hard pair: the state row is
    made once (first entry) and locked (a stored row), so exactly one is granted."""
    pair_id = _pair(app, site, PassbackMode.HARD)
    if had_left:
        with app.app_context():
            db.session.add(
                AntiPassbackState(
                    community_id=site["a"],
                    pair_id=pair_id,
                    person_id=site["resident"],
                    inside=False,
                    entered_at=T0 - timedelta(hours=2),
                    exited_at=T0 - timedelta(hours=1),
                )
            )
            db.session.commit()
    barrier = threading.Barrier(2)
    answers: dict[str, dict] = {}

    def enter(uid: str) -> None:
        own = app.test_client()
        barrier.wait(timeout=30)
        answers[uid] = _card(own, site["gate_in"], uid)

    threads = [threading.Thread(target=enter, args=(uid,)) for uid in (CARD_1, CARD_2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    reasons = sorted(answer["reason"] for answer in answers.values())
    assert reasons == ["anti_passback", "resident"]
    assert len(commands(published)) == 1
    with app.app_context():
        assert len(db.session.scalars(select(AntiPassbackState)).all()) == 1


@time_machine.travel(NOW, tick=False)
def test_one_barrier_used_both_ways_counts_by_direction(app, client, published) -> None:
    """A car barrier is its pair's entry and exit: ``in`` enters, ``out`` leaves, a read
    without a direction is not counted."""
    with app.app_context():
        base = build_pass_site()
        barrier = add_barrier(base, "barrier-secret-for-anti-passback")
        db.session.add(
            AntiPassbackPair(
                community_id=base.a,
                name="South barrier",
                entry_point_id=barrier.point,
                exit_point_id=barrier.point,
                mode=PassbackMode.HARD,
            )
        )
        db.session.commit()
        credential = barrier.credential

    def plate(**fields) -> str:
        answer = client.post(
            "/api/v1/verify/plate",
            json={"plate": OWNER_PLATE, **fields},
            headers={"Authorization": f"Bearer {credential}"},
        )
        assert answer.status_code == 200, answer.json
        return answer.json["reason"]

    assert plate(direction="in") == "resident_vehicle"
    assert plate(direction="in") == "anti_passback"
    assert plate() == "resident_vehicle"  # no direction: neither entry nor exit
    assert plate(direction="out") == "resident_vehicle"
    assert plate(direction="in") == "resident_vehicle"
    assert len(commands(published)) == 4
