"""End to end over a real Mosquitto: the API, the worker, and simulated devices."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from gatekeeper.vocabulary import AlertType, DeviceKind, Zone
from hardware.protocol import Command, CommandStatus, EventType
from hardware.simulate.actuators import Door
from hardware.simulate.device import DeviceIdentity
from hardware.simulate.sensors import PanicButton
from server.devices.commands import expire_overdue
from server.extensions import db
from server.models import Alert, Device, DeviceCommand, DeviceEvent
from tests import factories
from tests.factories import Api
from tests.support.alerts import raise_in
from tests.support.e2e import WAIT_S, eventually, mqtt_app, query
from tests.support.mosquitto import Broker


@pytest.fixture
def live_app(app: Flask, workdir: Path, database_url: str, broker: Broker) -> Iterator[Flask]:
    """A second app on the same database whose MQTT settings point at the test broker."""
    with mqtt_app(
        workdir,
        database_url,
        broker,
        "gatekeeper-worker-e2e",
        DEVICE_HEARTBEAT_SECONDS="1",
        DEVICE_OFFLINE_AFTER_MISSES="2",
    ) as live:
        yield live


@dataclass
class Site:
    community_id: str
    door_point_id: str
    door: Door
    button: PanicButton


@pytest.fixture
def site(live_app: Flask, broker: Broker) -> Iterator[Site]:
    with live_app.app_context():
        world = factories.world()
        door_device = db.session.get(Device, world.device_a.id)
        secret = "door-secret-for-e2e"
        from server.devices.service import set_secret

        set_secret(door_device, secret)
        panic_point = factories.access_point(world.a, zone=Zone.PERIMETER, name="Gate")
        button, button_secret = factories.device(panic_point, kind=DeviceKind.PANIC_BUTTON)
        db.session.commit()
        ids = (world.a.id, world.door_a.id, door_device.id, button.id)
    community_id, point_id, door_id, button_id = ids
    door = Door(DeviceIdentity(door_id, secret, community_id), broker.url, heartbeat_s=0.5)
    panic = PanicButton(
        DeviceIdentity(button_id, button_secret, community_id), broker.url, heartbeat_s=0.5
    )
    for device in (door, panic):
        device.start()
        assert device.wait_ready(WAIT_S)
    yield Site(community_id, point_id, door, panic)
    for device in (door, panic):
        device.stop()


def test_staff_open_reaches_the_door_and_is_acked(live_app, worker, site: Site) -> None:
    staff = Api(live_app.test_client(), "staff_a")
    answer = staff.post(f"/access-points/{site.door_point_id}/open")
    assert answer.status_code == 202, answer.json
    command_id = answer.json[0]["id"]
    action = site.door.wait_for_action(Command.OPEN, WAIT_S, cmd_id=command_id)
    assert action is not None, "the door never opened"
    status = eventually(lambda: staff.get(f"/commands/{command_id}").json["status"] == "acked")
    assert status, staff.get(f"/commands/{command_id}").json
    # The door reported its state on its own: online, firmware.
    device = staff.get(f"/devices/{site.door.device_id}").json
    assert device["online"] is True and device["firmware"] == site.door.fw


def test_panic_and_forced_door_become_alerts(live_app, worker, site: Site) -> None:
    site.button.press()
    site.door.door_forced()

    def alert_types() -> set[str]:
        rows = query(live_app, select(Alert.type))
        return {row[0].value for row in rows}

    assert eventually(lambda: {"panic", "door_forced"} <= alert_types()), alert_types()


def test_killed_device_goes_offline_and_alerts(live_app, worker, site: Site) -> None:
    assert eventually(
        lambda: query(live_app, select(Device.online).where(Device.id == site.button.device_id))[0][
            0
        ]
    )
    site.button.kill()  # no clean disconnect: the broker publishes the last will

    def offline_alert() -> bool:
        rows = query(live_app, select(Alert.type, Alert.device_id))
        return (AlertType.DEVICE_OFFLINE, site.button.device_id) in rows

    assert eventually(offline_alert), query(live_app, select(Alert.type))
    assert (
        query(live_app, select(Device.online).where(Device.id == site.button.device_id))[0][0]
        is False
    )
    # The door keeps beating and stays online.
    assert (
        query(live_app, select(Device.online).where(Device.id == site.door.device_id))[0][0] is True
    )


def test_broker_restart_loses_no_event_and_stores_none_twice(
    live_app, worker, site: Site, broker: Broker
) -> None:
    sent = [site.door.emit(EventType.EXIT_REQUEST).seq for _ in range(20)]
    broker.restart()
    sent += [site.door.emit(EventType.EXIT_REQUEST).seq for _ in range(20)]
    assert site.door.wait_ready(WAIT_S) and worker.bus.wait_connected(WAIT_S)
    sent += [site.door.emit(EventType.EXIT_REQUEST).seq for _ in range(20)]

    def stored() -> list[int]:
        rows = query(
            live_app,
            select(DeviceEvent.seq).where(
                DeviceEvent.device_id == site.door.device_id, DeviceEvent.type == "exit_request"
            ),
        )
        return sorted(row[0] for row in rows)

    assert eventually(lambda: stored() == sorted(sent), timeout=30), (len(stored()), len(sent))
    counted = query(
        live_app,
        select(func.count())
        .select_from(DeviceEvent)
        .where(DeviceEvent.device_id == site.door.device_id),
    )[0][0]
    assert counted == len(set(sent))
    # And commands still flow after the restart.
    staff = Api(live_app.test_client(), "staff_a")
    command_id = staff.post(f"/access-points/{site.door_point_id}/open").json[0]["id"]
    assert site.door.wait_for_action(Command.OPEN, WAIT_S, cmd_id=command_id) is not None


def test_expired_command_is_dropped_and_recorded(live_app, worker, site: Site) -> None:
    """A command the door receives too late is not obeyed, and the server records it."""
    from hardware.messages import CommandMessage
    from hardware.topics import device_topic
    from server.core.messaging import OutgoingMessage, publisher
    from server.models import utcnow

    issued = utcnow() - timedelta(seconds=30)  # as if stuck in a slow network for 30 s
    with live_app.app_context():
        row = DeviceCommand(
            community_id=site.community_id,
            device_id=site.door.device_id,
            command=Command.OPEN,
            issued_at=issued,
            expires_at=issued + timedelta(seconds=10),
        )
        db.session.add(row)
        db.session.commit()
        command_id = row.id
        late = CommandMessage(command_id, Command.OPEN, issued, row.expires_at)
    publisher(live_app).publish(
        OutgoingMessage(device_topic(site.community_id, site.door.device_id, "cmd"), late.encode())
    )
    ack = site.door.wait_for_ack(command_id, WAIT_S)
    assert ack is not None and ack.ok is False and ack.detail == "expired"
    assert site.door.wait_for_action(Command.OPEN, 0.5, cmd_id=command_id) is None

    def recorded() -> bool:
        status = query(
            live_app, select(DeviceCommand.status).where(DeviceCommand.id == command_id)
        )[0][0]
        return status is CommandStatus.EXPIRED

    assert eventually(recorded)


def test_card_at_a_simulated_door_follows_the_tenant_lease(
    live_app, worker, site: Site, http_server: str
) -> None:
    """A tenant's card opens the door inside the lease; after staff end it, it does not."""
    from gatekeeper.vocabulary import PersonRole
    from hardware.simulate.verify import VerifyClient
    from server.models import Card, Unit

    with live_app.app_context():
        unit = db.session.scalar(select(Unit).where(Unit.community_id == site.community_id))
        tenant = factories.person(site.community_id, "张伟")
        factories.membership(tenant, PersonRole.TENANT, unit_of=unit)
        factories.card(tenant, "04D4E5F6")
        lease = factories.lease(tenant, unit)  # from a day ago to 30 days ahead
        lease_id, tenant_id = lease.id, tenant.id
    site.door.api = VerifyClient(http_server, site.door.device_id, site.door.identity.secret)

    granted = site.door.present_card("04d4e5f6")
    assert (granted["decision"], granted["reason"]) == ("grant", "tenant")
    assert granted["subject"]["display_name"] == "张*"
    action = site.door.wait_for(lambda: len(site.door.actions) == 1, WAIT_S)
    assert action, "the door did not open for the tenant"

    staff = Api(live_app.test_client(), "staff_a")
    assert staff.patch(f"/leases/{lease_id}", {"end_now": True}).status_code == 200
    denied = site.door.present_card("04D4E5F6")
    assert (denied["decision"], denied["reason"]) == ("deny", "lease_expired")
    # The cascade is the worker's scheduled job; run it as the scheduler would.
    worker.scheduler.get_job("close_leases").modify(next_run_time=datetime.now(UTC))

    def card_disabled() -> bool:
        rows = query(live_app, select(Card.disabled_at).where(Card.person_id == tenant_id))
        return rows[0][0] is not None

    assert eventually(card_disabled)
    assert site.door.wait_for(lambda: len(site.door.actions) > 1, 1.0) is False
    assert [a.cmd for a in site.door.actions] == [Command.OPEN]


