"""Visitor passes: issued by residents for their own unit (staff for any), shared, revoked.

A pass is a row; its QR token is signed on demand from the row (``token_for``), so a key
rotation changes the token but never the pass. The guest's share link carries its own
secret, derived from SECRET_KEY and the pass, so the resident can share it again later;
only its hash is stored, to find the pass from the link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from flask_babel.speaklater import LazyString
from sqlalchemy import or_, select

from gatekeeper import passtokens, policy
from gatekeeper.vocabulary import AccessPointKind, PassStatus, PersonRole, Zone
from server.community import settings as community_settings
from server.core import audit
from server.core.errors import Conflict, Invalid, NotFound
from server.core.plates import checked_plate
from server.core.scope import Scope
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    Community,
    Lease,
    Membership,
    Person,
    PersonStatus,
    Unit,
    UserRole,
    VisitorPass,
    utcnow,
)
from server.passes import keys as passkeys

MAX_USES = 50
# How far in the past a pass may start (a form filled in a minute ago still works).
_BACKDATE_GRACE = timedelta(minutes=5)
_SHARE_SECRET_BYTES = 24


# The statuses in which a pass's code can still open a door (now or later).
OPENS_DOORS = (PassStatus.ACTIVE, PassStatus.UPCOMING)


def status_of(visitor_pass: VisitorPass, now: datetime | None = None) -> PassStatus:
    """Where the pass stands at ``now``: ``gatekeeper.policy.pass_status`` of the row."""
    return policy.pass_status(
        revoked=visitor_pass.revoked_at is not None,
        uses=visitor_pass.uses,
        max_uses=visitor_pass.max_uses,
        valid_from=visitor_pass.valid_from,
        valid_until=visitor_pass.valid_until,
        at=now or utcnow(),
    )


def status_condition(status: PassStatus, now: datetime) -> Any:
    """The SQL condition for passes in ``status`` at ``now``, to filter lists in the database.

    The SQL mirror of ``gatekeeper.policy.pass_status`` (through ``status_of``): the same
    order (revoked, used up, then the half-open window), so a row matches exactly the
    status ``status_of`` gives it; ``tests/passes/test_passes_api.py`` checks the two agree.
    """
    live = VisitorPass.revoked_at.is_(None)
    not_used = VisitorPass.uses < VisitorPass.max_uses
    return {
        PassStatus.REVOKED: VisitorPass.revoked_at.is_not(None),
        PassStatus.USED: live & ~not_used,
        PassStatus.EXPIRED: live & not_used & (VisitorPass.valid_until <= now),
        PassStatus.UPCOMING: live & not_used & (VisitorPass.valid_from > now),
        PassStatus.ACTIVE: live
        & not_used
        & (VisitorPass.valid_from <= now)
        & (VisitorPass.valid_until > now),
    }[status]


# --- tokens and share links ------------------------------------------------------------------


def token_for(visitor_pass: VisitorPass) -> str:
    """The signed QR token of a pass (the current signing key; no personal data inside)."""
    key_id, private = passkeys.signing_key()
    claims = passtokens.Claims(
        kind=passtokens.TokenKind.PASS,
        key_id=key_id,
        community_tag=passtokens.community_tag(visitor_pass.community_id),
        serial=bytes.fromhex(visitor_pass.serial),
        not_before=visitor_pass.valid_from,
        not_after=visitor_pass.valid_until,
        max_uses=visitor_pass.max_uses,
        access_point_tags=tuple(
            passtokens.access_point_tag(point.id)
            for point in sorted(visitor_pass.access_points, key=lambda p: p.id)
        ),
    )
    return passtokens.sign(claims, private)


def share_secret(visitor_pass: VisitorPass) -> str:
    """The share link's secret: unguessable, the same every time it is asked for."""
    key = current_app.config["SETTINGS"].secret_key.encode()
    message = f"pass-share:{visitor_pass.id}:{visitor_pass.serial}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()[:_SHARE_SECRET_BYTES]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def by_share_secret(secret: str) -> VisitorPass:
    """The pass a share link names; ``NotFound`` for anything else."""
    if len(secret) > 64:
        raise NotFound(_l("No such pass."))
    row = db.session.scalar(
        select(VisitorPass).where(VisitorPass.share_secret_hash == _hash_secret(secret))
    )
    if row is None or not hmac.compare_digest(share_secret(row), secret):
        raise NotFound(_l("No such pass."))
    return row


