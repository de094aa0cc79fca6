"""The door's side of offline allowlists (docs/protocol.md section 6, "Allowlists" and
"Deciding offline"): what a door holds, how a signed full list or delta changes it, and
the decision it makes from it when the server does not answer.

Pure: no clock, no storage, no network. ``apply`` takes the door's held list (or None) and
one message from the ``allowlist`` or ``allowlist/delta`` topic (or the catch-up answer of
``GET /api/v1/devices/me/allowlist``) and says what to hold next; ``decide`` takes the held
list, what was presented (a card UID, a resident code, a face template) and the instant.
Signatures and face encryption are ``gatekeeper.allowlist``'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gatekeeper import allowlist, passtokens
from gatekeeper.allowlist import AllowlistError
from gatekeeper.schedule import WeeklySchedule, require_aware, schedule_from_json, zone_info
from gatekeeper.vocabulary import Decision, PersonRole, Reason

# The server's default face tolerance and margin (server/community/settings.py,
# gatekeeper/gallery.py): the best Euclidean distance must be at most the tolerance, and
# the best *other* person at least the margin further away.
FACE_TOLERANCE = 0.5
FACE_MARGIN = 0.06

HEADER_FIELDS = ("timezone", "schedule", "open_ms", "closures", "mode")
GRANT_REASONS = frozenset({Reason.RESIDENT, Reason.TENANT, Reason.WORKER})
EMERGENCY_RELEASE = "emergency_release"
LOCKDOWN = "lockdown"


def _instant(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise AllowlistError(f"{where} is not a timestamp")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise AllowlistError(f"{where} is not a timestamp") from error
    if moment.tzinfo is None:
        raise AllowlistError(f"{where} has no offset")
    return moment


def _ranges(value: object, where: str) -> tuple[tuple[datetime | None, datetime | None], ...]:
    if not isinstance(value, list):
        raise AllowlistError(f"{where} is not a list")
    ranges = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise AllowlistError(f"{where}[{index}] is not an object")
        ranges.append(
            (
                _instant(item.get("from"), f"{where}[{index}].from"),
                _instant(item.get("until"), f"{where}[{index}].until"),
            )
        )
    return tuple(ranges)


def _covers(span: tuple[datetime | None, datetime | None], at: datetime) -> bool:
    start, end = span
    return (start is None or start <= at) and (end is None or at < end)


def _schedule(value: object, where: str) -> WeeklySchedule | None:
    try:
        return schedule_from_json(value)
    except ValueError as error:
        raise AllowlistError(f"{where}: {error}") from error


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise AllowlistError(f"{where} is not a list of strings")
    return tuple(value)


@dataclass(frozen=True)
class Header:
    """The access point's part of a list: zone, weekly hours, open time, closures, mode."""

    timezone: str
    schedule: WeeklySchedule | None
    open_ms: int
    closures: tuple[tuple[datetime | None, datetime | None], ...]
    mode: Mapping[str, Any] | None
    raw: Mapping[str, Any]

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Header:
        raw = {name: data.get(name) for name in HEADER_FIELDS}
        zone = raw["timezone"]
        try:
            zone_info(zone)  # type: ignore[arg-type]
        except (ValueError, TypeError) as error:
            raise AllowlistError(f"unknown time zone {zone!r}") from error
        open_ms = raw["open_ms"]
        if not isinstance(open_ms, int) or isinstance(open_ms, bool) or not 0 < open_ms <= 600_000:
            raise AllowlistError("open_ms is not a positive number of milliseconds")
        mode = raw["mode"]
        if mode is not None:
            if not isinstance(mode, dict) or mode.get("kind") not in (LOCKDOWN, EMERGENCY_RELEASE):
                raise AllowlistError(f"unknown door mode {mode!r}")
            if mode["kind"] == LOCKDOWN:
                _strings(mode.get("exempt_roles", []), "mode.exempt_roles")
        return cls(
            timezone=str(zone),
            schedule=_schedule(raw["schedule"], "schedule"),
            open_ms=open_ms,
            closures=_ranges(raw["closures"] if raw["closures"] is not None else [], "closures"),
            mode=mode,
            raw=raw,
        )

    @property
    def released(self) -> bool:
        return self.mode is not None and self.mode.get("kind") == EMERGENCY_RELEASE

    @property
    def exempt_roles(self) -> frozenset[str] | None:
        """The roles that pass during a lockdown; None when there is no lockdown."""
        if self.mode is None or self.mode.get("kind") != LOCKDOWN:
            return None
        return frozenset(self.mode.get("exempt_roles") or ())