def test_face_terminal_opens_for_a_live_enrolled_face(
    live_app, worker, site: Site, http_server: str, tmp_path
) -> None:
    """Frame + depth from a simulated face terminal: door opens, event stored; a photo does not."""
    from gatekeeper.vocabulary import PersonRole
    from hardware.simulate.verify import VerifyClient
    from server.models import AccessEvent, AccessPoint, Unit
    from tests.support.faces import depth_for, enrol, frame

    with live_app.app_context():
        point = db.session.get(AccessPoint, site.door_point_id)
        point.requires_depth = True
        unit = db.session.scalar(select(Unit).where(Unit.building_id == point.building_id))
        resident = factories.person(site.community_id, "奥巴马")
        factories.membership(resident, PersonRole.RESIDENT, unit_of=unit)
        enrol(site.community_id, resident.id, "obama.jpg")
        db.session.commit()
    image = frame("obama2.jpg")
    (tmp_path / "frame.jpg").write_bytes(image)
    (tmp_path / "live.png").write_bytes(depth_for(image, "live"))
    (tmp_path / "flat.png").write_bytes(depth_for(image, "flat"))
    site.door.api = VerifyClient(http_server, site.door.device_id, site.door.identity.secret)

    spoof = site.door.present_face(tmp_path / "frame.jpg", tmp_path / "flat.png")
    assert (spoof["decision"], spoof["reason"]) == ("deny", "spoof_suspected")
    live = site.door.present_face(tmp_path / "frame.jpg", tmp_path / "live.png", "in")
    assert (live["decision"], live["reason"]) == ("grant", "resident"), live
    assert live["liveness"]["method"] == "depth" and live["liveness"]["live"] is True
    assert site.door.wait_for(lambda: len(site.door.actions) == 1, WAIT_S)
    assert site.door.actions[0].cmd is Command.OPEN
    events = query(
        live_app,
        select(AccessEvent.reason, AccessEvent.direction).order_by(AccessEvent.occurred_at),
    )
    assert [tuple(e) for e in events] == [("spoof_suspected", None), ("resident", "in")]


