"""Commands, device events, status and acks, against the real database (no broker here).

Also the offline uses of visitor passes that doors upload as ``pass_used`` events.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from datetime import datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event, func, select

from gatekeeper import passtokens
from gatekeeper.vocabulary import (
    AlertStatus,
    AlertType,
    CredentialType,
    Decision,
    DeviceKind,
    Severity,
    Zone,
)
from hardware.messages import AckMessage, CommandMessage, EventMessage, StatusMessage
from hardware.protocol import Command, CommandStatus, EventType
from hardware.topics import device_topic
from server.core.messaging import ACK_FLUSH_S, OutgoingMessage, flush_acks, queue_message
from server.devices import commands
from server.extensions import db
from server.models import (
    AccessEvent,
    Alert,
    AuditEntry,
    Community,
    Device,
    DeviceCommand,
    DeviceEvent,
    VisitorPass,
    utcnow,
)
from server.passes import keys as passkeys
from server.passes import service as passes
from server.worker.ingest import DeviceIngest, detect_offline
from tests import factories
from tests.factories import Api
from tests.support.pages import csrf, login


def test_open_is_stored_then_published(app, client, world, published) -> None:
    answer = Api(client, "staff_a").post(
        f"/access-points/{world.door_a}/commands", {"command": "open"}
    )
    assert answer.status_code == 202, answer.json
    [command] = answer.json
    # Queued until the broker acknowledges the publish (the Recorder here never does).
    assert command["status"] == "queued" and command["device_id"] == world.device_a
    [message] = published
    staff = Api(client, "staff_a")
    assert staff.get(f"/commands/{command['id']}").json["status"] == "queued"
    message.on_acked()  # what the MQTT client calls on the broker's PUBACK
    assert flush_acks(app) == 1  # what the process's ack writer does within ACK_FLUSH_S
    assert staff.get(f"/commands/{command['id']}").json["status"] == "sent"
    assert message.topic == device_topic(world.a, world.device_a, "cmd")
    decoded = CommandMessage.decode(message.payload)
    assert decoded.cmd is Command.OPEN and decoded.cmd_id == command["id"]
    assert decoded.open_ms == 5000
    assert decoded.expires_at - decoded.issued_at == timedelta(seconds=10)
    assert message.expiry_s == 10 and message.retain is False
    with app.app_context():
        row = db.session.get(DeviceCommand, command["id"])
        assert row.issued_by_user_id == world.staff_a
        audit = db.session.scalar(
            select(AuditEntry).where(AuditEntry.action == "access_point.open")
        )
        assert audit.target_id == world.door_a and audit.details == {"commands": [row.id]}


def test_pubacks_are_written_together_by_the_ack_writer(app, client, world, published) -> None:
    """A PUBACK's record costs no transaction of its own: the process's ack writer writes all
    that came within ``ACK_FLUSH_S`` in one, from its own thread, without being asked."""
    staff = Api(client, "staff_a")
    ids = []
    for _ in range(5):
        answer = staff.post(f"/access-points/{world.door_a}/commands", {"command": "open"})
        assert answer.status_code == 202, answer.json
        ids.append(answer.json[0]["id"])
    with app.app_context():
        engine = db.engine
    committed_by: list[str] = []
    statements_by: list[tuple[str, bool, int]] = []

    def count(_connection: object) -> None:
        committed_by.append(threading.current_thread().name)

    def statement(_conn, _cursor, _sql, parameters, _context, executemany) -> None:
        rows = len(parameters) if executemany else 1
        statements_by.append((threading.current_thread().name, executemany, rows))

    def statuses() -> list[str]:
        return [staff.get(f"/commands/{i}").json["status"] for i in ids]

    # The engine's ``commit`` event comes as the commit starts: wait for what it wrote.
    event.listen(engine, "commit", count)
    event.listen(engine, "before_cursor_execute", statement)
    try:
        before = utcnow()
        for message in published:  # the broker's PUBACKs, one after another
            message.on_acked()
        after = utcnow()
        deadline = time.monotonic() + 10 * ACK_FLUSH_S
        while time.monotonic() < deadline and statuses() != ["sent"] * 5:
            time.sleep(0.01)
    finally:
        event.remove(engine, "commit", count)
        event.remove(engine, "before_cursor_execute", statement)
    assert statuses() == ["sent"] * 5
    assert committed_by.count("mqtt-ack-writer") == 1
    # The five records are one executemany, not five statements.
    assert [s for s in statements_by if s[0] == "mqtt-ack-writer"] == [("mqtt-ack-writer", True, 5)]
    assert flush_acks(app) == 0  # nothing left waiting
    with app.app_context():  # each command's status time is its PUBACK's
        for command_id in ids:
            assert before <= db.session.get(DeviceCommand, command_id).status_at <= after


def test_a_puback_record_that_fails_loses_no_other(app, client, world, published) -> None:
    """When the records' transaction fails, each is written alone: the bad one is logged and
    the others still read ``sent``."""
    staff = Api(client, "staff_a")
    ids = []
    for _ in range(3):
        answer = staff.post(f"/access-points/{world.door_a}/commands", {"command": "open"})
        ids.append(answer.json[0]["id"])
    with app.app_context():
        engine = db.engine

    def refuse(_conn, _cursor, sql, parameters, _context, _executemany) -> None:
        if "UPDATE device_commands" in sql and ids[1] in repr(parameters):
            raise RuntimeError("the database refuses this row")

    event.listen(engine, "before_cursor_execute", refuse)
    try:
        for message in published:
            message.on_acked()
        assert flush_acks(app) == 3
    finally:
        event.remove(engine, "before_cursor_execute", refuse)
    assert [staff.get(f"/commands/{i}").json["status"] for i in ids] == ["sent", "queued", "sent"]


def test_nothing_is_published_when_the_transaction_rolls_back(app, world, published) -> None:
    with app.app_context():
        device = db.session.get(Device, world.device_a)
        commands.issue(device, Command.OPEN)
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(DeviceCommand)) == 0
        queue_message(db.session, OutgoingMessage("gk/v1/x/y/cmd", b"{}"))
        db.session.commit()
    assert [m.topic for m in published] == ["gk/v1/x/y/cmd"]


def test_command_scope_and_rules(app, client, world, published) -> None:
    staff_b = Api(client, "staff_b")
    assert staff_b.post(f"/access-points/{world.door_a}/open").status_code == 404
    assert Api(client, "officer_a").post(f"/access-points/{world.door_a}/open").status_code == 403
    assert Api(client, "resident_b").post(f"/access-points/{world.door_a}/open").status_code == 404
    staff_a = Api(client, "staff_a")
    bad = staff_a.post(f"/access-points/{world.door_a}/commands", {"command": "reboot"})
    assert bad.status_code == 422
    assert (
        staff_a.post(f"/access-points/{world.door_a}/commands", {"command": "explode"}).status_code
        == 422
    )
    assert staff_a.patch(f"/devices/{world.device_a}", {"disabled": True}).status_code == 200
    answer = staff_a.post(f"/access-points/{world.door_a}/open")
    assert answer.status_code == 409
    assert "No enabled door or barrier" in answer.json["detail"]
    # The detail (and a field's messages) in the caller's language; the title stays English.
    chinese = {**staff_a.headers, "Accept-Language": "zh-CN"}
    answer = client.post(f"/api/v1/access-points/{world.door_a}/open", headers=chinese)
    assert answer.status_code == 409 and answer.json["title"] == "Conflict"
    assert answer.json["detail"] == "“A door”没有已启用的门禁或道闸设备。"
    answer = client.post(
        f"/api/v1/communities/{world.a}/devices",
        json={"name": "T", "kind": "barrier", "access_point_id": world.door_a},
        headers=chinese,
    )
    assert answer.status_code == 422 and answer.json["detail"] == "设备的绑定无效。"
    assert answer.json["errors"] == {"access_point_id": ["道闸相机不能用于门。"]}
    assert (
        staff_a.post(f"/devices/{world.device_a}/commands", {"command": "reboot"}).status_code
        == 409
    )
    assert published == []


def test_device_commands_display_and_history(app, client, world, published) -> None:
    staff = Api(client, "staff_a")
    assert (
        staff.post(f"/devices/{world.device_a}/commands", {"command": "display"}).status_code == 422
    )
    shown = staff.post(
        f"/devices/{world.device_a}/commands", {"command": "display", "text": "欢迎回家"}
    )
    assert shown.status_code == 202
    assert CommandMessage.decode(published[0].payload).text == "欢迎回家"
    staff.post(f"/access-points/{world.door_a}/commands", {"command": "unlock_hold"})
    history = staff.get(f"/devices/{world.device_a}/commands")
    assert [c["command"] for c in history.json] == ["unlock_hold", "display"]
    assert staff.get(f"/commands/{shown.json['id']}").json["status"] == "queued"
    assert Api(client, "staff_b").get(f"/commands/{shown.json['id']}").status_code == 404


def _ingest(app, device_id: str, community_id: str, suffix: str, payload: bytes) -> DeviceIngest:
    ingest = DeviceIngest(app)
    ingest.handle(device_topic(community_id, device_id, suffix), payload)
    return ingest


def test_acks_decide_the_outcome(app, world, published) -> None:
    with app.app_context():
        device = db.session.get(Device, world.device_a)
        ids = [commands.issue(device, Command.OPEN).id for _ in range(3)]
        db.session.commit()
    ingest = DeviceIngest(app)
    topic = device_topic(world.a, world.device_a, "ack")
    now = utcnow()
    ingest.handle(topic, AckMessage(ids[0], True, now).encode())
    ingest.handle(topic, AckMessage(ids[1], False, now, "expired").encode())
    ingest.handle(topic, AckMessage(ids[2], False, now, "relay fault").encode())
    ingest.handle(topic, AckMessage("cmd_unknown", True, now).encode())
    # QoS 1 redelivered the first command: the door answers "duplicate"; acked stays acked.
    ingest.handle(topic, AckMessage(ids[0], False, now, "duplicate").encode())
    # Another device cannot ack this one's commands.
    ingest.handle(
        device_topic(world.b, world.device_b, "ack"), AckMessage(ids[2], True, now).encode()
    )
    with app.app_context():
        statuses = [db.session.get(DeviceCommand, i).status for i in ids]
        assert statuses == [CommandStatus.ACKED, CommandStatus.EXPIRED, CommandStatus.FAILED]
        assert db.session.get(DeviceCommand, ids[2]).detail == "relay fault"
    assert ingest.stats["ack"] == 4 and ingest.stats["ack_unknown_command"] == 2


def test_unanswered_commands_expire(app, world, published) -> None:
    with app.app_context():
        device = db.session.get(Device, world.device_a)
        old = commands.issue(device, Command.OPEN)
        fresh = commands.issue(device, Command.OPEN)
        old.expires_at = utcnow() - timedelta(seconds=30)
        db.session.commit()
        assert commands.expire_overdue() == 1
        db.session.commit()
        assert db.session.get(DeviceCommand, old.id).status is CommandStatus.EXPIRED
        assert db.session.get(DeviceCommand, fresh.id).status is CommandStatus.QUEUED


def test_events_are_stored_once_per_seq(app, world) -> None:
    ingest = DeviceIngest(app)
    topic = device_topic(world.a, world.device_a, "evt")
    opened = EventMessage(EventType.DOOR_OPENED, 7, utcnow()).encode()
    for _ in range(3):
        ingest.handle(topic, opened)
    ingest.handle(topic, EventMessage(EventType.DOOR_CLOSED, 8, utcnow()).encode())
    ingest.handle(topic, EventMessage(EventType.HEARTBEAT, 9, utcnow()).encode())
    with app.app_context():
        rows = list(db.session.scalars(select(DeviceEvent).order_by(DeviceEvent.seq)))
        assert [(r.seq, r.type) for r in rows] == [(7, "door_opened"), (8, "door_closed")]
        device = db.session.get(Device, world.device_a)
        assert device.online is True and device.last_seen_at is not None
    assert ingest.stats["event"] == 2
    assert ingest.stats["duplicate_event"] == 2
    assert ingest.stats["heartbeat"] == 1


@pytest.mark.parametrize(
    ("event", "alert_type", "severity"),
    [
        (EventType.PANIC, AlertType.PANIC, Severity.CRITICAL),
        (EventType.DOOR_FORCED, AlertType.DOOR_FORCED, Severity.HIGH),
        (EventType.TAMPER, AlertType.TAMPER, Severity.HIGH),
        (EventType.DOOR_HELD_OPEN, AlertType.DOOR_HELD_OPEN, Severity.MEDIUM),
    ],
)
def test_alarm_events_raise_one_alert(app, world, event, alert_type, severity) -> None:
    ingest = DeviceIngest(app)
    topic = device_topic(world.a, world.device_a, "evt")
    fields = {"open_ms": 95000} if event is EventType.DOOR_HELD_OPEN else {}
    ingest.handle(topic, EventMessage(event, 1, utcnow(), fields).encode())
    ingest.handle(topic, EventMessage(event, 2, utcnow(), fields).encode())
    with app.app_context():
        [alert] = db.session.scalars(select(Alert))
        assert (alert.type, alert.severity, alert.status) == (
            alert_type,
            severity,
            AlertStatus.OPEN,
        )
        assert alert.community_id == world.a and alert.access_point_id == world.door_a
        assert len(alert.evidence["device_event_ids"]) == 2  # updated, not duplicated
        assert [h.action for h in alert.history] == ["raised"]


def test_status_and_last_will(app, world) -> None:
    topic = device_topic(world.a, world.device_a, "status")
    _ingest(app, world.device_a, world.a, "status", StatusMessage(True, utcnow(), "1.4.2").encode())
    with app.app_context():
        device = db.session.get(Device, world.device_a)
        assert (device.online, device.firmware) == (True, "1.4.2")
    DeviceIngest(app).handle(topic, b'{"online": false}')
    with app.app_context():
        assert db.session.get(Device, world.device_a).online is False


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"type": "door_opened"}',
        b'{"type": "teleport", "seq": 1, "ts": "2026-11-21T08:00:00+08:00"}',
        b'{"type": "door_opened", "seq": 1, "ts": "2026-11-21T08:00:00"}',
        b'{"type": "tag_read", "seq": 1, "tag": "xyz", "ts": "2026-11-21T08:00:00Z"}',
        b"\xff\xfe",
        b'{"type": "door_opened", "seq": -1, "ts": "2026-11-21T08:00:00Z"}',
    ],
)
def test_bad_event_payloads_are_counted(app, world, payload) -> None:
    ingest = _ingest(app, world.device_a, world.a, "evt", payload)
    assert ingest.stats["bad_payload"] == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(DeviceEvent)) == 0


@pytest.mark.parametrize(
    ("suffix", "payload", "flaw"),
    [
        (
            "status",
            b'{"online": true, "ts": "2026-11-21T08:00:00Z", "fw": "1.\\ud800"}',
            "lone UTF-16 surrogate",
        ),
        (
            "evt",
            b'{"type": "door_opened", "seq": 1, "ts": "2026-11-21T08:00:00Z", "x": "\\udfff"}',
            "lone UTF-16 surrogate",
        ),
        (
            "ack",
            b'{"cmd_id": "cmd_\\ud800", "status": "ok", "ts": "2026-11-21T08:00:00Z"}',
            "lone UTF-16 surrogate",
        ),
        (
            "status",
            b'{"online": true, "ts": "2026-11-21T08:00:00Z", "fw": "1.0\\u0000"}',
            "NUL character",
        ),
        (
            "evt",
            b'{"type": "door_opened", "seq": 1, "ts": "2026-11-21T08:00:00Z", "x": "\\u0000"}',
            "NUL character",
        ),
    ],
    ids=["status", "evt", "ack", "status-nul", "evt-nul"],
)
def test_unstorable_text_drops_the_message_counted_and_logged(
    app, world, suffix: str, payload: bytes, flaw: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="server.worker.ingest")
    ingest = _ingest(app, world.device_a, world.a, suffix, payload)
    assert ingest.stats["bad_payload"] == 1
    [record] = [r for r in caplog.records if "bad payload" in r.getMessage()]
    assert flaw in record.getMessage() and record.exc_info is None
    with app.app_context():
        device = db.session.get(Device, world.device_a)
        assert device.firmware is None and device.online is not True
        assert db.session.scalar(select(func.count()).select_from(DeviceEvent)) == 0


def test_messages_from_unknown_or_misplaced_devices_are_ignored(app, world) -> None:
    ingest = DeviceIngest(app)
    event = EventMessage(EventType.PANIC, 1, utcnow()).encode()
    ingest.handle(device_topic(world.a, "dev_nobody", "evt"), event)
    ingest.handle(
        device_topic(world.b, world.device_a, "evt"), event
    )  # right device, wrong community
    ingest.handle("gk/v1/too/short", event)
    assert ingest.stats["unknown_device"] == 2 and ingest.stats["ignored"] == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Alert)) == 0


def test_offline_after_missed_heartbeats_once_per_absence(app, world) -> None:
    with app.app_context():
        device = db.session.get(Device, world.device_a)
        point = factories.access_point(db.session.get(Community, world.a), zone=Zone.PERIMETER)
        reader, _ = factories.device(point, kind=DeviceKind.RFID_READER)
        device.online, device.last_seen_at = True, utcnow() - timedelta(seconds=200)
        reader.online, reader.last_seen_at = True, utcnow() - timedelta(seconds=100)
        db.session.commit()
        assert detect_offline(heartbeat_s=60, misses=3) == 1
        db.session.commit()
        assert detect_offline(heartbeat_s=60, misses=3) == 0  # same absence: no new alert
        [alert] = db.session.scalars(select(Alert))
        assert alert.type is AlertType.DEVICE_OFFLINE and alert.device_id == device.id
        alert.status = AlertStatus.RESOLVED
        db.session.commit()
        assert detect_offline(heartbeat_s=60, misses=3) == 0  # resolved, still the same one
        assert db.session.get(Device, world.device_a).online is False
        assert db.session.get(Device, reader.id).online is True
        device.last_seen_at = utcnow() - timedelta(seconds=190)  # back, then silent again
        db.session.commit()
        assert detect_offline(heartbeat_s=60, misses=3) == 1


def _page_login(client, username: str) -> str:
    """Signed in through the form; the session's CSRF token, for the console's forms."""
    login(client, username)
    return csrf(client.get("/").text)


def test_device_console_page_sends_commands(app, client, world, published) -> None:
    token = _page_login(client, "staff_a")
    page = client.get(f"/communities/{world.a}/devices")
    assert page.status_code == 200
    assert "A door" in page.text and 'value="open"' in page.text
    answer = client.post(
        f"/access-points/{world.door_a}/command", data={"command": "lock", "csrf_token": token}
    )
    assert answer.status_code == 302
    assert CommandMessage.decode(published[0].payload).cmd is Command.LOCK
    page = client.get(f"/communities/{world.a}/devices")
    assert "lock sent to A door (1 device(s))." in page.text
    assert "door terminal" in page.text and ">hold unlocked</button>" in page.text
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"  # the flash is written in it too
    answer = client.post(
        f"/access-points/{world.door_a}/command", data={"command": "open", "csrf_token": token}
    )
    chinese = client.get(f"/communities/{world.a}/devices")
    assert "<h1>设备 · Community A</h1>" in chinese.text
    assert "已向 A door 发送“开门”指令（1 台设备）。" in chinese.text
    assert ">保持常开</button>" in chinese.text and "<td>门禁终端</td>" in chinese.text
    assert 'data-word-offline="离线"' in chinese.text and "<td>锁门</td>" in chinese.text
    assert (
        client.post(f"/access-points/{world.door_a}/command", data={"command": "open"}).status_code
        == 400
    )  # no CSRF token
    assert client.get(f"/communities/{world.b}/devices").status_code == 404
    assert len(published) == 2


def test_officer_sees_console_without_buttons(app, client, world, published) -> None:
    token = _page_login(client, "officer_a")
    page = client.get(f"/communities/{world.a}/devices")
    assert page.status_code == 200 and 'value="open"' not in page.text
    client.post(
        f"/access-points/{world.door_a}/command", data={"command": "open", "csrf_token": token}
    )
    assert published == []


def test_residents_find_no_device_console(client, world) -> None:
    _page_login(client, "resident_a")
    assert client.get(f"/communities/{world.a}/devices").status_code == 404


# Offline pass uses (pass_used) -------------------------------------------------------------


def _visitor_pass(
    app, world, *, community: str = "a", point_id: str | None = None, **values
) -> tuple[str, str]:
    """A pass for a door of community ``a`` (or ``b``), valid now: its id and its QR token."""
    with app.app_context():
        row = factories.visitor_pass(
            getattr(world, f"unit_{community}"),
            access_points=[point_id or getattr(world, f"door_{community}")],
            guest_name="李四",
            **values,
        )
        return row.id, passes.token_for(row)


def _upload(ingest: DeviceIngest, world, seq: int, token: str, **fields) -> datetime:
    """Device a uploads an offline use made about a minute ago (``seq`` seconds later for a
    larger ``seq``, so uses sort by ``seq``); the use's time."""
    at = (utcnow() - timedelta(minutes=1)).replace(microsecond=0) + timedelta(seconds=seq)
    event = EventMessage(EventType.PASS_USED, seq, at, {"token": token, **fields})
    ingest.handle(device_topic(world.a, world.device_a, "evt"), event.encode())
    return at


