"""Load a seed file (``seeds/demo.json``) into the database, adding only what is missing."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import marshmallow as ma
from PIL import Image, ImageDraw
from sqlalchemy import select

from gatekeeper.holidays import HolidayEffect, hours_from_json
from gatekeeper.plates import normalise_plate
from gatekeeper.vocabulary import AccessPointKind, DeviceKind, PersonRole, Zone
from server.community import settings as community_settings
from server.community import siteplan
from server.core.auth import device_secret_hash, hash_password
from server.devices.service import set_secret
from server.extensions import db
from server.models import (
    AccessPoint,
    Building,
    Card,
    Community,
    Device,
    Holiday,
    Lease,
    Membership,
    OfficerDuty,
    Person,
    RfidTag,
    SitePlan,
    Unit,
    User,
    UserRole,
    Vehicle,
    WorkerPermit,
    WorkerTag,
    utcnow,
)


class SeedError(Exception):
    """The seed file is unreadable or refers to something it does not define."""


def load_seed(path: Path) -> dict[str, int]:
    """Add the file's rows that do not exist yet (matched by name); return what was added."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SeedError(f"cannot read {path}: {error}") from error
    loader = _Loader()
    try:
        for community in data.get("communities", []):
            loader.community(community)
        for user in data.get("users", []):
            loader.user(user)
    except (KeyError, ValueError) as error:
        raise SeedError(f"{path.name}: bad or missing value {error}") from error
    return dict(loader.added)


