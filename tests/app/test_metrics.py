"""``/metrics``: the series a verify, an ingest and a command leave, who may read them, and
the request id that follows a verify into its log lines and its ``open`` command."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from gatekeeper.faces import template_to_bytes
from gatekeeper.vocabulary import PersonRole
from hardware.messages import AckMessage, CommandMessage, EventMessage
from hardware.protocol import EventType
from hardware.topics import device_topic
from server.core import crypto, live, logs
from server.core.messaging import OutgoingMessage, flush_acks
from server.extensions import db
from server.models import FaceTemplate
from server.people.galleries import galleries, record_change
from server.settings import Settings, SettingsError
from server.worker.ingest import DeviceIngest
from tests import factories
from tests.support.published import commands

SECRET = "door-secret-for-metrics-tests"
TOKEN = "metrics-token-for-the-tests"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def site(app: Flask) -> dict[str, str]:
    """Community A's door and a resident with a card and two enrolled faces."""
    with app.app_context():
        w = factories.world(door_secret=SECRET)
        resident = factories.person(w.a, "王小明")
        factories.membership(resident, PersonRole.OWNER, unit_of=w.unit_a)
        factories.card(resident, "04A1B2C3")
        for seed in (1, 2):
            vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
            row = FaceTemplate(
                community_id=w.a.id,
                person_id=resident.id,
                model="test",
                template_encrypted=crypto.encrypt(template_to_bytes(vector)),
            )
            db.session.add(row)
            db.session.flush()
            record_change(w.a.id, row.id, resident.id, "add")
        db.session.commit()
        ids = {"a": w.a.id, "door": w.device_a.id}
        db.session.remove()
    return ids


