"""Issue 18 end to end over a real Mosquitto: a simulated door keeps working while the server
is stopped, and the server stores every offline decision once when it is back.

The real parts: Mosquitto, the app served over HTTP (the door's verify calls go there), the
worker (it publishes the signed allowlists and the key set, and ingests events), and a
simulated door (``hardware.simulate.Door``) provisioned as the device of building A1's door,
with its own state directory.

"The server stopped" here means the HTTP server *and* the worker are stopped; the broker
stays up. Verify calls then get no answer (connection refused), the door decides from its
held list, and its ``offline_decision`` events wait in the worker's persistent MQTT session
until the worker comes back. The door's clock is injected (``clock=``): real time while
online, then set explicitly for each offline presentation, so the tenant's lease end is
tested to the second without sleeping. Every instant is relative to now (the suite also runs
under faketime).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from gatekeeper.vocabulary import CredentialType, Decision, PersonRole
from hardware.protocol import EventType
from hardware.simulate import Door, VerifyClient
from hardware.simulate.device import DeviceIdentity
from server.access import qr
from server.devices.service import set_secret
from server.extensions import db
from server.models import AccessEvent, Card, Device, DeviceEvent, Person
from tests import factories
from tests.factories import Api
from tests.support.e2e import WAIT_S, eventually, query, running_worker, serving
from tests.support.mosquitto import Broker

SECRET = "offline-door-secret-for-e2e-tests"
OWNER_CARD, NEIGHBOUR_CARD, TENANT_CARD = "04A1B2C3", "0E0E0E0E", "04D0D0D0"


class Clock:
    """The door's clock: real time, or the instant a test sets."""

    def __init__(self) -> None:
        self.at: datetime | None = None

    def __call__(self) -> datetime:
        return self.at or datetime.now(UTC)


@pytest.fixture
def doors() -> Iterator[ExitStack]:
    """Stops every door the test started, whatever happens."""
    with ExitStack() as stack:
        yield stack


class Site:
    def __init__(self, app: Flask, lease_end: datetime) -> None:
        with app.app_context():
            w = factories.world()
            device = db.session.get(Device, w.device_a.id)
            set_secret(device, SECRET)
            owner = factories.person(w.a, "王小明")
            factories.membership(owner, PersonRole.OWNER, unit_of=w.unit_a)
            factories.card(owner, OWNER_CARD)
            neighbour = factories.person(w.a, "赵邻居")
            factories.membership(neighbour, PersonRole.OWNER, unit_of=w.unit_a)
            factories.card(neighbour, NEIGHBOUR_CARD)
            tenant = factories.person(w.a, "李租客")
            factories.membership(tenant, PersonRole.TENANT, unit_of=w.unit_a)
            factories.lease(
                tenant, w.unit_a, starts_at=lease_end - timedelta(days=30), ends_at=lease_end
            )
            factories.card(tenant, TENANT_CARD)
            qr.resident_code(owner)  # the owner's code serial, on the list from the start
            db.session.commit()
            self.community, self.point, self.device = w.a.id, w.door_a.id, device.id
            self.owner, self.neighbour, self.tenant = owner.id, neighbour.id, tenant.id
            self.neighbour_card = db.session.scalar(
                select(Card.id).where(Card.uid == NEIGHBOUR_CARD)
            )
            db.session.remove()


def code_at(app: Flask, person_id: str, at: datetime) -> str:
    """The resident's "scan to open" code for ``at``, as the server makes it for the app."""
    with app.app_context():
        try:
            token, _ends = qr.resident_code(db.session.get(Person, person_id), at)
            return token
        finally:
            db.session.remove()


def stored(app: Flask, device_id: str) -> list[AccessEvent]:
    """The device's offline access events, in the door's order."""
    rows = [
        row
        for (row,) in query(
            app,
            select(AccessEvent).where(
                AccessEvent.device_id == device_id, AccessEvent.offline.is_(True)
            ),
        )
    ]
    return sorted(rows, key=lambda row: row.details["seq"])  # the door's order