@dataclass(frozen=True)
class Entry:
    """One person on the list; ``templates`` are the faces this door could decrypt."""

    pid: str
    name: str
    role: str
    grant: Reason
    windows: tuple[tuple[datetime | None, datetime | None], ...]
    schedule: WeeklySchedule | None
    cards: frozenset[str]
    code_serials: frozenset[str]
    templates: tuple[tuple[float, ...], ...]
    raw: Mapping[str, Any]  # the entry as listed, without its (encrypted) faces

    @classmethod
    def parse(cls, data: object, opener: allowlist.FaceOpener | None) -> Entry:
        if not isinstance(data, dict) or not isinstance(data.get("pid"), str) or not data["pid"]:
            raise AllowlistError("an entry without a pid")
        pid = data["pid"]
        try:
            grant = Reason(data.get("grant"))
        except ValueError:
            grant = None
        if grant not in GRANT_REASONS:
            raise AllowlistError(f"entry {pid}: unknown grant {data.get('grant')!r}")
        role = data.get("role")
        if not isinstance(role, str):
            raise AllowlistError(f"entry {pid}: no role")
        faces = data.get("faces") or []
        if not isinstance(faces, list):
            raise AllowlistError(f"entry {pid}: faces is not a list")
        templates = []
        if opener is not None:
            for sealed in faces:
                if not isinstance(sealed, dict):
                    raise AllowlistError(f"entry {pid}: a face is not an object")
                try:
                    templates.append(allowlist.unpack_template(opener.open(pid, sealed)))
                except AllowlistError:
                    # Sealed to another key (the door made a new one) or to another entry:
                    # the face is of no use here, the signed entry still is.
                    continue
        raw = {key: value for key, value in data.items() if key != "faces"}
        return cls(
            pid=pid,
            name=str(data.get("name") or ""),
            role=role,
            grant=grant,
            windows=_ranges(data.get("windows", []), f"entry {pid}: windows"),
            schedule=_schedule(data.get("schedule"), f"entry {pid}: schedule"),
            cards=frozenset(c.strip().upper() for c in _strings(data.get("cards", []), "cards")),
            code_serials=frozenset(
                s.strip().lower() for s in _strings(data.get("code_serials", []), "code_serials")
            ),
            templates=tuple(templates),
            raw=raw,
        )

    def to_state(self) -> dict[str, Any]:
        """The entry as the door stores it: the listed fields, faces as opened templates."""
        return {
            **self.raw,
            "templates": [allowlist.b64(allowlist.pack_template(t)) for t in self.templates],
        }

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> Entry:
        entry = cls.parse({k: v for k, v in data.items() if k != "templates"}, None)
        templates = tuple(
            allowlist.unpack_template(allowlist.unb64(text)) for text in data.get("templates", [])
        )
        return replace(entry, templates=templates)


