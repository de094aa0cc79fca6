"""Benchmark: PostgreSQL at city size, side by side with a nearly empty database, in one run.

A throwaway PostgreSQL cluster (``tests.support.postgres``) holds two databases built by the
app's migrations:

- **city**: at ``--scale 1.0`` 2,500 communities, 5,000 devices (a gate and a car gate each),
  3,000,000 people with their units, memberships and cards, 600,000 vehicles, 30 days of
  access events at ``--events-per-day`` per community, and 250,000 alerts (95 % resolved),
  loaded with ``COPY`` (psycopg's ``cursor.copy``, explicit columns; the tables' secondary
  indexes are dropped meanwhile and built again after, then ``VACUUM ANALYZE``);
- **empty**: the same communities, devices and accounts, and a page's worth of alerts and of
  today's events, nothing more.

One community, the *probe*, is built the same way in both through the ORM (a door and a car
gate with their devices, a resident with a card, a car, visitor passes, a face when the test
images are there). Then, interleaving city and empty requests so drift hits both alike,
through the Flask test client: card, plate, QR and face verify at the probe's devices; the
staff's day view of the probe's events (API pages of 10, 50 and 100); an officer's alert list
covering 100 communities and every community (first page and a keyset page after it); an
officer's event search (every covered community, and one); and the worker's ingest handler
over ``--ingest`` device events. It prints P50/P99 for each, the ratio city/empty, the load
average beside them, and on the city database ``EXPLAIN (ANALYZE, BUFFERS)`` of the slowest
statements of each request, flagging any sequential scan of a big table.

The rate of events: ``seeds/`` holds no traffic figure, so the default is issue 15's own
measurement (10,000,000 events over 30 days for 2,500 communities: 133 per community a day).

    .venv/bin/python -m bench.city [--scale 0.02] [--requests 200] [--events-per-day 133]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the server does, before numpy loads

import argparse
import json
import logging
import random
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import event, insert

from bench.harness import (
    NullPublisher,
    add_device,
    add_load_flag,
    bench_settings,
    check_load,
    load_average,
)
from bench.stats import percentile
from gatekeeper import plates
from gatekeeper.vocabulary import (
    AccessPointKind,
    AlertType,
    DeviceKind,
    PersonRole,
    Severity,
    Zone,
)
from hardware.messages import EventMessage
from hardware.protocol import EventType
from hardware.topics import device_topic
from server import create_app
from server.access import retention
from server.core.auth import hash_password
from server.extensions import db
from server.models import (
    AccessPoint,
    Building,
    Card,
    Community,
    Membership,
    Person,
    Unit,
    User,
    UserRole,
    Vehicle,
    VisitorPass,
    pass_access_points,
    user_communities,
)
from server.passes.service import token_for
from server.worker.ingest import DeviceIngest
from tests.support.postgres import PostgresCluster

# At --scale 1.0 (issue 15; seed 002: Ningbo's 2,359 communities and 3.09 million people).
CITY = {
    "communities": 2_500,
    "people": 3_000_000,
    "vehicles": 600_000,
    "alerts": 250_000,
}
DAYS = 30
BUILDINGS = 10
PEOPLE_PER_UNIT = 3
# Alerts of the loaded city: most are resolved, a few acknowledged, fewer still open.
RESOLVED_SHARE, ACKNOWLEDGED_SHARE = 0.95, 0.03
# The empty database: a page's worth of rows, so both answer full pages.
EMPTY_ALERTS, EMPTY_EVENTS = 100, 100
OFFICER_SMALL = 100  # communities the first officer covers
BIG_TABLES = ("access_events", "alerts", "people", "memberships", "cards", "vehicles", "units")
CARD_UID = "04A1B2C3D4"
PROBE_PLATE = "浙B12345"
PASSWORD = "bench-password-1"  # noqa: S105 (the accounts of a throwaway database)
PASSES = 8  # each takes 255 uses
SEED = 2026
COPY_CHUNK = 20_000


# The cluster and its two apps ------------------------------------------------------------------


@dataclass
class Side:
    """One database and the app on it."""

    name: str
    url: str
    app: Flask
    probe: Probe | None = None
    statements: list[tuple[str, Any]] = field(default_factory=list)


@dataclass
class Probe:
    """The community measured in both databases: its ids, credentials and accounts."""

    community_id: str
    door: str  # "device_id.secret"
    barrier: str
    door_device_id: str
    tokens: list[str]
    face: bool
    communities: list[str] = field(default_factory=list)  # every community, the probe first


def probe_of(side: Side) -> Probe:
    if side.probe is None:
        raise SystemExit(f"{side.name}: no probe community yet")
    return side.probe


def new_side(cluster: PostgresCluster, name: str) -> Side:
    url = cluster.create_database(name)
    workdir = Path(tempfile.mkdtemp(prefix=f"gk-bench-city-{name}-"))
    app = create_app(bench_settings(workdir, database_url=url))
    app.extensions["mqtt_publisher"] = NullPublisher()
    with app.app_context():
        upgrade()
    side = Side(name, url, app)
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", _recorder(side))
    return side


def _recorder(side: Side) -> Callable[..., None]:
    def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
        side.statements.append((statement, parameters))

    return record


def raw(side: Side) -> psycopg.Connection:
    return psycopg.connect(side.url.replace("+psycopg", ""), autocommit=True)


# The probe community ---------------------------------------------------------------------------


def build_probe(side: Side) -> Probe:
    """The probe community through the ORM, the same in both databases."""
    with side.app.app_context():
        community = Community(name="Probe", timezone="Asia/Shanghai", settings={})
        db.session.add(community)
        db.session.flush()
        building = Building(community_id=community.id, name="1")
        db.session.add(building)
        db.session.flush()
        unit = Unit(community_id=community.id, building_id=building.id, number="101")
        door = AccessPoint(
            community_id=community.id,
            name="Door",
            kind=AccessPointKind.DOOR,
            zone=Zone.BUILDING,
            building_id=building.id,
            requires_depth=True,
        )
        gate = AccessPoint(
            community_id=community.id,
            name="Car gate",
            kind=AccessPointKind.BARRIER,
            zone=Zone.PERIMETER,
        )
        resident = Person(community_id=community.id, name="王小明")
        db.session.add_all([unit, door, gate, resident])
        db.session.flush()
        door_device, door_secret = add_device(door, "Door terminal", DeviceKind.DOOR)
        gate_device, gate_secret = add_device(gate, "Car gate camera", DeviceKind.BARRIER)
        db.session.add_all(
            [
                Membership(
                    community_id=community.id,
                    person_id=resident.id,
                    unit_id=unit.id,
                    role=PersonRole.OWNER,
                ),
                Card(community_id=community.id, person_id=resident.id, uid=CARD_UID),
                Vehicle(
                    community_id=community.id,
                    person_id=resident.id,
                    plate=PROBE_PLATE,
                    skeleton=plates.skeleton(PROBE_PLATE),
                ),
            ]
        )
        now = datetime.now(UTC).replace(microsecond=0)
        passes = [
            VisitorPass(
                community_id=community.id,
                unit_id=unit.id,
                guest_name=f"Guest {n}",
                valid_from=now - timedelta(minutes=5),
                valid_until=now + timedelta(days=1),
                max_uses=255,
            )
            for n in range(PASSES)
        ]
        db.session.add_all(passes)
        db.session.flush()
        db.session.execute(
            insert(pass_access_points),
            [{"pass_id": p.id, "access_point_id": door.id} for p in passes],
        )
        face = _enrol_face(community.id, resident.id)
        db.session.commit()
        return Probe(
            community_id=community.id,
            door=f"{door_device.id}.{door_secret}",
            barrier=f"{gate_device.id}.{gate_secret}",
            door_device_id=door_device.id,
            tokens=[token_for(p) for p in passes],
            face=face,
        )


def _enrol_face(community_id: str, person_id: str) -> bool:
    """The resident's face from the test images; False when they are not fetched."""
    from gatekeeper import faces
    from server.core import crypto
    from server.models import FaceTemplate
    from server.people.galleries import record_change
    from tests.fetch_test_data import TestDataMissing, test_image

    try:
        photo = test_image("obama.jpg").read_bytes()
    except TestDataMissing:
        return False
    enrolled = faces.assess_enrolment_photo(photo)
    template = FaceTemplate(
        community_id=community_id,
        person_id=person_id,
        model="bench",
        template_encrypted=crypto.encrypt(faces.template_to_bytes(enrolled.template)),
    )
    db.session.add(template)
    db.session.flush()
    record_change(community_id, template.id, person_id, "add")
    return True


