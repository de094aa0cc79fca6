"""Offline allowlists: built from the online policy, signed, published and served per device.

docs/protocol.md section 6, "Allowlists", is the contract. For each access point:

- ``build`` makes the list's header (zone, hours, open time, holiday closures of the next
  60 days, the door mode in force) and its entries: everyone who may pass at the point now
  or later by the rules ``gatekeeper.policy`` applies online (residents of the building, or
  of any building at a shared point; tenants within their leases; workers whose permit lists
  the point, with its hours), each with the windows of their memberships, leases and permit
  cut to their own validity, their cards and tags that are on and within their dates, their
  resident code serial and their face templates. People who are suspended, moved out or
  pending are left out; faces only with consent to face recognition.
- The stored ``AllowlistState`` keeps the entries last published without faces (the
  templates' ids and update times stand in), so a rebuild sees what changed with no
  decryption: a change bumps the version by one and every enabled device of the point gets a
  signed delta and the new retained full list. Faces are encrypted to a device only when it
  is a face terminal (a door) that registered an X25519 key.

**What makes a rebuild.** A SQLAlchemy ``after_flush`` listener (``init_app``) marks the
community of every person, membership, lease, worker permit, card, face template,
consent, door mode, holiday, access point, community and device (its point, kind, switch or
key) a flush adds, changes or deletes in ``allowlist_dirty``, in the same transaction: a
change that commits is never missed, whichever service made it. The worker's leader
(``publish_changes``, every second) rebuilds those communities, and also the lists whose
``refresh_at`` has come (a card or template starts or ends, the closures' horizon moves at
local midnight, at the latest an hour after the last build: a safety net for bulk updates
that bypass the ORM). On start the leader republishes every list in full.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import Connection, delete, event, insert, literal, select
from sqlalchemy import inspect as orm_inspect
from sqlalchemy.orm import Session

from gatekeeper import allowlist as signed
from gatekeeper import doormodes as mode_rules
from gatekeeper import policy
from gatekeeper.doormodes import DoorModeKind
from gatekeeper.holidays import HolidayEffect, local_day
from gatekeeper.identity import mask_name
from gatekeeper.schedule import schedule_from_json
from gatekeeper.vocabulary import DeviceKind, PersonRole, PersonStatus, Reason
from hardware.messages import format_ts
from hardware.topics import allowlist_delta_topic, allowlist_topic
from server.access import doormodes as door_modes
from server.community import holidays
from server.core import crypto
from server.core.messaging import OutgoingMessage, queue_message
from server.extensions import db
from server.models import (
    AccessPoint,
    AllowlistDirty,
    AllowlistState,
    Card,
    Community,
    Consent,
    Device,
    DoorMode,
    FaceTemplate,
    Holiday,
    Lease,
    Membership,
    Person,
    Unit,
    WorkerPermit,
    utcnow,
    worker_permit_access_points,
)
from server.passes import keys as passkeys
from server.people.service import FACE_PURPOSE

_LOGGER = logging.getLogger(__name__)

CLOSURE_DAYS = 60  # holiday closures this far ahead are in every list
REBUILD_AT_LEAST_S = 3600  # a list is rebuilt at least this often (nothing published if same)
# Devices that match faces locally: their lists carry faces once they registered a key.
FACE_DEVICE_KINDS = frozenset({DeviceKind.DOOR})
_RESIDENT_ROLES = policy.RESIDENT_ROLES
# Which role an entry names when a person holds several here: the first that applies.
_ROLE_ORDER = (
    PersonRole.OWNER,
    PersonRole.RESIDENT,
    PersonRole.ELDER,
    PersonRole.CHILD,
    PersonRole.TENANT,
    PersonRole.WORKER,
)
# What a flush of these rows may change in a list (Device: only these attributes).
_WATCHED = (
    Person,
    Membership,
    Lease,
    WorkerPermit,
    Card,
    FaceTemplate,
    Consent,
    DoorMode,
    Holiday,
    AccessPoint,
    Community,
)
_DEVICE_FIELDS = ("access_point_id", "kind", "disabled_at", "allowlist_public_key")


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_ts(value.astimezone(UTC))


@dataclass(frozen=True)
class Built:
    """A list as built: the header, the entries by pid (faces as ``face_refs``), and when it
    next changes by itself."""

    header: dict[str, Any]
    entries: dict[str, dict[str, Any]]
    refresh_at: datetime


# Building ----------------------------------------------------------------------------------


def _cut(
    windows: Iterable[tuple[datetime | None, datetime | None]],
    start: datetime | None,
    end: datetime | None,
    at: datetime,
) -> list[tuple[datetime | None, datetime | None]]:
    """``windows`` each cut to ``[start, end)``, without those empty or over before ``at``."""
    kept = []
    for low, high in windows:
        low = start if low is None else (low if start is None else max(low, start))
        high = end if high is None else (high if end is None else min(high, end))
        if high is not None and (high <= at or (low is not None and high <= low)):
            continue
        kept.append((low, high))
    return sorted(kept, key=lambda w: (w[0] is not None, w[0] or at))


def _valid(row: Any, at: datetime) -> bool:
    return (
        row.disabled_at is None
        and (row.valid_from is None or row.valid_from <= at)
        and (row.valid_until is None or at < row.valid_until)
    )


def _boundaries(rows: Iterable[Any], at: datetime) -> list[datetime]:
    """The instants after ``at`` at which one of ``rows`` starts or stops working."""
    found = []
    for row in rows:
        if row.disabled_at is not None:
            continue
        found += [t for t in (row.valid_from, row.valid_until) if t is not None and t > at]
    return found


def entries_for(point: AccessPoint, at: datetime) -> list[dict[str, Any]]:
    """The entries of ``point``'s list at ``at`` (faces as ``face_refs``), sorted by pid."""
    built = _entries(point, at)
    return [built[0][pid] for pid in sorted(built[0])]


