"""Courier codes: issued by residents for a keypad door they use, by staff for a building's
deliveries; listed masked, revoked; ``code_used`` is told of every grant.

A resident's code opens one keypad door of their building, or a shared perimeter gate,
once, for ``courier_code_minutes`` (the community's default, 30) or the minutes they choose
(at most ``courier_code_max_minutes``, never past their lease). Staff issue a code for any
keypad point of a community they run, for a label such as a courier company, with up to
``STAFF_MAX_USES`` uses and the same longest window (a day by default): the building's
delivery code. The digits are shown once, in the answer to the issuer; only their keyed
hash (``gatekeeper.pincodes.pin_hash`` under a key derived from DATA_KEY) and the last
two digits are stored. A new code never equals a live code of the same door.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from gatekeeper import pincodes
from gatekeeper.pincodes import CodeStatus
from gatekeeper.vocabulary import Zone
from server.community import settings as community_settings
from server.core import audit, crypto
from server.core.errors import Conflict, Invalid, NotFound
from server.core.scope import Scope
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    Building,
    Community,
    CourierCode,
    Person,
    Unit,
    UserRole,
    utcnow,
)
from server.notifications import service as notifications
from server.passes.service import issuer_until

_LOGGER = logging.getLogger(__name__)

STAFF_MAX_USES = 20
_DRAWS = 20  # tries to draw digits unlike every live code of the door


def code_key() -> bytes:
    """The HMAC key of stored codes (derived from DATA_KEY: a new DATA_KEY voids them)."""
    return crypto.derived_key("courier codes")


def code_keys() -> list[bytes]:
    """``code_key`` under DATA_KEY and every retired key (DATA_KEYS_RETIRED): a code issued
    before a rotation opens until its key is dropped."""
    return crypto.derived_keys("courier codes")


def status_of(code: CourierCode, now: datetime | None = None) -> CodeStatus:
    return pincodes.code_status(
        revoked=code.revoked_at is not None,
        uses=code.uses,
        max_uses=code.max_uses,
        valid_until=code.valid_until,
        at=now or utcnow(),
    )


def live_condition(now: datetime) -> Any:
    """SQL: codes that may still open their door (``status_of`` is ``unused``)."""
    return (
        CourierCode.revoked_at.is_(None)
        & (CourierCode.uses < CourierCode.max_uses)
        & (CourierCode.valid_until > now)
    )


def status_condition(status: CodeStatus, now: datetime) -> Any:
    """SQL: codes in ``status`` at ``now`` (the mirror of ``status_of``, in the same order)."""
    kept = CourierCode.revoked_at.is_(None)
    left = CourierCode.uses < CourierCode.max_uses
    return {
        CodeStatus.REVOKED: CourierCode.revoked_at.is_not(None),
        CodeStatus.USED: kept & ~left,
        CodeStatus.EXPIRED: kept & left & (CourierCode.valid_until <= now),
        CodeStatus.UNUSED: live_condition(now),
    }[status]


def building_points(scope: Scope, building: Building) -> list[AccessPoint]:
    """Keypad points of ``building`` and the community's shared ones with a keypad: where
    the property office gives the building's delivery codes."""
    return list(
        db.session.scalars(
            scope.query(AccessPoint)
            .where(
                AccessPoint.community_id == building.community_id,
                AccessPoint.has_keypad.is_(True),
                (AccessPoint.building_id == building.id) | AccessPoint.building_id.is_(None),
            )
            .order_by(AccessPoint.name)
        )
    )


def delivery_codes(scope: Scope, building: Building, limit: int) -> list[CourierCode]:
    """The property office's codes (no unit) for ``building``'s keypad points, newest first."""
    points = [point.id for point in building_points(scope, building)]
    return list(
        db.session.scalars(
            scope.query(CourierCode)
            .where(CourierCode.access_point_id.in_(points), CourierCode.unit_id.is_(None))
            .order_by(CourierCode.created_at.desc(), CourierCode.id.desc())
            .limit(limit)
        )
    )


def unit_codes(scope: Scope, limit: int) -> list[CourierCode]:
    """The codes the caller sees (a resident: their unit's), newest first."""
    return list(
        db.session.scalars(
            scope.query(CourierCode)
            .order_by(CourierCode.created_at.desc(), CourierCode.id.desc())
            .limit(limit)
        )
    )


def keypad_points(unit: Unit) -> list[AccessPoint]:
    """Keypad doors a resident of ``unit`` may give a code for: their building's, and the
    community's shared perimeter points."""
    return list(
        db.session.scalars(
            select(AccessPoint)
            .where(
                AccessPoint.community_id == unit.community_id,
                AccessPoint.has_keypad.is_(True),
                or_(
                    AccessPoint.building_id == unit.building_id,
                    AccessPoint.building_id.is_(None) & (AccessPoint.zone == Zone.PERIMETER),
                ),
            )
            .order_by(AccessPoint.name)
        )
    )


def _field_error(field: str, message: Any) -> Invalid:
    return Invalid(message, errors={field: [message]})


def _resident_point(unit: Unit, access_point_id: str | None) -> AccessPoint:
    points = {point.id: point for point in keypad_points(unit)}
    if access_point_id is None:
        if len(points) != 1:
            raise _field_error("access_point_id", _l("Choose the keypad door."))
        return next(iter(points.values()))
    point = points.get(access_point_id)
    if point is None:  # another building's door, or no keypad: not one of theirs
        raise NotFound(_l("No keypad door with id %(id)s for you.", id=repr(access_point_id)))
    return point