# Loading with COPY ------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# The columns each table is loaded with, named (the rows are tuples in this order): a
# partitioned access_events (migration 0017) takes the same COPY.
COLUMNS = {
    "communities": "id name timezone settings created_at updated_at",
    "access_points": "id community_id name kind zone open_ms requires_depth created_at updated_at",
    "devices": "id community_id name kind access_point_id zone secret_hash mqtt_password_hash "
    "online created_at updated_at",
    "buildings": "id community_id name created_at updated_at",
    "units": "id community_id building_id number floor created_at updated_at",
    "people": "id community_id name status lives_alone wander_risk created_at updated_at",
    "memberships": "id community_id person_id unit_id role created_at updated_at",
    "cards": "id community_id person_id uid created_at updated_at",
    "vehicles": "id community_id person_id plate skeleton created_at updated_at",
    "access_events": "id community_id occurred_at access_point_id device_id credential_type "
    "direction decision reason person_id details",
    "alerts": "id community_id type severity status access_point_id summary evidence "
    "created_at updated_at",
}


def copy_rows(connection: psycopg.Connection, table: str, rows: Iterable[tuple]) -> int:
    """``COPY table (its COLUMNS) FROM STDIN`` of ``rows`` (values without tabs, newlines or
    backslashes); the number of rows."""
    count = 0
    statement = f"COPY {table} ({', '.join(COLUMNS[table].split())}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        lines: list[str] = []
        for row in rows:
            lines.append("\t".join(_text(v) for v in row))
            if len(lines) >= COPY_CHUNK:
                copy.write("\n".join(lines) + "\n")
                count += len(lines)
                lines = []
        if lines:
            copy.write("\n".join(lines) + "\n")
            count += len(lines)
    return count