@dataclass(frozen=True)
class Holders:
    """What every list of a community reads about people, read once per rebuild: the active
    people, their cards that are on, their face templates that are on with consent (columns
    only: never the encrypted templates or photos)."""

    people: dict[str, Any]
    cards: dict[str, list[Any]]
    faces: dict[str, list[Any]]

    @classmethod
    def of(cls, community_id: str) -> Holders:
        people = {
            row.id: row
            for row in db.session.execute(
                select(
                    Person.id,
                    Person.name,
                    Person.valid_from,
                    Person.valid_until,
                    Person.code_serial,
                ).where(Person.community_id == community_id, Person.status == PersonStatus.ACTIVE)
            )
        }
        cards: dict[str, list[Any]] = defaultdict(list)
        for row in db.session.execute(
            select(
                Card.person_id, Card.uid, Card.valid_from, Card.valid_until, Card.disabled_at
            ).where(Card.community_id == community_id, Card.disabled_at.is_(None))
        ):
            if row.person_id in people:
                cards[row.person_id].append(row)
        consenting = set(
            db.session.scalars(
                select(Consent.person_id).where(
                    Consent.community_id == community_id,
                    Consent.purpose == FACE_PURPOSE,
                    Consent.withdrawn_at.is_(None),
                )
            )
        )
        faces: dict[str, list[Any]] = defaultdict(list)
        for row in db.session.execute(
            select(
                FaceTemplate.id,
                FaceTemplate.person_id,
                FaceTemplate.updated_at,
                FaceTemplate.valid_from,
                FaceTemplate.valid_until,
                FaceTemplate.disabled_at,
            )
            .where(FaceTemplate.community_id == community_id, FaceTemplate.disabled_at.is_(None))
            .order_by(FaceTemplate.id)
        ):
            if row.person_id in people and row.person_id in consenting:
                faces[row.person_id].append(row)
        return cls(people=people, cards=cards, faces=faces)


