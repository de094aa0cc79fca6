"""Cars: the blocked-plate list, who is inside, and visitor cars that overstay their pass."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from gatekeeper.vocabulary import AlertType, Severity
from server.alerts import summaries
from server.alerts.service import raise_alert
from server.core import audit
from server.core.errors import Conflict, Invalid
from server.core.localtime import local_time
from server.core.plates import checked_plate
from server.core.scope import Scope
from server.extensions import db
from server.models import BlockedPlate, Community, VehiclePresence, VisitorPass, utcnow


def block_plate(scope: Scope, community_id: str, data: dict[str, Any]) -> BlockedPlate:
    community = scope.get(Community, community_id)
    scope.require_write(BlockedPlate)
    plate = checked_plate(data["plate"])
    reason = data["reason"].strip()
    if not reason:
        raise Invalid(
            _l("Say why the plate is blocked."),
            errors={"reason": [str(_l("Must not be blank."))]},
        )
    exists = db.session.scalar(
        select(BlockedPlate.id).where(
            BlockedPlate.community_id == community.id, BlockedPlate.plate == plate
        )
    )
    if exists is not None:
        raise Conflict(_l("%(plate)s is already blocked.", plate=plate))
    row = BlockedPlate(
        community_id=community.id,
        plate=plate,
        reason=reason,
        created_by_user_id=scope.user.id,
    )
    db.session.add(row)
    db.session.flush()
    audit.record(scope.user, "plate.block", community_id=community.id, target=row)
    return row


def unblock_plate(scope: Scope, blocked_id: str) -> None:
    row = scope.writable(BlockedPlate, blocked_id)
    audit.record(
        scope.user,
        "plate.unblock",
        community_id=row.community_id,
        target=row,
        details={"plate": row.plate},
    )
    db.session.delete(row)


def kind_of(presence: VehiclePresence) -> str | None:
    """A guest's car (it came in on a pass), a registered one (a resident's, a worker's), or
    None (a plate let in by staff)."""
    if presence.pass_id:
        return "visitor"
    return "resident" if presence.vehicle_id else None


def inside(scope: Scope, community_id: str) -> list[VehiclePresence]:
    """The cars inside now, longest first."""
    community = scope.get(Community, community_id)
    return list(
        db.session.scalars(
            scope.query(VehiclePresence)
            .where(
                VehiclePresence.community_id == community.id,
                VehiclePresence.exited_at.is_(None),
            )
            .order_by(VehiclePresence.entered_at)
        )
    )


def flag_overstays(now: datetime | None = None) -> int:
    """Raise one ``overstay`` alert for each visitor car still inside after its pass ended.

    A scheduled job (the worker); returns how many were raised. The caller commits.
    """
    now = now or utcnow()
    rows = db.session.execute(
        select(VehiclePresence, VisitorPass)
        .join(VisitorPass, VisitorPass.id == VehiclePresence.pass_id)
        .where(
            VehiclePresence.exited_at.is_(None),
            VehiclePresence.overstay_alerted_at.is_(None),
            VisitorPass.valid_until <= now,
        )
    ).all()
    for presence, visitor_pass in rows:
        zone = db.session.get(Community, presence.community_id).timezone
        raise_alert(
            community_id=presence.community_id,
            type=AlertType.OVERSTAY,
            severity=Severity.MEDIUM,
            summary=summaries.overstay(presence.plate, local_time(visitor_pass.valid_until, zone)),
            evidence={
                "event_ids": [e for e in (presence.entry_event_id,) if e],
                "pass_id": visitor_pass.id,
            },
            dedup_key=f"overstay:{presence.id}",
        )
        presence.overstay_alerted_at = now
    return len(rows)
