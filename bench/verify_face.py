"""Benchmark: face verification at the door, end to end and stage by stage, in one process.

On the same 720p frames (real photos composed into a door-camera scene, with a live
depth map) it measures:

- the endpoint end to end: HTTP over loopback into the real app (device auth, frame
  decode, face engine, depth liveness, 1:N search in a gallery of ``--gallery``
  templates, policy, event stored, open command queued), with one and two clients;
- the naive path: ``face_recognition.face_encodings`` + ``compare_faces`` against the
  same gallery;
- the bare face engine (``gatekeeper.faces.probe_face`` + gallery search, no HTTP, no
  database) and the bare descriptor on an already aligned face.

It also runs the endpoint in process (Flask's test client: no HTTP, no socket) and
deployed (gunicorn as ``make run`` starts it, with Mosquitto and Redis, over the same
database: ``bench.load.deployed_stack``; the loopback server of the first series runs in this
process and shares its GIL with the client), and prints
what the server adds to the bare engine at P50: in process (authentication, the database,
the policy, the event, the open command) and over HTTP (the loopback server on top).

    .venv/bin/python -m bench.verify_face [--gallery 100000] [--requests 200] [--force]
"""

from __future__ import annotations

import os

# As the server does (server/__init__.py), before numpy loads OpenBLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import io
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from flask_migrate import upgrade
from PIL import Image
from sqlalchemy import insert

from bench.harness import (
    add_device,
    add_load_flag,
    bench_app,
    bench_community,
    check_load,
    line,
    multipart,
)
from bench.stats import percentile
from gatekeeper import faces, liveness
from gatekeeper.vocabulary import AccessPointKind, DeviceKind, PersonRole, Zone
from server.core import crypto
from server.extensions import db
from server.models import (
    AccessPoint,
    Building,
    FaceTemplate,
    Membership,
    Person,
    Unit,
)
from server.people.galleries import galleries, record_change
from tests.fetch_test_data import test_image as photo_path
from tests.support import depthmaps
from tests.support.live_server import LiveServer

PROBES = ("obama2.jpg", "obama3.jpg")


# A face about 40 cm from a 720p door camera with a 70 degree field of view is ~340 px wide.
DOOR_FACE_WIDTH_PX = 340


def door_frame(name: str) -> tuple[bytes, np.ndarray]:
    """A 1280x720 JPEG with the photo on a wall, scaled so the face is as wide as at a door,
    and the RGB array the server will see."""
    photo = Image.open(photo_path(name)).convert("RGB")
    face = faces.engine().detect(np.asarray(photo), max_side=1600)[0].box
    scale = DOOR_FACE_WIDTH_PX / face.width
    photo = photo.resize((round(photo.width * scale), round(photo.height * scale)))
    centre_x, centre_y = (face.left + face.right) / 2 * scale, (face.top + face.bottom) / 2 * scale
    canvas = Image.new("RGB", (1280, 720), (110, 115, 120))
    canvas.paste(photo, (round(640 - centre_x), round(330 - centre_y)))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    return data, faces.load_image(data)