def samples(client: FlaskClient, **environ: str) -> Samples:
    """Every sample of ``/metrics``, by name and labels (no ``pid``: summed over processes)."""
    answer = client.get("/metrics", environ_base=environ)
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain")
    found: Samples = {}
    for family in text_string_to_metric_families(answer.get_data(as_text=True)):
        for sample in family.samples:
            labels = frozenset((k, v) for k, v in sample.labels.items() if k != "pid")
            key = (sample.name, labels)
            found[key] = found.get(key, 0.0) + sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def verify_card(client: FlaskClient, site: dict[str, str], request_id: str | None = None):
    headers = {"Authorization": f"Bearer {site['door']}.{SECRET}"}
    if request_id is not None:
        headers[logs.REQUEST_ID_HEADER] = request_id
    return client.post("/api/v1/verify/card", json={"uid": "04A1B2C3"}, headers=headers)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What the server logs at INFO meanwhile, as ``LOG_FORMAT=json`` writes it."""
    stream = io.StringIO()
    handler = logs.handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_a_verify_an_ingest_and_a_command_show_in_metrics(
    app: Flask, client: FlaskClient, site: dict[str, str], published: list[OutgoingMessage]
) -> None:
    before = samples(client)
    answer = verify_card(client, site)
    assert answer.json["decision"] == "grant"
    [command] = commands(published)
    cmd_id = CommandMessage.decode(command.payload).cmd_id
    ingest = DeviceIngest(app)
    now = datetime.now(UTC)
    ingest.handle(
        device_topic(site["a"], site["door"], "evt"),
        EventMessage(EventType.DOOR_OPENED, seq=1, ts=now, fields={}).encode(),
    )
    ingest.handle(device_topic(site["a"], site["door"], "evt"), b"{not json")
    ingest.handle(  # an alert in itself: raised, and sent on the alerts topic
        device_topic(site["a"], site["door"], "evt"),
        EventMessage(EventType.DOOR_FORCED, seq=2, ts=now, fields={}).encode(),
    )
    [alert] = [message for message in published if message.topic.endswith("/alerts")]
    alert.on_acked()  # what the MQTT client runs on the broker's PUBACK
    flush_acks(app)  # what the process's ack writer does within ACK_FLUSH_S
    ingest.handle(
        device_topic(site["a"], site["door"], "ack"), AckMessage(cmd_id, True, now).encode()
    )
    with app.test_request_context():
        assert len(galleries(app).gallery(site["a"])) == 2
    stream = live.Subscriber(feeds=frozenset({"commands"}), community_ids=frozenset({site["a"]}))
    live.broadcaster(app).subscribe(stream, limit=1)
    after = samples(client)
    live.broadcaster(app).unsubscribe(stream)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("gk_verify_seconds_count", credential="card", decision="grant") == 1
    assert grew("gk_verify_seconds_bucket", credential="card", decision="grant", le="+Inf") == 1
    assert grew("gk_access_decisions_total", credential="card", decision="grant", reason="resident")
    assert grew("gk_device_commands_total", command="open") == 1
    assert grew("gk_ingest_messages_total", kind="event") == 2
    assert grew("gk_alert_delivery_lag_seconds_count", channel="mqtt") == 1
    assert grew("gk_ingest_messages_total", kind="ack") == 1
    assert grew("gk_ingest_dropped_total", reason="bad_payload") == 1
    assert grew("gk_device_command_outcomes_total", outcome="acked") == 1
    assert value(after, "gk_face_gallery_templates", community_id=site["a"]) == 2
    assert value(after, "gk_face_gallery_templates_in_process") >= 2
    assert value(after, "gk_live_streams", kind="pages") == 1
    assert value(samples(client), "gk_live_streams", kind="pages") == 0
    # Nothing that names a person, a card or a secret.
    text = client.get("/metrics").get_data(as_text=True)
    for secret in ("04A1B2C3", "王小明", SECRET):
        assert secret not in text


def test_only_this_machine_or_the_token_reads_metrics(app: Flask, client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 200  # the test client comes from 127.0.0.1
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    outsider = {"REMOTE_ADDR": "203.0.113.7"}
    refused = client.get("/metrics", environ_base=outsider)
    assert refused.status_code == 404
    assert b"gk_" not in refused.data
    # Through a proxy on this machine: the peer is loopback, the caller is not.
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert proxied.status_code == 404
    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = replace(settings, metrics_token=TOKEN)
    try:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/metrics", environ_base=outsider, headers=bearer).status_code == 200
        wrong = {"Authorization": "Bearer " + "x" * len(TOKEN)}
        assert client.get("/metrics", environ_base=outsider, headers=wrong).status_code == 404
        assert client.get("/metrics").status_code == 404  # with a token, loopback needs it too
    finally:
        app.config["SETTINGS"] = settings


def test_the_request_id_follows_a_verify_to_its_command_and_logs(
    app: Flask,
    client: FlaskClient,
    site: dict[str, str],
    published: list[OutgoingMessage],
    json_log: io.StringIO,
) -> None:
    answer = verify_card(client, site, request_id="door-7f3a:42")
    assert answer.headers[logs.REQUEST_ID_HEADER] == "door-7f3a:42"
    [message] = commands(published)
    command = CommandMessage.decode(message.payload)
    assert command.request_id == "door-7f3a:42"
    # The worker's line about the door's answer carries the request's id too.
    DeviceIngest(app).handle(
        device_topic(site["a"], site["door"], "ack"),
        AckMessage(command.cmd_id, True, datetime.now(UTC)).encode(),
    )
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    mine = [line for line in lines if line.get("request_id") == "door-7f3a:42"]
    messages = [line["message"] for line in mine]
    assert "request POST /api/v1/verify/card 200" in " | ".join(messages)
    assert any(m.startswith(f"command {command.cmd_id} (open) queued") for m in messages)
    assert any(m.startswith(f"command {command.cmd_id} (open) acked") for m in messages)
    for line in mine:
        assert {"ts", "level", "logger", "message", "pid"} <= line.keys()
        assert datetime.fromisoformat(line["ts"]).utcoffset().total_seconds() == 0


@pytest.mark.parametrize("sent", [None, "", "has space", "x" * 65, "semi;colon", "ü"])
def test_an_unusable_request_id_is_replaced(client: FlaskClient, sent: str | None) -> None:
    headers = {} if sent is None else {logs.REQUEST_ID_HEADER: sent}
    answer = client.get("/healthz", headers=headers)
    given = answer.headers[logs.REQUEST_ID_HEADER]
    assert given != sent and logs.REQUEST_ID.fullmatch(given)
    other = client.get("/healthz", headers=headers).headers[logs.REQUEST_ID_HEADER]
    assert other != given  # one per request


def test_metrics_and_log_settings(tmp_path) -> None:
    base = {"INSTANCE_DIR": str(tmp_path)}
    settings = Settings.from_env(base)
    assert (settings.metrics_token, settings.metrics_port, settings.log_format) == (
        None,
        None,
        "text",
    )
    settings = Settings.from_env(
        {**base, "METRICS_TOKEN": TOKEN, "METRICS_PORT": "9101", "LOG_FORMAT": "JSON"}
    )
    assert (settings.metrics_token, settings.metrics_port, settings.log_format) == (
        TOKEN,
        9101,
        "json",
    )
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(
            {**base, "METRICS_TOKEN": "short-secret", "METRICS_PORT": "0", "LOG_FORMAT": "xml"}
        )
    problems = " ".join(refused.value.problems)
    assert "METRICS_TOKEN" in problems and "short-secret" not in problems  # never echoed
    assert "METRICS_PORT" in problems and "LOG_FORMAT" in problems