def _entries(
    point: AccessPoint, at: datetime, holders: Holders | None = None
) -> tuple[dict[str, dict[str, Any]], list[datetime]]:
    """The entries by pid, and the instants at which a listed credential starts or ends."""
    community_id = point.community_id
    shared = point.building_id is None
    roles: dict[str, set[PersonRole]] = defaultdict(set)
    windows: dict[str, list[tuple[datetime | None, datetime | None]]] = defaultdict(list)
    schedules: dict[str, Any] = {}

    memberships = select(
        Membership.person_id, Membership.role, Membership.valid_from, Membership.valid_until
    ).where(Membership.community_id == community_id, Membership.role.in_(_RESIDENT_ROLES))
    if not shared:
        memberships = memberships.join(Unit, Unit.id == Membership.unit_id).where(
            Unit.building_id == point.building_id
        )
    for person_id, role, start, end in db.session.execute(memberships):
        roles[person_id].add(PersonRole(role))
        windows[person_id].append((start, end))

    leases = select(Lease.person_id, Lease.starts_at, Lease.ends_at).where(
        Lease.community_id == community_id
    )
    if not shared:
        leases = leases.join(Unit, Unit.id == Lease.unit_id).where(
            Unit.building_id == point.building_id
        )
    for person_id, start, end in db.session.execute(leases):
        if person_id in roles and roles[person_id] & _RESIDENT_ROLES:
            continue  # they pass as residents at any time anyway
        roles[person_id].add(PersonRole.TENANT)
        windows[person_id].append((start, end))

    permits = select(
        WorkerPermit.person_id,
        WorkerPermit.valid_from,
        WorkerPermit.valid_until,
        WorkerPermit.schedule,
    ).join(
        worker_permit_access_points,
        worker_permit_access_points.c.permit_id == WorkerPermit.id,
    )
    for person_id, start, end, hours in db.session.execute(
        permits.where(worker_permit_access_points.c.access_point_id == point.id)
    ):
        if roles.get(person_id):
            continue  # a resident or tenant here passes as such
        roles[person_id].add(PersonRole.WORKER)
        windows[person_id].append((start, end))
        schedules[person_id] = hours

    if not roles:
        return {}, []
    holders = holders or Holders.of(community_id)
    people = {pid: holders.people[pid] for pid in roles if pid in holders.people}
    cards, faces = holders.cards, holders.faces

    entries: dict[str, dict[str, Any]] = {}
    boundaries: list[datetime] = []
    for person_id, person in people.items():
        cut = _cut(windows[person_id], person.valid_from, person.valid_until, at)
        if not cut:
            continue
        role = next(r for r in _ROLE_ORDER if r in roles[person_id])
        grant = (
            Reason.RESIDENT
            if role in _RESIDENT_ROLES
            else Reason.TENANT
            if role is PersonRole.TENANT
            else Reason.WORKER
        )
        held = cards[person_id] + faces[person_id]
        boundaries += _boundaries(held, at)
        schedule = schedule_from_json(schedules.get(person_id))
        entries[person_id] = {
            "pid": person_id,
            "name": mask_name(person.name),
            "role": role.value,
            "grant": grant.value,
            "windows": [{"from": _ts(low), "until": _ts(high)} for low, high in cut],
            "schedule": None if schedule is None else schedule.to_json(),
            "cards": sorted({c.uid.upper() for c in cards[person_id] if _valid(c, at)}),
            "code_serials": [person.code_serial] if person.code_serial else [],
            "face_refs": [
                [face.id, _ts(face.updated_at)] for face in faces[person_id] if _valid(face, at)
            ],
        }
    return entries, boundaries


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def closures_for(point: AccessPoint, community: Community, at: datetime) -> list[dict[str, str]]:
    """The point's holiday closures from today (local) for ``CLOSURE_DAYS``: ``[from, until)``
    ranges in which nobody passes (a closing holiday's days; the hours outside a holiday's)."""
    zone = ZoneInfo(community.timezone)
    today = local_day(at, zone)
    last = today + timedelta(days=CLOSURE_DAYS - 1)
    days = holidays.calendar_between(point, community, today, last)
    if not days:
        return []
    ranges: list[list[datetime]] = []

    def close(start: datetime, end: datetime) -> None:
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = end
        else:
            ranges.append([start, end])

    minute = timedelta(minutes=1)
    for offset in range(CLOSURE_DAYS):
        day = today + timedelta(days=offset)
        start, end = _local_midnight(day, zone), _local_midnight(day + timedelta(days=1), zone)
        holiday = days.effect(point.id, start, zone)
        if holiday is None:
            continue
        if holiday.effect is HolidayEffect.CLOSED:
            close(start, end)
            continue
        instant = start
        while instant < end:
            if not holiday.open_at(instant, zone):
                close(instant, instant + minute)
            instant += minute
    return [{"from": _ts(low), "until": _ts(high)} for low, high in ranges if high > at]