class _Loader:
    def __init__(self) -> None:
        self.added: Counter[str] = Counter()

    def _get_or_add(self, model: type, label: str, match: dict[str, Any], **values: Any) -> Any:
        row = db.session.scalar(select(model).filter_by(**match))
        if row is None:
            row = model(**match, **values)
            db.session.add(row)
            db.session.flush()
            self.added[label] += 1
        return row

    def _community(self, name: str) -> Community:
        community = db.session.scalar(select(Community).filter_by(name=name))
        if community is None:
            raise SeedError(f"unknown community {name!r}")
        return community

    def _unit(self, community: Community, building: str, number: str) -> Unit:
        unit = db.session.scalar(
            select(Unit)
            .join(Building)
            .where(
                Building.community_id == community.id,
                Building.name == building,
                Unit.number == number,
            )
        )
        if unit is None:
            raise SeedError(f"unknown unit {building}/{number} in {community.name}")
        return unit

    def community(self, spec: dict[str, Any]) -> None:
        community = self._get_or_add(
            Community,
            "communities",
            {"name": spec["name"]},
            timezone=spec.get("timezone", "Asia/Shanghai"),
            settings=_settings(spec.get("settings") or {}),
        )
        buildings = {}
        for b in spec.get("buildings", []):
            building = self._get_or_add(
                Building, "buildings", {"community_id": community.id, "name": b["name"]}
            )
            buildings[b["name"]] = building
            for u in b.get("units", []):
                self._get_or_add(
                    Unit,
                    "units",
                    {"building_id": building.id, "number": u["number"]},
                    community_id=community.id,
                    floor=u.get("floor"),
                )
        points = {}
        for p in spec.get("access_points", []):
            building = buildings[p["building"]] if p.get("building") else None
            points[p["name"]] = self._get_or_add(
                AccessPoint,
                "access points",
                {"community_id": community.id, "name": p["name"]},
                kind=AccessPointKind(p["kind"]),
                zone=Zone(p["zone"]),
                building_id=building.id if building else None,
                open_ms=p.get("open_ms", 5000),
                requires_depth=p.get("requires_depth", False),
                has_keypad=p.get("has_keypad", False),
                **_plan_position(p),
            )
        if spec.get("site_plan"):
            self._site_plan(community, spec["site_plan"])
        for d in spec.get("devices", []):
            self._device(community, d, points)
        for person in spec.get("people", []):
            self._person(community, person)
        for holiday in spec.get("holidays", []):
            self._holiday(community, holiday, points)

    def _device(
        self, community: Community, spec: dict[str, Any], points: dict[str, AccessPoint]
    ) -> None:
        match = {"community_id": community.id, "name": spec["name"]}
        if db.session.scalar(select(Device).filter_by(**match)) is not None:
            return
        point = points[spec["access_point"]] if spec.get("access_point") else None
        device = Device(
            **match,
            kind=DeviceKind(spec["kind"]),
            access_point_id=point.id if point else None,
            zone=Zone(spec["zone"]) if spec.get("zone") else (point.zone if point else None),
            **_plan_position(spec),
        )
        set_secret(device, spec.get("secret"))
        db.session.add(device)
        self.added["devices"] += 1

    def _site_plan(self, community: Community, spec: dict[str, Any]) -> None:
        """A site plan drawn now (``docs/siteplan.md``): its ``size`` in pixels and its
        ``blocks`` (buildings, the kindergarten ...) as fractions ``[left, top, right,
        bottom]``; a community that has a plan keeps it."""
        if db.session.get(SitePlan, community.id) is not None:
            return
        png = drawn_site_plan(tuple(spec["size"]), [tuple(b) for b in spec.get("blocks", [])])
        content_type, width, height = siteplan.read_picture(png)
        db.session.add(
            SitePlan(
                community_id=community.id,
                content_type=content_type,
                image=png,
                width=width,
                height=height,
                sha256=hashlib.sha256(png).hexdigest(),
            )
        )
        self.added["site plans"] += 1

    def _holiday(
        self, community: Community, spec: dict[str, Any], points: dict[str, AccessPoint]
    ) -> None:
        """A holiday of the calendar (``gatekeeper.holidays``), matched by name and first day."""
        first = date.fromisoformat(spec["first_day"])
        match = {"community_id": community.id, "name": spec["name"], "first_day": first}
        if db.session.scalar(select(Holiday).filter_by(**match)) is not None:
            return
        effect = HolidayEffect(spec.get("effect", "closed"))
        hours = spec.get("hours") if effect is HolidayEffect.HOURS else None
        holiday = Holiday(
            **match,
            last_day=date.fromisoformat(spec.get("last_day", spec["first_day"])),
            effect=effect,
            hours=hours_from_json(hours).to_json() if hours is not None else None,
            all_points=bool(spec.get("all_points", False)),
        )
        holiday.access_points = [points[name] for name in spec.get("access_points", [])]
        db.session.add(holiday)
        self.added["holidays"] += 1

    def _person(self, community: Community, spec: dict[str, Any]) -> None:
        role = PersonRole(spec["role"])
        person = self._get_or_add(
            Person,
            "people",
            {"community_id": community.id, "name": spec["name"]},
            phone=spec.get("phone"),
            lives_alone=spec.get("lives_alone", False),
            wander_risk=spec.get("wander_risk", False),
        )
        unit = self._unit(community, spec["building"], spec["unit"]) if spec.get("unit") else None
        self._get_or_add(
            Membership,
            "memberships",
            {"person_id": person.id, "unit_id": unit.id if unit else None, "role": role},
            community_id=community.id,
        )
        lease = spec.get("lease")
        if lease and unit is not None:
            now = utcnow().replace(microsecond=0)
            if db.session.scalar(select(Lease).filter_by(person_id=person.id)) is None:
                db.session.add(
                    Lease(
                        community_id=community.id,
                        person_id=person.id,
                        unit_id=unit.id,
                        starts_at=now + timedelta(days=lease["starts_in_days"]),
                        ends_at=now + timedelta(days=lease["ends_in_days"]),
                    )
                )
                self.added["leases"] += 1
        for name in spec.get("guardians", []):  # people listed before this one
            guardian = db.session.scalar(
                select(Person).filter_by(community_id=community.id, name=name)
            )
            if guardian is None:
                raise SeedError(f"{spec['name']}: no person {name!r} seeded before as a guardian")
            if guardian not in person.guardians:
                person.guardians.append(guardian)
        for uid in spec.get("cards", []):
            self._get_or_add(
                Card, "cards", {"community_id": community.id, "uid": uid}, person_id=person.id
            )
        for epc in spec.get("tags", []):
            self._get_or_add(
                RfidTag, "tags", {"community_id": community.id, "epc": epc}, person_id=person.id
            )
        for plate in spec.get("vehicles", []):
            self._get_or_add(
                Vehicle,
                "vehicles",
                {"community_id": community.id, "plate": normalise_plate(plate)},
                person_id=person.id,
            )
        worker = spec.get("worker")
        if (
            worker
            and db.session.scalar(select(WorkerPermit.id).filter_by(person_id=person.id)) is None
        ):
            now = utcnow().replace(microsecond=0)
            permit = WorkerPermit(
                community_id=community.id,
                person_id=person.id,
                tag=WorkerTag(worker["tag"]),
                schedule=worker.get("schedule"),
                valid_from=now,
                valid_until=now + timedelta(days=worker["days"]),
            )
            permit.access_points = [
                db.session.scalar(
                    select(AccessPoint).filter_by(community_id=community.id, name=name)
                )
                for name in worker["access_points"]
            ]
            db.session.add(permit)
            self.added["worker permits"] += 1

    def user(self, spec: dict[str, Any]) -> None:
        if db.session.scalar(select(User).filter_by(username=spec["username"])) is not None:
            return
        user = User(
            username=spec["username"],
            role=UserRole(spec["role"]),
            display_name=spec.get("display_name"),
            password_hash=hash_password(spec["password"]),
        )
        user.communities = [self._community(name) for name in spec.get("communities", [])]
        if spec.get("unit"):
            community = self._community(spec["community"])
            user.unit_id = self._unit(community, spec["building"], spec["unit"]).id
            if spec.get("person"):
                person = db.session.scalar(
                    select(Person).filter_by(community_id=community.id, name=spec["person"])
                )
                if person is None:
                    raise SeedError(f"unknown person {spec['person']!r}")
                user.person_id = person.id
        db.session.add(user)
        self.added["users"] += 1
        if spec.get("duty"):
            self._duty(user, spec["duty"])

    def _duty(self, user: User, spec: dict[str, Any]) -> None:
        """An officer on duty at an access point of a community they cover (dispatch)."""
        db.session.flush()
        point = None
        if spec.get("access_point"):
            point = db.session.scalar(
                select(AccessPoint).where(
                    AccessPoint.name == spec["access_point"],
                    AccessPoint.community_id.in_([c.id for c in user.communities]),
                )
            )
            if point is None:
                raise SeedError(f"unknown access point {spec['access_point']!r}")
        now = utcnow()
        db.session.add(
            OfficerDuty(
                user_id=user.id,
                on_duty=spec.get("on_duty", True),
                changed_at=now,
                access_point_id=point.id if point else None,
                position_at=now if point else None,
            )
        )