@dataclass(frozen=True)
class HeldList:
    """What a door holds: the access point's header, the entries by ``pid``, the version."""

    community_id: str
    access_point_id: str
    device_id: str
    version: int
    issued_at: datetime
    header: Header
    entries: Mapping[str, Entry] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        """A JSON object the door keeps on its own storage (``from_state`` reads it back)."""
        return {
            "community_id": self.community_id,
            "access_point_id": self.access_point_id,
            "device_id": self.device_id,
            "version": self.version,
            "issued_at": self.issued_at.isoformat(),
            "header": dict(self.header.raw),
            "entries": [self.entries[pid].to_state() for pid in sorted(self.entries)],
        }

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> HeldList:
        """Read ``to_state``'s object; raises ``AllowlistError`` when it is not one."""
        try:
            entries = {e["pid"]: Entry.from_state(e) for e in data["entries"]}
            issued_at = _instant(data["issued_at"], "issued_at")
            return cls(
                community_id=str(data["community_id"]),
                access_point_id=str(data["access_point_id"]),
                device_id=str(data["device_id"]),
                version=int(data["version"]),
                issued_at=issued_at,  # type: ignore[arg-type]
                header=Header.parse(data["header"]),
                entries=entries,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise AllowlistError(f"not a held list: {error}") from error


class Outcome(StrEnum):
    """What ``apply`` did with a message."""

    APPLIED = "applied"  # the door holds the new list
    IGNORED = "ignored"  # older than or as old as what is held: a replay or a duplicate
    GAP = "gap"  # a delta from a later version: fetch the full list
    REFUSED = "refused"  # does not verify, is malformed, or names another door


@dataclass(frozen=True)
class Applied:
    """``held`` is what the door holds afterwards (unchanged unless ``APPLIED``)."""

    outcome: Outcome
    held: HeldList | None
    detail: str = ""

    @property
    def need_full_list(self) -> bool:
        return self.outcome is Outcome.GAP


def _opener(
    message: Mapping[str, Any], face_key: X25519PrivateKey | None, device_id: str
) -> allowlist.FaceOpener | None:
    enc = message.get("enc")
    if enc is None or face_key is None:
        return None
    if not isinstance(enc, dict):
        raise AllowlistError("enc is not an object")
    try:
        return allowlist.FaceOpener(face_key, device_id, enc)
    except (AllowlistError, ValueError):
        return None  # faces this door cannot open; cards and codes still count


def _version(message: Mapping[str, Any], name: str) -> int:
    value = message.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise AllowlistError(f"{name} is not a version number")
    return value


def apply(
    held: HeldList | None,
    message: Mapping[str, Any],
    public_keys: Mapping[int, bytes],
    *,
    community_id: str,
    access_point_id: str,
    device_id: str,
    face_key: X25519PrivateKey | None = None,
) -> Applied:
    """What the door holds after ``message`` (a full list or a delta).

    Refused (the door keeps what it had): a message that does not verify with the key set
    (``public_keys``: raw Ed25519 keys by ``kid``), of another format, kind, community,
    access point or device, or malformed. A full list replaces the held one when its
    version is at least the held one's; a delta applies only from the held version; an
    older or duplicate message is ignored; a delta from a later version is a gap.
    ``face_key`` is the device's X25519 key for the faces (None: faces are not used).
    """

    def unchanged(outcome: Outcome, detail: str) -> Applied:
        return Applied(outcome, held, detail)

    if not isinstance(message, Mapping):
        return unchanged(Outcome.REFUSED, "not a JSON object")
    try:
        allowlist.verify(message, public_keys)
    except AllowlistError as error:
        return unchanged(Outcome.REFUSED, str(error))
    names = {
        "community_id": community_id,
        "access_point_id": access_point_id,
        "device_id": device_id,
    }
    for name, expected in names.items():
        if message.get(name) != expected:
            return unchanged(Outcome.REFUSED, f"{name} {message.get(name)!r} is not this door's")
    kind = message.get("kind")
    try:
        version = _version(message, "version")
        issued_at = _instant(message.get("issued_at"), "issued_at")
        if issued_at is None:
            raise AllowlistError("no issued_at")
        if kind == "full":
            if held is not None and version < held.version:
                return unchanged(Outcome.IGNORED, f"version {version} is older than {held.version}")
            entries_in = message.get("entries")
            if not isinstance(entries_in, list):
                raise AllowlistError("entries is not a list")
            opener = _opener(message, face_key, device_id)
            entries = {}
            for item in entries_in:
                entry = Entry.parse(item, opener)
                entries[entry.pid] = entry
            header = Header.parse(message)
        elif kind == "delta":
            from_version = _version(message, "from_version")
            if version != from_version + 1:
                raise AllowlistError("a delta moves the version by exactly one")
            if held is None:
                return unchanged(Outcome.GAP, "a delta but no list held")
            if version <= held.version:
                return unchanged(Outcome.IGNORED, f"version {version} is not above {held.version}")
            if from_version != held.version:
                return unchanged(
                    Outcome.GAP, f"a delta from {from_version}, the door holds {held.version}"
                )
            header_in = message.get("header")
            if not isinstance(header_in, dict):
                raise AllowlistError("header is not an object")
            header = Header.parse(header_in)
            upsert, remove = message.get("upsert", []), message.get("remove", [])
            if not isinstance(upsert, list):
                raise AllowlistError("upsert is not a list")
            opener = _opener(message, face_key, device_id)
            entries = dict(held.entries)
            for pid in _strings(remove, "remove"):
                entries.pop(pid, None)
            for item in upsert:
                entry = Entry.parse(item, opener)
                entries[entry.pid] = entry
        else:
            return unchanged(Outcome.REFUSED, f"unknown kind {kind!r}")
    except AllowlistError as error:
        return unchanged(Outcome.REFUSED, str(error))
    return Applied(
        Outcome.APPLIED,
        HeldList(
            community_id=community_id,
            access_point_id=access_point_id,
            device_id=device_id,
            version=version,
            issued_at=issued_at,
            header=header,
            entries=entries,
        ),
        f"{kind} list version {version}",
    )


# Deciding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """An IC card UID, hex, as the reader sends it to ``/verify/card``."""

    uid: str
    credential = "card"


@dataclass(frozen=True)
class Code:
    """A resident code (QR kind 2) as scanned, with the door's key set to check it."""

    token: str
    public_keys: Mapping[int, bytes]
    community_tag: bytes
    credential = "qr"


@dataclass(frozen=True)
class Face:
    """A 128-number face template the terminal computed from its camera."""

    template: Sequence[float]
    credential = "face"


Presented = Card | Code | Face


@dataclass(frozen=True)
class Verdict:
    """A decision made from the list: the reason code of section 4, the entry, the detail."""

    reason: Reason
    pid: str | None
    list_version: int
    open_ms: int | None = None
    detail: str = ""

    @property
    def granted(self) -> bool:
        return self.reason in GRANT_REASONS

    @property
    def decision(self) -> Decision:
        return Decision.GRANT if self.granted else Decision.DENY


def _match_face(
    entries: Mapping[str, Entry], template: Sequence[float], tolerance: float, margin: float
) -> tuple[Entry | None, str]:
    if len(template) != allowlist.TEMPLATE_FLOATS or not all(map(math.isfinite, template)):
        return None, "not a face template"
    best: dict[str, float] = {}
    for pid, entry in entries.items():
        for stored in entry.templates:
            distance = math.dist(stored, template)
            if distance < best.get(pid, math.inf):
                best[pid] = distance
    if not best:
        return None, "no faces on the list"
    ranked = sorted(best.items(), key=lambda item: item[1])
    pid, distance = ranked[0]
    if distance > tolerance:
        return None, f"nearest face at {distance:.3f}"
    if len(ranked) > 1 and ranked[1][1] - distance < margin:
        return None, "two people are about as near"
    return entries[pid], ""


def _match(held: HeldList, presented: Presented, at: datetime, tolerance: float, margin: float):
    """The entry presented, or None with the reason and detail of step 2."""
    ordered = [held.entries[pid] for pid in sorted(held.entries)]
    if isinstance(presented, Card):
        uid = presented.uid.strip().upper()
        entry = next((e for e in ordered if uid in e.cards), None)
        return entry, Reason.UNKNOWN_CARD, "" if entry else "no entry has this card"
    if isinstance(presented, Face):
        entry, detail = _match_face(held.entries, presented.template, tolerance, margin)
        return entry, Reason.UNKNOWN_FACE, detail
    try:
        claims = passtokens.verify(presented.token, presented.public_keys)
    except passtokens.TokenError as error:
        return None, Reason.PASS_INVALID, f"{error.problem.value}: {error.detail}"
    if claims.kind is not passtokens.TokenKind.RESIDENT_CODE:
        return None, Reason.PASS_INVALID, "not a resident code"
    if claims.community_tag != presented.community_tag:
        return None, Reason.PASS_INVALID, "a code of another community"
    window = claims.window_state(at)
    if window < 0:
        return None, Reason.PASS_INVALID, "the code is not valid yet"
    if window > 0:
        return None, Reason.PASS_EXPIRED, "the code has expired"
    serial = claims.serial.hex()
    entry = next((e for e in ordered if serial in e.code_serials), None)
    return entry, Reason.PASS_INVALID, "" if entry else "no entry has this code"


def decide(
    held: HeldList | None,
    presented: Presented,
    at: datetime,
    *,
    tolerance: float = FACE_TOLERANCE,
    margin: float = FACE_MARGIN,
) -> Verdict | None:
    """The door's decision at ``at`` (docs/protocol.md, "Deciding offline", steps 1 to 8).

    None: no decision (no list held, or an emergency release holds the door open).
    """
    at = require_aware(at, "at")
    if held is None or held.header.released:
        return None
    header, version = held.header, held.version

    def deny(reason: Reason, pid: str | None, detail: str) -> Verdict:
        return Verdict(reason, pid, version, detail=detail)

    entry, unknown, detail = _match(held, presented, at, tolerance, margin)
    if entry is None:
        return deny(unknown, None, detail)
    exempt = header.exempt_roles
    if exempt is not None and entry.role not in exempt:
        return deny(Reason.LOCKDOWN, entry.pid, f"a lockdown; {entry.role} is not exempt")
    if any(_covers(closure, at) for closure in header.closures):
        return deny(Reason.HOLIDAY_CLOSED, entry.pid, "the access point is closed")
    if header.schedule is not None and not header.schedule.contains(at, header.timezone):
        return deny(Reason.OUTSIDE_SCHEDULE, entry.pid, "outside the access point's hours")
    if not any(_covers(window, at) for window in entry.windows):
        if entry.role == PersonRole.TENANT:
            before_all = bool(entry.windows) and all(
                start is not None and at < start for start, _end in entry.windows
            )
            reason = Reason.LEASE_NOT_STARTED if before_all else Reason.LEASE_EXPIRED
        elif entry.role == PersonRole.WORKER:
            reason = Reason.OUTSIDE_SCHEDULE
        else:
            reason = Reason.PERSON_SUSPENDED
        return deny(reason, entry.pid, "outside the person's validity")
    if entry.schedule is not None and not entry.schedule.contains(at, header.timezone):
        return deny(Reason.OUTSIDE_SCHEDULE, entry.pid, "outside the person's hours")
    return Verdict(entry.grant, entry.pid, version, open_ms=header.open_ms)
