"""Communities and their structure: buildings, units, access points."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from blinker import Namespace
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from sqlalchemy import select

from server.community import settings as community_settings
from server.core import audit
from server.core.errors import Conflict, Invalid
from server.core.scope import Scope
from server.extensions import db
from server.models import (
    AccessPoint,
    Building,
    Community,
    Lease,
    Membership,
    RegistrationRequest,
    Unit,
    User,
    VisitorPass,
)

_signals = Namespace()
#: Sent with the new community, inside the transaction that adds it (other rooms react:
#: ``server.passes.keyset`` queues its doors' key set). The structure knows none of them.
community_created = _signals.signal("community-created")


def _unique(model: type, message: str | LazyString, *conditions: Any) -> None:
    if db.session.scalar(select(model.id).where(*conditions).limit(1)) is not None:  # type: ignore[attr-defined]
        raise Conflict(message)


def _apply(row: Any, changes: dict[str, Any]) -> dict[str, Any]:
    """Set ``changes`` on ``row``; return what actually changed (for the audit log)."""
    changed = {}
    for key, value in changes.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed[key] = value
    return changed


def _stored_value(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def _audit_changes(changed: dict[str, Any]) -> dict[str, Any]:
    return {key: _stored_value(value) for key, value in changed.items()}


def _actor(scope: Scope) -> User:
    return scope.user


def _update(
    scope: Scope, row: Any, changes: dict[str, Any], action: str, community_id: str
) -> None:
    """Apply ``changes`` to ``row`` and audit what changed (no entry when nothing did)."""
    changed = _apply(row, changes)
    if changed:
        audit.record(
            _actor(scope),
            action,
            community_id=community_id,
            target=row,
            details=_audit_changes(changed),
        )


# Communities ---------------------------------------------------------------------------------


def create_community(scope: Scope, data: dict[str, Any], default_timezone: str) -> Community:
    scope.require_admin()
    _unique(
        Community,
        _l("A community named '%(name)s' exists.", name=data["name"]),
        Community.name == data["name"],
    )
    settings = _validated_settings({}, data.get("settings") or {})
    community = Community(
        name=data["name"], timezone=data.get("timezone") or default_timezone, settings=settings
    )
    db.session.add(community)
    db.session.flush()
    community_created.send(community)
    audit.record(
        _actor(scope),
        "community.create",
        community_id=community.id,
        target=community,
        details={"name": community.name, "timezone": community.timezone},
    )
    return community


def update_community(scope: Scope, community_id: str, changes: dict[str, Any]) -> Community:
    community = scope.writable(Community, community_id)
    if "name" in changes and changes["name"] != community.name:
        _unique(
            Community,
            _l("A community named '%(name)s' exists.", name=changes["name"]),
            Community.name == changes["name"],
        )
    if "settings" in changes:
        changes = {
            **changes,
            "settings": _validated_settings(community.settings, changes["settings"]),
        }
    _update(scope, community, changes, "community.update", community.id)
    return community


def _validated_settings(stored: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    try:
        return community_settings.merged(stored, changes)
    except ma.ValidationError as error:
        raise Invalid(
            _l("Invalid community settings."), errors={"settings": error.normalized_messages()}
        ) from error


# Buildings and units ------------------------------------------------------------------------


def create_building(scope: Scope, community_id: str, data: dict[str, Any]) -> Building:
    community = scope.get(Community, community_id)
    scope.require_write(Building)
    _unique(
        Building,
        _l("Building '%(name)s' exists in this community.", name=data["name"]),
        Building.community_id == community.id,
        Building.name == data["name"],
    )
    building = Building(community_id=community.id, name=data["name"])
    db.session.add(building)
    db.session.flush()
    audit.record(
        _actor(scope),
        "building.create",
        community_id=community.id,
        target=building,
        details={"name": building.name},
    )
    return building


def update_building(scope: Scope, building_id: str, changes: dict[str, Any]) -> Building:
    building = scope.writable(Building, building_id)
    if "name" in changes and changes["name"] != building.name:
        _unique(
            Building,
            _l("Building '%(name)s' exists in this community.", name=changes["name"]),
            Building.community_id == building.community_id,
            Building.name == changes["name"],
        )
    _update(scope, building, changes, "building.update", building.community_id)
    return building


def _building_in(scope: Scope, community_id: str, building_id: str, field: str) -> Building:
    """A building of this community, or a field error naming ``field``."""
    building = db.session.scalar(
        scope.query(Building).where(
            Building.id == building_id, Building.community_id == community_id
        )
    )
    if building is None:
        raise Invalid(
            _l("No such building in this community."),
            errors={field: [str(_l("No such building in this community."))]},
        )
    return building


def create_unit(scope: Scope, community_id: str, data: dict[str, Any]) -> Unit:
    community = scope.get(Community, community_id)
    scope.require_write(Unit)
    building = _building_in(scope, community.id, data["building_id"], "building_id")
    _unique(
        Unit,
        _l(
            "Unit '%(number)s' exists in %(building)s.",
            number=data["number"],
            building=building.name,
        ),
        Unit.building_id == building.id,
        Unit.number == data["number"],
    )
    unit = Unit(
        community_id=community.id,
        building_id=building.id,
        number=data["number"],
        floor=data.get("floor"),
    )
    db.session.add(unit)
    db.session.flush()
    audit.record(
        _actor(scope),
        "unit.create",
        community_id=community.id,
        target=unit,
        details={"building": building.name, "number": unit.number},
    )
    return unit


def update_unit(scope: Scope, unit_id: str, changes: dict[str, Any]) -> Unit:
    unit = scope.writable(Unit, unit_id)
    if "number" in changes and changes["number"] != unit.number:
        _unique(
            Unit,
            _l("Unit '%(number)s' exists in this building.", number=changes["number"]),
            Unit.building_id == unit.building_id,
            Unit.number == changes["number"],
        )
    _update(scope, unit, changes, "unit.update", unit.community_id)
    return unit


def _in_use(*queries: Any) -> bool:
    return any(db.session.scalar(q.limit(1)) is not None for q in queries)


def delete_building(scope: Scope, building_id: str) -> None:
    """Remove an empty building: no units and no access point of its own (its lobby
    invitations go with it)."""
    building = scope.writable(Building, building_id)
    if _in_use(select(Unit.id).where(Unit.building_id == building.id)):
        raise Conflict(
            _l("Building '%(name)s' still has units: delete them first.", name=building.name)
        )
    if _in_use(select(AccessPoint.id).where(AccessPoint.building_id == building.id)):
        raise Conflict(
            _l(
                "Building '%(name)s' still has access points: move them elsewhere first.",
                name=building.name,
            )
        )
    audit.record(
        _actor(scope),
        "building.delete",
        community_id=building.community_id,
        target=building,
        details={"name": building.name},
    )
    db.session.delete(building)
    db.session.flush()


def delete_unit(scope: Scope, unit_id: str) -> None:
    """Remove a unit nobody uses: no person, lease, login, visitor pass or registration
    names it (deleting would take their history with it)."""
    unit = scope.writable(Unit, unit_id)
    if _in_use(
        select(Membership.id).where(Membership.unit_id == unit.id),
        select(Lease.id).where(Lease.unit_id == unit.id),
        select(User.id).where(User.unit_id == unit.id),
        select(VisitorPass.id).where(VisitorPass.unit_id == unit.id),
        select(RegistrationRequest.id).where(RegistrationRequest.unit_id == unit.id),
    ):
        raise Conflict(
            _l(
                "Unit '%(number)s' is in use (people, leases, logins, passes or "
                "registrations name it): it cannot be deleted.",
                number=unit.number,
            )
        )
    audit.record(
        _actor(scope),
        "unit.delete",
        community_id=unit.community_id,
        target=unit,
        details={"number": unit.number, "building_id": unit.building_id},
    )
    db.session.delete(unit)
    db.session.flush()


# Access points ------------------------------------------------------------------------------


def create_access_point(scope: Scope, community_id: str, data: dict[str, Any]) -> AccessPoint:
    community = scope.get(Community, community_id)
    scope.require_write(AccessPoint)
    _unique(
        AccessPoint,
        _l("Access point '%(name)s' exists in this community.", name=data["name"]),
        AccessPoint.community_id == community.id,
        AccessPoint.name == data["name"],
    )
    if data.get("building_id") is not None:  # "" too: it names no building, say so
        _building_in(scope, community.id, data["building_id"], "building_id")
    point = AccessPoint(community_id=community.id, **data)
    if "requires_depth" not in data:
        # Unit doors need the 3D check by default (docs/protocol.md); gates and barriers do not.
        point.requires_depth = data["kind"].value == "door" and data.get("building_id") is not None
    db.session.add(point)
    db.session.flush()
    audit.record(
        _actor(scope),
        "access_point.create",
        community_id=community.id,
        target=point,
        details={"name": point.name, "kind": point.kind.value, "zone": point.zone.value},
    )
    return point


def update_access_point(scope: Scope, access_point_id: str, changes: dict[str, Any]) -> AccessPoint:
    point = scope.writable(AccessPoint, access_point_id)
    if "name" in changes and changes["name"] != point.name:
        _unique(
            AccessPoint,
            _l("Access point '%(name)s' exists in this community.", name=changes["name"]),
            AccessPoint.community_id == point.community_id,
            AccessPoint.name == changes["name"],
        )
    if changes.get("building_id") is not None:
        _building_in(scope, point.community_id, changes["building_id"], "building_id")
    _update(scope, point, changes, "access_point.update", point.community_id)
    return point
