"""``python -m hardware.simulate``: run simulated devices against a real broker until stopped.

One device::

    python -m hardware.simulate door --broker mqtt://127.0.0.1:1883 --community c1 \\
        --device-id dev_door_1 --secret S [--api http://127.0.0.1:8000] [--heartbeat 60]

or a fleet from a JSON file (see ``hardware.simulate.fleet``)::

    python -m hardware.simulate fleet --broker mqtt://127.0.0.1:1883 --file devices.json

Runs until Ctrl-C or SIGTERM, then disconnects cleanly. When stdin is a terminal it
reads one command per line (``help`` lists them).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from gatekeeper.vocabulary import DEVICE_KINDS_WITH_ACCESS_POINT
from hardware.bus import BrokerAddress
from hardware.messages import EventMessage
from hardware.simulate.device import DeviceIdentity, DeviceKind, SimulatedDevice
from hardware.simulate.fleet import Fleet, FleetEntry, FleetFileError, load_fleet_file
from hardware.simulate.verify import VerifyClient, VerifyError

_LOGGER = logging.getLogger(__name__)

SECRET_ENV = "GK_DEVICE_SECRET"  # noqa: S105 (a variable name, not a secret)
KIND_COMMANDS = {
    "door": DeviceKind.DOOR,
    "barrier": DeviceKind.BARRIER,
    "rfid-reader": DeviceKind.RFID_READER,
    "panic-button": DeviceKind.PANIC_BUTTON,
}


def _face_args(args: list[str]) -> tuple[Any, ...]:
    direction = next((a for a in args[1:] if a in ("in", "out")), None)
    depth = next((a for a in args[1:] if a not in ("in", "out")), None)
    return args[0], depth, direction


def _plate_args(args: list[str]) -> tuple[Any, ...]:
    confidence = float(args[1]) if len(args) > 1 else 0.95
    color = args[2] if len(args) > 2 else "blue"
    direction = args[3] if len(args) > 3 else "in"
    snapshot = args[4] if len(args) > 4 else None
    return args[0], confidence, color, direction, snapshot


def _call_args(args: list[str]) -> tuple[Any, ...]:
    """``UNIT [BUILDING [SNAPSHOT]]``; ``-`` for no building (a building's own door)."""
    building = args[1] if len(args) > 1 and args[1] != "-" else None
    return args[0], building, args[2] if len(args) > 2 else None


def _first(args: list[str]) -> tuple[Any, ...]:
    return (args[0],)


def _none(_args: list[str]) -> tuple[Any, ...]:
    return ()


@dataclass(frozen=True)
class ConsoleCommand:
    """One typed command: it calls ``method`` on the device with ``parse(args)``."""

    usage: str
    meaning: str
    method: str
    parse: Callable[[list[str]], tuple[Any, ...]] = _none
    minimum_args: int = 0


CONSOLE_COMMANDS: dict[str, ConsoleCommand] = {
    c.usage.split()[0]: c
    for c in (
        ConsoleCommand("status", "show the device's state", "describe"),
        ConsoleCommand("opened", "door contact opened", "opened"),
        ConsoleCommand("closed", "door contact closed", "closed"),
        ConsoleCommand("forced", "door forced open", "door_forced"),
        ConsoleCommand(
            "held MS", "door held open for MS ms", "door_held_open", lambda a: (int(a[0]),), 1
        ),
        ConsoleCommand("rex", "request-to-exit button pressed", "exit_request"),
        ConsoleCommand("tamper", "enclosure opened", "tamper"),
        ConsoleCommand("panic", "press the panic button", "press"),
        ConsoleCommand(
            "tag EPC [RSSI]",
            "an RFID tag passes the reader",
            "read_tag",
            lambda a: (a[0], int(a[1]) if len(a) > 1 else -50),
            1,
        ),
        ConsoleCommand("card UID", "present an IC card", "present_card", _first, 1),
        ConsoleCommand("qr TOKEN", "present a decoded QR token", "present_qr_token", _first, 1),
        ConsoleCommand("pin CODE", "type a six-digit code on the keypad", "enter_pin", _first, 1),
        ConsoleCommand(
            "qr-offline TOKEN",
            "check a QR token without the server",
            "present_qr_offline",
            _first,
            1,
        ),
        ConsoleCommand(
            "qr-image PATH", "present a camera frame with a QR code", "present_qr_image", _first, 1
        ),
        ConsoleCommand(
            "face IMAGE [DEPTH] [in|out]", "present a face", "present_face", _face_args, 1
        ),
        ConsoleCommand(
            "plate PLATE [CONF [COLOR [in|out [SNAPSHOT]]]]",
            "the camera reads a plate",
            "present_plate",
            _plate_args,
            1,
        ),
        ConsoleCommand(
            "call UNIT [BUILDING [SNAPSHOT]]",
            "a visitor calls a unit on the intercom; waits for the answer",
            "call",
            _call_args,
            1,
        ),
        ConsoleCommand(
            "call-mqtt UNIT [BUILDING [SNAPSHOT]]",
            "the same call as an intercom_call event (the outcome comes as display)",
            "call_over_mqtt",
            _call_args,
            1,
        ),
        ConsoleCommand("drop", "lose the connection (the broker publishes the will)", "kill"),
        ConsoleCommand("reconnect", "connect again after a drop", "start"),
    )
}


class Console:
    """Reads typed commands (one per line) and drives the devices; ``help`` lists them."""

    def __init__(self, devices: dict[str, SimulatedDevice], stop: threading.Event, out: TextIO):
        self.devices = devices
        self.stop = stop
        self.out = out

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def help(self) -> None:
        prefix = "" if len(self.devices) == 1 else "DEVICE_ID "
        self.say(f"commands (each line: {prefix}COMMAND [ARGS]):")
        rows = [
            (c.usage, c.meaning)
            for c in CONSOLE_COMMANDS.values()
            if any(hasattr(d, c.method) for d in self.devices.values())
        ]
        rows += [("list", "the devices"), ("quit", "disconnect cleanly and exit")]
        for usage, meaning in rows:
            self.say(f"  {usage:<48} {meaning}")

    def handle(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        if words[0] in ("quit", "exit"):
            self.stop.set()
            return
        if words[0] in ("help", "?"):
            self.help()
            return
        if words[0] == "list":
            for device in self.devices.values():
                self.say(f"{device.device_id}  {device.kind.value}  {device.identity.name}")
            return
        if words[0] in self.devices:
            device = self.devices[words.pop(0)]
        elif len(self.devices) == 1:
            device = next(iter(self.devices.values()))
        else:
            self.say("start the line with a device id ('list' shows them)")
            return
        if not words or words[0] not in CONSOLE_COMMANDS:
            self.say("unknown command; 'help' lists them")
            return
        command = CONSOLE_COMMANDS[words[0]]
        method = getattr(device, command.method, None)
        if method is None:
            self.say(f"{device.device_id} is a {device.kind.value}: it cannot do '{words[0]}'")
            return
        if len(words) - 1 < command.minimum_args:
            self.say(f"usage: {command.usage}")
            return
        try:
            result = method(*command.parse(words[1:]))
        except (ValueError, RuntimeError, OSError, VerifyError) as error:
            self.say(f"error: {error}")
        else:
            if isinstance(result, EventMessage):
                self.say(f"sent {result.type.value} seq={result.seq}")
            elif isinstance(result, dict):
                self.say(json.dumps(result, ensure_ascii=False))
                screen = getattr(device, "screen", None)  # a barrier: a temporary car's fee
                if screen and "parking" in result:
                    self.say(f"screen: {screen}")

    def run(self, stream: TextIO) -> None:
        for line in stream:
            self.handle(line)
            if self.stop.is_set():
                return
        self.stop.set()  # end of input (Ctrl-D)


def build_parser() -> argparse.ArgumentParser:
    """The command line: one sub-command per device kind, and ``fleet``."""
    parser = argparse.ArgumentParser(
        prog="python -m hardware.simulate",
        description="Simulated gatekeeper devices speaking the device protocol (docs/protocol.md).",
    )
    kinds = parser.add_subparsers(dest="command", required=True, metavar="KIND")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.set_defaults(parser=sub)  # errors then show this kind's usage
        sub.add_argument("--broker", required=True, help="broker URL, mqtt://host:port")
        sub.add_argument("--api", help="server base URL for HTTP verification, http://host:port")
        sub.add_argument(
            "--heartbeat", type=float, default=60.0, help="seconds between heartbeats (60)"
        )
        sub.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (INFO)")
        sub.add_argument(
            "--state-dir",
            help="where doors and barriers keep their allowlist and unsent offline decisions"
            " across restarts (one folder per device inside; default: memory only)",
        )

    for command, kind in KIND_COMMANDS.items():
        sub = kinds.add_parser(command, help=f"one simulated {kind.value.replace('_', ' ')}")
        common(sub)
        sub.add_argument("--community", required=True, help="community id")
        sub.add_argument("--device-id", required=True, help="device id (the MQTT username)")
        sub.add_argument(
            "--secret",
            default=os.environ.get(SECRET_ENV),
            help=f"device secret (default: ${SECRET_ENV})",
        )
        sub.add_argument("--name", default="", help="a label for the logs")
        sub.add_argument("--fw", default=None, help="firmware version to report")
        if kind in DEVICE_KINDS_WITH_ACCESS_POINT:
            sub.add_argument(
                "--access-point",
                help="access point id, to check QR passes and its allowlist offline against",
            )
    fleet = kinds.add_parser("fleet", help="every device of a JSON fleet file, in one process")
    common(fleet)
    fleet.add_argument("--file", required=True, help="the fleet file (a JSON list of devices)")
    return parser


def _entries(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[FleetEntry]:
    if args.command == "fleet":
        try:
            return load_fleet_file(args.file)
        except FleetFileError as error:
            parser.error(str(error))
    if not args.secret:
        parser.error(f"--secret is required (or set ${SECRET_ENV})")
    identity = DeviceIdentity(
        args.device_id,
        args.secret,
        args.community,
        args.name,
        access_point_id=getattr(args, "access_point", None),  # doors and barriers only
    )
    return [FleetEntry(KIND_COMMANDS[args.command], identity)]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the devices until Ctrl-C/SIGTERM/``quit``; the exit status."""
    args = build_parser().parse_args(argv)
    parser: argparse.ArgumentParser = args.parser
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        broker = BrokerAddress.from_url(args.broker)
    except ValueError as error:
        parser.error(f"--broker: {error}")
    if args.api:
        try:
            VerifyClient(args.api, "-", "-")
        except ValueError as error:
            parser.error(f"--api: {error}")
    if not args.heartbeat > 0:
        parser.error("--heartbeat must be a positive number of seconds")
    fleet = Fleet.from_entries(
        _entries(parser, args),
        broker,
        api=args.api,
        heartbeat_s=args.heartbeat,
        state_dir=args.state_dir,
    )
    if getattr(args, "fw", None):
        for device in fleet.devices.values():
            device.fw = args.fw

    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            # ``set`` from another thread: the handler runs on the main thread, which may be
            # inside ``stop.wait`` holding the event's lock (``set`` would wait for it forever).
            signal.signal(signum, lambda *_: threading.Thread(target=stop.set).start())
    fleet.start()
    if sys.stdin is not None and sys.stdin.isatty():
        console = Console(fleet.devices, stop, sys.stdout)
        console.say("type 'help' for commands, 'quit' to stop")
        threading.Thread(target=console.run, args=(sys.stdin,), daemon=True).start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        fleet.stop()
    return 0
