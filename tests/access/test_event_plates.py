"""Events found by plate: the column a car gate's event keeps, its migration, the API filter.

A plate event keeps the plate it read, normalised, as ``AccessEvent.plate`` (from
``details["plate"]``, however the event was made); ``GET /events?plate=`` and the CSV export
find them by any spelling of the plate, within the caller's scope. Events stored before
migration 0018 get their plate from ``details``. The search page's field is in
``tests/web/test_officer_pages.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import select, text

from gatekeeper.vocabulary import CredentialType, Decision
from server import create_app
from server.extensions import db
from server.models import AccessEvent
from tests import factories
from tests.conftest import app_environment
from tests.factories import Api
from tests.support.api import WorldIds, assert_problem, in_app

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _plate_event(community_id: str, plate: str | None, minutes: int) -> AccessEvent:
    return AccessEvent(
        community_id=community_id,
        credential_type=CredentialType.PLATE,
        decision=Decision.GRANT,
        reason="resident_vehicle",
        occurred_at=T0 + timedelta(minutes=minutes),
        details={"plate": plate, "confidence": 0.97} if plate else {"confidence": 0.5},
    )


def test_a_plate_event_keeps_its_plate_as_a_column(app: Flask, world: WorldIds) -> None:
    with in_app(app):
        read = _plate_event(world.a, "浙A12345", 0)
        unread = _plate_event(world.a, None, 1)
        db.session.add_all([read, unread])
        db.session.commit()
        assert (read.plate, unread.plate) == ("浙A12345", None)
        read.details = {**read.details, "plate": "浙A54321"}
        db.session.commit()
        stored = db.session.scalar(select(AccessEvent.plate).where(AccessEvent.id == read.id))
        assert stored == "浙A54321"


def test_events_are_found_by_any_spelling_of_their_plate(app: Flask, world: WorldIds) -> None:
    with in_app(app):
        ours = [_plate_event(world.a, "浙A12345", n) for n in range(3)]
        other_car = _plate_event(world.a, "浙B99999", 5)
        elsewhere = _plate_event(world.b, "浙A12345", 6)  # the same car in community B
        db.session.add_all([*ours, other_car, elsewhere])
        db.session.commit()
        expected = [e.id for e in reversed(ours)]  # newest first
        elsewhere_id = elsewhere.id
    staff = Api(app.test_client(), "staff_a")
    for spelling in ("浙A12345", "浙a 12345", "浙Ａ·１２３４５"):
        answer = staff.get("/events", query_string={"plate": spelling})
        assert answer.status_code == 200, answer.json
        assert [e["id"] for e in answer.json] == expected, spelling
    rows = staff.get("/events.csv", query_string={"plate": "浙a·12345"}).data.decode("utf-8-sig")
    assert [line.split(",")[0] for line in rows.splitlines()[1:]] == expected
    assert elsewhere_id not in rows
    # Staff of B find theirs only.
    theirs = Api(app.test_client(), "staff_b").get("/events?plate=浙A12345").json
    assert [e["id"] for e in theirs] == [elsewhere_id]


def test_a_plate_that_is_no_plate_is_refused(app: Flask, world: WorldIds) -> None:
    staff = Api(app.test_client(), "staff_a")
    for bad in ("·· ", "浙A123456789012345", "x" * 65):
        answer = staff.get("/events", query_string={"plate": bad})
        assert_problem(answer, 422)
        assert "plate" in json.dumps(answer.json, ensure_ascii=False), bad


def test_the_migration_gives_stored_plate_events_their_plate(workdir: Path, new_database) -> None:
    app = create_app(app_environment(workdir, new_database("event_plates")))
    with app.app_context():
        upgrade(revision="0017")
        community = factories.community().id
        for ident, details in (
            ("evt_plate", {"plate": "浙A12345", "confidence": 0.9}),
            ("evt_none", {"confidence": 0.4}),
        ):
            db.session.execute(
                text(
                    "INSERT INTO access_events (id, community_id, occurred_at, credential_type, "
                    "decision, reason, details) VALUES (:id, :community, :at, 'plate', 'grant', "
                    "'resident_vehicle', :details)"
                ),
                {"id": ident, "community": community, "at": T0, "details": json.dumps(details)},
            )
        db.session.commit()
        db.session.remove()
        upgrade()
        plates = dict(db.session.execute(select(AccessEvent.id, AccessEvent.plate)).all())
        assert plates == {"evt_plate": "浙A12345", "evt_none": None}
        db.session.remove()
        db.engine.dispose()