def test_a_door_decides_offline_while_the_server_is_stopped_and_each_decision_is_stored_once(
    live_app: Flask, broker: Broker, tmp_path: Path, doors: ExitStack
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    lease_end = now + timedelta(minutes=5)
    site = Site(live_app, lease_end)
    clock = Clock()
    identity = DeviceIdentity(site.device, SECRET, site.community, "A door", site.point)

    def start_door(url: str) -> Door:
        door = Door(
            identity,
            broker.url,
            api=VerifyClient(url, site.device, SECRET, timeout_s=3),
            state_dir=tmp_path / "door",
            clock=clock,
            heartbeat_s=300,
        )
        doors.callback(door.stop)
        door.start()
        return door

    # 1. Everything runs: the door holds its list, and a disabled card leaves it (a delta).
    with running_worker(live_app), serving(live_app) as url:
        door = start_door(url)
        assert door.wait_for(
            lambda: door.held_list is not None and site.tenant in door.held_list.entries, WAIT_S
        ), "the door never held its list"
        held = door.held_list
        assert NEIGHBOUR_CARD in held.entries[site.neighbour].cards
        assert door.key_set is not None
        online = door.present_card(OWNER_CARD)  # the server answers while it runs
        assert online["decision"] == "grant" and not online.get("offline")

        answer = Api(live_app.test_client(), "staff_a").patch(
            f"/cards/{site.neighbour_card}", json={"disabled": True}
        )
        assert answer.status_code == 200, answer.json
        assert door.wait_for(
            lambda: (
                door.held_list.version > held.version
                and NEIGHBOUR_CARD not in door.held_list.entries[site.neighbour].cards
            ),
            WAIT_S,
        ), "the delta never reached the door"
        version = door.held_list.version
        first = now + timedelta(seconds=1)  # the door's instant for the first presentations
        # the code the owner's phone shows then (its 30-second step), made before the outage
        code = code_at(live_app, site.owner, first)

    # 2. The server is stopped (HTTP and worker); the broker stays.
    clock.at = first
    presented = [
        door.present_card(OWNER_CARD),
        door.present_qr_token(code),
        door.present_card(NEIGHBOUR_CARD),
    ]
    clock.at = lease_end - timedelta(seconds=1)
    presented.append(door.present_card(TENANT_CARD))
    clock.at = lease_end
    presented.append(door.present_card(TENANT_CARD))
    clock.at = None

    # 3. Decided from the list, to the second at the lease end.
    assert [(a["decision"], a["reason"], a["offline"]) for a in presented] == [
        ("grant", "resident", True),
        ("grant", "resident", True),
        ("deny", "unknown_card", True),
        ("grant", "tenant", True),
        ("deny", "lease_expired", True),
    ]
    assert all(a["list_version"] == version for a in presented)
    assert door.wait_for(lambda: door.outbox == [], WAIT_S)  # the broker holds them
    assert stored(live_app, site.device) == []  # nobody has ingested them yet

    # 4. The server is back: each decision stored once, as the door decided it.
    with running_worker(live_app) as worker, serving(live_app) as url:
        rows = eventually(lambda: (got := stored(live_app, site.device)) and len(got) >= 5 and got)
        assert rows, "the offline decisions were never stored"
        card, code_, grant, deny = (
            CredentialType.CARD,
            CredentialType.QR,
            Decision.GRANT,
            Decision.DENY,
        )
        assert [
            (r.credential_type, r.decision, r.reason, r.person_id, r.occurred_at) for r in rows
        ] == [
            (card, grant, "resident", site.owner, first),
            (code_, grant, "resident", site.owner, first),
            (card, deny, "unknown_card", None, first),
            (card, grant, "tenant", site.tenant, lease_end - timedelta(seconds=1)),
            (card, deny, "lease_expired", site.tenant, lease_end),
        ]
        assert all(r.details["list_version"] == version for r in rows)
        assert not any("would_refuse" in r.details for r in rows)  # the server agrees

        # The door reconnects and its decisions are published again: nothing doubles.
        sent = [m.encode() for m in door.events if m.type is EventType.OFFLINE_DECISION]
        assert len(sent) == 5
        door.stop()
        door = start_door(url)  # the same state folder: a restart
        assert door.wait_ready(WAIT_S)
        for payload in sent:
            door.bus.publish(door.topics["evt"], payload, qos=1)
        marker = door.exit_request()  # after the copies: once it is in, they are
        assert eventually(
            lambda: query(
                live_app,
                select(DeviceEvent.id).where(
                    DeviceEvent.device_id == site.device, DeviceEvent.seq == marker.seq
                ),
            )
        ), "the door's next event never arrived"
        assert len(stored(live_app, site.device)) == 5
        assert worker.ingest.stats["duplicate_event"] >= 5  # seen again, stored once
        assert worker.ingest.stats["offline_decision"] == 5