@contextmanager
def loading(connection: psycopg.Connection, tables: Iterable[str]) -> Iterator[None]:
    """Triggers and foreign-key checks off (the rows are made consistent), and the tables'
    secondary indexes dropped, then built again once the rows are in."""
    connection.execute("SET session_replication_role = replica")
    connection.execute("SET maintenance_work_mem = '256MB'")
    saved: list[str] = []
    for table in tables:
        rows = connection.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid = %s::regclass AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
            (table,),
        ).fetchall()
        for name, definition in rows:
            connection.execute(f"DROP INDEX {name}")
            # A partitioned table's index reads "ON ONLY": built again, it must reach the
            # partitions too.
            saved.append(definition.replace(" ON ONLY ", " ON ", 1))
    try:
        yield
    finally:
        started = time.perf_counter()
        for definition in saved:
            connection.execute(definition)
        print(f"  {len(saved)} indexes built again in {time.perf_counter() - started:.1f} s")
        connection.execute("SET session_replication_role = origin")


def _ids(prefix: str, community: int, count: int) -> list[str]:
    return [f"{prefix}_c{community:05d}n{n:08d}" for n in range(count)]


def load_structure(side: Side, sizes: dict[str, int]) -> None:
    """Every community but the probe, a gate and a car gate each with their devices, and the
    accounts: an officer covering ``OFFICER_SMALL`` communities, one covering all, and the
    probe's staff."""
    probe = probe_of(side)
    now = datetime.now(UTC)
    communities = [f"com_c{c:05d}" for c in range(1, sizes["communities"])]
    probe.communities = [probe.community_id, *communities]
    with raw(side) as connection:
        connection.execute("SET session_replication_role = replica")
        copy_rows(
            connection,
            "communities",
            (
                (cid, f"小区 {n}", "Asia/Shanghai", "{}", now, now)
                for n, cid in enumerate(communities)
            ),
        )
        points, devices = [], []
        for cid in communities:
            for kind, zone, name in (
                ("gate", "perimeter", "南门"),
                ("barrier", "perimeter", "车闸"),
            ):
                point_id = f"acp_{cid[4:]}{kind[0]}"
                points.append((point_id, cid, name, kind, zone, 3000, False, now, now))
                device_kind = "barrier" if kind == "barrier" else "door"
                devices.append(
                    (
                        f"dev_{cid[4:]}{kind[0]}",
                        cid,
                        name,
                        device_kind,
                        point_id,
                        zone,
                        "x" * 64,
                        "x",
                        False,
                        now,
                        now,
                    )
                )
        copy_rows(
            connection,
            "access_points",
            points,
        )
        copy_rows(
            connection,
            "devices",
            devices,
        )
        connection.execute("SET session_replication_role = origin")
    with side.app.app_context():
        password = hash_password(PASSWORD)
        accounts = {
            "officer_small": probe.communities[:OFFICER_SMALL],
            "officer_all": probe.communities,
            "staff_probe": [probe.community_id],
        }
        for username, covered in accounts.items():
            role = UserRole.STAFF if username.startswith("staff") else UserRole.OFFICER
            user = User(username=username, role=role, password_hash=password)
            db.session.add(user)
            db.session.flush()
            db.session.execute(
                insert(user_communities),
                [{"user_id": user.id, "community_id": cid} for cid in covered],
            )
        db.session.commit()


