"""What the server's processes cost in memory, with the demo seed (docs/deploy.md, "Memory").

    .venv/bin/python -m bench.process_memory [--workers 2] [--threads 8]

Seeds a throwaway SQLite database with the demo community, starts a Mosquitto, gunicorn as
the launcher starts it (``--workers`` processes of ``--threads`` threads, the multiprocess
metrics folder) and ``flask worker``, and reads each process's resident memory
(``VmRSS``, and ``Pss``: its share of pages forked processes hold in common) at each step:
booted (``/login``), after card verifies and pages (``/login``, the OpenAPI document,
``/metrics``), after a face verify in every web process (dlib's models loaded), and after
a burst of parallel requests (every thread busy). The worker is read after a minute of its
jobs. Prints MiB per process and the load average.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.fernet import Fernet
from PIL import Image

from bench.harness import add_load_flag, check_load, load_average
from server import launcher
from tests.fetch_test_data import test_image
from tests.support.mosquitto import Broker
from tests.support.net import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20


def memory(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of ``pid`` in MiB."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss / 1024, pss / 1024


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def post(url: str, body: bytes, headers: dict[str, str]) -> dict:
    request = urllib.request.Request(url, body, headers)  # noqa: S310 (our own http server)
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 (as above)
        return json.loads(answer.read())


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as answer:  # noqa: S310 (our own http server)
        return answer.read()


def multipart(image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="f.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def face_frame() -> bytes:
    canvas = Image.new("RGB", (1280, 720), (110, 115, 120))
    photo = Image.open(test_image("obama.jpg")).convert("RGB")
    photo = photo.resize((photo.width * 560 // photo.height, 560))
    canvas.paste(photo, (400, 80))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG")
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    add_load_flag(parser)
    args = parser.parse_args()
    check_load("memory of each process (sizes, not times)", args.force)
    workdir = Path(tempfile.mkdtemp(prefix="gk-memory-"))
    (workdir / "instance").mkdir()
    broker = Broker()
    broker.start()
    env = {
        **os.environ,
        "GK_ENV": "development",
        "INSTANCE_DIR": str(workdir / "instance"),
        "DATA_KEY": Fernet.generate_key().decode(),
        "SECRET_KEY": "memory-bench-" + "x" * 32,
        "MQTT_URL": broker.url,
        "LOG_LEVEL": "WARNING",
    }
    flask = [sys.executable, "-m", "flask", "--app", "server"]
    for command in (["db", "upgrade"], ["seed"], ["demo-fleet", "--out", str(workdir / "f.json")]):
        done = subprocess.run(  # noqa: S603 (the argv is built here)
            [*flask, *command], env=env, capture_output=True, text=True, cwd=ROOT
        )
        if done.returncode != 0:
            raise SystemExit(f"flask {' '.join(command)} failed: {done.stderr[-2000:]}")
    fleet = json.loads((workdir / "f.json").read_text())
    door = next(d for d in fleet if d["kind"] == "door")
    credential = f"Bearer {door['device_id']}.{door['secret']}"
    port = free_port()
    command = launcher.web_command("127.0.0.1", port)
    command[command.index("--workers") + 1] = str(args.workers)
    command[command.index("--threads") + 1] = str(args.threads)
    web_env = {**env, **launcher.metrics_environment(workdir / "instance")}
    web = subprocess.Popen(command, env=web_env, cwd=ROOT, stdout=subprocess.DEVNULL)  # noqa: S603
    worker = subprocess.Popen(  # noqa: S603 (the argv is built here)
        [*flask, "worker"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    worker_started = time.monotonic()
    base = f"http://127.0.0.1:{port}"
    rows: list[tuple[str, str, float, float]] = []

    def read(step: str) -> None:
        rows.append((step, "gunicorn master", *memory(web.pid)))
        for n, pid in enumerate(sorted(children(web.pid)), 1):
            rows.append((step, f"web process {n}", *memory(pid)))

    try:
        wait_for_port(port, timeout=120)
        for _ in range(4 * args.workers):
            get(base + "/login")
        time.sleep(1)
        read("booted")
        card = json.dumps({"uid": "04A1B2C3"}).encode()
        headers = {"Authorization": credential, "Content-Type": "application/json"}
        for _ in range(20 * args.workers):
            post(base + "/api/v1/verify/card", card, headers)
            get(base + "/login")
            get(base + "/api/v1/openapi.json")
            get(base + "/metrics")
        read("cards and pages")
        body, content_type = multipart(face_frame())
        face_headers = {"Authorization": credential, "Content-Type": content_type}
        with ThreadPoolExecutor(args.workers * 2) as pool:  # enough to reach every process
            list(pool.map(lambda _: post(base + "/api/v1/verify/face", body, face_headers),
                          range(args.workers * 6)))  # fmt: skip
        read("face verify")
        with ThreadPoolExecutor(args.workers * args.threads) as pool:
            list(pool.map(lambda _: post(base + "/api/v1/verify/face", body, face_headers),
                          range(args.workers * args.threads * 2)))  # fmt: skip
        read("every thread busy")
        time.sleep(max(0.0, 60 - (time.monotonic() - worker_started)))
        rows.append(("after a minute", "flask worker", *memory(worker.pid)))
        if broker.process is not None:
            rows.append(("after a minute", "mosquitto", *memory(broker.process.pid)))
    finally:
        web.terminate()
        worker.terminate()
        web.wait(timeout=30)
        worker.wait(timeout=30)
        broker.stop()
    print(f"gunicorn --workers {args.workers} --threads {args.threads}, demo seed, SQLite")
    print(f"load average {load_average()}")
    print(f"{'step':18} {'process':16} {'RSS MiB':>8} {'PSS MiB':>8}")
    for step, name, rss, pss in rows:
        print(f"{step:18} {name:16} {rss:8.0f} {pss:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