def mode_for(point: AccessPoint, community: Community, at: datetime) -> dict[str, Any] | None:
    """The door mode in force over ``point``: an emergency release, else a lockdown with the
    roles every lockdown over it exempts, else None."""
    modes = door_modes.active_views(community.id)
    if not modes:
        return None
    view = policy.AccessPointView(
        id=point.id,
        kind=point.kind,
        zone=point.zone,
        building_id=point.building_id,
        time_zone=community.timezone,
    )
    if mode_rules.holding(modes, view, at, DoorModeKind.EMERGENCY_RELEASE):
        return {"kind": DoorModeKind.EMERGENCY_RELEASE.value}
    lockdowns = mode_rules.holding(modes, view, at, DoorModeKind.LOCKDOWN)
    if not lockdowns:
        return None
    exempt = frozenset.intersection(*(m.exempt_roles for m in lockdowns))
    return {"kind": DoorModeKind.LOCKDOWN.value, "exempt_roles": sorted(exempt)}


def build(
    point: AccessPoint, community: Community, at: datetime, holders: Holders | None = None
) -> Built:
    """``point``'s list at ``at``: header, entries (faces as refs), when it next changes;
    ``holders``: the community's people, read once for all its points."""
    entries, boundaries = _entries(point, at, holders)
    header = {
        "timezone": community.timezone,
        "schedule": point.schedule,
        "open_ms": point.open_ms,
        "closures": closures_for(point, community, at),
        "mode": mode_for(point, community, at),
    }
    zone = ZoneInfo(community.timezone)
    midnight = _local_midnight(local_day(at, zone) + timedelta(days=1), zone)
    refresh = min([*boundaries, midnight, at + timedelta(seconds=REBUILD_AT_LEAST_S)])
    return Built(header=header, entries=entries, refresh_at=refresh)


# Signing and sealing per device ------------------------------------------------------------


class _Faces:
    """Decrypted templates by id, read once per rebuild whatever the number of devices."""

    def __init__(self) -> None:
        self._templates: dict[str, bytes] = {}

    def load(self, ids: Iterable[str]) -> None:
        wanted = [i for i in ids if i not in self._templates]
        if not wanted:
            return
        rows = db.session.execute(
            select(FaceTemplate.id, FaceTemplate.template_encrypted).where(
                FaceTemplate.id.in_(wanted)
            )
        ).all()
        plain = crypto.decrypt_many([row.template_encrypted for row in rows])
        for row, raw in zip(rows, plain, strict=True):
            self._templates[row.id] = signed.pack_template(signed.unpack_template(raw))

    def get(self, template_id: str) -> bytes | None:
        return self._templates.get(template_id)


def gets_faces(device: Device) -> bool:
    return device.kind in FACE_DEVICE_KINDS and device.allowlist_public_key is not None


def _public(
    entries: Iterable[dict[str, Any]], device: Device, faces: _Faces
) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
    """The entries as ``device`` gets them (faces sealed to it, or none) and their ``enc``."""
    entries = list(entries)
    sealer = None
    if gets_faces(device):
        sealer = signed.FaceSealer(bytes(device.allowlist_public_key or b""), device.id)
        faces.load(ref[0] for entry in entries for ref in entry["face_refs"])
    public = []
    for entry in entries:
        item = {key: value for key, value in entry.items() if key != "face_refs"}
        item["faces"] = []
        if sealer is not None:
            for template_id, _updated in entry["face_refs"]:
                template = faces.get(template_id)
                if template is not None:
                    item["faces"].append(sealer.seal(entry["pid"], template))
        public.append(item)
    return public, (sealer.enc if sealer is not None else None)


def _envelope(kind: str, state: AllowlistState, device: Device, at: datetime) -> dict[str, Any]:
    return {
        "v": signed.FORMAT_VERSION,
        "kind": kind,
        "community_id": state.community_id,
        "access_point_id": state.access_point_id,
        "device_id": device.id,
        "version": state.version,
        "issued_at": format_ts(at),
    }


def _sign(body: dict[str, Any], at: datetime) -> dict[str, Any]:
    kid, private = passkeys.signing_key(at)
    return signed.sign(body, kid, private)


