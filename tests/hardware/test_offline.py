"""Offline QR passes on the device side: the key set, the door's own checks, ``pass_used``."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper import passtokens
from gatekeeper.vocabulary import Reason
from hardware.memory import MemoryBroker, MemoryBus, topic_matches
from hardware.messages import (
    EventMessage,
    KeySetMessage,
    PayloadError,
    PublishedKey,
)
from hardware.protocol import EventType
from hardware.simulate import Door, VerifyClient, VerifyError
from hardware.simulate.cli import Console, build_parser
from hardware.simulate.device import DeviceIdentity
from hardware.simulate.fleet import parse_fleet
from hardware.simulate.offline import check_pass_offline
from hardware.topics import SERVER_SUBSCRIPTIONS, keys_topic, parse_device_topic
from tests.hardware.conftest import COMMUNITY, Inbox, new_identity
from tests.support.net import free_port

NOW = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)
POINT = "acp_door"
KEY_ID = 7
SERIAL = b"\x01" * 8
PRIVATE = Ed25519PrivateKey.generate()


def key_set(*keys: tuple[int, Ed25519PrivateKey], community: str = COMMUNITY) -> KeySetMessage:
    return KeySetMessage(
        passtokens.community_tag(community),
        tuple(
            PublishedKey(
                kid,
                passtokens.public_key_bytes(private),
                NOW + timedelta(days=30),
                NOW + timedelta(days=400),
            )
            for kid, private in keys
        ),
        NOW,
    )


KEY_SET = key_set((KEY_ID, PRIVATE))


def token(
    *,
    kind: passtokens.TokenKind = passtokens.TokenKind.PASS,
    key: tuple[int, Ed25519PrivateKey] = (KEY_ID, PRIVATE),
    community: str = COMMUNITY,
    serial: bytes = SERIAL,
    window: tuple[timedelta, timedelta] = (timedelta(hours=-1), timedelta(hours=1)),
    max_uses: int = 1,
    points: tuple[str, ...] = (POINT,),
) -> str:
    claims = passtokens.Claims(
        kind=kind,
        key_id=key[0],
        community_tag=passtokens.community_tag(community),
        serial=serial,
        not_before=NOW + window[0],
        not_after=NOW + window[1],
        max_uses=max_uses,
        access_point_tags=tuple(passtokens.access_point_tag(p) for p in points),
    )
    return passtokens.sign(claims, key[1])


# Payloads and topics --------------------------------------------------------------------


def test_key_set_round_trip() -> None:
    decoded = KeySetMessage.decode(KEY_SET.encode())
    assert decoded == KEY_SET
    wire = json.loads(KEY_SET.encode())
    assert wire["community_tag"] == passtokens.community_tag(COMMUNITY).hex()
    [key] = wire["keys"]
    assert key["kid"] == KEY_ID and key["alg"] == "Ed25519"
    assert len(key["public_key"]) == 43 and "=" not in key["public_key"]  # base64url, no padding
    assert (
        key["verifies_until"].endswith("+00:00") and wire["ts"] == "2026-11-21T08:30:00.000+00:00"
    )


def test_key_set_skips_unknown_algorithms_and_keeps_only_verifying_keys() -> None:
    wire = json.loads(key_set((1, PRIVATE), (2, Ed25519PrivateKey.generate())).encode())
    wire["keys"][1]["alg"] = "ML-DSA-44"  # a later algorithm this door does not know
    wire["keys"].append({"kid": 3, "public_key": wire["keys"][0]["public_key"]})  # no alg
    wire["unknown"] = "ignored"
    decoded = KeySetMessage.decode(json.dumps(wire).encode())
    assert [k.key_id for k in decoded.keys] == [1]
    assert decoded.verifying_keys(NOW) == {1: passtokens.public_key_bytes(PRIVATE)}
    assert decoded.verifying_keys(NOW + timedelta(days=400)) == {}


def _with(**changes: object) -> bytes:
    wire = json.loads(KEY_SET.encode())
    for path, value in changes.items():
        if path.startswith("key_"):
            wire["keys"][0][path[4:]] = value
        else:
            wire[path] = value
    return json.dumps(wire).encode()


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"[]",
        _with(community_tag="xyz"),
        _with(community_tag="00" * 5),
        _with(keys={"kid": 1}),
        _with(keys=["not an object"]),
        _with(key_public_key="AAAA"),  # 3 bytes
        _with(key_public_key="!!" * 22),
        _with(key_kid=70000),
        _with(key_kid=None),
        _with(key_verifies_until="2027-01-01T00:00:00"),  # naive
        _with(ts=None),
    ],
)
def test_bad_key_sets_are_refused(payload: bytes) -> None:
    with pytest.raises(PayloadError):
        KeySetMessage.decode(payload)


def test_pass_used_event_carries_the_token() -> None:
    text = token()
    event = EventMessage(EventType.PASS_USED, 5, NOW, {"token": text, "direction": "in"})
    decoded = EventMessage.decode(event.encode())
    assert decoded.type is EventType.PASS_USED
    assert decoded.fields == {"token": text, "direction": "in"}
    plain = {"type": "pass_used", "seq": 6, "ts": "2026-11-21T08:30:00Z", "token": " AB "}
    assert EventMessage.decode(json.dumps(plain).encode()).fields == {"token": "AB"}


@pytest.mark.parametrize(
    "fields",
    [{}, {"token": ""}, {"token": 12}, {"token": "A" * 300}, {"token": "AB", "direction": "up"}],
)
def test_bad_pass_used_events_are_refused(fields: dict[str, object]) -> None:
    payload = {"type": "pass_used", "seq": 1, "ts": "2026-11-21T08:30:00Z", **fields}
    with pytest.raises(PayloadError):
        EventMessage.decode(json.dumps(payload).encode())


def test_the_keys_topic_is_no_device_topic() -> None:
    topic = keys_topic(COMMUNITY)
    assert topic == f"gk/v1/{COMMUNITY}/keys"
    assert parse_device_topic(topic) is None
    assert not any(topic_matches(f, topic) for f in SERVER_SUBSCRIPTIONS)


# The door's checks ------------------------------------------------------------------------


def _check(text: str, *, keys: KeySetMessage | None = KEY_SET, uses: int = 0, at=NOW):
    """The door's decision when it has already granted ``SERIAL`` ``uses`` times."""
    return check_pass_offline(text, keys, POINT, at, {SERIAL: uses})


