"""``python -m hardware.simulate``: arguments, the typed console, real runs against Mosquitto."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardware.bus import BrokerAddress, MqttBus
from hardware.memory import MemoryBroker, MemoryBus
from hardware.messages import EventMessage
from hardware.protocol import EventType
from hardware.simulate import Door, Fleet, FleetFileError, PanicButton, RfidReader
from hardware.simulate.cli import Console
from hardware.simulate.fleet import parse_fleet
from hardware.topics import device_topic
from tests.hardware.conftest import COMMUNITY, WAIT_S, Inbox, new_identity
from tests.support.mosquitto import Broker

ROOT = Path(__file__).resolve().parents[2]


def simulate(*args: str, **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hardware.simulate", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def run(*args: str, **kwargs) -> tuple[int, str]:
    process = simulate(*args, **kwargs)
    output, _ = process.communicate(timeout=30)
    return process.returncode, output


def test_help() -> None:
    code, output = run("--help")
    assert code == 0
    for kind in ("door", "barrier", "rfid-reader", "panic-button", "fleet"):
        assert kind in output
    code, output = run("door", "--help")
    assert code == 0 and "--device-id" in output and "--heartbeat" in output


@pytest.mark.parametrize("url", ["http://127.0.0.1:1883", "mqtt://", "mqtt://host:99999", "x"])
def test_bad_broker_url_is_a_clear_error(url: str) -> None:
    code, output = run(
        "rfid-reader", "--broker", url, "--community", "c", "--device-id", "d", "--secret", "s"
    )
    assert code == 2
    assert "--broker" in output and "Traceback" not in output


def test_missing_secret_and_bad_fleet_file_are_clear_errors(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GK_DEVICE_SECRET"}
    code, output = run(
        "door", "--broker", "mqtt://127.0.0.1:1", "--community", "c", "--device-id", "d", env=env
    )
    assert code == 2 and "--secret" in output and "Traceback" not in output

    bad = tmp_path / "devices.json"
    bad.write_text(json.dumps([{"kind": "toaster", "device_id": "d", "secret": "s"}]))
    code, output = run("fleet", "--broker", "mqtt://127.0.0.1:1", "--file", str(bad))
    assert code == 2 and "kind must be one of" in output and "Traceback" not in output
    code, output = run("fleet", "--broker", "mqtt://127.0.0.1:1", "--file", str(tmp_path / "no"))
    assert code == 2 and "cannot read" in output


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "non-empty JSON list"),
        ([], "non-empty JSON list"),
        (["door"], "not a JSON object"),
        ([{"kind": "door", "device_id": "d", "secret": "s"}], "community_id"),
        (
            [{"kind": "door", "device_id": "d", "secret": "s", "community_id": "c"}] * 2,
            "appears twice",
        ),
    ],
)
def test_fleet_file_checks(data: object, message: str) -> None:
    with pytest.raises(FleetFileError, match=message):
        parse_fleet(data)


@pytest.fixture
def status_inbox(mosquitto: Broker) -> Iterator[Inbox]:
    inbox = Inbox()
    bus = MqttBus(BrokerAddress.from_url(mosquitto.url), "cli-watcher", clean_start=True)
    bus.subscribe(f"gk/v1/{COMMUNITY}/+/status", inbox)
    bus.start()
    assert bus.wait_subscribed(WAIT_S)
    yield inbox
    bus.stop()


def online(inbox: Inbox, device_id: str) -> list[bool]:
    return [s.online for s in inbox.statuses(device_id)]


def test_rfid_reader_runs_and_stops_cleanly(mosquitto: Broker, status_inbox: Inbox) -> None:
    env = {**os.environ, "GK_DEVICE_SECRET": "from-the-environment"}
    process = simulate(
        "rfid-reader",
        "--broker",
        mosquitto.url,
        "--community",
        COMMUNITY,
        "--device-id",
        "cli_reader",
        env=env,
    )
    try:
        assert status_inbox.wait_for(lambda: online(status_inbox, "cli_reader") == [True])
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Traceback" not in output
    # A clean stop says offline itself before disconnecting.
    assert status_inbox.wait_for(lambda: online(status_inbox, "cli_reader") == [True, False])


def test_fleet_runs_every_device_and_a_killed_fleet_leaves_wills(
    mosquitto: Broker, status_inbox: Inbox, tmp_path: Path
) -> None:
    devices = [
        {"kind": kind, "device_id": f"fleet_{kind}", "secret": "s", "community_id": COMMUNITY}
        for kind in ("door", "barrier", "rfid_reader", "panic_button")
    ]
    devices[0]["name"] = "3号楼1单元"
    devices[0]["access_point"] = "ignored"
    fleet_file = tmp_path / "devices.json"
    fleet_file.write_text(json.dumps(devices, ensure_ascii=False), encoding="utf-8")
    process = simulate("fleet", "--broker", mosquitto.url, "--file", str(fleet_file))
    ids = [d["device_id"] for d in devices]
    try:
        assert status_inbox.wait_for(lambda: all(online(status_inbox, i) == [True] for i in ids))
    finally:
        process.kill()  # SIGKILL: no clean disconnect, so the broker publishes every will
        process.communicate(timeout=30)
    assert status_inbox.wait_for(lambda: all(online(status_inbox, i) == [True, False] for i in ids))


# the typed console ------------------------------------------------------------------------


def console_for(*devices) -> tuple[Console, io.StringIO, threading.Event]:
    out, stop = io.StringIO(), threading.Event()
    return Console({d.device_id: d for d in devices}, stop, out), out, stop


def test_console_drives_a_single_device() -> None:
    broker = MemoryBroker()
    door = Door(new_identity("con_door"), broker)
    door.start()
    console, out, stop = console_for(door)
    for line in ("forced", "held 30000", "tamper", "rex", "opened", "closed", ""):
        console.handle(line)
    assert [e.type for e in door.events] == [
        EventType.DOOR_FORCED,
        EventType.DOOR_HELD_OPEN,
        EventType.TAMPER,
        EventType.EXIT_REQUEST,
        EventType.DOOR_OPENED,
        EventType.DOOR_CLOSED,
    ]
    assert door.events[1].fields == {"open_ms": 30_000}
    console.handle("panic")
    console.handle("held")
    console.handle("held soon")
    console.handle("fly")
    console.handle("card 04A1")  # no --api
    text = out.getvalue()
    assert "sent door_forced seq=" in text
    assert "con_door is a door: it cannot do 'panic'" in text
    assert "usage: held MS" in text
    assert "error: invalid literal" in text
    assert "unknown command" in text
    assert "no API URL configured" in text
    console.handle("help")
    assert "held MS" in out.getvalue() and "tag EPC" not in out.getvalue()
    console.handle("status")
    assert '"device_id": "con_door"' in out.getvalue()
    console.handle("drop")
    assert not door.connected
    console.handle("reconnect")
    assert door.connected
    console.handle("quit")
    assert stop.is_set()
    door.stop()


def test_console_addresses_fleet_devices_by_id() -> None:
    broker = MemoryBroker()
    inbox = Inbox()
    server = MemoryBus(broker, "server")
    server.subscribe(device_topic(COMMUNITY, "+", "evt"), inbox)
    server.start()
    reader, button = (
        RfidReader(new_identity("con_reader"), broker),
        PanicButton(new_identity("con_button"), broker),
    )
    fleet = Fleet([reader, button])
    fleet.start()
    assert fleet.wait_ready(WAIT_S)
    console, out, stop = console_for(reader, button)
    console.handle("tag E200ABCD")
    assert "start the line with a device id" in out.getvalue()
    console.handle("con_reader tag e200abcd -40")
    console.handle("con_button panic")
    console.handle("list")
    assert "con_reader  rfid_reader" in out.getvalue()
    tag, panic = (EventMessage.decode(p) for _, p in inbox.messages)
    assert tag.fields == {"tag": "E200ABCD", "rssi": -40} and panic.type is EventType.PANIC
    console.run(io.StringIO("list\n"))
    assert stop.is_set()  # end of input (Ctrl-D) stops the run
    fleet.stop()


def test_bad_api_url_is_a_clear_error() -> None:
    code, output = run(
        "door",
        "--broker",
        "mqtt://127.0.0.1:1",
        "--community",
        "c",
        "--device-id",
        "d",
        "--secret",
        "s",
        "--api",
        "ftp://x",
    )
    assert code == 2 and "--api" in output and "Traceback" not in output


def test_docs_list_every_console_command() -> None:
    from hardware.simulate.cli import CONSOLE_COMMANDS

    docs = (ROOT / "docs" / "simulators.md").read_text(encoding="utf-8")
    for word in CONSOLE_COMMANDS:
        assert f"`{word}" in docs, word