def full_list(
    state: AllowlistState, device: Device, at: datetime, faces: _Faces | None = None
) -> dict[str, Any]:
    """The signed full list of ``state`` for ``device``."""
    entries = [state.entries[pid] for pid in sorted(state.entries)]
    public, enc = _public(entries, device, faces or _Faces())
    body = _envelope("full", state, device, at)
    body.update(state.header)
    body.update({"enc": enc, "entries": public})
    return _sign(body, at)


def delta(
    state: AllowlistState,
    device: Device,
    from_version: int,
    upsert: list[str],
    remove: list[str],
    at: datetime,
    faces: _Faces | None = None,
) -> dict[str, Any]:
    """The signed delta ``from_version`` -> ``state.version`` for ``device``."""
    public, enc = _public((state.entries[pid] for pid in upsert), device, faces or _Faces())
    body = _envelope("delta", state, device, at)
    body.update(
        {
            "from_version": from_version,
            "upsert": public,
            "remove": remove,
            "header": dict(state.header),
            "enc": enc,
        }
    )
    return _sign(body, at)


def _payload(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _queue_full(state: AllowlistState, device: Device, at: datetime, faces: _Faces) -> None:
    queue_message(
        db.session,
        OutgoingMessage(
            allowlist_topic(device.community_id, device.id),
            _payload(full_list(state, device, at, faces)),
            retain=True,
        ),
    )


# Rebuilding and publishing -----------------------------------------------------------------


def _devices_of(community_id: str) -> dict[str, list[Device]]:
    by_point: dict[str, list[Device]] = defaultdict(list)
    for device in db.session.scalars(
        select(Device)
        .where(
            Device.community_id == community_id,
            Device.access_point_id.is_not(None),
            Device.disabled_at.is_(None),
        )
        .order_by(Device.id)
    ):
        by_point[device.access_point_id or ""].append(device)
    return by_point


def rebuild(community_id: str, at: datetime | None = None, *, full: bool = False) -> int:
    """Rebuild the community's lists; for every point whose list changed (or every point,
    with ``full``) queue each device's delta and retained full list. Returns the number of
    lists that changed. The caller commits (the messages leave then)."""
    at = at or utcnow()
    community = db.session.get(Community, community_id)
    if community is None:
        return 0
    states = {
        state.access_point_id: state
        for state in db.session.scalars(
            select(AllowlistState)
            .where(AllowlistState.community_id == community_id)
            .with_for_update()
        )
    }
    devices = _devices_of(community_id)
    faces = _Faces()
    changed = 0
    points = db.session.scalars(
        select(AccessPoint).where(AccessPoint.community_id == community_id).order_by(AccessPoint.id)
    )
    holders = Holders.of(community_id)
    for point in points:
        built = build(point, community, at, holders)
        state = states.get(point.id)
        if state is None:
            state = AllowlistState(
                access_point_id=point.id, community_id=community_id, version=0, header={}
            )
            state.entries, state.devices = {}, []
            db.session.add(state)
        old = state.entries or {}
        upsert = [pid for pid in sorted(built.entries) if old.get(pid) != built.entries[pid]]
        remove = sorted(set(old) - set(built.entries))
        moved = state.version == 0 or bool(upsert or remove) or state.header != built.header
        state.refresh_at = built.refresh_at
        current = devices.get(point.id, [])
        holding = set(state.devices or ())
        # Every device when the list moved (or all are asked for), else those new here.
        here = current if moved or full else [d for d in current if d.id not in holding]
        if not moved and not here:
            continue
        from_version = state.version
        if moved:
            changed += 1
            state.version = from_version + 1
            state.entries = built.entries
            state.header = built.header
            state.published_at = at
        state.devices = sorted({d.id for d in current} & (holding | {d.id for d in here}))
        for device in here:
            if moved and from_version > 0 and device.id in holding:
                queue_message(
                    db.session,
                    OutgoingMessage(
                        allowlist_delta_topic(community_id, device.id),
                        _payload(delta(state, device, from_version, upsert, remove, at, faces)),
                    ),
                )
            _queue_full(state, device, at, faces)
    return changed


def publish_changes(at: datetime | None = None, *, everything: bool = False) -> int:
    """The leader's job: rebuild the communities marked dirty and the lists due for a
    refresh (every community, in full, with ``everything``: on start). Returns how many
    lists changed."""
    at = at or utcnow()
    ensure_signing_key(at)
    if everything:
        communities = set(db.session.scalars(select(Community.id)))
        db.session.execute(delete(AllowlistDirty))
    else:
        communities = set(db.session.scalars(select(AllowlistDirty.community_id)))
        if communities:
            db.session.execute(
                delete(AllowlistDirty).where(AllowlistDirty.community_id.in_(communities))
            )
        communities |= set(
            db.session.scalars(
                select(AllowlistState.community_id).where(AllowlistState.refresh_at <= at)
            )
        )
    changed = sum(rebuild(c, at, full=everything) for c in sorted(communities))
    if changed:
        _LOGGER.info("%d allowlist(s) changed in %d communities", changed, len(communities))
    return changed


def ensure_signing_key(at: datetime | None = None) -> None:
    """Make the signing key now if there is none: it is made in its own transaction, which
    must come before this one writes anything (SQLite has one writer)."""
    passkeys.signing_key(at or utcnow())


def current_list(device: Device, at: datetime | None = None) -> dict[str, Any]:
    """The signed full list of ``device``'s access point now (built first if never built)."""
    at = at or utcnow()
    ensure_signing_key(at)
    state = db.session.get(AllowlistState, device.access_point_id)
    if state is None:
        rebuild(device.community_id, at)
        state = db.session.get(AllowlistState, device.access_point_id)
    if state is None:  # rebuild makes one for every point of the community
        raise LookupError(f"no allowlist for {device.access_point_id}")
    return full_list(state, device, at)


def current_version(device: Device) -> int | None:
    state = db.session.get(AllowlistState, device.access_point_id)
    return None if state is None else state.version


def republish(device: Device, at: datetime | None = None) -> None:
    """Queue ``device``'s retained full list again (after it registered a key)."""
    if device.access_point_id is None or device.disabled_at is not None:
        return
    at = at or utcnow()
    state = db.session.get(AllowlistState, device.access_point_id)
    if state is None:
        rebuild(device.community_id, at)
        return
    _queue_full(state, device, at, _Faces())


# Marking communities dirty -----------------------------------------------------------------


def _touched(session: Session) -> set[str]:
    found: set[str] = set()
    for row in (*session.new, *session.dirty, *session.deleted):
        if isinstance(row, Device):
            state = orm_inspect(row)
            if (
                row in session.new
                or row in session.deleted
                or any(state.attrs[name].history.has_changes() for name in _DEVICE_FIELDS)
            ):
                found.add(row.community_id)
        elif isinstance(row, _WATCHED):
            if row in session.dirty and not session.is_modified(row):
                continue
            found.add(row.id if isinstance(row, Community) else row.community_id)
    found.discard(None)  # type: ignore[arg-type]
    return found


_MIGRATED: set[str] = set()  # the database URLs known to have ``allowlist_dirty``


def _has_dirty_table(connection: Connection) -> bool:
    url = str(connection.engine.url)
    if url in _MIGRATED:
        return True
    if orm_inspect(connection).has_table(AllowlistDirty.__tablename__):
        _MIGRATED.add(url)
        return True
    return False


def _mark(session: Session, _context: object) -> None:
    communities = _touched(session)
    if not communities:
        return
    connection = session.connection()
    if not _has_dirty_table(connection):
        return  # a database not yet migrated to 0034 (a migration's own data steps)
    dialect = connection.dialect.name
    rows = select(Community.id, literal(utcnow(), AllowlistDirty.marked_at.type)).where(
        Community.id.in_(communities)
    )
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - the project runs on these two
        connection.execute(insert(AllowlistDirty).from_select(["community_id", "marked_at"], rows))
        return
    connection.execute(
        dialect_insert(AllowlistDirty)
        .from_select(["community_id", "marked_at"], rows)
        .on_conflict_do_nothing()
    )


def init_app(_app: Flask) -> None:
    """Mark the communities every flush touches, in its transaction (once per process)."""
    if not event.contains(Session, "after_flush", _mark):
        event.listen(Session, "after_flush", _mark)
