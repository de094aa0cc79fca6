"""One community where every verify kind is granted, and the SQL statements each request sends.

``build_verify_site()`` (inside an app context, on a migrated database) makes a resident
(奥巴马, owner in building A1, face enrolled from ``obama.jpg``) with a card, a car, a
resident's rotating code and a courier code for A's door, a visitor pass for that door, and
a barrier; ``requests_of(site)`` gives one request maker per kind, which counts in a
``Statements`` what reaches the database driver (SQLAlchemy's ``before_cursor_execute``).

Shared by ``tests/access/test_verify_statements.py`` (the counts may not grow) and
``bench/verify_statements.py`` (prints them, with the SQL).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from gatekeeper import pincodes
from gatekeeper.vocabulary import AccessPointKind, DeviceKind, PersonRole, Zone
from server.access import qr
from server.couriers import service as couriers
from server.extensions import db
from server.models import AccessPoint, Community, CourierCode, Person, utcnow
from server.passes.service import token_for
from tests import factories
from tests.support.faces import enrol, frame

SECRET = "verify-kinds-door-secret"
BARRIER_SECRET = "verify-kinds-barrier-secret"
CARD_UID = "04A1B2C3"
PLATE = "浙A12345"
FUZZY_READ = "浙A1Z345"  # 2 read as Z: the only near match
PIN = "042917"

# One request of a kind: given a ``Statements``, its statements are counted there.
Request = Callable[..., dict]

# The kinds counted, in the order printed.
KINDS = ("card", "face", "qr_resident", "qr_pass", "pin", "plate_exact", "plate_fuzzy")


@dataclass
class VerifySite:
    door: str  # the door device's credential
    barrier: str  # the barrier device's credential
    resident: str
    pass_token: str
    extra: dict[str, str] = field(default_factory=dict)


def build_verify_site() -> VerifySite:
    """Inside an app context: the community and its credentials, committed."""
    w = factories.world(door_secret=SECRET)
    community = db.session.get(Community, w.a.id)
    community.settings = {**(community.settings or {}), "fuzzy_plates": True}
    point = db.session.get(AccessPoint, w.door_a.id)
    point.requires_depth = False
    point.has_keypad = True
    resident = factories.person(w.a, "奥巴马")
    factories.membership(resident, PersonRole.OWNER, unit_of=w.unit_a)
    enrol(w.a.id, resident.id, "obama.jpg")
    factories.card(resident, CARD_UID)
    factories.vehicle(resident, PLATE)
    barrier = factories.access_point(
        w.a, name="Barrier", kind=AccessPointKind.BARRIER, zone=Zone.PERIMETER
    )
    barrier_device, _ = factories.device(barrier, kind=DeviceKind.BARRIER, secret=BARRIER_SECRET)
    visitor_pass = factories.visitor_pass(
        w.unit_a,
        access_points=[point],
        max_uses=250,
        issued_by_person_id=resident.id,
        valid_until=utcnow() + timedelta(days=1),
    )
    now = utcnow().replace(microsecond=0)
    db.session.add(
        CourierCode(
            community_id=w.a.id,
            access_point_id=point.id,
            unit_id=w.unit_a.id,
            building_id=point.building_id,
            issued_by_person_id=resident.id,
            label="Courier",
            code_hash=pincodes.pin_hash(couriers.code_keys()[0], point.id, PIN),
            hint=PIN[-2:],
            valid_from=now - timedelta(minutes=1),
            valid_until=now + timedelta(days=1),
            max_uses=250,
        )
    )
    db.session.commit()  # before the first signing key is made (its own transaction)
    site = VerifySite(
        door=f"{w.device_a.id}.{SECRET}",
        barrier=f"{barrier_device.id}.{BARRIER_SECRET}",
        resident=resident.id,
        pass_token=token_for(visitor_pass),
    )
    db.session.commit()
    return site


def requests_of(app: Flask, client: FlaskClient, site: VerifySite) -> dict[str, Request]:
    """Per kind, a call that sends one granted request and returns the answer's JSON; given a
    ``Statements``, it counts the statements of the request alone (not of its preparation:
    a resident's code is made anew for each request)."""
    door = {"Authorization": f"Bearer {site.door}"}
    barrier = {"Authorization": f"Bearer {site.barrier}"}
    face_frame = frame("obama.jpg")

    def post(path: str, headers: dict[str, str], seen: Statements | None, **kwargs: object) -> dict:
        with listening(app, seen):
            answer = client.post(f"/api/v1/verify/{path}", headers=headers, **kwargs)
        assert answer.status_code == 200, answer.json
        assert answer.json["decision"] == "grant", answer.json
        return answer.json

    def resident_code(seen: Statements | None = None) -> dict:
        with app.app_context():
            token, _until = qr.resident_code(db.session.get(Person, site.resident))
            db.session.commit()
        return post("qr", door, seen, json={"token": token})

    return {
        "card": lambda seen=None: post("card", door, seen, json={"uid": CARD_UID}),
        "face": lambda seen=None: post(
            "face",
            door,
            seen,
            data={"image": (io.BytesIO(face_frame), "frame.jpg")},
            content_type="multipart/form-data",
        ),
        "qr_resident": resident_code,
        "qr_pass": lambda seen=None: post("qr", door, seen, json={"token": site.pass_token}),
        "pin": lambda seen=None: post("pin", door, seen, json={"pin": PIN}),
        "plate_exact": lambda seen=None: post(
            "plate", barrier, seen, json={"plate": PLATE, "confidence": 0.97, "direction": "in"}
        ),
        "plate_fuzzy": lambda seen=None: post(
            "plate",
            barrier,
            seen,
            json={"plate": FUZZY_READ, "confidence": 0.5, "direction": "in"},
        ),
    }


@dataclass
class Statements:
    """The SQL statements sent while counting."""

    sql: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.sql)


@contextmanager
def listening(app: Flask, seen: Statements | None) -> Iterator[None]:
    """Inside the block, every statement the app's engine sends to the driver goes into
    ``seen`` (nothing is listened to when it is None)."""
    if seen is None:
        yield
        return
    with app.app_context():
        engine = db.engine

    def before(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:
        seen.sql.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", before)
