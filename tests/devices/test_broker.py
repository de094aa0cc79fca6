"""The broker's accounts and ACL: rendered files, and a real Mosquitto kept in step by the API.

The app in this module is a second one on the session's test database, configured with
``MQTT_BROKER_DIR``/``MQTT_BROKER_PIDFILE`` of a Mosquitto started here, so every device
change made through the API reaches the running broker by files and SIGHUP.

Mosquitto drops a message a client may not read without telling anyone, so "nothing
arrived" is proven with a sentinel: an allowed message sent after the forbidden one on
the same connection. Once the sentinel is in, the forbidden one would have been too.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import queue
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from hardware.broker import (
    AccountKind,
    BrokerAccount,
    mosquitto_config,
    mosquitto_password_hash,
    reload_broker,
    render_acl_file,
    render_password_file,
    write_broker_files,
)
from hardware.topics import (
    alerts_topic,
    allowlist_delta_topic,
    allowlist_topic,
    device_topic,
    keys_topic,
    officer_dispatch_topic,
)
from server import create_app, launcher
from server.devices.broker_sync import accounts_from_db, sync_broker
from server.extensions import db
from server.models import Community, Device, User, UserRole, utcnow
from tests import factories
from tests.conftest import app_environment
from tests.factories import Api
from tests.support.api import WorldIds, assert_problem, build_world, in_app
from tests.support.mosquitto import Broker
from tests.support.mqtt_listener import stop_client

WAIT_S = 10.0  # upper bound of every wait; nothing here asserts on timing
SERVER_USER = "gatekeeper-server"
SERVER_PASSWORD = "server-password-for-tests"
_client_ids = itertools.count(1)


# Rendered files -------------------------------------------------------------------------


def _hash(secret: str) -> str:
    return mosquitto_password_hash(secret, salt=b"fixed-salt12")


def test_device_acl_is_exactly_its_own_topics() -> None:
    device = BrokerAccount.device("dev_1", _hash("s"), "com_a")
    acl = render_acl_file([device])
    block = acl[acl.index("user dev_1") :].strip().splitlines()
    assert block == [
        "user dev_1",
        "topic read gk/v1/com_a/dev_1/cmd",
        "topic read gk/v1/com_a/keys",
        "topic write gk/v1/com_a/dev_1/ack",
        "topic write gk/v1/com_a/dev_1/evt",
        "topic write gk/v1/com_a/dev_1/status",
        "topic read gk/v1/com_a/dev_1/allowlist",
        "topic read gk/v1/com_a/dev_1/allowlist/delta",
    ]
    assert not any(wildcard in "\n".join(block) for wildcard in "+#")
    # Nothing before the first "user" line: anonymous clients would get no access.
    before = acl[: acl.index("user ")].splitlines()
    assert not [line for line in before if line.startswith(("topic", "pattern"))]


def test_server_and_officer_acl() -> None:
    server = BrokerAccount.server(SERVER_USER, _hash("p"))
    officer = BrokerAccount.officer("officer_a", _hash("o"), ["com_b", "com_a", "com_a"])
    acl = render_acl_file([officer, server])
    assert acl.index("user gatekeeper-server") < acl.index("user officer_a")  # stable order
    server_block = acl[acl.index("user gatekeeper-server") :].split("\n\n")[0].splitlines()
    assert server_block[1:] == [
        "topic read gk/v1/+/+/ack",
        "topic read gk/v1/+/+/evt",
        "topic read gk/v1/+/+/status",
        "topic write gk/v1/+/+/cmd",
        "topic write gk/v1/+/keys",
        "topic readwrite gk/v1/+/alerts",
        "topic readwrite gk/v1/+/officers/+/dispatch",
        "topic write gk/v1/+/+/allowlist",
        "topic write gk/v1/+/+/allowlist/delta",
    ]
    officer_block = acl[acl.index("user officer_a") :].strip().splitlines()
    assert officer_block[1:] == [
        "topic read gk/v1/com_a/alerts",
        "topic read gk/v1/com_b/alerts",
        "topic read gk/v1/com_a/officers/officer_a/dispatch",
        "topic read gk/v1/com_b/officers/officer_a/dispatch",
    ]


def test_password_file_lines() -> None:
    accounts = [
        BrokerAccount.device("dev_1", _hash("one"), "com_a"),
        BrokerAccount.server(SERVER_USER, _hash("p")),
    ]
    lines = [
        line for line in render_password_file(accounts).splitlines() if not line.startswith("#")
    ]
    assert lines == [f"{SERVER_USER}:{_hash('p')}", f"dev_1:{_hash('one')}"]
    assert _hash("one").startswith("$7$101$")


@pytest.mark.parametrize(
    "build",
    [
        lambda: BrokerAccount.device("dev_1/cmd", _hash("s"), "com_a"),
        lambda: BrokerAccount.device("dev_+", _hash("s"), "com_a"),
        lambda: BrokerAccount.device("dev_1", _hash("s"), "#"),
        lambda: BrokerAccount.device("dev_1\ntopic readwrite #", _hash("s"), "com_a"),
        lambda: BrokerAccount.officer("officer", _hash("s"), ["com_a/+"]),
        lambda: BrokerAccount.server("srv:x", _hash("s")),
        lambda: BrokerAccount.server("srv", "plain-text"),
        lambda: BrokerAccount(
            "dev_1", _hash("s"), AccountKind.DEVICE
        ),  # a device without community
    ],
)
def test_unsafe_accounts_are_refused(build: Any) -> None:
    with pytest.raises(ValueError):
        build()


def test_a_username_used_twice_is_refused() -> None:
    twice = [
        BrokerAccount.device("dev_1", _hash("s"), "com_a"),
        BrokerAccount.officer("dev_1", _hash("o"), ["com_a"]),
    ]
    with pytest.raises(ValueError, match="dev_1"):
        render_acl_file(twice)


def test_write_broker_files(tmp_path: Path) -> None:
    accounts = [
        BrokerAccount.device("dev_1", _hash("s"), "com_a"),
        BrokerAccount.server(SERVER_USER, _hash("p")),
    ]
    written = write_broker_files(tmp_path / "files", lambda: accounts)
    assert written.counts == {"device": 1, "server": 1}
    assert "1 device, 1 server, 0 officer" in written.summary()
    # The device listener's file knows no server account, the server listener's no device.
    assert written.password_file.read_text() == render_password_file(accounts[:1])
    assert written.server_password_file.read_text() == render_password_file(accounts[1:])
    assert written.acl_file.read_text() == render_acl_file(accounts)
    for path in (written.password_file, written.server_password_file, written.acl_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # An operator's chmod g+r is kept across rewrites; no temporary file is left behind.
    written.acl_file.chmod(0o640)
    write_broker_files(tmp_path / "files", accounts[:1])
    assert stat.S_IMODE(written.acl_file.stat().st_mode) == 0o640
    assert sorted(p.name for p in (tmp_path / "files").iterdir()) == [
        ".lock",
        "acl",
        "passwd",
        "passwd-server",
    ]
    assert "dev_1" in written.acl_file.read_text()
    assert SERVER_USER not in written.password_file.read_text()


def test_mosquitto_config_text(tmp_path: Path) -> None:
    text = mosquitto_config(
        "0.0.0.0",  # noqa: S104 (a config text, nothing listens)
        1884,
        tmp_path / "f",
        tmp_path / "p",
        server_port=1885,
        pid_file=tmp_path / "m.pid",
        user="me",
    )
    lines = text.splitlines()
    for expected in (
        "per_listener_settings true",
        "persistence true",
        f"persistence_location {tmp_path / 'p'}/",
        f"pid_file {tmp_path / 'm.pid'}",
        "user me",
    ):
        assert expected in lines, expected
    devices = lines[lines.index("listener 1884 0.0.0.0") :]
    devices = devices[: devices.index("")]
    assert devices[1:] == [
        "allow_anonymous false",
        "use_username_as_clientid true",
        f"password_file {tmp_path / 'f' / 'passwd'}",
        f"acl_file {tmp_path / 'f' / 'acl'}",
    ]
    server = lines[lines.index("listener 1885 127.0.0.1") :]
    assert server[1:] == [
        "allow_anonymous false",
        f"password_file {tmp_path / 'f' / 'passwd-server'}",
        f"acl_file {tmp_path / 'f' / 'acl'}",
    ]
    assert "allow_anonymous true" not in text


def test_reload_without_a_broker_warns_and_answers_false(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hardware.broker")
    assert reload_broker(tmp_path / "missing.pid") is False
    garbage = tmp_path / "garbage.pid"
    garbage.write_text("not a pid\n")
    assert reload_broker(garbage) is False
    # A stale pid file whose number now belongs to another program: never signalled.
    ours = tmp_path / "ours.pid"
    ours.write_text(f"{os.getpid()}\n")
    assert reload_broker(ours) is False
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 3


def test_launcher_helpers(tmp_path: Path) -> None:
    password = launcher.server_password(tmp_path)
    assert launcher.server_password(tmp_path) == password  # generated once
    assert stat.S_IMODE((tmp_path / "server_password").stat().st_mode) == 0o600
    config = launcher.local_broker_config(tmp_path, 1999, 2000).splitlines()
    assert "allow_anonymous false" in config and f"pid_file {tmp_path}/mosquitto.pid" in config
    assert any(line.startswith("user ") for line in config)
    assert launcher.without_password("mqtt://u:secret@h:1") == "mqtt://u:***@h:1"
    assert launcher.without_password("mqtt://h:1") == "mqtt://h:1"


# A real broker ----------------------------------------------------------------------------


class Probe:
    """A paho MQTT 5 client that records its CONNACK, messages and disconnection."""

    def __init__(self, port: int, username: str, password: str, *, client_id: str | None = None):
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"probe-{os.getpid()}-{next(_client_ids)}",
            protocol=mqtt.MQTTv5,
        )
        self.client.username_pw_set(username, password)
        self.port = port
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.disconnected = threading.Event()
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self.connack.put(reason)
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, m.payload))
        self.client.on_subscribe = lambda _c, _u, _m, reasons, _p: self.subacks.put(reasons)
        self.client.on_disconnect = lambda *_args: self.disconnected.set()

    def connect(self, *, persistent: bool = False) -> ReasonCode:
        """Connect and answer the CONNACK's reason; a refused probe stops retrying."""
        properties = None
        if persistent:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600
        self.disconnected.clear()
        self.client.connect(
            "127.0.0.1", self.port, clean_start=not persistent, properties=properties
        )
        self.client.loop_start()
        reason = self.connack.get(timeout=WAIT_S)
        if reason.is_failure:
            self.close()
        return reason

    def subscribe(self, *topics: str) -> list[ReasonCode]:
        self.client.subscribe([(topic, 1) for topic in topics])
        return self.subacks.get(timeout=WAIT_S)

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=WAIT_S)
        assert info.is_published()

    def receive_until(self, topic: str, payload: bytes | None = None) -> list[tuple[str, bytes]]:
        """Messages received up to and including the first on ``topic`` (with ``payload``)."""
        seen = []
        while True:
            try:
                message = self.messages.get(timeout=WAIT_S)
            except queue.Empty:
                raise AssertionError(f"nothing on {topic} within {WAIT_S} s; got {seen}") from None
            seen.append(message)
            if message[0] == topic and payload in (None, message[1]):
                return seen

    def close(self) -> None:
        stop_client(self.client)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker(directory=tmp_path_factory.mktemp("broker-files"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def broker_app(app: Flask, workdir: Path, database_url: str, broker: Broker) -> Flask:
    """A second app on the test database that manages ``broker`` (the session app migrated it)."""
    return create_app(
        app_environment(
            workdir,
            database_url,
            MQTT_URL=broker.server_url(SERVER_USER, SERVER_PASSWORD),
            MQTT_BROKER_DIR=str(broker.directory),
            MQTT_BROKER_PIDFILE=str(broker.pidfile),
        )
    )


@pytest.fixture
def synced_world(app: Flask, broker_app: Flask) -> WorldIds:
    """The shared ``world``, made through ``broker_app`` and already in the broker's accounts."""
    ids = build_world(broker_app)
    with in_app(broker_app):
        assert sync_broker(broker_app)  # world() writes rows directly, not through the API
    return ids


@pytest.fixture
def api_client(broker_app: Flask) -> FlaskClient:
    return broker_app.test_client()


@pytest.fixture
def probes(broker: Broker) -> Iterator[Any]:
    """``probes(username, password)`` makes a probe that is closed after the test."""
    made: list[Probe] = []

    def make(username: str, password: str, *, port: int | None = None, **kwargs: Any) -> Probe:
        probe = Probe(port or broker.port, username, password, **kwargs)
        made.append(probe)
        return probe

    yield make
    for probe in made:
        probe.close()


@pytest.fixture
def server(probes: Any, broker: Broker) -> Probe:
    """The server's own account, connected on the server's listener."""
    probe = probes(SERVER_USER, SERVER_PASSWORD, port=broker.server_port)
    assert not probe.connect().is_failure
    return probe


def _provision(api: Api, synced_world: WorldIds, community: str = "a") -> dict[str, Any]:
    door = synced_world.door_a if community == "a" else synced_world.door_b
    answer = api.post(
        f"/communities/{getattr(synced_world, community)}/devices",
        json={"name": f"Door {next(_client_ids)}", "kind": "door", "access_point_id": door},
    )
    assert answer.status_code == 201, answer.json
    return answer.json


def _topic(device: dict[str, Any], suffix: str) -> str:
    return device_topic(device["community_id"], device["id"], suffix)


def test_provisioned_device_can_connect_without_restart(
    synced_world: WorldIds, api_client: FlaskClient, broker: Broker, server: Probe, probes: Any
) -> None:
    pid = broker.process.pid
    device = _provision(Api(api_client, "staff_a"), synced_world)
    probe = probes(device["id"], device["secret"])
    assert not probe.connect().is_failure, broker.log
    assert broker.process.pid == pid  # reloaded, not restarted

    server.subscribe(_topic(device, "evt"))
    probe.publish(_topic(device, "evt"), b'{"type": "heartbeat", "seq": 1}')
    assert server.receive_until(_topic(device, "evt"))[-1][1].startswith(b'{"type"')
    probe.subscribe(_topic(device, "cmd"))
    server.publish(_topic(device, "cmd"), b'{"cmd": "open"}')
    assert probe.receive_until(_topic(device, "cmd")) == [
        (_topic(device, "cmd"), b'{"cmd": "open"}')
    ]


def test_anonymous_and_wrong_password_are_refused(
    synced_world: WorldIds, api_client: FlaskClient, probes: Any, broker: Broker
) -> None:
    device = _provision(Api(api_client, "staff_a"), synced_world)
    assert probes(device["id"], "not-the-secret").connect().is_failure
    assert probes(device["id"], "").connect().is_failure
    anonymous = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    refused: queue.Queue[ReasonCode] = queue.Queue()
    anonymous.on_connect = lambda _c, _u, _f, reason, _p: refused.put(reason)
    anonymous.connect("127.0.0.1", broker.port)
    anonymous.loop_start()
    try:
        assert refused.get(timeout=WAIT_S).is_failure
    finally:
        stop_client(anonymous)


def test_a_device_cannot_read_or_write_another_devices_topics(
    synced_world: WorldIds, api_client: FlaskClient, server: Probe, probes: Any
) -> None:
    api = Api(api_client, "staff_a")
    mine, other = _provision(api, synced_world), _provision(api, synced_world)
    elsewhere = _provision(Api(api_client, "staff_b"), synced_world, "b")
    intruder = probes(mine["id"], mine["secret"])
    victim = probes(other["id"], other["secret"])
    assert not intruder.connect().is_failure and not victim.connect().is_failure
    victim.subscribe(_topic(other, "cmd"))
    server.subscribe("gk/v1/+/+/evt", "gk/v1/+/+/status")

    # Subscribing is acknowledged (Mosquitto filters at delivery), but nothing comes through.
    intruder.subscribe(
        _topic(mine, "cmd"), _topic(other, "cmd"), _topic(elsewhere, "cmd"), "gk/v1/#"
    )
    server.publish(_topic(other, "cmd"), b"for the victim")
    server.publish(_topic(elsewhere, "cmd"), b"for another community")
    server.publish(_topic(mine, "cmd"), b"sentinel")
    # Overlapping subscriptions may deliver the sentinel more than once; nothing else comes.
    assert set(intruder.receive_until(_topic(mine, "cmd"))) == {(_topic(mine, "cmd"), b"sentinel")}
    assert victim.receive_until(_topic(other, "cmd"))[-1][1] == b"for the victim"

    # Publishing as another device, or to a command topic, never reaches the server.
    intruder.publish(_topic(other, "evt"), b"forged event")
    intruder.publish(_topic(other, "status"), b"forged status")
    intruder.publish(_topic(elsewhere, "evt"), b"forged elsewhere")
    intruder.publish(_topic(other, "cmd"), b"forged command")
    intruder.publish(_topic(mine, "evt"), b"sentinel")
    assert server.receive_until(_topic(mine, "evt")) == [(_topic(mine, "evt"), b"sentinel")]
    # The forged command was acknowledged (so routed) before this one was sent.
    server.publish(_topic(other, "cmd"), b"sentinel")
    assert victim.receive_until(_topic(other, "cmd")) == [(_topic(other, "cmd"), b"sentinel")]


def test_devices_read_only_their_own_communitys_key_set(
    synced_world: WorldIds, api_client: FlaskClient, server: Probe, probes: Any
) -> None:
    mine = _provision(Api(api_client, "staff_a"), synced_world)
    neighbour = _provision(Api(api_client, "staff_a"), synced_world)
    elsewhere = _provision(Api(api_client, "staff_b"), synced_world, "b")
    keys_a, keys_b = keys_topic(synced_world.a), keys_topic(synced_world.b)
    # Retained, as the worker publishes them: doors that connect later still get them.
    server.client.publish(keys_b, b"keys of b", qos=1, retain=True).wait_for_publish(WAIT_S)
    server.client.publish(keys_a, b"keys of a", qos=1, retain=True).wait_for_publish(WAIT_S)

    door = probes(mine["id"], mine["secret"])
    assert not door.connect().is_failure
    door.subscribe(keys_b, "gk/v1/#")
    door.subscribe(keys_a)  # its retained copy comes after anything the first ones let in
    assert {m for m in door.receive_until(keys_a)} == {(keys_a, b"keys of a")}
    other = probes(elsewhere["id"], elsewhere["secret"])
    assert not other.connect().is_failure
    other.subscribe(keys_b)
    assert other.receive_until(keys_b) == [(keys_b, b"keys of b")]

    # Live updates reach the right community only; devices cannot publish a key set.
    server.publish(keys_b, b"new keys of b")
    forger = probes(neighbour["id"], neighbour["secret"])
    assert not forger.connect().is_failure
    forger.publish(keys_a, b"forged keys")
    server.publish(keys_a, b"sentinel")
    heard = door.receive_until(keys_a, b"sentinel")
    # (Its overlapping subscriptions may still deliver the retained copy a second time.)
    assert set(heard) <= {(keys_a, b"keys of a"), (keys_a, b"sentinel")}, heard

    # Officers do not read key sets.
    answer = Api(api_client, "officer_a").post(f"/users/{synced_world.officer_a}/mqtt-credentials")
    assert answer.status_code == 200, answer.json
    officer = probes(answer.json["username"], answer.json["password"])
    assert not officer.connect().is_failure
    officer.subscribe(keys_a, alerts_topic(synced_world.a))
    server.publish(alerts_topic(synced_world.a), b"sentinel")
    assert officer.receive_until(alerts_topic(synced_world.a)) == [
        (alerts_topic(synced_world.a), b"sentinel")
    ]


def test_a_device_reads_only_its_own_allowlist(
    synced_world: WorldIds, api_client: FlaskClient, server: Probe, probes: Any
) -> None:
    """Each device reads its own retained list and deltas; another device, of the same
    access point or another community's, reads neither, and no device may write them."""
    mine = _provision(Api(api_client, "staff_a"), synced_world)
    neighbour = _provision(Api(api_client, "staff_a"), synced_world)
    elsewhere = _provision(Api(api_client, "staff_b"), synced_world, "b")
    full = allowlist_topic(mine["community_id"], mine["id"])
    delta = allowlist_delta_topic(mine["community_id"], mine["id"])
    server.client.publish(full, b"list of mine", qos=1, retain=True).wait_for_publish(WAIT_S)

    door = probes(mine["id"], mine["secret"])
    assert not door.connect().is_failure
    door.subscribe(full, delta)
    assert door.receive_until(full) == [(full, b"list of mine")]
    snoopers = [probes(d["id"], d["secret"]) for d in (neighbour, elsewhere)]
    for snooper, device in zip(snoopers, (neighbour, elsewhere), strict=True):
        assert not snooper.connect().is_failure
        own = allowlist_topic(device["community_id"], device["id"])
        snooper.subscribe(full, delta, "gk/v1/#")
        snooper.subscribe(own)
        server.publish(delta, b"delta of mine")
        server.publish(own, b"sentinel")
        assert set(snooper.receive_until(own, b"sentinel")) == {(own, b"sentinel")}
    # A device cannot forge a list, not even its own.
    snoopers[0].publish(full, b"forged list")
    door.publish(delta, b"forged delta")
    server.publish(delta, b"sentinel")
    heard = door.receive_until(delta, b"sentinel")
    assert (full, b"forged list") not in heard and (delta, b"forged delta") not in heard
    assert (delta, b"delta of mine") in heard


def test_rotating_the_secret_retires_the_old_one(
    synced_world: WorldIds, api_client: FlaskClient, probes: Any
) -> None:
    api = Api(api_client, "staff_a")
    device = _provision(api, synced_world)
    live = probes(device["id"], device["secret"])
    assert not live.connect().is_failure
    rotated = api.post(f"/devices/{device['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.json
    assert live.disconnected.wait(WAIT_S)  # a session made with the old secret is cut
    live.close()
    assert probes(device["id"], device["secret"]).connect().is_failure
    assert not probes(device["id"], rotated.json["secret"]).connect().is_failure


def test_disabling_cuts_the_connection_and_enabling_restores_it(
    synced_world: WorldIds, api_client: FlaskClient, probes: Any
) -> None:
    api = Api(api_client, "staff_a")
    device = _provision(api, synced_world)
    live = probes(device["id"], device["secret"])
    assert not live.connect().is_failure
    answer = api.patch(f"/devices/{device['id']}", json={"disabled": True})
    assert answer.status_code == 200, answer.json
    assert live.disconnected.wait(WAIT_S)
    live.close()
    assert probes(device["id"], device["secret"]).connect().is_failure

    assert api.patch(f"/devices/{device['id']}", json={"disabled": False}).status_code == 200
    assert not probes(device["id"], device["secret"]).connect().is_failure


def test_accounts_from_db(synced_world: WorldIds, broker_app: Flask) -> None:
    with in_app(broker_app):
        db.session.get(Device, synced_world.device_b).disabled_at = utcnow()
        officer = db.session.get(User, synced_world.officer_a)
        officer.mqtt_password_hash = _hash("officer")
        # A name the ACL cannot hold (not creatable through the API) is left out, alone.
        odd = factories.user(UserRole.OFFICER, username="odd name")
        odd.mqtt_password_hash = _hash("odd")
        db.session.commit()
        accounts = {a.username: a for a in accounts_from_db()}
    assert set(accounts) == {SERVER_USER, synced_world.device_a, "officer_a"}
    assert accounts[synced_world.device_a].community_id == synced_world.a
    assert accounts["officer_a"].community_ids == (synced_world.a,)
    assert accounts[SERVER_USER].kind is AccountKind.SERVER


def test_sync_never_raises_when_the_broker_is_away(
    synced_world: WorldIds, broker_app: Flask, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = broker_app.config["SETTINGS"]
    no_broker = dataclasses.replace(
        settings, mqtt_broker_dir=tmp_path / "files", mqtt_broker_pidfile=tmp_path / "gone.pid"
    )
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    unwritable = dataclasses.replace(settings, mqtt_broker_dir=blocker / "files")
    with in_app(broker_app):
        assert sync_broker(no_broker) is True  # written; the reload is only logged
        assert synced_world.device_a in (tmp_path / "files" / "acl").read_text()
        assert sync_broker(unwritable) is False
    assert any("gone.pid" in r.getMessage() for r in caplog.records)


def test_officer_reads_only_its_communities_alerts(
    synced_world: WorldIds, api_client: FlaskClient, server: Probe, probes: Any
) -> None:
    answer = Api(api_client, "officer_a").post(f"/users/{synced_world.officer_a}/mqtt-credentials")
    assert answer.status_code == 200, answer.json
    credentials = answer.json
    assert credentials["username"] == "officer_a"
    assert credentials["topics"] == [
        alerts_topic(synced_world.a),
        officer_dispatch_topic(synced_world.a, "officer_a"),
    ]
    officer = probes(credentials["username"], credentials["password"])
    assert not officer.connect().is_failure
    officer.subscribe(alerts_topic(synced_world.a), alerts_topic(synced_world.b), "gk/v1/#")
    server.publish(alerts_topic(synced_world.b), b'{"community": "b"}')
    server.publish(device_topic(synced_world.a, synced_world.device_a, "cmd"), b'{"cmd": "open"}')
    server.publish(alerts_topic(synced_world.a), b'{"community": "a"}')
    assert officer.receive_until(alerts_topic(synced_world.a)) == [
        (alerts_topic(synced_world.a), b'{"community": "a"}')
    ]
    # Officers only listen.
    server.subscribe(alerts_topic(synced_world.a))
    officer.publish(alerts_topic(synced_world.a), b"forged")
    server.publish(alerts_topic(synced_world.a), b"sentinel")
    assert server.receive_until(alerts_topic(synced_world.a)) == [
        (alerts_topic(synced_world.a), b"sentinel")
    ]
    # (The officer's overlapping subscriptions deliver each allowed message twice.)
    heard = officer.receive_until(alerts_topic(synced_world.a), b"sentinel")
    assert {payload for _topic, payload in heard} <= {b'{"community": "a"}', b"sentinel"}
    # A new password retires the old one.
    again = Api(api_client, "admin").post(f"/users/{synced_world.officer_a}/mqtt-credentials")
    assert again.status_code == 200, again.json
    assert officer.disconnected.wait(WAIT_S)
    assert probes("officer_a", credentials["password"]).connect().is_failure
    assert not probes("officer_a", again.json["password"]).connect().is_failure


def test_disabling_an_officer_removes_its_broker_account(
    synced_world: WorldIds, api_client: FlaskClient, probes: Any
) -> None:
    credentials = Api(api_client, "admin").post(f"/users/{synced_world.officer_a}/mqtt-credentials")
    assert credentials.status_code == 200, credentials.json
    live = probes("officer_a", credentials.json["password"])
    assert not live.connect().is_failure
    answer = Api(api_client, "admin").patch(
        f"/users/{synced_world.officer_a}", json={"disabled": True}
    )
    assert answer.status_code == 200, answer.json
    assert live.disconnected.wait(WAIT_S)


@pytest.mark.parametrize(
    ("caller", "target", "status"),
    [
        ("staff_a", "{officer_a}", 403),  # visible in their community, but not theirs to change
        ("staff_b", "{officer_a}", 404),
        ("resident_a", "{officer_a}", 404),
        ("officer_a", "{staff_a}", 404),
        ("admin", "{staff_a}", 422),  # only officers get MQTT credentials
        ("admin", "usr_nope", 404),
    ],
)
def test_officer_credentials_are_guarded(
    synced_world: WorldIds,
    api_client: FlaskClient,
    broker_app: Flask,
    caller: str,
    target: str,
    status: int,
) -> None:
    answer = Api(api_client, caller).post(f"/users/{synced_world.fill(target)}/mqtt-credentials")
    assert_problem(answer, status)
    with in_app(broker_app):
        assert db.session.get(User, synced_world.officer_a).mqtt_password_hash is None


@pytest.mark.parametrize(
    "username",
    [
        SERVER_USER,
        "gatekeeper-worker-host-1",  # a worker's client id (MQTT_CLIENT_ID-<host>-<id>)
        "gatekeeper-web-host-1234",  # a web process's client id
    ],
)
def test_an_officer_named_like_the_server_gets_no_credentials(
    synced_world: WorldIds, api_client: FlaskClient, broker_app: Flask, username: str
) -> None:
    """On the device listener an officer's client id is their username: one named like a
    server process's client id would take over its session."""
    with in_app(broker_app):
        community = db.session.get(Community, synced_world.a)
        officer = factories.user(UserRole.OFFICER, communities=[community], username=username)
        officer_id = officer.id
    answer = Api(api_client, "admin").post(f"/users/{officer_id}/mqtt-credentials")
    assert_problem(answer, 409)


def test_broker_files_command(
    synced_world: WorldIds, broker_app: Flask, app: Flask, tmp_path: Path
) -> None:
    written = broker_app.test_cli_runner().invoke(
        args=["broker-files", "--dir", str(tmp_path / "out"), "--no-reload"]
    )
    assert written.exit_code == 0, written.output
    assert "2 device, 1 server, 0 officer" in written.output
    assert SERVER_PASSWORD not in written.output and "$7$" not in written.output
    acl = (tmp_path / "out" / "acl").read_text()
    assert f"user {synced_world.device_a}" in acl and f"user {synced_world.device_b}" in acl
    assert stat.S_IMODE((tmp_path / "out" / "passwd").stat().st_mode) == 0o600

    reloaded = broker_app.test_cli_runner().invoke(args=["broker-files"])
    assert reloaded.exit_code == 0, reloaded.output
    assert "Reloaded the broker" in reloaded.output

    # The session app has no MQTT_BROKER_DIR.
    missing = app.test_cli_runner().invoke(args=["broker-files"])
    assert missing.exit_code == 1
    assert "MQTT_BROKER_DIR" in missing.output


def test_persistent_sessions_survive_a_broker_restart(tmp_path: Path) -> None:
    device = BrokerAccount.device("dev_p", mosquitto_password_hash("device"), "com_p")
    server = BrokerAccount.server(SERVER_USER, mosquitto_password_hash(SERVER_PASSWORD))
    broker = Broker(directory=tmp_path / "files", accounts=[device, server])
    broker.start()
    cmd = device_topic("com_p", "dev_p", "cmd")
    try:
        door = Probe(broker.port, "dev_p", "device", client_id="door-p")
        assert not door.connect(persistent=True).is_failure
        door.subscribe(cmd)
        door.close()
        broker.restart()
        sender = Probe(broker.server_port, SERVER_USER, SERVER_PASSWORD)
        assert not sender.connect().is_failure
        sender.publish(cmd, b"queued while away")
        sender.close()
        door = Probe(broker.port, "dev_p", "device", client_id="door-p")
        assert not door.connect(persistent=True).is_failure
        assert door.receive_until(cmd) == [(cmd, b"queued while away")]
        door.close()
    finally:
        broker.stop()


def test_launcher_broker_admits_only_known_accounts(
    synced_world: WorldIds, workdir: Path, database_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(launcher, "MQTT_PORT", launcher.free_port(launcher.MQTT_HOST))
    environ = {**os.environ, **app_environment(workdir, database_url)}
    environ.pop("MQTT_URL")
    with launcher.local_broker(tmp_path / "instance", environ) as local:
        assert local.environment["MQTT_URL"] == local.url
        assert local.url.startswith(f"mqtt://{SERVER_USER}:")
        folder = tmp_path / "instance" / "mosquitto"
        assert local.environment["MQTT_BROKER_DIR"] == str(folder)
        assert f"user {synced_world.device_a}" in (folder / "acl").read_text()
        password = (folder / "server_password").read_text().strip()
        port = int(local.url.rsplit(":", 1)[1])
        devices_port = int(local.environment["MQTT_DEVICE_URL"].rsplit(":", 1)[1])
        assert devices_port == launcher.MQTT_PORT != port
        server = Probe(port, SERVER_USER, password)
        try:
            assert not server.connect().is_failure
            assert Probe(port, SERVER_USER, "wrong").connect().is_failure
            assert Probe(port, synced_world.device_a, "unknown secret").connect().is_failure
            # The device listener does not know the server's account.
            assert Probe(devices_port, SERVER_USER, password).connect().is_failure
        finally:
            server.close()
        assert reload_broker(folder / "mosquitto.pid")
