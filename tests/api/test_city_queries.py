"""The lists that must not grow with a city: alerts and access events.

The alert list puts unresolved alerts first, each half newest first, and pages by keyset
(``?after=``) without duplicates or gaps while new alerts arrive; an officer covering many
communities gets the same statements as one covering one; the events list reads its access
points in one statement, whatever the page size. Statements are counted with SQLAlchemy's
``before_cursor_execute`` event on the app's engine. ``bench/city.py`` measures the speed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import event

from gatekeeper.vocabulary import AlertStatus, AlertType, CredentialType, Decision, Severity
from server.extensions import db
from server.models import AccessEvent, Alert, Community, UserRole
from tests import factories
from tests.factories import Api
from tests.support.api import WorldIds, assert_problem, in_app

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def _alert(community_id: str, minutes: int, status: AlertStatus = AlertStatus.OPEN) -> Alert:
    return Alert(
        community_id=community_id,
        type=AlertType.DOOR_FORCED,
        severity=Severity.HIGH,
        status=status,
        summary="Door forced open",
        created_at=T0 + timedelta(minutes=minutes),
        updated_at=T0 + timedelta(minutes=minutes),
    )


def _add_alerts(app: Flask, rows: list[tuple[str, int, AlertStatus]]) -> list[str]:
    with in_app(app):
        alerts = [_alert(cid, minutes, status) for cid, minutes, status in rows]
        db.session.add_all(alerts)
        db.session.commit()
        return [a.id for a in alerts]


def _pages(api: Api, path: str, page_size: int) -> Iterator[list[str]]:
    """Each page's ids, following ``next_after`` to the end."""
    path += ("&" if "?" in path else "?") + f"page_size={page_size}"
    answer = api.get(path)
    while True:
        assert answer.status_code == 200, answer.json
        yield [row["id"] for row in answer.json]
        meta = json.loads(answer.headers["X-Pagination"])
        if "next_after" not in meta:
            return
        answer = api.get(f"{path}&after={meta['next_after']}")


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """The SQL statements the app's engine runs meanwhile."""
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_unresolved_alerts_come_first_then_resolved_each_newest_first(
    app: Flask, world: WorldIds
) -> None:
    old_open, resolved_new, acked, resolved_old, new_open = _add_alerts(
        app,
        [
            (world.a, 0, AlertStatus.OPEN),
            (world.a, 50, AlertStatus.RESOLVED),
            (world.a, 20, AlertStatus.ACKNOWLEDGED),
            (world.a, 5, AlertStatus.RESOLVED),
            (world.a, 30, AlertStatus.OPEN),
        ],
    )
    officer = Api(app.test_client(), "officer_a")
    expected = [new_open, acked, old_open, resolved_new, resolved_old]
    assert [a["id"] for a in officer.get("/alerts").json] == expected
    # Keyset pages and page numbers agree, and so does every page size.
    for size in (1, 2, 3, 5):
        assert [i for page in _pages(officer, "/alerts", size) for i in page] == expected
        numbered = [
            a["id"]
            for n in range(1, 6)
            for a in officer.get(f"/alerts?page={n}&page_size={size}").json
        ]
        assert numbered == expected
    meta = json.loads(officer.get("/alerts?page_size=2").headers["X-Pagination"])
    assert meta["total"] == 5 and meta["next_page"] == 2 and "next_after" in meta
    resolved = officer.get("/alerts?status=resolved&page_size=1")
    assert [a["id"] for a in resolved.json] == [resolved_new]
    after = json.loads(resolved.headers["X-Pagination"])["next_after"]
    tail = officer.get(f"/alerts?status=resolved&page_size=1&after={after}")
    assert [a["id"] for a in tail.json] == [resolved_old]
    assert json.loads(tail.headers["X-Pagination"]) == {"page_size": 1}


def test_keyset_pages_have_no_duplicates_nor_gaps_while_alerts_arrive(
    app: Flask, world: WorldIds
) -> None:
    first = _add_alerts(
        app,
        [(world.a, n, AlertStatus.OPEN if n % 3 else AlertStatus.RESOLVED) for n in range(12)],
    )
    officer = Api(app.test_client(), "officer_a")
    seen: list[str] = []
    arrived: list[str] = []
    for n, page in enumerate(_pages(officer, "/alerts", 4)):
        seen.extend(page)
        # New alerts (the newest, at the head of the list) arrive between pages.
        arrived += _add_alerts(app, [(world.a, 100 + n, AlertStatus.OPEN)])
    assert len(seen) == len(set(seen)) == len(first)
    assert set(seen) == set(first)
    assert not set(arrived) & set(seen)
    head = officer.get("/alerts?page_size=3").json
    assert [a["id"] for a in head] == arrived[::-1][:3]


