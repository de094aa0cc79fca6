"""Benchmark: offline allowlists (docs/protocol.md section 6, "Allowlists").

- **size**: the bytes of a building door's signed full list with ``--residents`` residents
  (one card each; with faces: one consented template each, sealed to a face terminal that
  registered its key), as published;
- **build**: the time to build the list from the database (``server.access.allowlists.build``)
  and to make one device's signed full list from it (faces decrypted and sealed); baseline:
  one online ``POST /api/v1/verify/card`` in the same process;
- **delta latency**: a staff member disables (or enables again) a resident's card through the
  API; the time until a subscriber on the door's delta topic over a real Mosquitto has the
  delta and verified its signature (the worker's leader publishes every second); baseline:
  the bare MQTT round trip on the same broker.

    .venv/bin/python -m bench.allowlist [--residents 1200] [--builds 15] [--actions 30]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask_migrate import upgrade

from bench.harness import (
    add_device,
    add_load_flag,
    bare_mqtt_latency,
    bench_community,
    bench_point,
    bench_settings,
    check_load,
    line,
)
from bench.stats import percentile
from gatekeeper import allowlist as signed
from gatekeeper.vocabulary import AccessPointKind, DeviceKind, PersonRole, Zone
from hardware.bus import BrokerAddress, MqttBus
from hardware.topics import allowlist_delta_topic
from server import create_app
from server.access import allowlists
from server.core import crypto
from server.extensions import db
from server.models import (
    AccessPoint,
    AllowlistState,
    Building,
    Card,
    Community,
    Consent,
    Device,
    FaceTemplate,
    Membership,
    Person,
    Unit,
    UserRole,
)
from server.passes import keys as passkeys
from server.people.service import FACE_PURPOSE
from server.worker import Worker
from tests import factories
from tests.factories import Api
from tests.support.mosquitto import Broker


def _populate(community: Community, residents: int) -> tuple[AccessPoint, list[str]]:
    building = Building(community_id=community.id, name="B1")
    db.session.add(building)
    db.session.flush()
    point = bench_point(
        community, "B1 door", AccessPointKind.DOOR, Zone.BUILDING, building_id=building.id
    )
    now = datetime.now(UTC)
    vector = [0.01 * (i % 50) for i in range(128)]
    cards = []
    for n in range(residents):
        unit = Unit(community_id=community.id, building_id=building.id, number=f"{n:04d}")
        person = Person(community_id=community.id, name=f"王小{n:04d}")
        db.session.add_all([unit, person])
        db.session.flush()
        consent = Consent(
            community_id=community.id, person_id=person.id, purpose=FACE_PURPOSE, granted_at=now
        )
        db.session.add_all(
            [
                Membership(
                    community_id=community.id,
                    person_id=person.id,
                    unit_id=unit.id,
                    role=PersonRole.OWNER,
                ),
                consent,
            ]
        )
        card = Card(community_id=community.id, person_id=person.id, uid=f"04{n:06X}")
        db.session.add(card)
        db.session.flush()
        db.session.add(
            FaceTemplate(
                community_id=community.id,
                person_id=person.id,
                template_encrypted=crypto.encrypt(signed.pack_template(vector)),
                model="bench",
                consent_id=consent.id,
            )
        )
        cards.append(card.id)
    return point, cards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=1200)
    parser.add_argument("--builds", type=int, default=15)
    parser.add_argument("--actions", type=int, default=30)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    add_load_flag(parser)
    args = parser.parse_args()
    check_load("set-up", args.force)

    workdir = Path(tempfile.mkdtemp(prefix="gk-bench-allowlist-"))
    broker = Broker()
    broker.start()
    app = create_app(
        bench_settings(
            workdir, args.database_url, MQTT_URL=broker.url, MQTT_CLIENT_ID="bench-allowlist"
        )
    )
    private = X25519PrivateKey.generate()
    with app.app_context():
        upgrade()
        community = bench_community()
        point, cards = _populate(community, args.residents)
        face_door, face_secret = add_device(point, "Face terminal", DeviceKind.DOOR)
        face_door.allowlist_public_key = private.public_key().public_bytes_raw()
        plain_door, _ = add_device(point, "Card reader", DeviceKind.BARRIER)
        factories.user(UserRole.STAFF, communities=[community], username="bench_staff")
        db.session.commit()
        ids = community.id, point.id, face_door.id, plain_door.id
        credential = f"{face_door.id}.{face_secret}"
        allowlists.publish_changes(everything=True)
        db.session.commit()

    print(
        f"{args.residents} residents at one building door, database "
        f"{app.config['SETTINGS'].database_url.split(':')[0]}"
    )
    check_load("list sizes, builds and the online verify baseline", args.force)
    client = app.test_client()
    with app.app_context():
        community = db.session.get(Community, ids[0])
        point = db.session.get(AccessPoint, ids[1])
        face_device = db.session.get(Device, ids[2])
        plain_device = db.session.get(Device, ids[3])
        stored = db.session.get(AllowlistState, point.id)
        plain = allowlists.full_list(stored, plain_device, datetime.now(UTC))
        with_faces = allowlists.full_list(stored, face_device, datetime.now(UTC))
        size_plain = len(json.dumps(plain, separators=(",", ":"), ensure_ascii=False).encode())
        size_faces = len(json.dumps(with_faces, separators=(",", ":"), ensure_ascii=False).encode())
        print(f"{'full list, cards and codes':<40} {size_plain:>10,} bytes")
        print(
            f"{'full list, with faces':<40} {size_faces:>10,} bytes "
            f"({size_faces / size_plain:.1f}x)"
        )
        builds, materialise_plain, materialise_faces = [], [], []
        for _ in range(args.builds):
            started = time.perf_counter()
            allowlists.build(point, community, datetime.now(UTC))
            builds.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            allowlists.full_list(stored, plain_device, datetime.now(UTC))
            materialise_plain.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            allowlists.full_list(stored, face_device, datetime.now(UTC))
            materialise_faces.append((time.perf_counter() - started) * 1000)
        db.session.rollback()
    verifies = []
    for n in range(args.builds):
        started = time.perf_counter()
        answer = client.post(
            "/api/v1/verify/card",
            json={"uid": f"04{n:06X}"},
            headers={"Authorization": f"Bearer {credential}"},
        )
        verifies.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise SystemExit(answer.get_data(as_text=True))
    print(line("build (database -> entries)", builds))
    print(line("signed full list, no faces", materialise_plain))
    print(line("signed full list, faces sealed", materialise_faces))
    print(line("baseline: online verify/card", verifies))
    print(
        f"{'build / online verify (P50)':<40} "
        f"{percentile(builds, 50) / percentile(verifies, 50):.1f}x"
    )

    # Delta latency over the real broker, with the worker leading.
    worker = Worker(app)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    if not worker.bus.wait_connected(10):
        raise SystemExit("the worker did not connect")
    arrived: dict[str, float] = {}
    condition = threading.Condition()
    with app.app_context():
        keys = {key.key_id: key.public_key for key in passkeys.public_keys()}
        pids = dict(db.session.query(Card.id, Card.person_id).filter(Card.id.in_(cards)).all())
        db.session.remove()

    def on_delta(_topic: str, payload: bytes) -> None:
        body = json.loads(payload)
        signed.verify(body, keys)
        with condition:
            for item in body["upsert"]:
                arrived[item["pid"]] = time.perf_counter()
            condition.notify_all()

    door = MqttBus(BrokerAddress.from_url(broker.url), "bench-allowlist-door")
    door.subscribe(allowlist_delta_topic(ids[0], ids[2]), on_delta)
    door.start()
    if not door.wait_connected(10):
        raise SystemExit("the door did not connect")
    door.wait_subscribed(10)
    staff = Api(client, "bench_staff")
    check_load("staff action -> delta over the broker", args.force)
    latencies = []
    for n in range(args.actions):
        card_id = cards[(n // 2) % len(cards)]  # disabled, then enabled again
        pid = pids[card_id]
        with condition:
            arrived.pop(pid, None)
        started = time.perf_counter()
        answer = staff.patch(f"/cards/{card_id}", json={"disabled": n % 2 == 0})
        if answer.status_code != 200:
            raise SystemExit(answer.get_data(as_text=True))
        with condition:
            if not condition.wait_for(lambda pid=pid: pid in arrived, timeout=10):
                raise SystemExit(f"no delta for {pid} within 10 s")
            latencies.append((arrived[pid] - started) * 1000)
    check_load("baseline: bare MQTT", args.force)
    bare = bare_mqtt_latency(broker.url, args.actions, "bench-allowlist-bare")
    print(line("staff action -> verified delta", latencies))
    print(line("baseline: bare MQTT round trip", bare, 2))
    print(
        f"{'delta / bare MQTT (P50)':<40} {percentile(latencies, 50) / percentile(bare, 50):.0f}x"
        "   (the leader's job runs every second)"
    )
    door.stop()
    worker.stop()
    thread.join(timeout=30)
    broker.stop()


if __name__ == "__main__":
    main()
