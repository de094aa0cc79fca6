"""How the launcher starts the stream process (``server.streams``): its port, its command and
its environment."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from server import launcher
from server.launcher import LaunchError, stream_command, stream_environment, stream_port
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_the_stream_port_is_the_one_set_or_the_web_port_plus_one() -> None:
    assert stream_port({"STREAM_PORT": "9001"}, "127.0.0.1", 8000) == 9001
    for wrong in ("0", "65536", "x", "-1", "8000"):  # 8000: the web server's own
        with pytest.raises(LaunchError, match="STREAM_PORT"):
            stream_port({"STREAM_PORT": wrong}, "127.0.0.1", 8000)
    web = free_port()
    with socket.socket() as taken:  # hold web + 1 (or learn that someone else does)
        try:
            taken.bind(("127.0.0.1", web + 1))
            taken.listen()
        except OSError:
            pass
        chosen = stream_port({}, "127.0.0.1", web)
        assert chosen not in (web, web + 1) and launcher.port_is_free("127.0.0.1", chosen)
    port = free_port()
    if launcher.port_is_free("127.0.0.1", port + 1):
        assert stream_port({"STREAM_PORT": " "}, "127.0.0.1", port) == port + 1


def test_the_stream_command_is_one_gevent_process_of_the_streams_app() -> None:
    command = stream_command("127.0.0.1", 8001)
    assert command[command.index("--worker-class") + 1] == "gevent"
    assert command[command.index("--workers") + 1] == "1"
    assert command[command.index("--bind") + 1] == "127.0.0.1:8001"
    assert int(command[command.index("--worker-connections") + 1]) > launcher.STREAM_PROCESS_STREAMS
    assert command[command.index("--config") + 1] == "python:server.gunicorn_config"
    assert command[-1] == "server.streams:create_app()"
    assert stream_command("::1", 8001)[command.index("--bind") + 1] == "[::1]:8001"


def test_the_stream_process_has_its_budgets_and_a_metrics_folder_of_its_own(
    tmp_path: Path,
) -> None:
    environ = stream_environment(
        {"A": "1", "PROMETHEUS_MULTIPROC_DIR": "/elsewhere", "ALERT_STREAMS_PER_PROCESS": "4"},
        tmp_path,
    )
    assert environ["A"] == "1"
    assert environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "metrics-streams")
    assert (tmp_path / "metrics-streams").is_dir()
    assert environ["ALERT_STREAMS_PER_PROCESS"] == str(launcher.STREAM_PROCESS_STREAMS)
    assert environ["PAGE_STREAMS_PER_PROCESS"] == str(launcher.STREAM_PROCESS_STREAMS)
    # The web server's folder is another: each gunicorn empties its own when it starts.
    assert launcher.metrics_environment(tmp_path)["PROMETHEUS_MULTIPROC_DIR"] != str(
        tmp_path / "metrics-streams"
    )


def test_the_streams_unit_starts_gunicorn_as_the_launcher_does() -> None:
    unit = (ROOT / "docs" / "deploy" / "gatekeeper-streams.service").read_text()
    unit = unit.replace("\\\n", " ")
    command = stream_command("127.0.0.1", 8001)
    for flag in ("--config", "--workers", "--worker-class", "--worker-connections"):
        value = command[command.index(flag) + 1]
        assert re.search(rf"{flag} +{re.escape(value)}\b", unit), (flag, value)
    assert '"server.streams:create_app()"' in unit
    for name in ("ALERT_STREAMS_PER_PROCESS", "PAGE_STREAMS_PER_PROCESS"):
        assert f"Environment={name}={launcher.STREAM_PROCESS_STREAMS}\n" in unit
    site = (ROOT / "docs" / "deploy" / "nginx-gatekeeper.conf").read_text()
    for stream in ("/api/v1/alerts/stream", "/live"):
        block = site[site.index(f"location = {stream} ") :].split("}", 1)[0]
        assert "proxy_pass http://gatekeeper_streams;" in block, stream
    assert re.search(r"upstream gatekeeper_streams \{\s*server 127\.0\.0\.1:8001;", site)
