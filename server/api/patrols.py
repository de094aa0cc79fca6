"""Patrol routes: checkpoint readers a guard visits every round (staff change; officers read).

A round in which a checkpoint saw no tag raises ``patrol_missed`` (``docs/alert_rules.md``).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from server.alerts import patrols
from server.api import authenticated_blueprint, scope
from server.api.schemas import PatchSchema, ScheduleWindowSchema
from server.extensions import db
from server.models import PatrolRoute

blp = authenticated_blueprint("patrols", "Patrol routes: checkpoints and rounds")


def _checkpoints(required: bool) -> fields.List:
    return fields.List(
        fields.Str(validate=validate.Length(min=1, max=40)),
        required=required,
        validate=validate.Length(min=1, max=50),
        metadata={
            "description": "RFID readers of the community in the patrol_checkpoint zone, "
            "in the order a guard visits them"
        },
    )


class _PatrolRouteFields(ma.Schema):
    round_minutes = fields.Int(
        validate=validate.Range(min=5, max=24 * 60),
        metadata={"description": "A round's length (default 60); each checkpoint must see a tag"},
    )
    schedule = fields.List(
        fields.Nested(ScheduleWindowSchema),
        allow_none=True,
        validate=validate.Length(max=28),
        metadata={
            "description": "Weekly windows in community time when rounds are due; rounds "
            "start at each window's start. null: all day, every day"
        },
    )


class PatrolRouteSchema(_PatrolRouteFields):
    id = fields.Str(dump_only=True)
    community_id = fields.Str(dump_only=True)
    name = fields.Str(required=True, validate=validate.Length(min=1, max=80))
    checkpoint_device_ids = _checkpoints(required=True)
    checked_until = fields.AwareDateTime(
        dump_only=True, metadata={"description": "The end of the last round judged"}
    )
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)


class PatrolRoutePatchSchema(PatchSchema, _PatrolRouteFields):
    name = fields.Str(validate=validate.Length(min=1, max=80))
    checkpoint_device_ids = _checkpoints(required=False)


@blp.get("/communities/<cid>/patrol-routes")
@blp.response(200, PatrolRouteSchema(many=True))
def list_patrol_routes(cid: str) -> Any:
    return patrols.routes(scope(), cid)


@blp.post("/communities/<cid>/patrol-routes")
@blp.arguments(PatrolRouteSchema)
@blp.response(201, PatrolRouteSchema)
def create_patrol_route(data: dict[str, Any], cid: str) -> Any:
    """A route of checkpoint readers; its first round is judged after it ends."""
    route = patrols.create(scope(), cid, data)
    db.session.commit()
    return route


@blp.get("/patrol-routes/<route_id>")
@blp.response(200, PatrolRouteSchema)
def get_patrol_route(route_id: str) -> Any:
    return scope().get(PatrolRoute, route_id)


@blp.patch("/patrol-routes/<route_id>")
@blp.arguments(PatrolRoutePatchSchema)
@blp.response(200, PatrolRouteSchema)
def update_patrol_route(changes: dict[str, Any], route_id: str) -> Any:
    route = patrols.update(scope(), route_id, changes)
    db.session.commit()
    return route


@blp.delete("/patrol-routes/<route_id>")
@blp.response(204)
def delete_patrol_route(route_id: str) -> None:
    patrols.delete(scope(), route_id)
    db.session.commit()