def _staff_point(scope: Scope, access_point_id: str | None) -> AccessPoint:
    if not access_point_id:
        raise _field_error("access_point_id", _l("Name the keypad door."))
    point = scope.get(AccessPoint, access_point_id)
    if not point.has_keypad:
        raise Conflict(_l("%(door)s has no keypad.", door=point.name))
    return point


def _unique_pin(point: AccessPoint, now: datetime) -> tuple[str, str]:
    """Digits no live code of ``point`` has, and their hash."""
    key, *retired = code_keys()
    for _try in range(_DRAWS):
        pin = pincodes.new_pin()
        digest = pincodes.pin_hash(key, point.id, pin)
        # Nor the digits of a live code issued under a retired key (before a rotation).
        digests = [digest, *(pincodes.pin_hash(old, point.id, pin) for old in retired)]
        taken = db.session.scalar(
            select(CourierCode.id).where(
                CourierCode.access_point_id == point.id,
                CourierCode.code_hash.in_(digests),
                live_condition(now),
            )
        )
        if taken is None:
            return pin, digest
    raise Conflict(_l("This door has too many live codes; try again later."))


def issue(
    scope: Scope, data: dict[str, Any], now: datetime | None = None
) -> tuple[CourierCode, str]:
    """A new code and its digits (shown once). Residents: a keypad door they use, one use;
    staff: any keypad point they run, ``max_uses`` up to ``STAFF_MAX_USES``."""
    now = (now or utcnow()).replace(microsecond=0)
    user = scope.user
    scope.require_write(CourierCode)
    if user.role is UserRole.RESIDENT:
        unit = user.unit
        if unit is None:
            raise Conflict(_l("This account is not linked to a unit."))
        issuer = db.session.get(Person, user.person_id) if user.person_id else None
        if issuer is None:
            raise Conflict(_l("This account is not linked to a resident."))
        point = _resident_point(unit, data.get("access_point_id"))
        if data.get("max_uses", 1) != 1:
            raise _field_error("max_uses", _l("A resident's code opens once."))
        max_uses = 1
    else:
        point = _staff_point(scope, data.get("access_point_id"))
        unit, issuer = None, None
        max_uses = data.get("max_uses", 1)
    community = db.session.get(Community, point.community_id)
    settings = community_settings.effective(community.settings)
    minutes = data.get("minutes") or settings.courier_code_minutes
    if minutes > settings.courier_code_max_minutes:
        raise _field_error(
            "minutes",
            _l(
                "A code lasts at most %(minutes)s minutes.",
                minutes=settings.courier_code_max_minutes,
            ),
        )
    valid_until = now + timedelta(minutes=minutes)
    if unit is not None:
        lives_until = issuer_until(issuer, unit, now)  # Conflict when they live here no more
        if lives_until is not None:
            valid_until = min(valid_until, lives_until)
    pin, digest = _unique_pin(point, now)
    code = CourierCode(
        community_id=point.community_id,
        access_point_id=point.id,
        unit_id=unit.id if unit else None,
        building_id=point.building_id,
        issued_by_user_id=user.id,
        issued_by_person_id=issuer.id if issuer else None,
        label=(data.get("label") or "").strip() or str(_l("Courier")),
        code_hash=digest,
        hint=pin[-2:],
        valid_from=now,
        valid_until=valid_until,
        max_uses=max_uses,
    )
    db.session.add(code)
    db.session.flush()
    audit.record(
        user,
        "courier_code.create",
        community_id=code.community_id,
        target=code,
        details={
            "access_point_id": point.id,
            "max_uses": max_uses,
            "until": valid_until.isoformat(),
        },
    )
    return code, pin


def revoke(scope: Scope, code_id: str, now: datetime | None = None) -> CourierCode:
    """Revoke a code (idempotent): it opens nothing from now on. Residents: their unit's."""
    code = scope.writable(CourierCode, code_id)
    if code.revoked_at is None:
        code.revoked_at = now or utcnow()
        audit.record(scope.user, "courier_code.revoke", community_id=code.community_id, target=code)
    return code


def uses_of(code: CourierCode, limit: int = 50) -> list[AccessEvent]:
    """The code's grants and denials at its door, newest first (``details.courier_code_id``)."""
    return list(
        db.session.scalars(
            select(AccessEvent)
            .where(
                AccessEvent.community_id == code.community_id,
                AccessEvent.access_point_id == code.access_point_id,
                AccessEvent.details["courier_code_id"].as_string() == code.id,
            )
            .order_by(AccessEvent.occurred_at.desc())
            .limit(limit)
        )
    )


def code_used(event: AccessEvent, code: CourierCode) -> None:
    """A code just opened its door (``event``, flushed, not committed): the resident who
    issued it is told (``courier_code_used``, on the channels they chose; staff's delivery
    codes tell no one)."""
    _LOGGER.info("courier code %s used at %s (event %s)", code.id, event.access_point_id, event.id)
    if code.issued_by_person_id is None or code.issued_by_user_id is None:
        return
    point = db.session.get(AccessPoint, event.access_point_id)
    notifications.courier_code_used(
        [code.issued_by_user_id],
        community_id=event.community_id,
        door_name=point.name,
        at=event.occurred_at,
    )
