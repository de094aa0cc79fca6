"""The simulated door as the reference client of offline allowlists (docs/protocol.md
section 6, "Allowlists" and "Offline decisions"), against a real Mosquitto."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gatekeeper import allowlist, passtokens
from gatekeeper.offline_rules import Outcome
from hardware.bus import BrokerAddress, MqttBus
from hardware.memory import MemoryBroker
from hardware.messages import KeySetMessage, PublishedKey
from hardware.simulate import Door, VerifyClient, build_device
from hardware.simulate.cli import build_parser
from hardware.simulate.device import DeviceIdentity
from hardware.topics import allowlist_delta_topic, allowlist_topic, device_topic, keys_topic
from tests.hardware.conftest import WAIT_S, Inbox
from tests.support.allowlists import (
    COMMUNITY,
    DEVICE,
    FORGER,
    KID,
    POINT,
    SIGNER,
    delta,
    entry,
    full_list,
    resident_code,
)
from tests.support.mosquitto import Broker
from tests.support.net import free_port

AT = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)  # Monday 15:00 in Shanghai
SERIAL = bytes.fromhex("00112233445566aa")
OWNER = entry("per_owner", cards=["04A1B2C3"], code_serials=[SERIAL.hex()])
NEIGHBOUR = entry("per_neighbour", cards=["0E0E0E0E"])
KEY_SET = KeySetMessage(
    passtokens.community_tag(COMMUNITY),
    (
        PublishedKey(
            KID,
            passtokens.public_key_bytes(SIGNER),
            AT + timedelta(days=30),
            AT + timedelta(days=400),
        ),
    ),
    AT,
)
IDENTITY = DeviceIdentity(DEVICE, "s3cret-" + "x" * 20, COMMUNITY, "1号楼门", POINT)


def nobody() -> VerifyClient:
    """A server that does not answer: a closed loopback port."""
    return VerifyClient(f"http://127.0.0.1:{free_port()}", DEVICE, "secret", timeout_s=2)


def door(broker: str, state: Path, api: VerifyClient | str | None = None) -> Door:
    return Door(
        IDENTITY, broker, api=api or nobody(), state_dir=state, clock=lambda: AT, heartbeat_s=300
    )


class Server:
    """The server's side of the broker: retained key set and lists, deltas, the inbox."""

    def __init__(self, broker: Broker) -> None:
        self.inbox = Inbox()
        self.bus = MqttBus(BrokerAddress.from_url(broker.url), "test-server", clean_start=True)
        self.bus.subscribe(device_topic(COMMUNITY, DEVICE, "evt"), self.inbox)
        self.bus.start()
        assert self.bus.wait_subscribed(WAIT_S)

    def publish(self, topic: str, body: object, *, retain: bool = False) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.bus.publish(topic, payload, qos=1, retain=retain)
        assert self.bus.flush(WAIT_S)

    def full(self, message: dict) -> None:
        self.publish(allowlist_topic(COMMUNITY, DEVICE), message, retain=True)

    def delta(self, message: dict) -> None:
        self.publish(allowlist_delta_topic(COMMUNITY, DEVICE), message)

    def decisions(self) -> list[dict]:
        return [
            body
            for _topic, payload in list(self.inbox.messages)
            if (body := json.loads(payload))["type"] == "offline_decision"
        ]


@pytest.fixture
def mosquitto() -> Iterator[Broker]:
    broker = Broker()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def server(mosquitto: Broker) -> Iterator[Server]:
    server = Server(mosquitto)
    server.publish(keys_topic(COMMUNITY), KEY_SET.encode(), retain=True)
    yield server
    server.bus.stop()


def holds(device: Door, version: int) -> bool:
    return device.wait_for(
        lambda: device.held_list is not None and device.held_list.version == version, WAIT_S
    )


