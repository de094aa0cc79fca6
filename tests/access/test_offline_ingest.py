"""Doors' offline decisions (``offline_decision``, docs/protocol.md section 6) as the worker
ingests them: stored once as ``offline`` access events at the door's time, judged again with
the server's data (``would_refuse``, ``offline_grant_refused``), fed to the alert rules late,
shown and searchable as offline; and over a real Mosquitto through the worker."""

from __future__ import annotations

import csv
import io
import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, select

from gatekeeper.vocabulary import (
    AccessPointKind,
    AlertType,
    CredentialType,
    Decision,
    DeviceKind,
    PersonRole,
    Severity,
    Zone,
)
from hardware.topics import device_topic
from server.access import qr
from server.access.decision import Door, held_credential
from server.access.decision import decide as decide_live
from server.alerts import cross_checks
from server.alerts.summaries import display_summary
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    AntiPassbackState,
    Card,
    Community,
    Device,
    DeviceEvent,
    Person,
    RfidTag,
    VisitorPass,
)
from server.passes import service as passes
from server.worker.ingest import DeviceIngest
from tests import factories
from tests.factories import Api
from tests.support.alerts import alerts
from tests.support.api import in_app
from tests.support.e2e import WAIT_S, eventually, mqtt_app, running_broker, running_worker
from tests.support.mqtt_listener import Listener
from tests.support.pages import login

# Tuesday 2026-11-24 10:00 in Shanghai (UTC+8): the server's now in these tests.
NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
# The door decided 20 minutes before the upload (09:40 in Shanghai).
DECIDED = NOW - timedelta(minutes=20)
CARD, TENANT_CARD = "04A1B2C3", "04D0D0D0"
_seq = itertools.count(1_765_119_600_000_000)


@dataclass(frozen=True)
class Site:
    community: str
    other: str  # community B
    north: str  # a perimeter gate
    south: str  # another one
    north_door: str
    south_door: str
    resident: str
    tenant: str
    stranger_b: str  # a person of community B


@pytest.fixture
def site(app: Flask, published: Any) -> Site:
    with in_app(app), time_machine.travel(NOW, tick=False):
        world = factories.world()
        community = world.a

        def gate(name: str):
            return factories.access_point(
                community, name=name, kind=AccessPointKind.GATE, zone=Zone.PERIMETER
            )

        north, south = gate("North gate"), gate("South gate")
        north_door = factories.device(north)[0]
        south_door = factories.device(south)[0]
        resident = factories.person(community, "王小明")
        factories.membership(resident, PersonRole.OWNER, unit_of=world.unit_a)
        factories.card(resident, CARD)
        tenant = factories.person(community, "李租客")
        factories.membership(tenant, PersonRole.TENANT, unit_of=world.unit_a)
        factories.lease(
            tenant,
            world.unit_a,
            starts_at=NOW - timedelta(days=30),
            ends_at=NOW - timedelta(hours=1),
        )
        factories.card(tenant, TENANT_CARD)
        stranger_b = factories.person(world.b, "赵外人")
        factories.membership(stranger_b, PersonRole.OWNER, unit_of=world.unit_b)
        db.session.commit()
        return Site(
            community.id,
            world.b.id,
            north.id,
            south.id,
            north_door.id,
            south_door.id,
            resident.id,
            tenant.id,
            stranger_b.id,
        )


