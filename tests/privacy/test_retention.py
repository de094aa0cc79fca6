"""Retention of everything personal (server.privacy.retention): each table loses its rows
past the community's days and keeps the younger ones; held evidence keeps its template;
``flask retention run`` prints the counts. Runs on PostgreSQL too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import func, select

from gatekeeper.vocabulary import (
    AlertType,
    CredentialType,
    Decision,
    DeviceKind,
    PersonRole,
    Severity,
)
from server.extensions import db
from server.models import (
    AccessEvent,
    Alert,
    AlertDelivery,
    AuditEntry,
    Community,
    CourierCode,
    DeviceEvent,
    IdCheck,
    IntercomCall,
    Notification,
    NotificationDelivery,
    RegistrationRequest,
    UserRole,
)
from server.models.onboarding import RegistrationStatus
from server.models.privacy import DataRead
from server.privacy import retention
from tests import factories

NOW = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
YOUNG, OLD = 5, 200  # days
# Community A keeps each kind of row as short as it may (all past at OLD); B the defaults
# (device events, templates, deliveries, notifications, calls, courier codes, requests past
# at OLD; ID checks, audit entries and reads not). Both keep events a year.
SHORT = {
    "event_retention_days": 365,
    "device_event_retention_days": 10,
    "unknown_template_retention_days": 10,
    "delivery_retention_days": 10,
    "notification_retention_days": 10,
    "intercom_call_retention_days": 10,
    "courier_code_retention_days": 10,
    "registration_retention_days": 10,
    "id_check_retention_days": 30,
    "audit_retention_days": 180,
    "data_read_retention_days": 180,
}
KEPT_BY_DEFAULT = {"id_checks", "audit_log", "data_reads"}
TABLES = {
    "device_events": DeviceEvent,
    "alert_deliveries": AlertDelivery,
    "notification_deliveries": NotificationDelivery,
    "notifications": Notification,
    "intercom_calls": IntercomCall,
    "courier_codes": CourierCode,
    "registration_requests": RegistrationRequest,
    "id_checks": IdCheck,
    "audit_log": AuditEntry,
    "data_reads": DataRead,
}


@dataclass
class Place:
    community: Community
    point: str
    unit: str
    device: str
    person: str
    user: str
    alert: str


def _place(settings: dict) -> Place:
    community = factories.community()
    community.settings = settings
    building = factories.building(community)
    unit = factories.unit(building)
    point = factories.access_point(community, building_of=building)
    device, _secret = factories.device(point, kind=DeviceKind.RFID_READER)
    person = factories.person(community)
    factories.membership(person, PersonRole.RESIDENT, unit_of=unit)
    user = factories.user(UserRole.RESIDENT, unit_of=unit)
    alert = Alert(
        community_id=community.id,
        type=AlertType.STRANGER,
        severity=Severity.MEDIUM,
        summary="Unknown person seen 3 times",
    )
    db.session.add(alert)
    db.session.commit()
    return Place(community, point.id, unit.id, device.id, person.id, user.id, alert.id)


def _unknown_face(place: Place, age_days: int) -> AccessEvent:
    event = AccessEvent(
        community_id=place.community.id,
        occurred_at=NOW - timedelta(days=age_days),
        access_point_id=place.point,
        credential_type=CredentialType.FACE,
        decision=Decision.DENY,
        reason="unknown_face",
        template_encrypted=b"an encrypted template",
    )
    db.session.add(event)
    db.session.flush()
    return event


def _rows(place: Place, age_days: int, n: int) -> None:
    """One row of each personal table of ``place``, ``age_days`` old."""
    at = NOW - timedelta(days=age_days)
    cid = place.community.id
    db.session.add(
        DeviceEvent(
            community_id=cid, device_id=place.device, seq=n, type="tag_read", occurred_at=at
        )
    )
    db.session.add(
        AlertDelivery(
            community_id=cid,
            alert_id=place.alert,
            channel="webhook",
            target="https://example.invalid/hook",
            reason="raised",
            status="sent",
            created_at=at,
        )
    )
    note = Notification(community_id=cid, user_id=place.user, kind="visitor_arrived", created_at=at)
    db.session.add(note)
    db.session.flush()
    db.session.add(
        NotificationDelivery(
            community_id=cid,
            notification_id=note.id,
            channel="sms",
            target="https://sms.invalid",
            status="sent",
            created_at=at,
        )
    )
    db.session.add(
        IntercomCall(
            community_id=cid,
            access_point_id=place.point,
            unit_id=place.unit,
            created_at=at,
            ring_until=at,
            ended_at=at,
        )
    )
    db.session.add(
        CourierCode(
            community_id=cid,
            access_point_id=place.point,
            label="顺丰",
            code_hash=f"{n:064d}",
            hint="42",
            valid_from=at - timedelta(hours=1),
            valid_until=at,
        )
    )
    db.session.add(
        RegistrationRequest(
            community_id=cid,
            unit_id=place.unit,
            name="申请人",
            phone=f"139{n:08d}",
            role=PersonRole.RESIDENT,
            status=RegistrationStatus.REJECTED,
            status_token_hash=f"{n:064d}",
            created_at=at,
            reviewed_at=at,
        )
    )
    db.session.add(
        IdCheck(community_id=cid, person_id=place.person, match=True, tolerance=0.5, checked_at=at)
    )
    db.session.add(AuditEntry(community_id=cid, at=at, actor="staff", action="person.update"))
    db.session.add(
        DataRead(
            community_id=cid,
            at=at,
            actor="staff",
            actor_role="staff",
            person_id=place.person,
            what="person_page",
        )
    )
    db.session.commit()


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _template_kept(event_id: str) -> bool:
    db.session.expire_all()
    return db.session.get(AccessEvent, event_id).template_encrypted is not None


def _world() -> dict[str, str]:
    short = _place(SHORT)
    default = _place({"event_retention_days": 365})
    for n, (place, age) in enumerate(
        [(short, YOUNG), (short, OLD), (default, YOUNG), (default, OLD)], start=1
    ):
        _rows(place, age, n)
    held = _unknown_face(short, OLD)
    held_read = DeviceEvent(
        community_id=short.community.id,
        device_id=short.device,
        seq=99,
        type="tag_read",
        occurred_at=NOW - timedelta(days=OLD),
    )
    db.session.add(held_read)
    db.session.flush()
    # The alert is open: the event and the tag read it names are held.
    db.session.get(Alert, short.alert).evidence = {
        "event_ids": [held.id],
        "device_event_ids": [held_read.id],
    }
    events = {
        "held": held.id,
        "held_read": held_read.id,
        "short_old": _unknown_face(short, OLD).id,
        "short_young": _unknown_face(short, YOUNG).id,
        "default_old": _unknown_face(default, OLD).id,
        "default_young": _unknown_face(default, 25).id,  # under the default 30 days
    }
    db.session.commit()
    return events


def test_each_table_loses_its_old_rows_and_held_evidence_keeps_its_template(ctx) -> None:
    events = _world()
    counts = retention.run_all(NOW)
    expected = {name: 1 if name in KEPT_BY_DEFAULT else 2 for name in TABLES}
    assert counts == {
        "face_crops": 0,
        "access_events": 0,
        "unknown_face_templates": 2,
        **expected,
    }
    for name, model in TABLES.items():
        held = 1 if model is DeviceEvent else 0
        assert _count(model) == 4 - expected[name] + held, name
    assert db.session.get(DeviceEvent, events["held_read"]) is not None
    assert _template_kept(events["held"])
    assert not _template_kept(events["short_old"]) and not _template_kept(events["default_old"])
    assert _template_kept(events["short_young"]) and _template_kept(events["default_young"])
    assert _count(AccessEvent) == 5  # the events themselves stay
    # A second run finds nothing more.
    assert set(retention.run_all(NOW).values()) == {0}


def test_batches_delete_everything_due(ctx) -> None:
    place = _place(SHORT)
    for n in range(1, 6):
        db.session.add(
            DeviceEvent(
                community_id=place.community.id,
                device_id=place.device,
                seq=n,
                type="tag_read",
                occurred_at=NOW - timedelta(days=OLD),
            )
        )
    db.session.commit()
    assert retention.delete_device_events(NOW, batch=2) == 5
    assert _count(DeviceEvent) == 0


def test_flask_retention_run_prints_the_counts(app) -> None:
    with app.app_context():
        _world()
    with time_machine.travel(NOW, tick=False):
        result = app.test_cli_runner().invoke(args=["retention", "run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "device_events: 2" in lines and "audit_log: 1" in lines
    assert "unknown_face_templates: 2" in lines and "access_events: 0" in lines
    assert lines[-1] == "total: 19"


def test_retention_settings_are_checked_and_stored(app, client, world) -> None:
    from tests.factories import Api
    from tests.support.api import assert_problem

    staff = Api(client, "staff_a")
    for name, bad in (
        ("audit_retention_days", 30),  # the audit log is kept at least 180 days
        ("unknown_template_retention_days", 0),
        ("data_read_retention_days", 4000),
        ("device_event_retention_days", "long"),
    ):
        answer = staff.patch(f"/communities/{world.a}", json={"settings": {name: bad}})
        assert name in assert_problem(answer, 422)["errors"]["settings"], name
    done = staff.patch(
        f"/communities/{world.a}", json={"settings": {"unknown_template_retention_days": 7}}
    )
    assert done.status_code == 200, done.json
    assert done.json["settings"]["unknown_template_retention_days"] == 7
    assert done.json["settings"]["audit_retention_days"] == 1095


def test_the_workers_retention_job_runs_them_and_logs_the_counts(app, caplog) -> None:
    from server.worker import Worker

    with app.app_context():
        _world()
    caplog.set_level("INFO", logger="server.privacy.retention")
    with time_machine.travel(NOW, tick=False):
        Worker(app).apply_retention()
    assert "retention: deleted 2 rows of device_events" in caplog.messages
    assert "retention: deleted 1 rows of audit_log" in caplog.messages
    with app.app_context():
        assert _count(DeviceEvent) == 3 and _count(AuditEntry) == 3