def test_a_cursor_the_list_did_not_give_is_refused(app: Flask, world: WorldIds) -> None:
    officer = Api(app.test_client(), "officer_a")
    for cursor in ("nonsense", "W10", "WyJ4Il0", "x" * 300):
        assert_problem(officer.get(f"/alerts?after={cursor}"), 422)
        assert_problem(officer.get(f"/events?after={cursor}"), 422)


def test_an_officer_covering_many_communities_costs_what_one_covering_one_does(
    app: Flask, world: WorldIds
) -> None:
    with in_app(app):
        many = [factories.community(f"Covered {n}") for n in range(40)]
        factories.user(UserRole.OFFICER, communities=many, username="officer_many")
        ids = [c.id for c in many]
        one = db.session.get(Community, world.a)
        factories.user(UserRole.OFFICER, communities=[one], username="officer_one")
    _add_alerts(app, [(cid, n, AlertStatus.OPEN) for n, cid in enumerate(ids)])
    _add_alerts(app, [(world.a, n, AlertStatus.OPEN) for n in range(40)])
    officer_many = Api(app.test_client(), "officer_many")
    officer_one = Api(app.test_client(), "officer_one")
    counts = {}
    for name, api in (("many", officer_many), ("one", officer_one)):
        with statements(app) as seen:
            answer = api.get("/alerts?page_size=25")
        assert answer.status_code == 200 and len(answer.json) == 25
        counts[name] = len(seen)
    assert counts["many"] == counts["one"]
    listed = [i for page in _pages(officer_many, "/alerts", 25) for i in page]
    assert len(listed) == 40
    assert {a["community_id"] for a in officer_many.get("/alerts?page_size=100").json} == set(ids)
    # The covered communities are still the officer's, and only theirs.
    assert officer_many.get(f"/alerts?community_id={world.a}").json == []


def test_events_page_statements_do_not_grow_with_the_page_size(app: Flask, world: WorldIds) -> None:
    with in_app(app):
        points = [
            factories.access_point(db.session.get(Community, world.a), name=f"Gate {n}")
            for n in range(12)
        ]
        db.session.add_all(
            AccessEvent(
                community_id=world.a,
                access_point_id=points[n % len(points)].id,
                credential_type=CredentialType.CARD,
                decision=Decision.GRANT,
                reason="ok",
                occurred_at=T0 + timedelta(seconds=n),
            )
            for n in range(120)
        )
        db.session.commit()
        names = {p.id: p.name for p in points}
    staff = Api(app.test_client(), "staff_a")
    counts = {}
    for size in (10, 100):
        with statements(app) as seen:
            answer = staff.get(f"/events?community_id={world.a}&page_size={size}")
        assert answer.status_code == 200 and len(answer.json) == size
        assert all(e["access_point"]["name"] == names[e["access_point"]["id"]] for e in answer.json)
        counts[size] = len(seen)
    assert counts[10] == counts[100]
    # Keyset pages of events: every event once, newest first.
    listed = [i for page in _pages(staff, f"/events?community_id={world.a}", 50) for i in page]
    assert len(listed) == len(set(listed)) == 120
    with in_app(app):
        occurred = dict(db.session.query(AccessEvent.id, AccessEvent.occurred_at))
    assert [occurred[i] for i in listed] == sorted(occurred.values(), reverse=True)


def test_alerts_with_evidence_cost_the_same_statements_for_any_page_size(
    app: Flask, world: WorldIds
) -> None:
    """Evidence links pictures only for events that still keep one: read for the whole page
    at once, not once per alert."""
    with in_app(app):
        events = [
            AccessEvent(
                community_id=world.a,
                credential_type=CredentialType.FACE,
                decision=Decision.DENY,
                reason="unknown_face",
                occurred_at=T0 + timedelta(seconds=n),
                snapshot_path=f"crops/{n}.jpg" if n % 2 == 0 else None,
            )
            for n in range(30)
        ]
        db.session.add_all(events)
        db.session.flush()
        alerts = [_alert(world.a, n) for n in range(30)]
        for alert, event_row in zip(alerts, events, strict=True):
            alert.evidence = {"event_ids": [event_row.id]}
        db.session.add_all(alerts)
        db.session.commit()
        pictured = {e.id for e in events if e.snapshot_path}
    officer = Api(app.test_client(), "officer_a")
    counts = {}
    for size in (5, 30):
        with statements(app) as seen:
            answer = officer.get(f"/alerts?community_id={world.a}&page_size={size}")
        assert answer.status_code == 200 and len(answer.json) == size
        counts[size] = len(seen)
        for row in answer.json:
            (event_id,) = row["evidence"]["event_ids"]
            assert bool(row["evidence"]["snapshots"]) == (event_id in pictured), row
            assert all(event_id in link for link in row["evidence"]["snapshots"])
    assert counts[5] == counts[30]