def decision(**fields: Any) -> dict[str, Any]:
    """An ``offline_decision`` payload: a card grant at ``DECIDED`` unless told otherwise."""
    ts = fields.pop("ts", DECIDED)
    body = {
        "type": "offline_decision",
        "seq": next(_seq),
        "ts": ts.astimezone(UTC).isoformat(timespec="milliseconds"),
        "credential": "card",
        "card": CARD,
        "decision": "grant",
        "reason": "resident",
        "list_version": 42,
        "direction": "in",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def upload(app: Flask, site: Site, body: dict[str, Any] | bytes, device: str | None = None):
    """The worker's ingest of ``body`` on the device's ``evt`` topic; its counts."""
    ingest = DeviceIngest(app)
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    with time_machine.travel(NOW, tick=False):
        ingest.handle(device_topic(site.community, device or site.north_door, "evt"), payload)
    return ingest.stats


def offline_events(app: Flask) -> list[AccessEvent]:
    with in_app(app):
        rows = list(
            db.session.scalars(
                select(AccessEvent).where(AccessEvent.offline).order_by(AccessEvent.occurred_at)
            )
        )
        db.session.expunge_all()
        return rows


def test_a_grant_is_stored_once_as_offline_at_the_doors_time(app, site) -> None:
    body = decision(pid=site.resident)
    assert upload(app, site, body)["offline_decision"] == 1
    stats = upload(app, site, body)  # the door sends it again (QoS 1): the same seq
    assert stats["duplicate_event"] == 1 and stats["offline_decision"] == 0
    [event] = offline_events(app)
    assert event.occurred_at == DECIDED
    assert (event.decision, event.reason, event.credential_type, event.rule) == (
        Decision.GRANT,
        "resident",
        CredentialType.CARD,
        "allowlist.offline",
    )
    assert (event.person_id, event.access_point_id, event.device_id, event.direction) == (
        site.resident,
        site.north,
        site.north_door,
        "in",
    )
    assert event.details["list_version"] == 42 and event.details["seq"] == body["seq"]
    assert "would_refuse" not in event.details
    assert alerts(app) == []
    with in_app(app):
        assert db.session.scalar(select(func.count()).select_from(AccessEvent)) == 1
        # Read only: no anti-passback state, no open command.
        assert db.session.scalar(select(func.count()).select_from(AntiPassbackState)) == 0


def test_a_card_disabled_after_the_doors_list_is_refused_and_the_officers_told(app, site) -> None:
    with in_app(app):
        card = db.session.scalar(select(Card).where(Card.uid == CARD))
        card.disabled_at = DECIDED - timedelta(minutes=5)  # the door's list still had it
        db.session.commit()
    upload(app, site, decision(pid=site.resident))
    upload(app, site, decision(pid=site.resident, ts=DECIDED + timedelta(minutes=1)))
    first, second = offline_events(app)
    assert first.decision is Decision.GRANT and first.reason == "resident"  # as the door did
    assert first.details["would_refuse"] == "card_disabled"
    assert second.details["would_refuse"] == "card_disabled"
    [alert] = alerts(app)  # one per device, person and hour
    assert (alert.type, alert.severity, alert.access_point_id, alert.device_id) == (
        AlertType.OFFLINE_GRANT_REFUSED,
        Severity.HIGH,
        site.north,
        site.north_door,
    )
    assert alert.evidence["event_ids"] == [first.id, second.id]
    assert alert.evidence["would_refuse"] == "card_disabled"
    assert alert.evidence["person_id"] == site.resident
    assert "王*明" in alert.summary and "王小明" not in alert.summary
    assert "09:41" in alert.summary  # the door's time, in the community's zone
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        shown = display_summary(alert)
    assert "North gate" in shown and "09:41" in shown


def test_a_card_disabled_after_the_decision_was_still_good(app, site) -> None:
    with in_app(app):
        card = db.session.scalar(select(Card).where(Card.uid == CARD))
        card.disabled_at = DECIDED + timedelta(minutes=5)
        db.session.commit()
    upload(app, site, decision(pid=site.resident))
    [event] = offline_events(app)
    assert "would_refuse" not in event.details
    assert alerts(app) == []


def test_a_tenants_grant_after_the_lease_ended_says_lease_expired(app, site) -> None:
    upload(app, site, decision(card=TENANT_CARD, pid=site.tenant, reason="tenant"))
    [event] = offline_events(app)
    assert event.person_id == site.tenant
    assert event.details["would_refuse"] == "lease_expired"
    [alert] = alerts(app, AlertType.OFFLINE_GRANT_REFUSED)
    assert alert.dedup_key.startswith(f"offline_grant_refused:{site.north_door}:{site.tenant}:")


def test_a_deny_is_stored_as_a_deny_and_alerts_nobody(app, site) -> None:
    upload(app, site, decision(card="04EEEEEE", decision="deny", reason="unknown_card"))
    [event] = offline_events(app)
    assert (event.decision, event.reason, event.person_id) == (Decision.DENY, "unknown_card", None)
    assert event.details["uid"] == "04EEEEEE"
    assert alerts(app) == []


def test_a_pid_of_another_community_is_not_linked(app, site) -> None:
    upload(
        app, site, decision(credential="face", card=None, pid=site.stranger_b, reason="resident")
    )
    [event] = offline_events(app)
    assert event.person_id is None
    assert event.credential_type is CredentialType.FACE
    assert event.details["detail"] == "the door's person is not of this community"
    assert event.details["would_refuse"] == "unknown_face"  # nobody of A matched
    [alert] = alerts(app, AlertType.OFFLINE_GRANT_REFUSED)
    assert alert.evidence["person_id"] is None
    assert site.stranger_b not in json.dumps(alert.evidence)


def test_a_resident_code_is_stored_with_its_serial_not_the_token(app, site) -> None:
    with in_app(app), time_machine.travel(DECIDED, tick=False):
        token, _until = qr.resident_code(db.session.get(Person, site.resident))
        db.session.commit()
        serial = db.session.get(Person, site.resident).code_serial
    upload(app, site, decision(credential="qr", card=None, token=token, pid=site.resident))
    [event] = offline_events(app)
    assert event.credential_type is CredentialType.QR
    assert event.details["serial"] == serial and token not in json.dumps(event.details)
    assert "would_refuse" not in event.details  # the code was in its window at ts


def test_a_visitor_pass_judged_offline_spends_no_use(app, site) -> None:
    with in_app(app), time_machine.travel(NOW, tick=False):
        community = db.session.get(Community, site.community)
        unit = factories.unit(factories.building(community))
        guest = factories.visitor_pass(
            unit,
            access_points=[],  # not for this gate: the server would refuse
            guest_name="访客",
            valid_from=NOW - timedelta(hours=1),
            valid_until=NOW + timedelta(hours=1),
            max_uses=1,
        )
        token = passes.token_for(guest)
        db.session.commit()
        pass_id = guest.id
    upload(app, site, decision(credential="qr", card=None, token=token, reason="visitor_pass"))
    [event] = offline_events(app)
    assert event.pass_id == pass_id and event.details["would_refuse"] == "not_authorized_here"
    with in_app(app):
        assert db.session.get(VisitorPass, pass_id).uses == 0


@pytest.mark.parametrize(
    "broken",
    [
        b"{broken",
        {"credential": "plate"},
        {"decision": "maybe"},
        {"reason": "because"},
        {"card": "xyz"},
        {"list_version": None},
        {"list_version": -1},
        {"pid": "bad id with spaces"},
        {"credential": "qr", "card": None},  # a code without its token
        {"direction": "sideways"},
    ],
)
def test_malformed_decisions_are_dropped(app, site, broken) -> None:
    body = broken if isinstance(broken, bytes) else decision(**broken)
    if isinstance(broken, dict) and "list_version" in broken and broken["list_version"] is None:
        body.pop("list_version", None)
    stats = upload(app, site, body)
    assert stats["bad_payload"] == 1 and stats["offline_decision"] == 0
    assert offline_events(app) == []
    with in_app(app):
        assert db.session.scalar(select(func.count()).select_from(DeviceEvent)) == 0


def test_an_offline_card_grant_feeds_impossible_travel_late_and_the_alert_says_so(
    app, site, published
) -> None:
    """A live card grant at the south gate, then the north gate's offline grant 30 s
    earlier arrives: the walk takes 60 s (``min_gate_seconds``), so one card in two places."""
    with in_app(app), time_machine.travel(DECIDED + timedelta(seconds=30), tick=False):
        card = db.session.scalar(select(Card).where(Card.uid == CARD))
        door = Door.of(db.session.get(Device, site.south_door))
        assert decide_live(door, held_credential(CredentialType.CARD, card)).granted
        db.session.commit()
    assert alerts(app) == []
    upload(app, site, decision(pid=site.resident))
    [alert] = alerts(app)
    [offline] = offline_events(app)
    assert alert.type is AlertType.IMPOSSIBLE_TRAVEL
    assert alert.evidence["offline_event_ids"] == [offline.id]
    assert alert.evidence["decided_offline_at"] == DECIDED.isoformat()
    assert alert.summary.endswith("(decided offline at 2026-11-24 09:40 CST, uploaded late)")
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        shown = display_summary(alert)
    assert "2026-11-24 09:40 CST" in shown and shown != alert.summary
    # The officers' topic heard it with the note (the channels got the noted summary).
    sent = [json.loads(m.payload) for m in published if m.topic.endswith("/alerts")]
    assert [p["summary"] for p in sent if p["type"] == "impossible_travel"] == [alert.summary]


def test_an_elders_offline_face_at_the_gate_counts_for_the_tag_exit_rule(app, site) -> None:
    """An elder's tag read at the north gate's reader: with the elder's face granted offline
    at that gate in the window, no ``tag_exit_without_face``; without it, the alert."""
    with in_app(app), time_machine.travel(NOW, tick=False):
        community = db.session.get(Community, site.community)
        north = db.session.get(AccessPoint, site.north)
        reader = factories.device(north, kind=DeviceKind.RFID_READER)[0]
        elders = []
        for name, tag in (("王老明", "E1DE5001"), ("李老华", "E1DE5002")):
            elder = factories.person(community, name)
            factories.membership(
                elder, PersonRole.ELDER, unit_of=factories.unit(factories.building(community))
            )
            db.session.add(RfidTag(community_id=community.id, person_id=elder.id, epc=tag))
            elders.append((elder.id, tag))
        db.session.commit()
        reader_id = reader.id
    (seen, seen_tag), (unseen, unseen_tag) = elders
    # Both tags go out at 09:40; only the first elder's face was granted (offline) there.
    for tag in (seen_tag, unseen_tag):
        read = {"type": "tag_read", "seq": next(_seq), "ts": decision()["ts"], "tag": tag}
        assert upload(app, site, read, device=reader_id)["event"] == 1
    upload(
        app,
        site,
        decision(credential="face", card=None, pid=seen, direction="out", reason="resident"),
    )
    with in_app(app), time_machine.travel(NOW, tick=False):  # 20 min later: window passed
        assert cross_checks.judge_tag_exits() == 1
        db.session.commit()
    [alert] = alerts(app, AlertType.TAG_EXIT_WITHOUT_FACE)
    assert alert.evidence["person_id"] == unseen


def test_events_say_offline_in_the_api_and_can_be_filtered(app, client, site) -> None:
    upload(app, site, decision(pid=site.resident))
    with in_app(app), time_machine.travel(NOW, tick=False):
        card = db.session.scalar(select(Card).where(Card.uid == CARD))
        decide_live(
            Door.of(db.session.get(Device, site.south_door)),
            held_credential(CredentialType.CARD, card),
        )
        db.session.commit()
    api = Api(client, "staff_a")
    answer = api.get("/events")
    assert answer.status_code == 200, answer.json
    assert sorted(row["offline"] for row in answer.json) == [False, True]
    only = api.get("/events?offline=true")
    assert [row["offline"] for row in only.json] == [True]
    assert only.json[0]["occurred_at"].startswith("2026-11-24T01:40:00")
    live = api.get("/events?offline=false")
    assert [row["offline"] for row in live.json] == [False]
    assert api.get("/events?offline=perhaps").status_code == 422
    # The export says it too, in its last column.
    rows = list(csv.DictReader(io.StringIO(api.get("/events.csv").text.lstrip("\ufeff"))))
    assert sorted(row["offline"] for row in rows) == ["false", "true"]


def test_the_officers_event_page_shows_the_badge_and_filters(app, client, site) -> None:
    upload(app, site, decision(pid=site.resident))
    login(client, "officer_a")
    page = client.get(f"/events/search?community_id={site.community}&offline=true")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'data-offline="true"' in text
    none = client.get(f"/events/search?community_id={site.community}&offline=false")
    assert 'data-offline="true"' not in none.get_data(as_text=True)


# Over a real Mosquitto, through the worker --------------------------------------------------


def test_an_offline_decision_published_on_evt_is_stored_by_the_worker(
    app: Flask, workdir: Path, database_url: str
) -> None:
    with (
        running_broker() as broker,
        mqtt_app(workdir, database_url, broker, "gatekeeper-worker-offline-decisions") as live,
    ):
        with in_app(live):
            world = factories.world()
            person = factories.person(world.a, "王小明")
            factories.membership(person, PersonRole.OWNER, unit_of=world.unit_a)
            factories.card(person, CARD)
            db.session.commit()
            community, device, person_id = world.a.id, world.device_a.id, person.id
        door = Listener(broker.port)
        door.listen(device_topic(community, device, "cmd"))
        try:
            with running_worker(live):
                body = decision(pid=person_id, ts=datetime.now(UTC) - timedelta(minutes=3))
                topic = device_topic(community, device, "evt")
                for _twice in range(2):  # a resend after a reconnect: stored once
                    door.client.publish(topic, json.dumps(body).encode(), qos=1).wait_for_publish(
                        WAIT_S
                    )
                stored = eventually(lambda: offline_events(live))
                assert stored, "the worker never stored the decision"
                door.client.publish(topic, b"{broken", qos=1).wait_for_publish(WAIT_S)
                marker = decision(
                    pid=person_id,
                    decision="deny",
                    reason="outside_schedule",
                    ts=datetime.now(UTC) - timedelta(minutes=2),
                )
                door.client.publish(topic, json.dumps(marker).encode(), qos=1).wait_for_publish(
                    WAIT_S
                )
                assert eventually(lambda: len(offline_events(live)) == 2)
        finally:
            door.close()
        rows = offline_events(live)
        assert [(row.decision, row.person_id) for row in rows] == [
            (Decision.GRANT, person_id),
            (Decision.DENY, person_id),
        ]