# --- issuing ---------------------------------------------------------------------------------


def _field_error(field: str, message: LazyString) -> Invalid:
    return Invalid(message, errors={field: [message]})


def default_access_points(unit: Unit, *, with_barriers: bool = False) -> list[AccessPoint]:
    """The unit's building doors and the community's perimeter gates and doors; with a
    guest's car, the car barriers too."""
    kinds = [AccessPointKind.DOOR, AccessPointKind.GATE]
    if with_barriers:
        kinds.append(AccessPointKind.BARRIER)
    return list(
        db.session.scalars(
            select(AccessPoint)
            .where(
                AccessPoint.community_id == unit.community_id,
                AccessPoint.kind.in_(kinds),
                or_(
                    AccessPoint.building_id == unit.building_id,
                    (AccessPoint.building_id.is_(None)) & (AccessPoint.zone == Zone.PERIMETER),
                ),
            )
            .order_by(AccessPoint.name)
            .limit(passtokens.MAX_ACCESS_POINT_TAGS)
        )
    )


def allowed_access_points(unit: Unit) -> list[AccessPoint]:
    """Points a pass for ``unit`` may name: its building's and the shared ones."""
    return list(
        db.session.scalars(
            select(AccessPoint)
            .where(
                AccessPoint.community_id == unit.community_id,
                or_(AccessPoint.building_id == unit.building_id, AccessPoint.building_id.is_(None)),
            )
            .order_by(AccessPoint.name)
        )
    )


def _chosen_access_points(
    unit: Unit, ids: Sequence[str] | None, *, with_barriers: bool
) -> list[AccessPoint]:
    if ids is None:
        points = default_access_points(unit, with_barriers=with_barriers)
        if not points:
            raise Conflict(_l("This unit's building has no door a pass could open."))
        return points
    unique = list(dict.fromkeys(ids))
    if not unique:
        raise _field_error("access_point_ids", _l("Name at least one access point."))
    if len(unique) > passtokens.MAX_ACCESS_POINT_TAGS:
        raise _field_error(
            "access_point_ids",
            _l("At most %(count)s access points.", count=passtokens.MAX_ACCESS_POINT_TAGS),
        )
    allowed = {point.id: point for point in allowed_access_points(unit)}
    unknown = [ident for ident in unique if ident not in allowed]
    if unknown:
        raise _field_error(
            "access_point_ids",
            _l(
                "Not a door of this unit's building or a shared gate: %(ids)s.",
                ids=", ".join(unknown),
            ),
        )
    return [allowed[ident] for ident in unique]


def issuer_until(person: Person | None, unit: Unit, now: datetime) -> datetime | None:
    """Until when the issuing resident lives in ``unit`` (``None``: open-ended, or staff).

    Raises ``Conflict`` when they do not live there now.
    """
    if person is None:  # staff issue for any unit
        return None
    if person.status is not PersonStatus.ACTIVE:
        raise Conflict(_l("Only an active resident can issue passes."))
    memberships = db.session.scalars(
        select(Membership).where(
            Membership.person_id == person.id,
            Membership.unit_id == unit.id,
            Membership.role != PersonRole.TENANT,
        )
    ).all()
    leases = db.session.scalars(
        select(Lease).where(Lease.person_id == person.id, Lease.unit_id == unit.id)
    ).all()
    windows = [(m.valid_from, m.valid_until) for m in memberships]
    windows += [(lease.starts_at, lease.ends_at) for lease in leases]
    current = [
        until
        for starts, until in windows
        if (starts is None or starts <= now) and (until is None or now < until)
    ]
    if not current:
        raise Conflict(_l("You do not live in this unit now, so you cannot issue passes for it."))
    ends = [] if None in current else [max(u for u in current if u is not None)]
    ends += [person.valid_until] if person.valid_until is not None else []
    return min(ends, default=None)