def test_an_offline_door_opens_for_a_listed_card_and_follows_deltas(
    mosquitto: Broker, server: Server, tmp_path: Path
) -> None:
    server.full(full_list(42, [OWNER, NEIGHBOUR]))
    front = door(mosquitto.url, tmp_path)
    front.start()
    try:
        assert holds(front, 42)
        answer = front.present_card("04a1b2c3")
        assert (answer["decision"], answer["reason"], answer["offline"]) == (
            "grant",
            "resident",
            True,
        )
        assert front.unlocked and answer["list_version"] == 42
        server.delta(delta(42, remove=["per_owner"]))
        assert holds(front, 43)
        refused = front.present_card("04A1B2C3")
        assert (refused["decision"], refused["reason"]) == ("deny", "unknown_card")
        # a replayed delta changes nothing
        server.delta(delta(42, upsert=[OWNER]))
        assert front.wait_for(lambda: front.allowlist_log[-1].outcome is Outcome.IGNORED, WAIT_S)
        assert front.present_card("04A1B2C3")["reason"] == "unknown_card"
        # each decision went up as an offline_decision event, in order
        assert server.inbox.wait_for(lambda: len(server.decisions()) == 3)
        granted, denied, replayed = server.decisions()
        assert granted["seq"] < denied["seq"] < replayed["seq"]
        assert {k: granted[k] for k in ("credential", "card", "pid", "decision", "reason")} == {
            "credential": "card",
            "card": "04A1B2C3",
            "pid": "per_owner",
            "decision": "grant",
            "reason": "resident",
        }
        assert granted["list_version"] == 42 and granted["ts"] == "2026-12-07T07:00:00.000+00:00"
        assert "pid" not in denied and denied["list_version"] == 43  # null: left out
        assert front.wait_for(lambda: front.outbox == [], WAIT_S)
    finally:
        front.stop()


def test_a_forged_list_is_refused_and_the_door_keeps_its_own(
    mosquitto: Broker, server: Server, tmp_path: Path
) -> None:
    server.full(full_list(42, [OWNER]))
    front = door(mosquitto.url, tmp_path)
    front.start()
    try:
        assert holds(front, 42)
        server.full(full_list(50, [entry("per_thief", cards=["BADC0DE0"])], key=FORGER))
        assert front.wait_for(lambda: front.allowlist_log[-1].outcome is Outcome.REFUSED, WAIT_S)
        assert front.held_list.version == 42
        assert front.present_card("BADC0DE0")["reason"] == "unknown_card"
        assert not front.unlocked
        # a gap is noticed (and the full list asked for; nobody answers here)
        server.delta(delta(44, upsert=[entry("per_late", cards=["0F0F"])]))
        assert front.wait_for(lambda: front.allowlist_log[-1].outcome is Outcome.GAP, WAIT_S)
        assert front.present_card("0F0F")["reason"] == "unknown_card"
    finally:
        front.stop()