def _plan_position(spec: dict[str, Any]) -> dict[str, float]:
    """``"plan": [x, y]`` of a seed's access point or device as its columns (none: not placed)."""
    if not spec.get("plan"):
        return {}
    x, y = (float(v) for v in spec["plan"])
    if not (0 <= x <= 1 and 0 <= y <= 1):
        raise ValueError(f"plan {spec['plan']!r} of {spec['name']!r}: fractions from 0 to 1")
    return {"plan_x": x, "plan_y": y}


def drawn_site_plan(
    size: tuple[int, int], blocks: list[tuple[float, float, float, float]]
) -> bytes:
    """A plain site plan as PNG: lawn, the boundary, a ring road and grey blocks (no words,
    so no font is needed), for the demo community."""
    width, height = size
    picture = Image.new("RGB", (width, height), (221, 236, 214))
    pen = ImageDraw.Draw(picture)
    edge = round(min(width, height) * 0.03)
    pen.rectangle(
        (edge, edge, width - edge, height - edge), outline=(120, 130, 140), width=edge // 3
    )
    road = (236, 233, 226)
    pen.rectangle((0, round(height * 0.55), width, round(height * 0.6)), fill=road)
    pen.rectangle(
        (round(width * 0.48), round(height * 0.55), round(width * 0.52), height), fill=road
    )
    for left, top, right, bottom in blocks:
        box = (
            round(left * width),
            round(top * height),
            round(right * width),
            round(bottom * height),
        )
        pen.rectangle(box, fill=(200, 204, 210), outline=(90, 98, 110), width=3)
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def demo_fleet(path: Path) -> list[dict[str, str]]:
    """The seed file's devices as a simulator fleet: ids from the database, demo secrets.

    A device whose secret was rotated since seeding is left out: its demo secret no
    longer opens the broker.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SeedError(f"cannot read {path}: {error}") from error
    fleet = []
    for spec in data.get("communities", []):
        community = db.session.scalar(select(Community).filter_by(name=spec["name"]))
        if community is None:
            continue
        for device_spec in spec.get("devices", []):
            secret = device_spec.get("secret")
            device = db.session.scalar(
                select(Device).filter_by(community_id=community.id, name=device_spec["name"])
            )
            if (
                secret is None
                or device is None
                or device.disabled
                or device.secret_hash != device_secret_hash(secret)
            ):
                continue
            fleet.append(
                {
                    "kind": device.kind.value,
                    "device_id": device.id,
                    "secret": secret,
                    "community_id": community.id,
                    "name": device.name,
                }
            )
    return fleet


def _settings(changes: dict[str, Any]) -> dict[str, Any]:
    """A new community's settings from its seed (e.g. the temporary cars' tariff), validated
    like the settings API's; ``{}`` when the seed names none."""
    if not changes:
        return {}
    try:
        return community_settings.merged({}, changes)
    except ma.ValidationError as error:
        raise SeedError(f"bad community settings: {error.messages}") from error