def load_city(side: Side, sizes: dict[str, int], events_per_day: int, rng: random.Random) -> None:
    """People with units, memberships and cards, vehicles, 30 days of events, alerts."""
    probe = probe_of(side)
    communities = probe.communities
    people_each = max(PEOPLE_PER_UNIT, sizes["people"] // len(communities))
    vehicles_each = min(people_each, sizes["vehicles"] // len(communities))
    alerts_each = max(1, sizes["alerts"] // len(communities))
    units_each = max(1, people_each // PEOPLE_PER_UNIT)
    vehicle_plates = [f"浙A{n:05d}" for n in range(vehicles_each)]
    skeletons = [plates.skeleton(p) for p in vehicle_plates]
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=DAYS)
    with side.app.app_context():
        # The months loaded get their partitions first, as the worker's retention job keeps
        # them in a deployment (the migration made this month and the next ones only).
        month = retention.month_start(start)
        while month <= now:
            retention.ensure_partition(month)
            month = retention.next_month(month)
        db.session.commit()
    with raw(side) as connection:
        with loading(connection, BIG_TABLES):
            with connection.cursor() as cursor:
                cursor.execute("SELECT community_id, id FROM access_points ORDER BY id")
                points: dict[str, list[str]] = {}
                for cid, point_id in cursor.fetchall():
                    points.setdefault(cid, []).append(point_id)
                cursor.execute("SELECT access_point_id, id FROM devices")
                device_of = dict(cursor.fetchall())
            counts: dict[str, int] = {}
            timer = time.perf_counter()

            def put(table: str, rows: Iterable[tuple]) -> None:
                counts[table] = counts.get(table, 0) + copy_rows(connection, table, rows)

            for n, cid in enumerate(communities):
                tag = cid[4:] if cid.startswith("com_c") else f"p{n:04d}"
                buildings = [f"bld_{tag}b{b:02d}" for b in range(BUILDINGS)]
                put(
                    "buildings",
                    ((b, cid, f"{i + 1}号楼", start, start) for i, b in enumerate(buildings)),
                )
                units = [f"unt_{tag}u{u:05d}" for u in range(units_each)]
                put(
                    "units",
                    (
                        (
                            u,
                            cid,
                            buildings[i % BUILDINGS],
                            f"{i // BUILDINGS + 101}",
                            1,
                            start,
                            start,
                        )
                        for i, u in enumerate(units)
                    ),
                )
                people = [f"per_{tag}p{p:06d}" for p in range(people_each)]
                put(
                    "people",
                    (
                        (p, cid, f"居民{i}", "active", False, False, start, start)
                        for i, p in enumerate(people)
                    ),
                )
                put(
                    "memberships",
                    (
                        (
                            f"mem_{p[4:]}",
                            cid,
                            p,
                            units[i // PEOPLE_PER_UNIT % units_each],
                            "resident",
                            start,
                            start,
                        )
                        for i, p in enumerate(people)
                    ),
                )
                put(
                    "cards",
                    (
                        (f"crd_{p[4:]}", cid, p, f"FF{n:05X}{i:06X}", start, start)
                        for i, p in enumerate(people)
                    ),
                )
                put(
                    "vehicles",
                    (
                        (
                            f"veh_{tag}v{i:06d}",
                            cid,
                            people[i],
                            vehicle_plates[i],
                            skeletons[i],
                            start,
                            start,
                        )
                        for i in range(vehicles_each)
                    ),
                )
                put(
                    "access_events",
                    _events(cid, tag, points[cid], device_of, people, start, events_per_day, rng),
                )
                put("alerts", _alerts(cid, tag, points[cid], start, alerts_each, rng))
                if n % 250 == 0 or n == len(communities) - 1:
                    print(
                        f"  {n + 1}/{len(communities)} communities, "
                        f"{sum(counts.values()):,} rows, {time.perf_counter() - timer:.0f} s"
                    )
        print("  " + ", ".join(f"{table} {count:,}" for table, count in counts.items()))
        started = time.perf_counter()
        for table in BIG_TABLES:
            connection.execute(f"VACUUM (ANALYZE) {table}")
        connection.execute("ANALYZE")
        print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")


def _events(
    cid: str,
    tag: str,
    points: list[str],
    device_of: dict[str, str],
    people: list[str],
    start: datetime,
    per_day: int,
    rng: random.Random,
) -> Iterator[tuple]:
    total = per_day * DAYS
    span = DAYS * 86_400
    for n in range(total):
        at = start + timedelta(seconds=rng.random() * span)
        point = points[n % len(points)]
        granted = rng.random() < 0.93
        yield (
            f"evt_{tag}e{n:07d}",
            cid,
            at,
            point,
            device_of.get(point),
            "card" if n % 3 else "face",
            "in" if n % 2 else "out",
            "grant" if granted else "deny",
            "resident" if granted else "unknown_card",
            people[n % len(people)] if granted else None,
            "{}",
        )


_ALERT_TYPES = (
    AlertType.DOOR_FORCED,
    AlertType.DOOR_HELD_OPEN,
    AlertType.STRANGER,
    AlertType.DEVICE_OFFLINE,
    AlertType.OVERSTAY,
)


def _alerts(
    cid: str, tag: str, points: list[str], start: datetime, count: int, rng: random.Random
) -> Iterator[tuple]:
    span = DAYS * 86_400
    for n in range(count):
        at = start + timedelta(seconds=rng.random() * span)
        draw = rng.random()
        if draw < RESOLVED_SHARE:
            status = "resolved"
        elif draw < RESOLVED_SHARE + ACKNOWLEDGED_SHARE:
            status = "acknowledged"
        else:
            status = "open"
        kind = _ALERT_TYPES[n % len(_ALERT_TYPES)]
        yield (
            f"alr_{tag}a{n:06d}",
            cid,
            kind.value,
            Severity.HIGH.value if n % 4 else Severity.MEDIUM.value,
            status,
            points[n % len(points)],
            f"{kind.value} at a gate",
            "{}",
            at,
            at + timedelta(minutes=5) if status != "open" else at,
        )


def load_empty(side: Side, rng: random.Random) -> None:
    """A page's worth: alerts across the first covered communities, today's probe events."""
    probe = probe_of(side)
    now = datetime.now(UTC).replace(microsecond=0)
    zone = ZoneInfo("Asia/Shanghai")
    midnight = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    with raw(side) as connection:
        points = dict(
            connection.execute(
                "SELECT DISTINCT ON (community_id) community_id, id FROM access_points "
                "ORDER BY community_id, id"
            ).fetchall()
        )
        device_of = dict(connection.execute("SELECT access_point_id, id FROM devices").fetchall())
        people = [
            row[0]
            for row in connection.execute(
                "SELECT id FROM people WHERE community_id = %s", (probe.community_id,)
            ).fetchall()
        ]
        connection.execute("SET session_replication_role = replica")
        alerts = []
        for n in range(EMPTY_ALERTS):
            cid = probe.communities[n % min(len(probe.communities), OFFICER_SMALL)]
            start = now - timedelta(days=DAYS)
            row = next(_alerts(cid, f"e{n:04d}", [points[cid]], start, 1, rng))
            alerts.append((f"alr_empty{n:05d}", *row[1:]))
        copy_rows(connection, "alerts", alerts)
        point = points[probe.community_id]
        seconds = max(1, int((datetime.now(zone) - midnight).total_seconds()))
        events = []
        for n in range(EMPTY_EVENTS):
            at = midnight.astimezone(UTC) + timedelta(seconds=rng.random() * seconds)
            events.append(
                (
                    f"evt_empty{n:05d}",
                    probe.community_id,
                    at,
                    point,
                    device_of.get(point),
                    "card",
                    "in",
                    "grant",
                    "resident",
                    people[0],
                    "{}",
                )
            )
        copy_rows(connection, "access_events", events)
        connection.execute("SET session_replication_role = origin")
        connection.execute("ANALYZE")


# Measuring ----------------------------------------------------------------------------------------


@dataclass
class Scenario:
    """One request, made on each side: ``call(side)`` answers, ``check`` says it is right."""

    name: str
    call: Callable[[Side], Any]
    requests: int
    hot: bool = True  # its statements are EXPLAINed on the city database


def _api(side: Side, username: str) -> dict[str, str]:
    client = side.app.test_client()
    answer = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    if answer.status_code != 201:
        raise SystemExit(f"{username} on {side.name}: {answer.json}")
    return {"Authorization": f"Bearer {answer.json['token']}"}


def scenarios(sides: list[Side], requests: int, face_frames: Any) -> list[Scenario]:
    tokens = {s.name: _api(s, "staff_probe") for s in sides}
    small = {s.name: _api(s, "officer_small") for s in sides}
    every = {s.name: _api(s, "officer_all") for s in sides}
    counter = {"n": 0}

    def verify(kind: str, body: Callable[[Side], dict], expect: bytes, device: str) -> Callable:
        def call(side: Side) -> Any:
            credential = getattr(side.probe, device)
            answer = side.app.test_client().post(
                f"/api/v1/verify/{kind}",
                json=body(side),
                headers={"Authorization": f"Bearer {credential}"},
            )
            if expect not in answer.data:
                raise SystemExit(
                    f"{kind} on {side.name}: {answer.status_code} {answer.data[:300]!r}"
                )
            return answer

        return call

    def qr(side: Side) -> dict:
        counter["n"] += 1
        probe = side.probe
        return {"token": probe.tokens[counter["n"] % len(probe.tokens)]}

    def plate(side: Side) -> dict:
        counter["n"] += 1
        direction = "in" if counter["n"] % 2 else "out"
        return {"plate": PROBE_PLATE, "confidence": 0.97, "direction": direction}

    def get(path: Callable[[Side], str], who: dict[str, dict[str, str]]) -> Callable:
        def call(side: Side) -> Any:
            answer = side.app.test_client().get(path(side), headers=who[side.name])
            if answer.status_code != 200 or not answer.json:
                raise SystemExit(
                    f"{path(side)} on {side.name}: {answer.status_code} {answer.data[:300]!r}"
                )
            return answer

        return call

    zone = ZoneInfo("Asia/Shanghai")
    midnight = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    day = f"since={_q(midnight)}&until={_q(midnight + timedelta(days=1))}"

    def after(path: str, who: dict[str, dict[str, str]]) -> Callable[[Side], str]:
        """``path``'s second page: the cursor of its first page, asked once per side."""
        cursors: dict[str, str] = {}

        def second(side: Side) -> str:
            if side.name not in cursors:
                first = side.app.test_client().get(path, headers=who[side.name])
                cursors[side.name] = json.loads(first.headers["X-Pagination"])["next_after"]
            return f"{path}&after={cursors[side.name]}"

        return second

    def fixed(path: str) -> Callable[[Side], str]:
        return lambda _side: path

    def probe_events(size: int) -> Callable[[Side], str]:
        def path(side: Side) -> str:
            community = probe_of(side).community_id
            return f"/api/v1/events?community_id={community}&{day}&page_size={size}"

        return path

    found = [
        Scenario(
            "verify card", verify("card", lambda s: {"uid": CARD_UID}, b'"grant"', "door"), requests
        ),
        Scenario("verify plate", verify("plate", plate, b'"grant"', "barrier"), requests),
        Scenario("verify QR", verify("qr", qr, b'"grant"', "door"), requests),
    ]
    if face_frames is not None:
        found.append(
            Scenario(
                "verify face",
                _face_call(face_frames),
                max(20, requests // 5),
            )
        )
    found += [
        Scenario(f"staff day view, page of {size}", get(probe_events(size), tokens), requests)
        for size in (10, 50, 100)
    ]
    found += [
        Scenario(
            f"alert list, officer of {OFFICER_SMALL}",
            get(fixed("/api/v1/alerts?page_size=50"), small),
            requests,
        ),
        Scenario(
            f"alert list, officer of {OFFICER_SMALL}, next page",
            get(after("/api/v1/alerts?page_size=50", small), small),
            requests,
        ),
        Scenario(
            "alert list, officer of all", get(fixed("/api/v1/alerts?page_size=50"), every), requests
        ),
        Scenario(
            "alert list, officer of all, next page",
            get(after("/api/v1/alerts?page_size=50", every), every),
            requests,
        ),
        Scenario(
            f"event search, officer of {OFFICER_SMALL}",
            get(fixed("/api/v1/events?page_size=50"), small),
            requests,
        ),
        Scenario(
            "event search, officer of all, one community",
            get(
                lambda s: f"/api/v1/events?community_id={s.probe.community_id}&page_size=50", every
            ),
            requests,
        ),
    ]
    return found


def _q(moment: datetime) -> str:
    return moment.isoformat().replace("+", "%2B")


def face_frames() -> Any:
    """The door frames and depth maps of the face probes, or None without the test images."""
    try:
        import numpy as np

        from bench.verify_face import PROBES, door_frame
        from gatekeeper import faces, liveness
        from tests.support import depthmaps

        frames = []
        for name in PROBES:
            jpeg, rgb = door_frame(name)
            probe = faces.probe_face(rgb)
            scene = depthmaps.Scene(
                liveness.face_landmarks(rgb, probe.face.box),
                (rgb.shape[1], rgb.shape[0]),
                (640, 360),
            )
            depth = depthmaps.to_png16(depthmaps.live_face(scene, 500, np.random.default_rng(7)))
            frames.append((jpeg, depth))
        return frames
    except Exception as error:
        print(f"face verify left out: {error}")
        return None


def _face_call(frames: Any) -> Callable[[Side], Any]:
    from io import BytesIO

    counter = {"n": 0}

    def call(side: Side) -> Any:
        counter["n"] += 1
        jpeg, depth = frames[counter["n"] % len(frames)]
        answer = side.app.test_client().post(
            "/api/v1/verify/face",
            data={
                "image": (BytesIO(jpeg), "frame.jpg", "image/jpeg"),
                "depth": (BytesIO(depth), "depth.png", "image/png"),
            },
            headers={"Authorization": f"Bearer {side.probe.door}"},
            content_type="multipart/form-data",
        )
        if b'"grant"' not in answer.data:
            raise SystemExit(f"face on {side.name}: {answer.status_code} {answer.data[:300]!r}")
        return answer

    return call


def measure(sides: list[Side], scenario: Scenario) -> dict[str, list[float]]:
    """Milliseconds per request on each side, interleaved (the order alternates)."""
    times: dict[str, list[float]] = {s.name: [] for s in sides}
    for side in sides:
        side.statements.clear()  # warm up: caches, connections, the face engine
        for _ in range(3):
            scenario.call(side)
    for n in range(scenario.requests):
        for side in sides if n % 2 else sides[::-1]:
            started = time.perf_counter()
            scenario.call(side)
            times[side.name].append((time.perf_counter() - started) * 1000)
    return times


def ingest_rates(sides: list[Side], count: int, rounds: int = 5) -> dict[str, float]:
    """Device events per second through the worker's handler (``DeviceIngest.handle``) on
    each side: ``count`` events in ``rounds`` interleaved rounds, after a warm-up."""
    spent = {side.name: 0.0 for side in sides}
    handlers = {side.name: DeviceIngest(side.app) for side in sides}
    seq = {side.name: 10_000_000 + secrets.randbelow(1_000_000) * 1000 for side in sides}
    share = max(1, count // rounds)

    def handle(side: Side, events: int) -> float:
        probe = side.probe
        topic = device_topic(probe.community_id, probe.door_device_id, "evt")
        payloads = []
        for _ in range(events):
            seq[side.name] += 1
            message = EventMessage(EventType.DOOR_OPENED, seq[side.name], datetime.now(UTC), {})
            payloads.append(message.encode())
        started = time.perf_counter()
        for payload in payloads:
            handlers[side.name].handle(topic, payload)
        return time.perf_counter() - started

    for side in sides:
        handle(side, 20)
    for n in range(rounds):
        for side in sides if n % 2 else sides[::-1]:
            spent[side.name] += handle(side, share)
    for side in sides:
        if handlers[side.name].stats["event"] != 20 + share * rounds:
            raise SystemExit(f"ingest on {side.name}: {dict(handlers[side.name].stats)}")
    return {name: share * rounds / seconds for name, seconds in spent.items()}


# EXPLAIN ------------------------------------------------------------------------------------------


def explain(side: Side, scenario: Scenario, big: set[str]) -> list[str]:
    """The plans of one request's statements on ``side``: the two slowest in full, and a flag
    for any sequential scan of a big table in any of them."""
    side.statements.clear()
    scenario.call(side)
    statements = [
        (sql, params)
        for sql, params in side.statements
        if sql.lstrip().upper().startswith("SELECT")
    ]
    plans = []
    with raw(side) as connection:
        for sql, params in statements:
            rows = connection.execute(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) " + sql, params
            ).fetchall()
            text = "\n".join(row[0] for row in rows)
            took = _execution_ms(text)
            plans.append((took, sql, text))
    out = []
    for took, sql, text in plans:
        scanned = set(re.findall(r"Seq Scan on (\w+)", text))
        for table in sorted(scanned & big):
            out.append(f"  !! Seq Scan on {table} ({took:.2f} ms): {_short(sql)}")
    for took, _sql, text in sorted(plans, key=lambda p: -p[0])[:2]:
        out.append(f"  -- {took:.2f} ms")
        out.extend("     " + line for line in text.splitlines())
    return out


def _execution_ms(plan: str) -> float:
    for line in plan.splitlines():
        if line.strip().startswith("Execution Time:"):
            return float(line.split(":")[1].split()[0])
    return 0.0


def _short(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat[:160] + ("..." if len(flat) > 160 else "")


def big_tables(side: Side, at_least: int = 50_000) -> set[str]:
    """Tables (partitions included) with at least ``at_least`` rows by the planner's count."""
    with raw(side) as connection:
        rows = connection.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND reltuples >= %s", (at_least,)
        ).fetchall()
    return {row[0] for row in rows}


# The run ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.02, help="1.0: 2,500 communities ...")
    parser.add_argument("--requests", type=int, default=200, help="per scenario and database")
    parser.add_argument("--events-per-day", type=int, default=133, help="per community")
    parser.add_argument("--ingest", type=int, default=500, help="device events handled")
    add_load_flag(parser)
    args = parser.parse_args()
    check_load("set-up", args.force)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    sizes = {name: max(2, round(count * args.scale)) for name, count in CITY.items()}
    rng = random.Random(SEED)  # noqa: S311 (seeded on purpose: the same city every run)
    print(
        f"scale {args.scale}: {sizes['communities']:,} communities, "
        f"{2 * sizes['communities']:,} devices, {sizes['people']:,} people, "
        f"{sizes['vehicles']:,} vehicles, {sizes['alerts']:,} alerts, "
        f"{args.events_per_day} events per community a day for {DAYS} days "
        f"({args.events_per_day * DAYS * sizes['communities']:,} events)"
    )
    cluster = PostgresCluster()
    cluster.start()
    try:
        city, empty = new_side(cluster, "city"), new_side(cluster, "empty")
        sides = [city, empty]
        for side in sides:
            side.probe = build_probe(side)
            load_structure(side, sizes)
        started = time.perf_counter()
        load_city(city, sizes, args.events_per_day, rng)
        loaded_s = time.perf_counter() - started
        load_empty(empty, rng)
        print(f"city loaded in {loaded_s:.0f} s (load average {load_average()})")
        with raw(city) as connection:
            size = connection.execute("SELECT pg_size_pretty(pg_database_size('city'))").fetchone()
        print(f"city database: {size[0]}")

        frames = face_frames() if city.probe.face and empty.probe.face else None
        results = []
        for scenario in scenarios(sides, args.requests, frames):
            check_load(scenario.name, args.force)
            times = measure(sides, scenario)
            results.append((scenario, times, load_average()))
            c50, c99 = percentile(times["city"], 50), percentile(times["city"], 99)
            e50, e99 = percentile(times["empty"], 50), percentile(times["empty"], 99)
            print(
                f"{scenario.name:<46} city P50 {c50:7.1f} P99 {c99:7.1f}"
                f" | empty P50 {e50:7.1f} P99 {e99:7.1f} ms"
                f" | city/empty P50 {c50 / e50:5.2f} P99 {c99 / e99:5.2f}"
                f" | load {load_average()}",
                flush=True,
            )
        check_load("worker ingest", args.force)
        rates = ingest_rates(sides, args.ingest)
        print(
            f"{'worker ingest (events/s)':<46} city {rates['city']:7.0f} | empty "
            f"{rates['empty']:7.0f} | city/empty {rates['city'] / rates['empty']:5.2f}"
            f" | load {load_average()}"
        )
        print("\nEXPLAIN (ANALYZE, BUFFERS) on the city database")
        big = big_tables(city)
        for scenario, _times, _load in results:
            if scenario.hot and not scenario.name.startswith("verify face"):
                print(f"\n== {scenario.name}")
                print("\n".join(explain(city, scenario, big)))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