def build_site(app, gallery_size: int) -> tuple[str, str, str, np.ndarray]:
    """A community with a door and ``gallery_size`` templates.

    Returns the device id and secret, the community id, and the gallery's vectors.
    """
    rng = np.random.default_rng(2026)
    with app.app_context():
        upgrade()
        community = bench_community()
        building = Building(community_id=community.id, name="1")
        db.session.add(building)
        db.session.flush()
        unit = Unit(community_id=community.id, building_id=building.id, number="101")
        point = AccessPoint(
            community_id=community.id,
            name="Door",
            kind=AccessPointKind.DOOR,
            zone=Zone.BUILDING,
            building_id=building.id,
            requires_depth=True,
        )
        db.session.add_all([unit, point])
        db.session.flush()
        device, secret = add_device(point, "Terminal", DeviceKind.DOOR)
        obama = Person(community_id=community.id, name="Obama")
        db.session.add(obama)
        db.session.flush()
        db.session.add(
            Membership(
                community_id=community.id,
                person_id=obama.id,
                unit_id=unit.id,
                role=PersonRole.RESIDENT,
            )
        )
        enrolled = faces.assess_enrolment_photo(photo_path("obama.jpg").read_bytes())
        template = FaceTemplate(
            community_id=community.id,
            person_id=obama.id,
            model="bench",
            template_encrypted=crypto.encrypt(faces.template_to_bytes(enrolled.template)),
        )
        db.session.add(template)
        db.session.flush()
        record_change(community.id, template.id, obama.id, "add")
        filler = rng.normal(size=(gallery_size - 1, 128)).astype(np.float32)
        filler /= np.linalg.norm(filler, axis=1, keepdims=True)
        filler *= 0.9  # real descriptors have norms near 0.9; keep the scale comparable
        people = [
            {
                "id": f"per_bench{i:06d}",
                "community_id": community.id,
                "name": f"P{i}",
                "status": "active",
                "lives_alone": False,
                "wander_risk": False,
            }
            for i in range(gallery_size - 1)
        ]
        db.session.execute(insert(Person), people)
        db.session.execute(
            insert(FaceTemplate),
            [
                {
                    "id": f"fce_bench{i:06d}",
                    "community_id": community.id,
                    "person_id": people[i]["id"],
                    "model": "random",
                    "template_encrypted": crypto.encrypt(faces.template_to_bytes(vector)),
                }
                for i, vector in enumerate(filler)
            ],
        )
        db.session.commit()
        started = time.perf_counter()
        loaded = len(galleries(app).gallery(community.id))
        print(f"gallery of {loaded} templates loaded in {time.perf_counter() - started:.1f} s")
        known = np.vstack([enrolled.template[None, :], filler])
        return device.id, secret, community.id, known


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    add_load_flag(parser)
    args = parser.parse_args()

    app, publisher = bench_app("face")
    device_id, secret, community_id, known = build_site(app, args.gallery)

    frames = {}
    for name in PROBES:
        jpeg, rgb = door_frame(name)
        probe = faces.probe_face(rgb)
        scene = depthmaps.Scene(
            liveness.face_landmarks(rgb, probe.face.box), (rgb.shape[1], rgb.shape[0]), (640, 360)
        )
        depth = depthmaps.to_png16(depthmaps.live_face(scene, 500, np.random.default_rng(7)))
        frames[name] = (jpeg, rgb, depth)

    server = LiveServer(app)
    server.start()
    headers = {"Authorization": f"Bearer {device_id}.{secret}"}

    def call(name: str, base_url: str = server.url) -> float:
        jpeg, _rgb, depth = frames[name]
        body, content_type = multipart(
            {"image": ("frame.jpg", jpeg, "image/jpeg"), "depth": ("depth.png", depth, "image/png")}
        )
        request = urllib.request.Request(  # noqa: S310 (a loopback http URL built here)
            f"{base_url}/api/v1/verify/face",
            data=body,
            method="POST",
            headers={**headers, "Content-Type": content_type},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (loopback)
            decision = answer.read()
        elapsed = (time.perf_counter() - started) * 1000
        if b'"grant"' not in decision:
            raise SystemExit(f"expected a grant, got {decision!r}")
        return elapsed

    names = [PROBES[i % len(PROBES)] for i in range(args.requests)]
    for name in PROBES:  # warm up: models loaded, gallery in memory
        call(name)
    check_load("endpoint over HTTP", args.force)
    end_to_end = [call(name) for name in names]

    two_clients: list[float] = []
    lock = threading.Lock()

    def client(share: list[str]) -> None:
        for name in share:
            elapsed = call(name)
            with lock:
                two_clients.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(names[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    throughput = len(two_clients) / (time.perf_counter() - started)
    server.stop()

    check_load("endpoint in process", args.force)
    in_process = []
    test_client = app.test_client()
    for name in names:
        jpeg, _rgb, depth = frames[name]
        body, content_type = multipart(
            {"image": ("frame.jpg", jpeg, "image/jpeg"), "depth": ("depth.png", depth, "image/png")}
        )
        started = time.perf_counter()
        answer = test_client.post(
            "/api/v1/verify/face",
            data=body,
            headers={**headers, "Content-Type": content_type},
        )
        in_process.append((time.perf_counter() - started) * 1000)
        if b'"grant"' not in answer.data:
            raise SystemExit(f"expected a grant, got {answer.data!r}")

    # The same requests to gunicorn as ``make run`` starts it (its own processes, Mosquitto
    # and Redis; ``bench.load.deployed_stack``) over the same database: the loopback server
    # above shares this process, and its GIL, with the client.
    from bench.load import deployed_stack  # bench.load reads this module's site and frames

    with deployed_stack(
        Path(tempfile.mkdtemp(prefix="gk-bench-face-web-")), app.extensions["bench_settings"]
    ) as base_url:
        for name in PROBES * 2:  # warm up both processes: the gallery read, the first queries
            call(name, base_url)
        check_load("endpoint deployed (gunicorn)", args.force)
        deployed = [call(name, base_url) for name in names]

    with app.app_context():
        gallery = galleries(app).gallery(community_id)
    settings_tolerance, settings_margin = 0.5, 0.06

    # The same engine work as a request (decode, probe, depth liveness, 1:N search), without
    # HTTP, the database or the policy: what the server adds is the difference.
    check_load("bare engine", args.force)
    engine_ms = []
    for name in names:
        jpeg, _rgb, depth = frames[name]
        started = time.perf_counter()
        rgb = faces.load_image(jpeg)
        probe = faces.probe_face(rgb)
        live = liveness.assess_depth(depth, rgb, probe.face.box)
        match = gallery.search(probe.template, tolerance=settings_tolerance, margin=settings_margin)
        engine_ms.append((time.perf_counter() - started) * 1000)
        if match.person_id is None or not live.live:
            raise SystemExit("the bare engine did not recognise the live probe")

    descriptor_ms = []
    face_engine = faces.engine()
    for name in names:
        _jpeg, rgb, _depth = frames[name]
        aligned = faces.probe_face(rgb).face
        started = time.perf_counter()
        face_engine.describe(rgb, aligned)
        descriptor_ms.append((time.perf_counter() - started) * 1000)

    import face_recognition

    check_load("naive face_recognition", args.force)

    naive_ms = []
    for name in names[: max(20, args.requests // 10)]:
        _jpeg, rgb, _depth = frames[name]
        started = time.perf_counter()
        encodings = face_recognition.face_encodings(rgb)
        face_recognition.compare_faces(list(known), encodings[0], tolerance=0.6)
        naive_ms.append((time.perf_counter() - started) * 1000)

    print(
        f"{args.requests} requests per series, 720p JPEG + 640x360 depth, "
        f"gallery {len(gallery)}, {publisher.count} open commands queued"
    )
    print(line("endpoint end to end (1 client)", end_to_end))
    print(line("endpoint end to end (2 clients)", two_clients))
    print(f"{'throughput with 2 clients':<38} {throughput:7.1f} requests/s")
    print(line("endpoint in process (test client)", in_process))
    print(line("bare engine (decode+probe+3D+search)", engine_ms))
    print(line("bare descriptor on an aligned face", descriptor_ms))
    print(line("naive face_recognition + compare", naive_ms))
    print(line("endpoint deployed (gunicorn, 1 client)", deployed))
    p50 = percentile(end_to_end, 50)
    naive_p50 = percentile(naive_ms, 50)
    print(f"{'naive / end to end (P50)':<38} {naive_p50 / p50:7.1f}x")
    print(
        f"{'naive / deployed end to end (P50)':<38} "
        f"{naive_p50 / percentile(deployed, 50):7.1f}x   (target >= 15x)"
    )
    engine_p50 = percentile(engine_ms, 50)
    print(f"{'end to end / bare engine (P50)':<38} {p50 / engine_p50:7.2f}x")
    # The server's share: what the endpoint adds to the engine's own work, at P50.
    server_ms = percentile(in_process, 50) - engine_p50
    http_ms = p50 - percentile(in_process, 50)
    print(
        f"{'server in process (DB, policy, publish)':<38} {server_ms:7.1f} ms"
        f"  ({100 * server_ms / p50:.0f} % of end to end)"
    )
    print(
        f"{'HTTP over loopback (on top)':<38} {http_ms:7.1f} ms"
        f"  ({100 * http_ms / p50:.0f} % of end to end)"
    )


if __name__ == "__main__":
    main()