def test_a_guest_scans_a_pass_at_a_simulated_door(
    live_app, worker, site: Site, http_server: str, tmp_path
) -> None:
    """The resident shares a pass; the guest's phone is filmed by the door camera; the door
    opens over MQTT and acks; the resident sees the use; a second scan is refused."""
    from gatekeeper.vocabulary import PersonRole
    from hardware.simulate.verify import VerifyClient
    from server.models import Unit, User
    from tests.support.qrframes import frame_with_codes

    with live_app.app_context():
        unit = db.session.scalar(select(Unit).where(Unit.community_id == site.community_id))
        owner = factories.person(site.community_id, "王小明")
        factories.membership(owner, PersonRole.OWNER, unit_of=unit)
        db.session.scalar(select(User).where(User.username == "resident_a")).person_id = owner.id
        db.session.commit()
    resident = Api(live_app.test_client(), "resident_a")
    visitor_pass = resident.post("/passes", json={"guest_name": "李四"}).json
    png = resident.get(f"/passes/{visitor_pass['id']}/qr.png").data
    frame = tmp_path / "door-camera.jpg"
    frame.write_bytes(frame_with_codes([png], width=180, angle=15.0, tilt=0.1, seed=7))
    site.door.api = VerifyClient(http_server, site.door.device_id, site.door.identity.secret)

    granted = site.door.present_qr_image(frame)
    assert (granted["decision"], granted["reason"]) == ("grant", "visitor_pass")
    assert granted["subject"] == {"kind": "visitor", "display_name": "李*"}
    action = site.door.wait_for_action(Command.OPEN, WAIT_S)
    assert action is not None, "the door did not open for the guest"

    def acked() -> bool:
        rows = query(
            live_app,
            select(DeviceCommand.status).where(DeviceCommand.event_id == granted["event_id"]),
        )
        return bool(rows) and rows[0][0] is CommandStatus.ACKED

    assert eventually(acked)
    [use] = resident.get(f"/passes/{visitor_pass['id']}/uses").json
    assert use["id"] == granted["event_id"] and use["decision"] == "grant"
    assert resident.get(f"/passes/{visitor_pass['id']}").json["status"] == "used"

    again = site.door.present_qr_token(visitor_pass["token"])
    assert (again["decision"], again["reason"]) == ("deny", "pass_used_up")
    assert site.door.wait_for(lambda: len(site.door.actions) > 1, 1.0) is False