def test_a_good_pass_is_granted() -> None:
    decision = _check(token(max_uses=2), uses=1)
    assert decision.granted and decision.reason is Reason.VISITOR_PASS
    assert decision.claims is not None and decision.claims.serial == SERIAL
    assert decision.answer(4000) == {
        "decision": "grant",
        "reason": "visitor_pass",
        "offline": True,
        "subject": {"kind": "visitor"},
        "open_ms": 4000,
    }


FORGER = Ed25519PrivateKey.generate()


@pytest.mark.parametrize(
    ("text", "options", "reason", "detail"),
    [
        (token(), {"keys": None}, Reason.PASS_INVALID, "no key set"),
        ("NOT A CODE", {}, Reason.PASS_INVALID, "malformed"),
        (token(key=(KEY_ID, FORGER)), {}, Reason.PASS_INVALID, "bad_signature"),
        (token(key=(99, PRIVATE)), {}, Reason.PASS_INVALID, "unknown_key"),
        (token(), {"at": NOW + timedelta(days=401)}, Reason.PASS_INVALID, "unknown_key"),
        (
            token(kind=passtokens.TokenKind.RESIDENT_CODE, max_uses=0),
            {},
            Reason.PASS_INVALID,
            "online only",
        ),
        (token(community="c_other"), {}, Reason.PASS_INVALID, "another community"),
        (
            token(window=(timedelta(hours=1), timedelta(hours=2))),
            {},
            Reason.PASS_INVALID,
            "not valid yet",
        ),
        (
            token(window=(timedelta(hours=-2), timedelta(0))),
            {},
            Reason.PASS_EXPIRED,
            "expired",
        ),
        (token(points=("acp_other",)), {}, Reason.NOT_AUTHORIZED_HERE, "not on the pass"),
        (token(), {"uses": 1}, Reason.PASS_USED_UP, "no uses left"),
    ],
)
def test_what_a_door_refuses_offline(
    text: str, options: dict[str, object], reason: Reason, detail: str
) -> None:
    decision = _check(text, **options)
    assert not decision.granted
    assert (decision.reason, detail in decision.detail) == (reason, True), decision
    assert decision.answer(5000) == {
        "decision": "deny",
        "reason": reason.value,
        "offline": True,
        "detail": decision.detail,
    }


def test_a_door_without_its_access_point_refuses() -> None:
    decision = check_pass_offline(token(), KEY_SET, None, NOW, {})
    assert decision.reason is Reason.NOT_AUTHORIZED_HERE


# A simulated door -------------------------------------------------------------------------


@pytest.fixture
def server(memory_server: tuple[MemoryBus, Inbox]) -> tuple[MemoryBus, Inbox]:
    """The server-side twin bus, with community A's key set published."""
    bus, inbox = memory_server
    # Retained, as the server publishes it: a door that connects later still gets it.
    bus.publish(keys_topic(COMMUNITY), KEY_SET.encode(), retain=True)
    return bus, inbox


@pytest.fixture
def door(memory_broker: MemoryBroker, server: tuple[MemoryBus, Inbox]):
    identity = DeviceIdentity("dev_offline", "s" * 20, COMMUNITY, access_point_id=POINT)
    door = Door(identity, memory_broker, clock=lambda: NOW)
    door.start()
    yield door
    door.stop()