def test_the_list_survives_a_restart_and_decisions_wait_for_the_broker(
    mosquitto: Broker, server: Server, tmp_path: Path
) -> None:
    first = door(mosquitto.url, tmp_path)
    first.start()
    assert first.wait_ready(WAIT_S)
    # the server sealed the faces to the key the door registered
    public = first.face_key.public_key().public_bytes_raw()
    sealer = allowlist.FaceSealer(public, DEVICE)
    face = [(i % 13) / 30 for i in range(128)]
    sealed = sealer.seal("per_owner", allowlist.pack_template(face))
    server.full(full_list(42, [{**OWNER, "faces": [sealed]}, NEIGHBOUR], enc=sealer.enc))
    assert holds(first, 42)
    first.stop()

    # Power comes back while the broker cannot be reached: the list and the key are on disk.
    unreachable = f"mqtt://127.0.0.1:{free_port()}"
    second = door(unreachable, tmp_path)
    second.start()
    try:
        assert second.held_list is not None and second.held_list.version == 42
        photo = tmp_path / "face.jpg"
        photo.write_bytes(b"\xff\xd8\xff\xe0 a frame")
        tag = passtokens.community_tag(COMMUNITY)
        code = resident_code(SERIAL, AT - timedelta(seconds=5), AT + timedelta(seconds=25))
        answers = [
            second.present_card("04A1B2C3"),
            second.present_card("DEADBEEF"),
            second.present_qr_token(code),
            second.present_face(photo, direction="in", template=face),
        ]
        assert [(a["decision"], a["reason"]) for a in answers] == [
            ("grant", "resident"),
            ("deny", "unknown_card"),
            ("grant", "resident"),
            ("grant", "resident"),
        ]
        assert tag == second.key_set.community_tag  # the key set came back from disk too
        assert len(second.outbox) == 4 and server.decisions() == []
    finally:
        second.stop()

    third = door(mosquitto.url, tmp_path)
    third.start()
    try:
        assert third.wait_for(lambda: third.outbox == [], WAIT_S)
        # one event after the queue: once it is in, everything before it is
        marker = third.exit_request()
        assert server.inbox.wait_for(
            lambda: any(json.loads(p)["seq"] == marker.seq for _t, p in server.inbox.messages)
        )
        decisions = server.decisions()
        assert [d["reason"] for d in decisions] == ["resident", "unknown_card"] + ["resident"] * 2
        seqs = [d["seq"] for d in decisions]
        assert seqs == sorted(set(seqs)) and len(seqs) == 4  # each once, increasing
        assert [d["credential"] for d in decisions] == ["card", "card", "qr", "face"]
        assert decisions[2]["token"] == code and "card" not in decisions[2]
        assert decisions[3]["direction"] == "in" and decisions[3]["pid"] == "per_owner"
        assert list((tmp_path / "outbox").iterdir()) == []
    finally:
        third.stop()


class CatchUpServer:
    """The HTTP side while the server's database is down: verify answers 503, the catch-up
    and the key registration work."""

    def __init__(self, message: dict) -> None:
        self.message = message
        self.keys: list[str] = []
        self.paths: list[str] = []
        state = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                state.paths.append(self.path)
                self._reply(200, json.dumps(state.message).encode())

            def do_PUT(self) -> None:
                length = int(self.headers["Content-Length"])
                state.keys.append(json.loads(self.rfile.read(length))["public_key"])
                self._reply(204)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                self._reply(503, b'{"title": "unavailable"}')

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_door_registers_its_key_and_catches_up_over_http_then_decides_on_a_5xx(
    mosquitto: Broker, server: Server, tmp_path: Path
) -> None:
    http = CatchUpServer(full_list(7, [OWNER]))
    front = door(mosquitto.url, tmp_path, api=VerifyClient(http.url, DEVICE, "s", timeout_s=5))
    front.start()
    try:
        assert holds(front, 7)
        assert front.wait_for(lambda: len(http.keys) == 1, WAIT_S)
        assert allowlist.unb64(http.keys[0]) == front.face_key.public_key().public_bytes_raw()
        assert http.paths[0] == "/api/v1/devices/me/allowlist"
        answer = front.present_card("04A1B2C3")  # verify/card answers 503
        assert (answer["decision"], answer["offline"]) == ("grant", True)
    finally:
        front.stop()
        http.close()


def test_the_command_line_gives_each_door_its_own_state_folder(tmp_path: Path) -> None:
    where = ["--broker", "mqtt://127.0.0.1:1", "--community", COMMUNITY, "--device-id", DEVICE]
    args = build_parser().parse_args(
        ["door", *where, "--secret", "s", "--state-dir", str(tmp_path)]
    )
    assert args.state_dir == str(tmp_path)
    broker = MemoryBroker()
    built = build_device("door", IDENTITY, broker, state_dir=args.state_dir)
    assert isinstance(built, Door) and built.state_dir == tmp_path / DEVICE
    assert (tmp_path / DEVICE / "allowlist_key").exists()  # the face terminal's key, kept
    reader = build_device("rfid_reader", IDENTITY, broker, state_dir=args.state_dir)
    assert not hasattr(reader, "state_dir")
