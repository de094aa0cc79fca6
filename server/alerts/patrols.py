"""Patrol routes: the checkpoints a guard visits every round (staff set them, officers read).

The worker judges the rounds (``server.alerts.rules.judge_patrol_rounds``); here routes are
made, changed and removed, each change written to the audit log.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from gatekeeper.schedule import WeeklySchedule
from gatekeeper.vocabulary import DeviceKind, Zone
from server.core import audit
from server.core.errors import Invalid
from server.core.scope import Scope
from server.core.wording import word
from server.extensions import db
from server.models import Community, Device, PatrolRoute

_FIELDS = ("name", "checkpoint_device_ids", "round_minutes", "schedule", "ordered")


def _checked(community_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """The fields as stored, or ``Invalid`` naming what is wrong with them."""
    errors: dict[str, list[str]] = {}
    if "checkpoint_device_ids" in data:
        ids = list(data["checkpoint_device_ids"])
        if len(set(ids)) != len(ids):
            errors["checkpoint_device_ids"] = [str(_l("A checkpoint is listed twice."))]
        else:
            found = {
                d.id: d
                for d in db.session.scalars(
                    select(Device).where(Device.community_id == community_id, Device.id.in_(ids))
                )
            }
            wrong = [
                i
                for i in ids
                if i not in found
                or found[i].kind is not DeviceKind.RFID_READER
                or found[i].zone is not Zone.PATROL_CHECKPOINT
            ]
            if wrong:
                errors["checkpoint_device_ids"] = [
                    str(
                        _l(
                            "Not an RFID reader of this community in the %(zone)s zone: "
                            "%(devices)s",
                            zone=word(Zone.PATROL_CHECKPOINT),
                            devices=", ".join(wrong),
                        )
                    )
                ]
    if data.get("schedule"):
        try:
            data["schedule"] = WeeklySchedule.from_json(data["schedule"]).to_json()
        except ValueError as error:
            errors["schedule"] = [str(error)]
    elif "schedule" in data:
        data["schedule"] = None  # null or []: rounds all day, every day
    if errors:
        raise Invalid(_l("The patrol route is not valid."), errors=errors)
    return data


def routes(scope: Scope, community_id: str) -> list[PatrolRoute]:
    community = scope.get(Community, community_id)
    return list(
        db.session.scalars(
            scope.query(PatrolRoute)
            .where(PatrolRoute.community_id == community.id)
            .order_by(PatrolRoute.name, PatrolRoute.id)
        )
    )


def checkpoint_readers(scope: Scope, community_id: str) -> list[Device]:
    """The devices a route may list as checkpoints: the community's RFID readers in the
    patrol-checkpoint zone, by name."""
    community = scope.get(Community, community_id)
    return list(
        db.session.scalars(
            scope.query(Device)
            .where(
                Device.community_id == community.id,
                Device.kind == DeviceKind.RFID_READER,
                Device.zone == Zone.PATROL_CHECKPOINT,
            )
            .order_by(Device.name, Device.id)
        )
    )


def create(scope: Scope, community_id: str, data: dict[str, Any]) -> PatrolRoute:
    community = scope.get(Community, community_id)
    scope.require_write(PatrolRoute)
    data = _checked(community.id, dict(data))
    route = PatrolRoute(community_id=community.id, **{k: data[k] for k in _FIELDS if k in data})
    db.session.add(route)
    db.session.flush()
    audit.record(
        scope.user,
        "patrol_route.create",
        community_id=community.id,
        target=route,
        details={k: getattr(route, k) for k in _FIELDS},
    )
    return route


def update(scope: Scope, route_id: str, changes: dict[str, Any]) -> PatrolRoute:
    """Change a route; rounds already judged stay judged, later ones follow the change."""
    route = scope.writable(PatrolRoute, route_id)
    changes = _checked(route.community_id, dict(changes))
    details = {k: changes[k] for k in _FIELDS if k in changes and changes[k] != getattr(route, k)}
    for key, value in details.items():
        setattr(route, key, value)
    if details:
        audit.record(
            scope.user,
            "patrol_route.update",
            community_id=route.community_id,
            target=route,
            details=details,
        )
    return route


def delete(scope: Scope, route_id: str) -> None:
    route = scope.writable(PatrolRoute, route_id)
    audit.record(
        scope.user,
        "patrol_route.delete",
        community_id=route.community_id,
        target=route,
        details={"name": route.name},
    )
    db.session.delete(route)
