"""Who, when it matters: the identity behind a welfare alert or a watchlist hit, revealed to
an officer (or the community's staff) who states why, and recorded as a read of personal data.

For an elder or a child who wandered out, or an elder not seen, the officer needs the
person's enrolment photo (when the community keeps one), their unit and the guardians to
call; for a watchlist hit, the entry's name, category and note. Elsewhere names stay masked
(``gatekeeper.identity.mask_name``). Each reveal is one ``DataRead`` (``what``
``welfare_view``, the purpose, the alert): supervisors see it in the audit viewer. See
docs/audit.md ("Need to know").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from gatekeeper.identity import mask_name
from gatekeeper.vocabulary import AlertType
from server.core import audit, crypto
from server.core.errors import Conflict, NotFound
from server.core.scope import Scope
from server.extensions import db
from server.models import (
    Alert,
    Building,
    FaceTemplate,
    Membership,
    Person,
    Unit,
    WatchlistEntry,
    utcnow,
)

# Alerts about one known person (their evidence names ``person_id``).
WELFARE_TYPES: frozenset[AlertType] = frozenset(
    {AlertType.ELDER_WANDERING, AlertType.CHILD_WANDERING, AlertType.ELDER_INACTIVE}
)
# Alerts whose identity an officer may reveal, stating why.
REVEALING: frozenset[AlertType] = WELFARE_TYPES | {AlertType.WATCHLIST_HIT}
# What a reveal is recorded as (``DataRead.what``).
WELFARE_VIEW = "welfare_view"


class Purpose(StrEnum):
    """Why an officer opens the identity behind an alert (``DataRead.purpose``)."""

    WELFARE_CHECK = "welfare_check"
    INVESTIGATION = "investigation"


@dataclass(frozen=True)
class Guardian:
    name: str
    phone: str | None


@dataclass(frozen=True)
class Identity:
    """What the officer sees once they stated a purpose (full names: need to know)."""

    alert_id: str
    subject: str  # ``person`` or ``watchlist_entry``
    subject_id: str
    name: str
    role: str | None
    phone: str | None
    units: tuple[str, ...]
    guardians: tuple[Guardian, ...]
    photo: bytes | None  # the enrolment photo, when the community keeps one
    category: str | None  # watchlist: wanted | missing
    note: str | None

    @property
    def photo_type(self) -> str | None:
        if self.photo is None:
            return None
        return "image/png" if self.photo.startswith(b"\x89PNG") else "image/jpeg"


def reveals(alert: Alert) -> bool:
    """Whether this alert's type has an identity to reveal behind a purpose."""
    return alert.type in REVEALING


def _subject(alert: Alert) -> tuple[type, str] | None:
    evidence = alert.evidence or {}
    if alert.type in WELFARE_TYPES and isinstance(evidence.get("person_id"), str):
        return Person, evidence["person_id"]
    if alert.type is AlertType.WATCHLIST_HIT and isinstance(
        evidence.get("watchlist_entry_id"), str
    ):
        return WatchlistEntry, evidence["watchlist_entry_id"]
    return None


def _subject_row(alert: Alert) -> Person | WatchlistEntry:
    if not reveals(alert):
        raise Conflict(_l("This alert is not about a person whose identity can be opened."))
    found = _subject(alert)
    row = db.session.get(found[0], found[1]) if found else None
    if row is None or row.community_id != alert.community_id:
        raise NotFound(_l("The person of this alert is no longer stored."))
    return row


def masked_name(alert: Alert) -> str | None:
    """The subject's name as a door terminal shows it (``王*明``), before any reveal."""
    found = _subject(alert) if reveals(alert) else None
    row = db.session.get(found[0], found[1]) if found else None
    return mask_name(row.name) if row is not None else None


def _units(person_id: str) -> tuple[str, ...]:
    now = utcnow()
    rows = db.session.execute(
        select(Building.name, Unit.number)
        .join(Unit, Unit.building_id == Building.id)
        .join(Membership, Membership.unit_id == Unit.id)
        .where(
            Membership.person_id == person_id,
            or_(Membership.valid_from.is_(None), Membership.valid_from <= now),
            or_(Membership.valid_until.is_(None), Membership.valid_until > now),
        )
        .order_by(Building.name, Unit.number)
        .distinct()
    )
    return tuple(f"{building} · {number}" for building, number in rows)


def _role(person_id: str) -> str | None:
    return db.session.scalar(
        select(Membership.role).where(Membership.person_id == person_id).limit(1)
    )


def _photo(person_id: str) -> bytes | None:
    kept = db.session.scalar(
        select(FaceTemplate.photo_encrypted)
        .where(FaceTemplate.person_id == person_id, FaceTemplate.photo_encrypted.is_not(None))
        .order_by(FaceTemplate.created_at.desc())
        .limit(1)
    )
    return crypto.decrypt(kept) if kept else None


def identity_of(alert: Alert) -> Identity:
    """The identity behind ``alert`` (not recorded: ``reveal`` records)."""
    row = _subject_row(alert)
    if isinstance(row, WatchlistEntry):
        return Identity(
            alert_id=alert.id,
            subject="watchlist_entry",
            subject_id=row.id,
            name=row.name,
            role=None,
            phone=None,
            units=(),
            guardians=(),
            photo=None,  # the watchlist keeps a template, never the photo
            category=row.category,
            note=row.note,
        )
    return Identity(
        alert_id=alert.id,
        subject="person",
        subject_id=row.id,
        name=row.name,
        role=_role(row.id),
        phone=row.phone,
        units=_units(row.id),
        guardians=tuple(Guardian(g.name, g.phone) for g in row.guardians),
        photo=_photo(row.id),
        category=None,
        note=None,
    )


def reveal(scope: Scope, alert_id: str, purpose: Purpose) -> Identity:
    """The identity behind an alert the caller sees, recorded with the stated purpose.

    404 for an alert out of scope (and for residents) or whose person is gone; 409 for an
    alert of another type (nobody to reveal).
    """
    scope.require_sees(Alert)
    alert = scope.get(Alert, alert_id)
    identity = identity_of(alert)
    audit.record_read(
        scope.user,
        identity.subject_id,
        WELFARE_VIEW,
        community_id=alert.community_id,
        purpose=purpose.value,
        alert_id=alert.id,
    )
    return identity
