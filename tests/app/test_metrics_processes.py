"""Metrics and request ids across real processes: gunicorn's two workers (as ``make run``
starts them) count into one multiprocess folder, JSON logs and commands carry the request
id over a real Mosquitto, and ``flask worker`` serves its own metrics on ``METRICS_PORT``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from gatekeeper.vocabulary import PersonRole
from hardware.messages import CommandMessage, EventMessage
from hardware.protocol import EventType
from hardware.topics import device_topic
from server import launcher
from server.extensions import db
from tests import factories
from tests.conftest import app_environment
from tests.support.e2e import eventually
from tests.support.mosquitto import Broker
from tests.support.mqtt_listener import Listener, stop_client
from tests.support.net import free_port, wait_for_port

pytestmark = pytest.mark.e2e

SECRET = "door-secret-for-process-metrics"
# Verifies sent at most while waiting for both gunicorn workers to have answered one.
MAX_VERIFIES = 60


@dataclass(frozen=True)
class Site:
    community: str
    door: str


@pytest.fixture
def site(app: Flask) -> Site:
    with app.app_context():
        w = factories.world(door_secret=SECRET)
        resident = factories.person(w.a, "王小明")
        factories.membership(resident, PersonRole.OWNER, unit_of=w.unit_a)
        factories.card(resident, "04A1B2C3")
        db.session.commit()
        site = Site(w.a.id, w.device_a.id)
        db.session.remove()
    return site


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (our own http)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (as above)
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    status, _headers, body = _get(url)
    assert status == 200
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    ]


def total(found: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(
        v for n, got, v in found if n == name and all(got.get(k) == x for k, x in labels.items())
    )


def web_pids(found: list[tuple[str, dict[str, str], float]]) -> dict[str, float]:
    """Each web process's MQTT connection state, by pid."""
    return {
        labels["pid"]: v
        for n, labels, v in found
        if n == "gk_mqtt_connected" and labels.get("client") == "web"
    }


def verify(base: str, site: Site, request_id: str) -> dict[str, str]:
    body = json.dumps({"uid": "04A1B2C3"}).encode()
    request = urllib.request.Request(  # noqa: S310 (the test's own http:// server)
        base + "/api/v1/verify/card",
        body,
        {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {site.door}.{SECRET}",
            "X-Request-ID": request_id,
        },
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (as above)
        assert json.loads(answer.read())["decision"] == "grant"
        return dict(answer.headers)


@pytest.fixture
def gunicorn(
    site: Site, workdir: Path, database_url: str, broker: Broker, tmp_path: Path
) -> Iterator[tuple[str, Path, Path]]:
    """The launcher's gunicorn (two processes, its hooks) with a metrics folder that holds a
    stale count of an earlier run; its base URL, that folder and its log (JSON)."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"an earlier run's count")
    (folder / "notes.txt").write_text("not ours: kept")
    log = tmp_path / "gunicorn.log"
    port = free_port()
    environ = {
        **os.environ,
        **app_environment(
            workdir,
            database_url,
            MQTT_URL=broker.url,
            PROMETHEUS_MULTIPROC_DIR=str(folder),
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
        ),
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            launcher.web_command("127.0.0.1", port),
            env=environ,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}", folder, log
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_two_gunicorn_processes_count_into_one_metrics_page(
    gunicorn: tuple[str, Path, Path], site: Site, broker: Broker
) -> None:
    base, folder, log = gunicorn
    assert not (folder / "counter_1.db").exists()  # emptied when gunicorn started
    assert (folder / "notes.txt").exists()
    listener = Listener(broker.port)
    listener.listen(device_topic(site.community, site.door, "cmd"))
    try:
        sent = 0
        while sent < MAX_VERIFIES and len(web_pids(scrape(base + "/metrics"))) < 2:
            headers = verify(base, site, f"e2e-{sent}")
            assert headers["X-Request-ID"] == f"e2e-{sent}"
            sent += 1
        found = scrape(base + "/metrics")
        assert len(web_pids(found)) == 2, "one process answered every verify"
        # Counts are the machine's, whichever process answers the scrape.
        for _ in range(4):
            found = scrape(base + "/metrics")
            assert total(found, "gk_verify_seconds_count", credential="card") == sent
            assert total(found, "gk_device_commands_total", command="open") == sent

        def broker_took_all() -> bool:
            found = scrape(base + "/metrics")
            return (
                total(found, "gk_device_command_outcomes_total", outcome="sent") == sent
                and total(found, "gk_mqtt_unacknowledged", client="web") == 0
                and set(web_pids(found).values()) == {1.0}
            )

        assert eventually(broker_took_all), scrape(base + "/metrics")
        # Each open command carries the id of the request that caused it.
        request_ids = set()
        for _ in range(sent):
            _topic, payload, _qos = listener.messages.get(timeout=15)
            request_ids.add(CommandMessage.decode(payload).request_id)
        assert request_ids == {f"e2e-{n}" for n in range(sent)}
    finally:
        listener.close()

    # A worker process that exits takes its gauges along, not its counts.
    gone = next(iter(web_pids(found)))
    os.kill(int(gone), signal.SIGTERM)
    assert eventually(lambda: gone not in web_pids(scrape(base + "/metrics")))
    assert total(scrape(base + "/metrics"), "gk_verify_seconds_count", credential="card") == sent

    # Every line is JSON, gunicorn's own included; a request's lines carry its id.
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert any(line["logger"] == "gunicorn.error" for line in lines)
    first = [line for line in lines if line.get("request_id") == "e2e-0"]
    assert any(line["message"].startswith("request POST /api/v1/verify/card 200") for line in first)
    assert any(line["message"].startswith("command cmd_") for line in first)


def test_the_worker_serves_its_own_metrics(
    app: Flask, site: Site, workdir: Path, database_url: str, broker: Broker
) -> None:
    port = free_port()
    environ = {
        **os.environ,
        **app_environment(workdir, database_url, MQTT_URL=broker.url, METRICS_PORT=str(port)),
        "FLASK_APP": "server",
    }
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "worker", "--run-seconds", "60"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    try:
        wait_for_port(port, timeout=60)
        url = f"http://127.0.0.1:{port}/metrics"

        def connected() -> bool:
            return total(scrape(url), "gk_mqtt_connected", client="worker") == 1

        assert eventually(connected, timeout=30)
        device.connect("127.0.0.1", broker.port)
        device.loop_start()
        event = EventMessage(EventType.DOOR_OPENED, seq=7, ts=datetime.now(UTC), fields={})
        topic = device_topic(site.community, site.door, "evt")
        device.publish(topic, event.encode(), qos=1).wait_for_publish(15)
        device.publish(topic, b"{broken", qos=1).wait_for_publish(15)

        def ingested() -> bool:
            found = scrape(url)
            return (
                total(found, "gk_ingest_messages_total", kind="event") == 1
                and total(found, "gk_ingest_dropped_total", reason="bad_payload") == 1
            )

        assert eventually(ingested), scrape(url)
        assert _get(url.replace("/metrics", "/other"))[0] == 404
        assert _get(url, {"X-Forwarded-For": "203.0.113.7"})[0] == 404
    finally:
        stop_client(device)
        process.terminate()
        process.wait(timeout=30)
