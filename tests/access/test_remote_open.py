"""POST /api/v1/access-points/{id}/open for residents: their doors only, limited, logged."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
import time_machine

from hardware.messages import CommandMessage
from hardware.protocol import Command
from server.extensions import db
from server.models import AccessEvent, AccessPoint, AuditEntry, DeviceCommand
from tests.factories import Api
from tests.support.passes import NOW, pass_site


@pytest.fixture
def site(app):
    return pass_site(app)


@time_machine.travel(NOW, tick=False)
def test_a_resident_opens_their_building_door_for_a_courier(app, client, site, published):
    resident = Api(client, "resident_a")
    answer = resident.post(f"/access-points/{site.door}/open")
    assert answer.status_code == 202, answer.json
    [command] = answer.json
    assert command["command"] == "open" and command["device_id"] == site.door_device
    [message] = published
    assert CommandMessage.decode(message.payload).cmd is Command.OPEN
    with app.app_context():
        row = db.session.get(DeviceCommand, command["id"])
        event = db.session.get(AccessEvent, row.event_id)
        assert (event.reason, event.rule, event.credential_type.value) == (
            "remote_open",
            "remote.resident",
            "remote",
        )
        assert event.person_id == site.resident_person
        audit = db.session.scalar(
            db.select(AuditEntry).where(AuditEntry.action == "access_point.open")
        )
        assert audit.details["event_id"] == event.id
    # It shows in the household's history.
    [seen] = resident.get("/events").json
    assert seen["reason"] == "remote_open" and seen["access_point"]["id"] == site.door
    # The shared gate is theirs too.
    assert resident.post(f"/access-points/{site.gate}/open").status_code == 202


@time_machine.travel(NOW, tick=False)
def test_a_resident_cannot_open_other_doors(client, site, published):
    resident = Api(client, "resident_a")
    assert resident.post(f"/access-points/{site.other_door}/open").status_code == 404
    assert resident.post(f"/access-points/{site.door_b}/open").status_code == 404
    assert Api(client, "resident_b").post(f"/access-points/{site.door}/open").status_code == 404
    assert published == []


def test_a_tenant_opens_only_while_the_lease_runs(client, site, published):
    with time_machine.travel(NOW, tick=False):
        assert Api(client, "tenant_a").post(
            f"/access-points/{site.other_door}/open"
        ).status_code == (202)
    with time_machine.travel(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC), tick=False):
        late = Api(client, "tenant_a").post(f"/access-points/{site.other_door}/open")
        assert late.status_code == 403
        assert late.json["reason"] == "lease_expired"
        assert "The lease has ended" in late.json["detail"]
    assert len(published) == 1


@time_machine.travel(NOW, tick=False)
def test_a_closed_door_stays_closed(app, client, site):
    with app.app_context():
        point = db.session.get(AccessPoint, site.door)
        point.schedule = [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "06:00", "end": "07:00"}]
        db.session.commit()
    answer = Api(client, "resident_a").post(f"/access-points/{site.door}/open")
    assert answer.status_code == 403 and answer.json["reason"] == "outside_schedule"
    # Staff can still open it (a guard letting someone in).
    assert Api(client, "staff_a").post(f"/access-points/{site.door}/open").status_code == 202


@time_machine.travel(NOW, tick=False)
def test_remote_open_is_rate_limited_per_account(app, client, site, monkeypatch):
    settings = dataclasses.replace(app.config["SETTINGS"], remote_open_rate_limit="2 per minute")
    monkeypatch.setitem(app.config, "SETTINGS", settings)
    resident = Api(client, "resident_a")
    codes = [resident.post(f"/access-points/{site.door}/open").status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    assert Api(client, "staff_a").post(f"/access-points/{site.door}/open").status_code == 202


@time_machine.travel(NOW, tick=False)
def test_a_door_out_of_scope_answers_404_before_the_rate_limit(app, client, site, monkeypatch):
    """The scope check comes first: a door the caller cannot see neither spends their
    budget nor reports it (429 would say the door exists)."""
    settings = dataclasses.replace(app.config["SETTINGS"], remote_open_rate_limit="2 per minute")
    monkeypatch.setitem(app.config, "SETTINGS", settings)
    resident = Api(client, "resident_a")
    unseen = [resident.post(f"/access-points/{site.door_b}/open").status_code for _ in range(3)]
    assert unseen == [404, 404, 404]
    codes = [resident.post(f"/access-points/{site.door}/open").status_code for _ in range(3)]
    assert codes == [202, 202, 429]  # the 404s spent nothing
    spent = resident.post(f"/access-points/{site.door_b}/open")
    assert spent.status_code == 404, spent.json  # not 429 once the budget is spent
    assert "Retry-After" not in spent.headers and "X-RateLimit-Limit" not in spent.headers