def test_door_keeps_the_retained_key_set_and_its_updates(
    door: Door, server: tuple[MemoryBus, Inbox]
) -> None:
    assert door.key_set == KEY_SET
    assert door.describe()["key_ids"] == [KEY_ID]
    bus, _ = server
    newer = key_set((KEY_ID, PRIVATE), (KEY_ID + 1, Ed25519PrivateKey.generate()))
    bus.publish(keys_topic(COMMUNITY), newer.encode(), retain=True)
    assert door.key_set == newer
    bus.publish(keys_topic(COMMUNITY), b"garbage", retain=True)
    assert door.key_set == newer  # a bad message leaves the last good set
    bus.publish(keys_topic("c_other"), key_set(community="c_other").encode(), retain=True)
    assert door.key_set == newer


def test_offline_grant_opens_counts_and_uploads_the_use(
    door: Door, server: tuple[MemoryBus, Inbox]
) -> None:
    _, inbox = server
    text = token(max_uses=1)
    granted = door.present_qr_offline(text)
    assert granted["decision"] == "grant" and granted["offline"] is True
    assert door.unlocked
    [used] = inbox.events(door.device_id)
    assert used.type is EventType.PASS_USED and used.fields == {"token": text}
    assert used.ts == NOW
    assert door.pass_uses == {SERIAL: 1}

    again = door.present_qr_offline(text)
    assert (again["decision"], again["reason"]) == ("deny", "pass_used_up")
    forged = door.present_qr_offline(token(key=(KEY_ID, FORGER), serial=b"\x02" * 8))
    assert (forged["decision"], forged["reason"]) == ("deny", "pass_invalid")
    assert len(inbox.events(door.device_id)) == 1  # refusals upload nothing


def test_uses_granted_while_disconnected_are_uploaded_on_reconnect(
    door: Door, server: tuple[MemoryBus, Inbox]
) -> None:
    _, inbox = server
    door.kill()  # the connection is gone; the key set stays, as in flash
    text = token()
    assert door.present_qr_offline(text)["decision"] == "grant"
    assert inbox.events(door.device_id) == []
    door.start()
    [used] = inbox.events(door.device_id)
    assert used.type is EventType.PASS_USED and used.fields["token"] == text


def test_fleet_file_and_command_line_know_the_access_point() -> None:
    entry = {"kind": "door", "device_id": "d", "secret": "s", "community_id": "c"}
    [parsed] = parse_fleet([{**entry, "access_point_id": POINT}])
    assert parsed.identity.access_point_id == POINT
    assert parse_fleet([entry])[0].identity.access_point_id is None
    with pytest.raises(ValueError, match="access_point_id"):
        parse_fleet([{**entry, "access_point_id": 5}])
    common = ["--broker", "mqtt://h", "--community", "c", "--device-id", "d"]
    args = build_parser().parse_args(["door", *common, "--access-point", POINT])
    assert args.access_point == POINT
    with pytest.raises(SystemExit):  # readers and panic buttons serve no access point
        build_parser().parse_args(["rfid-reader", *common, "--access-point", POINT])


def test_console_checks_a_code_offline(memory_broker: MemoryBroker) -> None:
    door = Door(new_identity("con_offline"), memory_broker)
    door.start()
    out = io.StringIO()
    Console({door.device_id: door}, threading.Event(), out).handle(f"qr-offline {token()}")
    answer = json.loads(out.getvalue())
    assert (answer["reason"], answer["detail"]) == ("pass_invalid", "no key set yet")
    door.stop()


class ScriptedServer(VerifyClient):
    """A verification client whose QR answers are scripted: a decision, or an error."""

    def __init__(self, answer: dict[str, object] | VerifyError):
        super().__init__("http://127.0.0.1:1", "dev_offline", "s")
        self.answer = answer

    def qr_token(self, token: str) -> dict[str, object]:
        if isinstance(self.answer, VerifyError):
            raise self.answer
        return self.answer


def test_a_door_checks_offline_only_when_the_server_does_not_answer(door: Door) -> None:
    nobody = VerifyClient(f"http://127.0.0.1:{free_port()}", "dev_offline", "s", timeout_s=2)
    door.api = nobody
    first = door.present_qr_token(token(serial=b"\x0a" * 8))
    assert (first["decision"], first["offline"]) == ("grant", True)
    door.api = ScriptedServer(VerifyError("POST ... -> 503", status=503))
    assert door.present_qr_token(token(serial=b"\x0b" * 8))["offline"] is True
    assert [e.type for e in door.events] == [EventType.PASS_USED] * 2
    # An answer, even a refusal of the request itself, is the server's: no offline check.
    door.api = ScriptedServer(VerifyError("POST ... -> 401", status=401))
    with pytest.raises(VerifyError):
        door.present_qr_token(token(serial=b"\x0c" * 8))
    assert len(door.events) == 2


def test_online_grants_count_against_the_doors_own_limit(door: Door) -> None:
    text = token(max_uses=1)
    door.api = ScriptedServer({"decision": "grant", "reason": "visitor_pass", "open_ms": 5000})
    assert door.present_qr_token(text)["decision"] == "grant"
    assert door.pass_uses == {SERIAL: 1}
    assert door.present_qr_offline(text)["reason"] == "pass_used_up"
    assert not door.unlocked  # only the server's open command would open it online
