"""gunicorn's hooks for the web server (``server.gunicorn_config``): the face models are loaded
once, in the master before it forks the workers, and BLAS runs one thread per process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import server
from gatekeeper import faces, liveness
from server import gunicorn_config, launcher
from tests.fetch_test_data import test_image

ROOT = Path(__file__).resolve().parents[2]


def arbiter(app_uri: str) -> SimpleNamespace:
    """What the hooks read of gunicorn's master: the app it serves."""
    return SimpleNamespace(app=SimpleNamespace(app_uri=app_uri))


def test_the_web_master_loads_the_face_models_and_the_stream_process_does_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    loaded = []
    monkeypatch.setattr(server, "load_face_models", lambda: loaded.append(True))
    web_app = launcher.web_command("127.0.0.1", 8000)[-1]
    stream_app = launcher.stream_command("127.0.0.1", 8001)[-1]
    assert web_app == gunicorn_config.WEB_APP != stream_app

    gunicorn_config.on_starting(arbiter(stream_app))
    assert loaded == []
    gunicorn_config.on_starting(arbiter(web_app))
    assert loaded == [True]
    unit = (ROOT / "docs" / "deploy" / "gatekeeper-web.service").read_text()
    assert re.search(rf'^\s*"{re.escape(gunicorn_config.WEB_APP)}"$', unit, re.M)


def test_loading_the_face_models_loads_every_model_a_face_request_uses() -> None:
    server.load_face_models()
    assert faces._engine is not None  # detector, 5-point predictor, descriptor network
    assert liveness._predictor is not None  # the 68-point predictor of the depth check


def test_gunicorn_processes_run_one_blas_thread() -> None:
    # gunicorn imports its config module first: the server package, which sets the variable
    # before numpy (and its OpenBLAS) is loaded by anything.
    environ = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    code = (
        "import os, sys; import server.gunicorn_config; "
        "print(os.environ.get('OPENBLAS_NUM_THREADS'), 'numpy' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.split() == ["1", "False"]


def test_a_reload_gives_new_workers_the_face_engine_afresh() -> None:
    # In a process of its own: the reload drops this interpreter's gatekeeper modules.
    code = """
import sys
from types import SimpleNamespace
from server import gunicorn_config
master = SimpleNamespace(app=SimpleNamespace(app_uri=gunicorn_config.WEB_APP))
gunicorn_config.on_starting(master)
before = sys.modules["gatekeeper.faces"]
gunicorn_config.on_reload(master)
after = sys.modules["gatekeeper.faces"]
print(before._engine is not None, after is not before, after._engine is not None)
"""
    environ = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert result.stdout.split() == ["True", "True", "True"]


def test_the_face_models_give_the_same_descriptor_in_a_forked_process() -> None:
    # What loading them in gunicorn's master relies on: its workers are forks of it.
    server.load_face_models()
    image = faces.load_image(test_image("obama.jpg").read_bytes())
    here = faces.probe_face(image).template
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the forked process: its descriptor of the same image, then exit at once
        try:
            os.write(writer, faces.probe_face(image).template.astype(np.float32).tobytes())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        there = np.frombuffer(pipe.read(), dtype=np.float32)
    assert os.waitpid(child, 0)[1] == 0
    assert np.array_equal(there, here.astype(np.float32))
