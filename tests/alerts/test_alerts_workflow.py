"""Alerts: the officer's workflow, who may see and act, the list, escalation, webhooks' API.

Messages the app would publish are recorded (``published``), not sent; the real broker,
receivers and the live stream have their own modules (``test_alerts_*``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from gatekeeper.vocabulary import AlertStatus, AlertType, CredentialType, Decision, Severity
from hardware.topics import alerts_topic
from server.alerts import channels as alert_channels
from server.alerts.service import escalate_overdue, next_severity, raise_alert
from server.core import crypto
from server.core.messaging import OutgoingMessage, flush_acks
from server.extensions import db
from server.models import (
    AccessEvent,
    Alert,
    AlertDelivery,
    AuditEntry,
    Community,
    UserRole,
    Webhook,
)
from tests import factories
from tests.factories import Api
from tests.support.alerts import fake_dns, raise_in
from tests.support.api import WorldIds, assert_problem, in_app

NOW = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)


@pytest.fixture
def officer_b(app: Flask, world: WorldIds) -> str:
    with in_app(app):
        factories.user(
            UserRole.OFFICER,
            communities=[db.session.get(Community, world.b)],
            username="officer_b",
        )
    return "officer_b"


def payloads(published: list[OutgoingMessage], community_id: str) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in published if m.topic == alerts_topic(community_id)]


def test_payload_follows_the_protocol(app, world, published) -> None:
    with in_app(app):
        event = AccessEvent(
            community_id=world.a,
            access_point_id=world.door_a,
            credential_type=CredentialType.FACE,
            decision=Decision.DENY,
            reason="unknown_face",
            snapshot_path=f"{world.a}/x.jpg.enc",
        )
        db.session.add(event)
        db.session.commit()
        event_id = event.id
    alert_id = raise_in(
        app,
        world.a,
        type=AlertType.STRANGER,
        summary="Unknown person seen 3 times at 2 doors since 21:40",
        access_point_id=world.door_a,
        evidence={"event_ids": [event_id], "cluster_id": "stc_1"},
    )
    [message] = [m for m in published if m.topic == alerts_topic(world.a)]
    assert message.retain is False
    payload = json.loads(message.payload)
    assert payload == {
        "alert_id": alert_id,
        "type": "stranger",
        "severity": "high",
        "community_id": world.a,
        "access_point": "A door",
        "ts": payload["ts"],
        "summary": "Unknown person seen 3 times at 2 doors since 21:40",
        "evidence": {
            "event_ids": [event_id],
            "snapshots": [f"/api/v1/events/{event_id}/snapshot"],
            "cluster_id": "stc_1",
        },
        "status": "open",
        "reason": "raised",
        "updated_at": payload["ts"],
        "access_point_id": world.door_a,
        "device_id": None,
        "dispatch": None,
    }
    assert datetime.fromisoformat(payload["ts"]).utcoffset() == timedelta(0)
    assert payload["ts"].endswith("+00:00") and "." in payload["ts"]  # milliseconds


def test_officer_acknowledges_then_resolves_with_history(app, world, published) -> None:
    alert_id = raise_in(app, world.a)
    officer = Api(app.test_client(), "officer_a")
    listed = officer.get("/alerts")
    assert [a["id"] for a in listed.json] == [alert_id] and listed.json[0]["status"] == "open"

    acked = officer.post(f"/alerts/{alert_id}/acknowledge", json={"note": "On my way"})
    assert acked.status_code == 200, acked.json
    assert acked.json["status"] == "acknowledged"
    assert [(h["action"], h["by"], h["note"]) for h in acked.json["history"]] == [
        ("raised", None, None),
        ("acknowledged", "officer_a", "On my way"),
    ]
    assert_problem(officer.post(f"/alerts/{alert_id}/acknowledge", json={}), 409)

    resolved = officer.post(f"/alerts/{alert_id}/resolve", json={"note": "Lock repaired"})
    assert resolved.status_code == 200, resolved.json
    steps = resolved.json["history"]
    assert [(h["action"], h["status"]) for h in steps] == [
        ("raised", "open"),
        ("acknowledged", "acknowledged"),
        ("resolved", "resolved"),
    ]
    assert steps[2]["by"] == "officer_a" and steps[2]["note"] == "Lock repaired"
    assert all(datetime.fromisoformat(h["at"]).tzinfo for h in steps)
    for action in ("acknowledge", "ack", "resolve"):
        answer = officer.post(f"/alerts/{alert_id}/{action}", json={"note": "again"})
        assert_problem(answer, 409)
    assert answer.json["detail"] == "The alert is resolved; it cannot be resolved."
    chinese = officer.client.post(
        f"/api/v1/alerts/{alert_id}/acknowledge",
        json={},
        headers={**officer.headers, "Accept-Language": "zh-CN"},
    )
    assert assert_problem(chinese, 409)["detail"] == "告警状态为“已解决”，无法确认。"

    # Every step went out on MQTT, and is in the delivery log.
    assert [(p["reason"], p["status"]) for p in payloads(published, world.a)] == [
        ("raised", "open"),
        ("acknowledged", "acknowledged"),
        ("resolved", "resolved"),
    ]
    log = officer.get(f"/alerts/{alert_id}/deliveries").json
    # Queued until the broker acknowledges each publish (the Recorder here never does).
    assert [(d["channel"], d["reason"], d["status"], d["sent_at"]) for d in log] == [
        ("mqtt", "raised", "queued", None),
        ("mqtt", "acknowledged", "queued", None),
        ("mqtt", "resolved", "queued", None),
    ]
    for message in published:
        message.on_acked()  # what the MQTT client calls on the broker's PUBACK
    flush_acks(app)  # what the process's ack writer does within ACK_FLUSH_S
    log = officer.get(f"/alerts/{alert_id}/deliveries").json
    assert [(d["reason"], d["status"]) for d in log] == [
        ("raised", "sent"),
        ("acknowledged", "sent"),
        ("resolved", "sent"),
    ]
    assert all(datetime.fromisoformat(d["sent_at"]).tzinfo for d in log)
    assert {d["target"] for d in log} == {alerts_topic(world.a)}
    with in_app(app):
        actions = db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.target_id == alert_id)
        ).all()
        assert sorted(actions) == ["alert.acknowledged", "alert.resolved"]


def test_an_open_alert_may_be_resolved_at_once_and_a_body_is_optional(
    app, world, published
) -> None:
    alert_id = raise_in(app, world.a)
    officer = Api(app.test_client(), "officer_a")
    answer = officer.post(f"/alerts/{alert_id}/resolve")
    assert answer.status_code == 200, answer.json
    assert answer.json["history"][-1]["note"] is None
    too_long = officer.post(f"/alerts/{raise_in(app, world.a)}/ack", json={"note": "x" * 501})
    assert_problem(too_long, 422)
    unknown = officer.post(f"/alerts/{alert_id}/ack", json={"status": "open"})
    assert_problem(unknown, 422)


def test_a_repeated_finding_updates_the_open_alert_on_every_channel(app, world, published) -> None:
    first = raise_in(app, world.a, dedup_key="door_forced:x", evidence={"event_ids": ["e1"]})
    again = raise_in(app, world.a, dedup_key="door_forced:x", evidence={"event_ids": ["e2"]})
    assert first == again
    assert [p["reason"] for p in payloads(published, world.a)] == ["raised", "updated"]
    assert payloads(published, world.a)[1]["evidence"]["event_ids"] == ["e1", "e2"]
    officer = Api(app.test_client(), "officer_a")
    assert [h["action"] for h in officer.get(f"/alerts/{first}").json["history"]] == ["raised"]
    # Resolved: the same finding raises a new alert.
    assert officer.post(f"/alerts/{first}/resolve").status_code == 200
    assert raise_in(app, world.a, dedup_key="door_forced:x") != first


@pytest.mark.parametrize(
    ("caller", "read", "act"),
    [
        ("officer_a", 200, 200),
        ("admin", 200, 200),
        ("staff_a", 200, 403),  # the property office reads its community's alerts
        ("staff_b", 404, 404),
        ("officer_b", 404, 404),
        ("resident_a", 404, 404),
    ],
)
def test_who_sees_and_acts(app, world, officer_b, published, caller, read, act) -> None:
    alert_id = raise_in(app, world.a)
    api = Api(app.test_client(), caller)
    for path in (f"/alerts/{alert_id}", f"/alerts/{alert_id}/deliveries"):
        answer = api.get(path)
        assert answer.status_code == read, (path, answer.json)
    answer = api.post(f"/alerts/{alert_id}/acknowledge", json={"note": "mine"})
    assert answer.status_code == act, answer.json
    with in_app(app):
        status = db.session.get(Alert, alert_id).status
    assert status is (AlertStatus.ACKNOWLEDGED if act == 200 else AlertStatus.OPEN)
    listed = api.get("/alerts")
    if caller == "resident_a":  # alerts are no resident's: the family answers like an id
        assert_problem(listed, 404)
        assert_problem(api.get("/alerts/stream"), 404)
    else:
        assert [a["id"] for a in listed.json] == ([alert_id] if read == 200 else [])


def test_list_filters_order_and_pages(app, world, published) -> None:
    with time_machine.travel(NOW, tick=False):
        old_critical = raise_in(app, world.a, severity=Severity.CRITICAL, type=AlertType.PANIC)
    with time_machine.travel(NOW + timedelta(minutes=1), tick=False):
        low = raise_in(app, world.a, severity=Severity.LOW, type=AlertType.DEVICE_OFFLINE)
        new_high = raise_in(app, world.a, severity=Severity.HIGH)
    other = raise_in(app, world.b, severity=Severity.CRITICAL)
    admin = Api(app.test_client(), "admin")
    officer = Api(app.test_client(), "officer_a")
    # Unresolved first (all are), newest first; the same minute's in the order raised.
    assert [a["id"] for a in officer.get("/alerts").json] == [new_high, low, old_critical]
    assert {a["id"] for a in admin.get("/alerts").json} == {old_critical, low, new_high, other}
    assert [a["id"] for a in admin.get(f"/alerts?community_id={world.b}").json] == [other]
    assert [a["id"] for a in officer.get("/alerts?severity=low").json] == [low]
    assert [a["id"] for a in officer.get("/alerts?type=panic").json] == [old_critical]
    officer.post(f"/alerts/{new_high}/ack")
    assert [a["id"] for a in officer.get("/alerts?status=acknowledged").json] == [new_high]
    assert [a["id"] for a in officer.get("/alerts?status=open").json] == [low, old_critical]
    page = officer.get("/alerts?page=2&page_size=2")
    assert [a["id"] for a in page.json] == [old_critical]
    assert json.loads(page.headers["X-Pagination"])["total"] == 3
    assert_problem(officer.get("/alerts?status=closed"), 422)
    assert_problem(officer.get("/alerts?severity=urgent"), 422)


def test_unacknowledged_alerts_escalate_once_per_period(app, world, published) -> None:
    with in_app(app):
        community = db.session.get(Community, world.a)
        community.settings = {"alert_ack_minutes": 10}
        db.session.commit()
    with time_machine.travel(NOW, tick=False):
        low = raise_in(app, world.a, severity=Severity.LOW, type=AlertType.DEVICE_OFFLINE)
        critical = raise_in(app, world.a, severity=Severity.CRITICAL, type=AlertType.PANIC)
        worked = raise_in(app, world.a, severity=Severity.LOW, type=AlertType.OVERSTAY)
        in_b = raise_in(app, world.b, severity=Severity.LOW)  # the default: 15 minutes
        officer = Api(app.test_client(), "officer_a")
        assert officer.post(f"/alerts/{worked}/ack").status_code == 200

    def run_at(minutes: float) -> int:
        with time_machine.travel(NOW + timedelta(minutes=minutes), tick=False), in_app(app):
            count = escalate_overdue()
            db.session.commit()
            return count

    def severities() -> dict[str, str]:
        with in_app(app):
            return {a.id: a.severity.value for a in db.session.scalars(select(Alert))}

    assert run_at(9.9) == 0
    assert run_at(10) == 2  # low and critical of A; B waits 15 minutes
    assert severities() == {low: "medium", critical: "critical", worked: "low", in_b: "low"}
    assert run_at(14) == 0  # once per period
    assert run_at(15) == 1 and severities()[in_b] == "medium"
    assert run_at(20) == 2 and severities()[low] == "high"
    with time_machine.travel(NOW + timedelta(minutes=21), tick=False):
        assert officer.post(f"/alerts/{low}/ack").status_code == 200
    assert run_at(30) == 2  # the critical one (sent again, still critical) and B's
    assert severities() == {low: "high", critical: "critical", worked: "low", in_b: "high"}

    with time_machine.travel(NOW + timedelta(minutes=31), tick=False):  # the token's time
        history = officer.get(f"/alerts/{low}").json["history"]
        escalated_at = officer.get(f"/alerts/{low}").json["escalated_at"]
    assert [h["action"] for h in history] == ["raised", "escalated", "escalated", "acknowledged"]
    assert history[1]["note"] == "Not acknowledged within 10 min: low -> medium"
    assert history[1]["at"].startswith("2026-11-21T13:10:00")
    sent = [(p["alert_id"], p["reason"], p["severity"]) for p in payloads(published, world.a)]
    assert (low, "escalated", "medium") in sent and (low, "escalated", "high") in sent
    assert [s for s in sent if s[0] == critical] == [
        (critical, "raised", "critical"),
        (critical, "escalated", "critical"),
        (critical, "escalated", "critical"),
        (critical, "escalated", "critical"),
    ]
    assert escalated_at.startswith("2026-11-21T13:20")


def test_severity_steps() -> None:
    assert [next_severity(s) for s in Severity] == [
        Severity.MEDIUM,
        Severity.HIGH,
        Severity.CRITICAL,
        Severity.CRITICAL,
    ]


def test_webhooks_api(app, world, published, monkeypatch) -> None:
    fake_dns(monkeypatch, {"hooks.example": ["93.184.216.34"], "evil.example": ["93.184.216.35"]})
    staff = Api(app.test_client(), "staff_a")
    made = staff.post(f"/communities/{world.a}/webhooks", json={"url": "https://hooks.example/a"})
    assert made.status_code == 201, made.json
    secret = made.json["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    listed = staff.get(f"/communities/{world.a}/webhooks").json
    assert [h["url"] for h in listed] == ["https://hooks.example/a"]
    assert "secret" not in listed[0]
    with in_app(app):
        row = db.session.get(Webhook, made.json["id"])
        assert secret.encode() not in row.secret_encrypted
        assert crypto.decrypt_text(row.secret_encrypted) == secret
    for caller, status in (("officer_a", 403), ("staff_b", 404), ("resident_a", 403)):
        answer = Api(app.test_client(), caller).post(
            f"/communities/{world.a}/webhooks", json={"url": "https://evil.example"}
        )
        assert_problem(answer, status)
        assert_problem(Api(app.test_client(), caller).delete(f"/webhooks/{row.id}"), 404)
    assert_problem(Api(app.test_client(), "officer_a").get(f"/communities/{world.a}/webhooks"), 403)
    for url in ("ftp://hooks.example/a", "not a url", "javascript:alert(1)"):
        assert_problem(staff.post(f"/communities/{world.a}/webhooks", json={"url": url}), 422)

    # A change of an alert queues one delivery per active webhook for the worker.
    alert_id = raise_in(app, world.a)
    with in_app(app):
        rows = db.session.scalars(
            select(AlertDelivery).where(AlertDelivery.channel == "webhook")
        ).all()
        assert [(r.alert_id, r.target, r.status, r.attempts) for r in rows] == [
            (alert_id, "https://hooks.example/a", "pending", 1)
        ]
    assert staff.delete(f"/webhooks/{row.id}").status_code == 204
    assert staff.get(f"/communities/{world.a}/webhooks").json == []
    with in_app(app):
        assert alert_channels.deliver_due() == 1  # its pending delivery is given up
        db.session.commit()
        [gone] = db.session.scalars(
            select(AlertDelivery).where(AlertDelivery.channel == "webhook")
        ).all()
        assert (gone.status, gone.next_attempt_at) == ("failed", None)


def test_channel_registry_takes_a_new_channel(app, world, published) -> None:
    """An SMS gateway or a police platform is one class: here, a channel that records."""
    sent: list[tuple[str, dict[str, Any]]] = []

    class Pager(alert_channels.QueuedChannel):
        name = "pager"

        def targets(self, alert: Alert) -> list[str]:
            return ["+86 138 0000 0000"]

        def prepare(self, delivery: AlertDelivery, payload: dict[str, Any]):
            target = delivery.target  # the send runs in another thread: plain values only
            return lambda: sent.append((target, payload)) or alert_channels.Attempt(True)

    alert_channels.register_channel(Pager())
    try:
        alert_id = raise_in(app, world.a)
        with in_app(app):
            assert alert_channels.deliver_due() == 1
    finally:
        alert_channels.unregister_channel("pager")
    assert [(t, p["alert_id"], p["reason"]) for t, p in sent] == [
        ("+86 138 0000 0000", alert_id, "raised")
    ]
    log = Api(app.test_client(), "officer_a").get(f"/alerts/{alert_id}/deliveries").json
    assert {(d["channel"], d["status"]) for d in log} == {("mqtt", "queued"), ("pager", "sent")}


def test_signature_round_trip() -> None:
    body = '{"alert_id":"alr_1","summary":"门被撬"}'.encode()
    header = alert_channels.signature("whsec_k", body, 1_763_700_000)
    assert header.startswith("t=1763700000,v1=") and len(header.split("v1=")[1]) == 64
    assert alert_channels.verify_signature("whsec_k", body, header, now=1_763_700_100)
    assert not alert_channels.verify_signature("whsec_k", body + b" ", header, now=1_763_700_100)
    assert not alert_channels.verify_signature("whsec_other", body, header, now=1_763_700_100)
    assert not alert_channels.verify_signature("whsec_k", body, header, now=1_763_700_301)
    assert not alert_channels.verify_signature("whsec_k", body, "v1=abc", now=1_763_700_000)


def test_staff_never_see_the_polices_own_alerts(app, client) -> None:
    """Stranger and watchlist alerts are for officers: the property office sees neither."""
    with app.app_context():
        w = factories.world()
        ids = {}
        for kind in (AlertType.WATCHLIST_HIT, AlertType.STRANGER, AlertType.PANIC):
            ids[kind] = raise_alert(
                community_id=w.a.id, type=kind, severity=Severity.HIGH, summary=str(kind)
            ).id
        db.session.commit()
        db.session.remove()
    staff, officer = Api(client, "staff_a"), Api(client, "officer_a")
    assert {a["alert_id"] for a in staff.get("/alerts").json} == {ids[AlertType.PANIC]}
    assert staff.get(f"/alerts/{ids[AlertType.WATCHLIST_HIT]}").status_code == 404
    assert {a["alert_id"] for a in officer.get("/alerts").json} == set(ids.values())
