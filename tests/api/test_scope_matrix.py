"""Every operation with an id in its path, tried across scope, generated from the OpenAPI
document: a new endpoint is covered the day it is added.

Staff, residents and officers of community A are sent to each operation with the ids of
community B's rows; a resident of A also with the ids of another unit of A. Each answer
must be a 4xx that tells nothing: the same status and problem as for an id that does not
exist at all, and, for the requests a valid body reaches, ``404``. Nothing may change. A
device's credential is not an account: it gets ``401`` on every one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gatekeeper.vocabulary import (
    AlertType,
    CredentialType,
    Decision,
    PersonRole,
    Severity,
)
from hardware.protocol import Command
from server.core import crypto
from server.devices.service import set_secret
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    Alert,
    AntiPassbackPair,
    BlockedPlate,
    Consent,
    CourierCode,
    DeviceCommand,
    DoorMode,
    FaceTemplate,
    Holiday,
    Notification,
    ParkingTicket,
    PatrolRoute,
    PushSubscription,
    RfidTag,
    StrangerCluster,
    UserRole,
    WatchlistEntry,
    Webhook,
    WorkerPermit,
    utcnow,
)
from tests import factories
from tests.factories import Api
from tests.support.api import WorldIds, in_app, snapshot

PARAM = re.compile(r"\{([^}]+)\}")
METHODS = ("get", "post", "patch", "put", "delete")
DOOR_SECRET = "door-secret-for-the-matrix"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # the template, e.g. /api/v1/people/{pid}
    body: dict[str, Any] | None  # the request body's schema (JSON or multipart)
    multipart: bool
    device: bool = False  # a door's own endpoint (deviceAuth), not an account's

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"


def operations(client: FlaskClient) -> list[Operation]:
    spec = client.get("/api/v1/openapi.json").json
    found = []
    for path, item in spec["paths"].items():
        if not PARAM.search(path):
            continue
        for method, operation in item.items():
            if method not in METHODS:
                continue
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            found.append(
                Operation(
                    method,
                    path,
                    _resolve(spec, schema),
                    "multipart/form-data" in content,
                    operation.get("security") == [{"deviceAuth": []}],
                )
            )
    return found


def _resolve(spec: dict[str, Any], schema: dict[str, Any] | None) -> dict[str, Any] | None:
    if schema is None or "$ref" not in schema:
        return schema
    name = schema["$ref"].rsplit("/", 1)[1]
    return _resolve(spec, spec["components"]["schemas"][name])


# Values for properties whose rule the schema states only as a pattern or in the service.
FIELD_VALUES: dict[str, Any] = {
    "uid": "04A1B2C3",
    "epc": "E2000000AB",
    "plate": "浙A12345",
    "url": "https://hooks.example.net/matrix",
    "checkpoint_device_ids": ["dev_01JZZZZZZZZZZZZZZZZZZZZZZZ"],
    "unit_id": "unt_01JZZZZZZZZZZZZZZZZZZZZZZZ",
    "first_day": "2027-02-05",
}
# A photo the upload parsers take as a file (what is in it is judged after scope).
PHOTO = b"\xff\xd8\xff\xe0 not really a jpeg"


def minimal_body(schema: dict[str, Any] | None, *, also: tuple[str, ...] = ()) -> dict[str, Any]:
    """The smallest body the schema takes: each required property (and ``also``, where the
    service requires it) with a plain value."""
    if not schema:
        return {}
    properties = schema.get("properties", {})
    wanted = [*schema.get("required", []), *(name for name in also if name in properties)]
    if not wanted and schema.get("minProperties", 0) > 0 and properties:
        wanted = [next(iter(properties))]  # a PATCH must change something
    return {name: _example(name, properties.get(name, {})) for name in wanted}


def _example(name: str, prop: dict[str, Any]) -> Any:
    if name in FIELD_VALUES:
        return FIELD_VALUES[name]
    if "enum" in prop:
        return prop["enum"][0]
    if prop.get("format") == "binary":
        return (PHOTO, f"{name}.jpg")
    if prop.get("format") == "date-time":
        return (utcnow() + timedelta(hours=1)).isoformat()
    kind = prop.get("type")
    return {"integer": 1, "number": 1, "boolean": False, "array": [], "object": {}}.get(
        kind, "Matrix"
    )


def b_rows(app: Flask, world: WorldIds) -> dict[str, str]:
    """One row of every kind in community B, by the path parameter that names it."""
    with in_app(app):
        b, now = world.b, utcnow()
        person = factories.person(b, "B person")
        factories.membership(person, unit_of=world.unit_b)
        lease = factories.lease(person, world.unit_b)
        card = factories.card(person)
        vehicle = factories.vehicle(person)
        visitor = factories.visitor_pass(world.unit_b, access_points=[world.door_b])
        tag = RfidTag(community_id=b, person_id=person.id, epc="E2000000B")
        worker = factories.person(b, "B worker")
        factories.membership(worker, PersonRole.WORKER)
        permit = WorkerPermit(
            community_id=b,
            person_id=worker.id,
            tag="cleaner",
            valid_from=now - timedelta(days=1),
            valid_until=now + timedelta(days=30),
        )
        face = FaceTemplate(
            community_id=b,
            person_id=person.id,
            template_encrypted=crypto.encrypt(b"\0" * 512),
            model="dlib_resnet_v1",
        )
        event = AccessEvent(
            community_id=b,
            access_point_id=world.door_b,
            device_id=world.device_b,
            credential_type=CredentialType.CARD,
            decision=Decision.DENY,
            reason="unknown_card",
        )
        alert = Alert(
            community_id=b, type=AlertType.PANIC, severity=Severity.HIGH, summary="B alert"
        )
        cluster = StrangerCluster(
            community_id=b,
            centroid_encrypted=crypto.encrypt(b"\0" * 512),
            first_seen_at=now,
            last_seen_at=now,
        )
        entry = WatchlistEntry(
            community_id=b,
            name="B wanted",
            category="wanted",
            template_encrypted=crypto.encrypt(b"\0" * 512),
        )
        command = DeviceCommand(
            community_id=b,
            device_id=world.device_b,
            command=Command.OPEN,
            expires_at=now + timedelta(seconds=10),
        )
        route = PatrolRoute(community_id=b, name="B round", checkpoint_device_ids=[])
        hook = Webhook(
            community_id=b, url="https://hooks.example.net/b", secret_encrypted=crypto.encrypt(b"s")
        )
        blocked = BlockedPlate(community_id=b, plate="沪C88888", reason="Stolen")
        consent = Consent(community_id=b, person_id=person.id, purpose="face", granted_at=now)
        holiday = Holiday(
            community_id=b, name="B 春节", first_day=date(2027, 2, 5), last_day=date(2027, 2, 11)
        )
        holiday.access_points = [db.session.get(AccessPoint, world.door_b)]
        rows = [tag, permit, face, event, alert, cluster, entry, command, route, hook, blocked]
        rows.append(holiday)
        courier = _courier_code(b, world.door_b, world.unit_b)
        rows.append(courier)
        lockdown = DoorMode(
            community_id=b, kind="lockdown", scope="community", reason="B lockdown", started_at=now
        )
        rows.append(lockdown)
        ticket = ParkingTicket(  # a temporary car waiting to pay at B's exit
            community_id=b, plate="沪C12345", status="due", entered_at=now, fee_fen=500
        )
        rows.append(ticket)
        db.session.add_all([*rows, consent])
        pair = AntiPassbackPair(
            community_id=b, name="B gate", entry_point_id=world.door_b, exit_point_id=world.door_b
        )
        db.session.add(pair)
        told = Notification(
            community_id=b, user_id=world.resident_b, kind="lease_ending", params={"date": "x"}
        )
        browser = PushSubscription(
            user_id=world.resident_b, endpoint="https://push.example.net/b", p256dh="k", auth="a"
        )
        db.session.add_all([told, browser])
        call = _intercom_call(b, world.door_b, world.device_b, world.unit_b)
        db.session.commit()
        return {
            "cid": b,
            "bid": world.building_b,
            "uid": world.unit_b,
            "apid": world.door_b,
            "device_id": world.device_b,
            "user_id": world.resident_b,
            "pid": person.id,
            "lid": lease.id,
            "pass_id": visitor.id,
            "credential_id": card.id,  # a card, a car or a tag: each operation names its kind
            "wid": permit.id,
            "fid": face.id,
            "event_id": event.id,
            "alert_id": alert.id,
            "cluster_id": cluster.id,
            "entry_id": entry.id,
            "cmd_id": command.id,
            "route_id": route.id,
            "webhook_id": hook.id,
            "blocked_id": blocked.id,
            "holiday_id": holiday.id,
            "mode_id": lockdown.id,
            "ticket_id": ticket.id,
            "purpose": "face",
            "code_id": courier.id,
            "call_id": call.id,
            "_vehicle": vehicle.id,
            "_tag": tag.id,
            "pair_id": pair.id,
            "notification_id": told.id,
            "subscription_id": browser.id,
        }


def _courier_code(community_id: str, access_point_id: str, unit_id: str) -> CourierCode:
    now = utcnow()
    return CourierCode(
        community_id=community_id,
        access_point_id=access_point_id,
        unit_id=unit_id,
        label="Courier",
        code_hash="0" * 64,
        hint="00",
        valid_from=now,
        valid_until=now + timedelta(hours=1),
    )


def _intercom_call(community_id: str, point_id: str, device_id: str, unit_id: str) -> Any:
    """A door intercom call ringing for ``unit_id`` (added to the session)."""
    from server.models import IntercomCall

    now = utcnow()
    call = IntercomCall(
        community_id=community_id,
        access_point_id=point_id,
        device_id=device_id,
        unit_id=unit_id,
        ring_until=now + timedelta(hours=1),
    )
    db.session.add(call)
    db.session.flush()
    return call


def fill(operation: Operation, ids: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "credential_id" and "/vehicles/" in operation.path:
            return ids["_vehicle"]
        if name == "credential_id" and "/tags/" in operation.path:
            return ids["_tag"]
        assert name in ids, f"no row of community B for {{{name}}} ({operation}): add one"
        return ids[name]

    return PARAM.sub(one, operation.path)


def unknown(ids: dict[str, str]) -> dict[str, str]:
    """Ids of the same kinds that name nothing (the prefix kept, the ULID changed)."""
    return {
        name: value if name == "purpose" else value.split("_", 1)[0] + "_01JZZZZZZZZZZZZZZZZZZZZZZZ"
        for name, value in ids.items()
    }


def send(client: FlaskClient, headers: dict[str, str], operation: Operation, path: str) -> Any:
    method = operation.method.upper()
    if method == "GET" or (operation.body is None and not operation.multipart):
        return client.open(path, method=method, headers=headers)
    also = ("unit_id",) if path.endswith("/leases") else ()
    body = minimal_body(operation.body, also=also)
    if operation.multipart:
        return client.open(path, method=method, data=body, headers=headers)
    return client.open(path, method=method, json=body, headers=headers)


ANY_ID = re.compile(r"\b[a-z]{2,4}_[0-9A-HJKMNP-TV-Z]{26}\b")


def _comparable(answer: Any) -> tuple[int, Any]:
    """Status and problem, ids blanked: a problem may name the id it was asked for."""
    text = ANY_ID.sub("<id>", answer.get_data(as_text=True))
    instance = ANY_ID.sub("<id>", answer.request.path)
    return answer.status_code, text.replace(instance, "<path>")


@pytest.mark.parametrize("username", ["staff_a", "officer_a", "resident_a"])
def test_nothing_of_community_b_is_reachable_from_a(
    app: Flask, client: FlaskClient, world: WorldIds, username: str
) -> None:
    ops = operations(client)
    assert len(ops) >= 60, len(ops)  # the document was read
    ids = b_rows(app, world)
    nothing = unknown(ids)
    headers = Api(client, username).headers
    before = snapshot(app)
    reached_by_body = 0
    for operation in ops:
        answer = send(client, headers, operation, fill(operation, ids))
        control = send(client, headers, operation, fill(operation, nothing))
        where = f"{username}: {operation}"
        assert 400 <= answer.status_code < 500, (where, answer.get_data(as_text=True))
        assert _comparable(answer) == _comparable(control), where
        if answer.status_code == 404:
            reached_by_body += 1

    assert snapshot(app) == before
    # The bodies are good enough that scope, not validation, answers nearly everywhere.
    assert reached_by_body >= len(ops) * 0.9, (reached_by_body, len(ops))


# What a resident may name of their own community, and so must not reach for another unit.
UNIT_PARAMETERS = frozenset(
    {"uid", "pid", "lid", "pass_id", "credential_id", "user_id", "code_id", "call_id"}
)


def neighbour_rows(app: Flask, world: WorldIds) -> dict[str, str]:
    """Unit 102 of A's building: its resident, lease, card, car, pass and account."""
    with in_app(app):
        from server.models import Building

        unit = factories.unit(db.session.get(Building, world.building_a), "102")
        person = factories.person(world.a, "A neighbour")
        factories.membership(person, unit_of=unit)
        lease = factories.lease(person, unit)
        card = factories.card(person)
        vehicle = factories.vehicle(person)
        visitor = factories.visitor_pass(unit, access_points=[world.door_a])
        account = factories.user(UserRole.RESIDENT, unit_of=unit, username="neighbour")
        account.person_id = person.id
        courier = _courier_code(world.a, world.door_a, unit.id)
        db.session.add(courier)
        call = _intercom_call(world.a, world.door_a, world.device_a, unit.id)
        db.session.commit()
        return {
            "code_id": courier.id,
            "call_id": call.id,
            "uid": unit.id,
            "pid": person.id,
            "lid": lease.id,
            "pass_id": visitor.id,
            "credential_id": card.id,
            "user_id": account.id,
            "_vehicle": vehicle.id,
            "_tag": card.id,  # no tag: the card's id stands in, and answers like any stranger's
        }