def _access_events(app) -> list[AccessEvent]:
    with app.app_context():
        rows = list(db.session.scalars(select(AccessEvent).order_by(AccessEvent.occurred_at)))
        db.session.expunge_all()
        return rows


def test_an_offline_use_is_stored_once_linked_and_counted(app, world) -> None:
    pass_id, token = _visitor_pass(app, world, max_uses=2)
    ingest = DeviceIngest(app)
    at = _upload(ingest, world, 10, token, direction="in")
    _upload(ingest, world, 10, token, direction="in")  # QoS 1 redelivery: counted once
    [event] = _access_events(app)
    assert (event.decision, event.reason, event.rule) == (
        Decision.GRANT,
        "visitor_pass",
        "pass.offline",
    )
    assert event.credential_type is CredentialType.QR and event.pass_id == pass_id
    assert (event.access_point_id, event.device_id) == (world.door_a, world.device_a)
    assert event.occurred_at == at and event.direction == "in"
    with app.app_context():
        stored = db.session.scalar(select(DeviceEvent).where(DeviceEvent.seq == 10))
        assert stored.type == "pass_used" and stored.payload["token"] == token
        assert db.session.get(VisitorPass, pass_id).uses == 1
    assert event.details == {
        "offline": True,
        "device_event_id": stored.id,
        "serial": passtokens.parse(token)[0].serial.hex(),
        "uses": 1,
    }
    assert ingest.stats["pass_used_grant"] == 1 and ingest.stats["duplicate_event"] == 1