def test_a_command_is_sent_only_once_the_broker_took_it(
    live_app, worker, site: Site, broker: Broker
) -> None:
    """A paused broker sends no PUBACK: the command stays ``queued``; once it runs again
    the publish is acknowledged, the door acts and the command is ``acked``."""
    staff = Api(live_app.test_client(), "staff_a")
    staff.post(f"/access-points/{site.door_point_id}/open")  # the web client is connected
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        answer = staff.post(f"/access-points/{site.door_point_id}/open")
        assert answer.status_code == 202, answer.json
        command_id = answer.json[0]["id"]
        assert answer.json[0]["status"] == "queued"
        time.sleep(1.0)
        assert staff.get(f"/commands/{command_id}").json["status"] == "queued"
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
    assert eventually(
        lambda: staff.get(f"/commands/{command_id}").json["status"] in ("sent", "acked")
    ), staff.get(f"/commands/{command_id}").json
    assert site.door.wait_for_action(Command.OPEN, WAIT_S, cmd_id=command_id) is not None
    assert eventually(lambda: staff.get(f"/commands/{command_id}").json["status"] == "acked")


def test_a_command_that_expired_while_the_broker_was_away_never_opens_the_door(
    live_app, worker, site: Site, broker: Broker, workdir: Path, database_url: str
) -> None:
    """The broker is paused past a command's lifetime: the command is ``expired`` (never
    ``sent``); once the broker runs again, its late PUBACK changes nothing, the door drops
    the command by its ``expires_at`` and does not open."""
    with mqtt_app(
        workdir, database_url, broker, "gatekeeper-short-ttl", COMMAND_TTL_SECONDS="1"
    ) as short:
        staff = Api(short.test_client(), "staff_a")
        first = staff.post(f"/access-points/{site.door_point_id}/open").json[0]["id"]
        assert site.door.wait_for_ack(first, WAIT_S) is not None  # the client is connected
        os.kill(broker.process.pid, signal.SIGSTOP)
        try:
            command = staff.post(f"/access-points/{site.door_point_id}/open").json[0]
            assert command["status"] == "queued"
            expires_at = datetime.fromisoformat(command["expires_at"])
            time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.2)
            with short.app_context():  # the worker's job, run at the end of the grace
                expire_overdue(expires_at + timedelta(seconds=6))
                db.session.commit()
            assert staff.get(f"/commands/{command['id']}").json["status"] == "expired"
        finally:
            os.kill(broker.process.pid, signal.SIGCONT)
        ack = site.door.wait_for_ack(command["id"], WAIT_S)
        assert ack is not None and (ack.ok, ack.detail) == (False, "expired")
        assert site.door.wait_for_action(Command.OPEN, 0.5, cmd_id=command["id"]) is None
        time.sleep(0.5)  # the worker stores the door's ack
        shown = staff.get(f"/commands/{command['id']}").json
        assert shown["status"] == "expired", shown


def test_an_alert_is_sent_on_mqtt_only_once_the_broker_took_it(
    live_app, worker, site: Site, broker: Broker
) -> None:
    """A paused broker sends no PUBACK: the alert's MQTT delivery stays ``queued``; once it
    runs again the publish is acknowledged and the delivery is ``sent``."""
    officer = Api(live_app.test_client(), "officer_a")
    raise_in(live_app, site.community_id)  # the app's MQTT client connects
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        alert_id = raise_in(live_app, site.community_id, type=AlertType.PANIC)
        time.sleep(1.0)
        [delivery] = officer.get(f"/alerts/{alert_id}/deliveries").json
        assert (delivery["channel"], delivery["status"], delivery["sent_at"]) == (
            "mqtt",
            "queued",
            None,
        )
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
    assert eventually(
        lambda: officer.get(f"/alerts/{alert_id}/deliveries").json[0]["status"] == "sent"
    )
    [delivery] = officer.get(f"/alerts/{alert_id}/deliveries").json
    assert datetime.fromisoformat(delivery["sent_at"]).tzinfo is not None