def test_a_resident_reaches_nothing_of_another_unit(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    ids = neighbour_rows(app, world)
    nothing = unknown(ids)
    headers = Api(client, "resident_a").headers
    before = snapshot(app)
    tried = 0
    for operation in operations(client):
        if not set(PARAM.findall(operation.path)) <= UNIT_PARAMETERS:
            continue
        tried += 1
        answer = send(client, headers, operation, fill(operation, ids))
        control = send(client, headers, operation, fill(operation, nothing))
        assert 400 <= answer.status_code < 500, (str(operation), answer.get_data(as_text=True))
        assert _comparable(answer) == _comparable(control), str(operation)
    assert tried >= 20, tried
    assert snapshot(app) == before


def test_a_devices_credential_is_no_account(
    app: Flask, client: FlaskClient, world: WorldIds
) -> None:
    with in_app(app):
        from server.models import Device

        set_secret(db.session.get(Device, world.device_a), DOOR_SECRET)
        db.session.commit()
    ids = b_rows(app, world)
    headers = {"Authorization": f"Bearer {world.device_a}.{DOOR_SECRET}"}
    before = snapshot(app)
    for operation in operations(client):
        answer = send(client, headers, operation, fill(operation, ids))
        # A door's own endpoints know the door: another community's call is not there (404).
        expected = 404 if operation.device else 401
        assert answer.status_code == expected, (str(operation), answer.get_data(as_text=True))
    assert snapshot(app) == before
