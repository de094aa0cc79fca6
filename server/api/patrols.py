"""Patrol routes: checkpoint readers a guard visits every round (staff change; officers read).

A round in which a checkpoint saw no guard's tag (in its turn, on an ordered route) raises
``patrol_missed`` (``docs/alert_rules.md``); a route's recent rounds say who read what, when.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from server.alerts import patrol_rounds, patrols
from server.api import authenticated_blueprint, scope
from server.api.schemas import PatchSchema, ScheduleWindowSchema
from server.core.fields import JsonBool
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
    ordered = JsonBool(
        metadata={
            "description": "True: a guard's read counts only at the next checkpoint in route "
            "order; a read out of turn counts for nothing (default false: any order)"
        },
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


class PatrolVisitSchema(ma.Schema):
    device_id = fields.Str(metadata={"description": "The checkpoint reader"})
    at = fields.AwareDateTime(metadata={"description": "When the guard's tag was read there"})
    tag = fields.Str(allow_none=True, metadata={"description": "The guard tag's EPC"})
    person_id = fields.Str(allow_none=True, metadata={"description": "The tag's wearer"})
    person_name = fields.Str(
        allow_none=True,
        metadata={"description": "The wearer's name; masked for a role that reads no people"},
    )


class PatrolRoundSchema(ma.Schema):
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    status = fields.Str(
        metadata={"description": "complete, missed, or in_progress (the round under way)"}
    )
    missed_device_ids = fields.List(
        fields.Str(), metadata={"description": "Checkpoints not visited (so far), route order"}
    )
    visits = fields.List(
        fields.Nested(PatrolVisitSchema),
        metadata={"description": "The reads that counted, oldest first"},
    )


class PatrolRoundsQuerySchema(ma.Schema):
    hours = fields.Int(
        load_default=patrol_rounds.RECENT_HOURS,
        validate=validate.Range(min=1, max=patrol_rounds.MAX_HOURS),
        metadata={"description": "How far back: rounds that ended in the last so many hours"},
    )


@blp.get("/patrol-routes/<route_id>/rounds")
@blp.arguments(PatrolRoundsQuerySchema, location="query")
@blp.response(200, PatrolRoundSchema(many=True))
def list_patrol_rounds(query: dict[str, Any], route_id: str) -> Any:
    """The route's recent rounds, newest first, the one under way included: each
    checkpoint a guard's tag visited (when, whose) and those missed."""
    return patrol_rounds.recent(scope(), route_id, hours=query["hours"])
