"""docs/deploy.md and its files say what the code does: settings that exist, gunicorn as the
launcher starts it, the streams nginx must not buffer, every metric the server exports."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask
from prometheus_client import Counter, Gauge, Histogram

from server import launcher
from server.core import metrics
from server.settings import VARIABLES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
# Read by a process rather than by the server's settings (README, "Processes").
PROCESS_VARIABLES = {"PROMETHEUS_MULTIPROC_DIR", "OPENBLAS_NUM_THREADS"}


def test_the_environment_files_name_only_real_settings() -> None:
    known = {v.name for v in VARIABLES} | PROCESS_VARIABLES
    names = set(re.findall(r"^#?\s*([A-Z][A-Z_]+)=", (DEPLOY / "gatekeeper.env").read_text(), re.M))
    for unit in DEPLOY.glob("*.service"):
        names |= set(re.findall(r"^Environment=([A-Z_]+)=", unit.read_text(), re.M))
    assert names and names <= known, names - known
    assert "PROMETHEUS_MULTIPROC_DIR" not in (DEPLOY / "gatekeeper-worker@.service").read_text()


def test_the_web_unit_starts_gunicorn_as_the_launcher_does() -> None:
    unit = (DEPLOY / "gatekeeper-web.service").read_text().replace("\\\n", " ")
    command = launcher.web_command("127.0.0.1", 8000)
    flags = ("--config", "--workers", "--worker-class", "--threads", "--worker-connections")
    for flag in (*flags, "--limit-request-line"):
        value = command[command.index(flag) + 1]
        assert re.search(rf"{flag} +{re.escape(value)}\b", unit), (flag, value)
    assert "PROMETHEUS_MULTIPROC_DIR=" in unit


def test_nginx_streams_unbuffered_and_hides_metrics(app: Flask) -> None:
    site = (DEPLOY / "nginx-gatekeeper.conf").read_text()
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    for stream in ("/api/v1/alerts/stream", "/live"):
        assert stream in routes
        block = site[site.index(f"location = {stream} ") :].split("}", 1)[0]
        assert "proxy_buffering off;" in block, stream
    assert metrics.PATH in routes
    assert re.search(r"location = /metrics \{\s*return 404;", site)
    assert "X-Forwarded-For" in site and "X-Forwarded-Proto" in site


def test_deploy_md_lists_every_metric() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    exported = []
    for value in vars(metrics).values():
        if isinstance(value, Counter):
            exported.append(value._name + "_total")
        elif isinstance(value, (Gauge, Histogram)):
            exported.append(value._name)
    assert len(exported) >= 12
    for name in exported:
        assert f"`{name}`" in text, name