def test_offline_over_use_is_counted_and_flagged(app, world) -> None:
    """Two offline doors may each admit a single-use pass: both uses count, one is flagged."""
    pass_id, token = _visitor_pass(app, world, max_uses=1)
    ingest = DeviceIngest(app)
    _upload(ingest, world, 1, token)
    _upload(ingest, world, 2, token)
    first, second = _access_events(app)
    assert first.decision is second.decision is Decision.GRANT
    assert "over_used" not in first.details
    assert second.details["over_used"] is True and second.details["uses"] == 2
    with app.app_context():
        assert db.session.get(VisitorPass, pass_id).uses == 2


def test_offline_uses_say_what_the_server_would_have_refused(app, world) -> None:
    now = utcnow()
    with app.app_context():
        other_point = factories.access_point(db.session.get(Community, world.a), name="Other").id
    tokens = [
        _visitor_pass(app, world, revoked_at=now - timedelta(hours=2))[1],
        _visitor_pass(
            app, world, valid_from=now - timedelta(hours=3), valid_until=now - timedelta(hours=2)
        )[1],
        _visitor_pass(app, world, point_id=other_point)[1],
    ]
    ingest = DeviceIngest(app)
    for seq, token in enumerate(tokens, start=1):
        _upload(ingest, world, seq, token)
    flags = [
        {k for k, v in e.details.items() if v is True} - {"offline"} for e in _access_events(app)
    ]
    assert flags == [{"revoked"}, {"outside_window"}, {"not_listed"}]
    assert all(e.decision is Decision.GRANT for e in _access_events(app))  # the door opened