def create(scope: Scope, data: dict[str, Any], now: datetime | None = None) -> VisitorPass:
    """Issue a pass. Residents: their own unit only; staff: any unit they run."""
    now = now or utcnow()
    user = scope.user
    if user.role is UserRole.RESIDENT:
        unit = user.unit
        if unit is None:
            raise Conflict(_l("This account is not linked to a unit."))
        if data.get("unit_id") not in (None, unit.id):
            raise NotFound(_l("No unit with id %(id)s.", id=repr(data["unit_id"])))
        issuer = db.session.get(Person, user.person_id) if user.person_id else None
        if issuer is None:
            raise Conflict(_l("This account is not linked to a resident."))
    else:
        scope.require_write(VisitorPass)
        if not data.get("unit_id"):
            raise _field_error("unit_id", _l("Staff name the unit the pass is for."))
        unit = scope.get(Unit, data["unit_id"])
        issuer = None
    community = db.session.get(Community, unit.community_id)
    settings = community_settings.effective(community.settings)

    valid_from = data.get("valid_from") or now
    if valid_from < now - _BACKDATE_GRACE:
        raise _field_error("valid_from", _l("A pass cannot start in the past."))
    valid_until = data.get("valid_until") or valid_from + timedelta(
        hours=settings.pass_default_hours
    )
    if valid_until <= valid_from:
        raise _field_error("valid_until", _l("The end must come after the start."))
    latest = now + timedelta(days=settings.pass_max_days)
    if valid_until > latest:
        raise _field_error(
            "valid_until",
            lazy_ngettext(
                "A pass lasts at most %(num)s day from now.",
                "A pass lasts at most %(num)s days from now.",
                settings.pass_max_days,
            ),
        )
    lives_until = issuer_until(issuer, unit, now)
    if lives_until is not None and valid_until > lives_until:
        if valid_from >= lives_until:
            raise _field_error("valid_from", _l("The pass would start after your lease ends."))
        valid_until = lives_until  # a tenant's pass never outlives the lease

    max_uses = data.get("max_uses", 1)
    plate = checked_plate(data["plate"]) if data.get("plate") else None
    row = VisitorPass(
        community_id=unit.community_id,
        unit_id=unit.id,
        issued_by_user_id=user.id,
        issued_by_person_id=issuer.id if issuer else None,
        guest_name=data["guest_name"].strip(),
        plate=plate,
        valid_from=valid_from.replace(microsecond=0),
        valid_until=valid_until.replace(microsecond=0),
        max_uses=max_uses,
        access_points=_chosen_access_points(
            unit, data.get("access_point_ids"), with_barriers=plate is not None
        ),
    )
    db.session.add(row)
    db.session.flush()
    row.share_secret_hash = _hash_secret(share_secret(row))
    audit.record(
        user,
        "pass.create",
        community_id=row.community_id,
        target=row,
        details={"unit_id": unit.id, "max_uses": max_uses, "until": row.valid_until.isoformat()},
    )
    return row


def revoke(scope: Scope, pass_id: str, now: datetime | None = None) -> VisitorPass:
    """Revoke a pass (idempotent); residents only their unit's."""
    row = scope.writable(VisitorPass, pass_id)
    if row.revoked_at is None:
        row.revoked_at = now or utcnow()
        audit.record(scope.user, "pass.revoke", community_id=row.community_id, target=row)
    return row


def uses_of(visitor_pass: VisitorPass, limit: int = 100) -> list[AccessEvent]:
    """The pass's history at doors, granted and denied, newest first."""
    return list(
        db.session.scalars(
            select(AccessEvent)
            .where(AccessEvent.pass_id == visitor_pass.id)
            .order_by(AccessEvent.occurred_at.desc())
            .limit(limit)
        )
    )