def test_offline_uses_of_bad_codes_are_stored_as_denials(app, world) -> None:
    pass_id, token = _visitor_pass(app, world)
    _b_pass, token_of_b = _visitor_pass(app, world, community="b")
    claims, _signed, _signature = passtokens.parse(token)
    forged = passtokens.sign(claims, Ed25519PrivateKey.generate())
    unknown = passtokens.sign(dataclasses.replace(claims, serial=b"\xff" * 8), _signing_key(app))
    resident_code = passtokens.sign(
        dataclasses.replace(claims, kind=passtokens.TokenKind.RESIDENT_CODE), _signing_key(app)
    )
    ingest = DeviceIngest(app)
    uploads = [forged, token_of_b, unknown, resident_code, "NOT-A-CODE"]
    for seq, bad in enumerate(uploads, start=1):
        _upload(ingest, world, seq, bad)
    events = _access_events(app)
    assert [(e.decision, e.reason, e.pass_id) for e in events] == [
        (Decision.DENY, "pass_invalid", None)
    ] * len(uploads)
    assert [e.details["detail"] for e in events] == [
        "bad_signature: the signature does not match",
        "a code of another community",
        "no pass with this serial",
        "resident codes are checked online only",
        "malformed: not a Gatekeeper code",
    ]
    assert all(e.details["offline"] is True for e in events)
    with app.app_context():
        assert db.session.get(VisitorPass, pass_id).uses == 0
        assert db.session.scalar(select(func.count()).select_from(DeviceEvent)) == len(uploads)
    assert ingest.stats["pass_used_deny"] == len(uploads)


def _signing_key(app) -> Ed25519PrivateKey:
    with app.app_context():
        _key_id, private = passkeys.signing_key()
        db.session.commit()
        return private
