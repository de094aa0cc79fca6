"""Dispatch: officers on and off duty, and alerts assigned to an officer on duty.

``PUT /officers/me/duty`` (officers); ``GET /alerts/{id}/dispatch/candidates``,
``POST /alerts/{id}/dispatch`` (officers covering the community, its staff, admins) and
``POST /alerts/{id}/dispatch/accept`` (the assignee). ``docs/alerts.md`` ("Dispatch").
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from server.alerts import dispatch as alert_dispatch
from server.api import authenticated_blueprint, scope
from server.api.alerts import AlertDetailSchema, AlertNoteSchema, alert_answer
from server.extensions import db

blp = authenticated_blueprint("dispatch", "Dispatch: officers on duty, alerts assigned to them")


class PositionSchema(ma.Schema):
    access_point_id = fields.Str(required=True, validate=validate.Length(min=1, max=40))


class DutyInputSchema(ma.Schema):
    on_duty = fields.Bool(required=True)
    position = fields.Nested(
        PositionSchema,
        allow_none=True,
        metadata={
            "description": "where you are: an access point of a community you cover; null: "
            "unknown; left out: where you were"
        },
    )


class DutyPositionSchema(ma.Schema):
    access_point_id = fields.Str()
    access_point = fields.Str(metadata={"description": "its name"})
    community_id = fields.Str()
    plan_x = fields.Float(allow_none=True)
    plan_y = fields.Float(allow_none=True)
    at = fields.AwareDateTime(allow_none=True)


class DutySchema(ma.Schema):
    on_duty = fields.Bool()
    changed_at = fields.AwareDateTime(allow_none=True)
    position = fields.Nested(DutyPositionSchema, allow_none=True)


class DispatchInputSchema(ma.Schema):
    officer_id = fields.Str(
        allow_none=True,
        validate=validate.Length(min=1, max=40),
        metadata={"description": "left out or null: the nearest officer on duty"},
    )


class CandidateSchema(ma.Schema):
    officer_id = fields.Str()
    username = fields.Str()
    name = fields.Str()
    access_point_id = fields.Str(allow_none=True)
    access_point = fields.Str(allow_none=True, metadata={"description": "where they are"})
    distance = fields.Float(
        allow_none=True, metadata={"description": "on the site plan (fractions); null: unknown"}
    )
    busy = fields.Int(metadata={"description": "unresolved alerts dispatched to them"})


@blp.get("/officers/me/duty")
@blp.response(200, DutySchema)
def get_duty() -> Any:
    """Whether you (an officer) are on duty, and where you are."""
    officer = alert_dispatch.officer_self(scope())
    return alert_dispatch.duty_answer(alert_dispatch.duty_of(officer.id))


@blp.put("/officers/me/duty")
@blp.arguments(DutyInputSchema)
@blp.response(200, DutySchema)
def put_duty(data: dict[str, Any]) -> Any:
    """Go on or off duty (officers; 403 for anyone else), and say where you are."""
    duty = alert_dispatch.set_duty(
        scope(), data["on_duty"], data.get("position"), move="position" in data
    )
    db.session.commit()
    return alert_dispatch.duty_answer(duty)


@blp.get("/alerts/<alert_id>/dispatch/candidates")
@blp.response(200, CandidateSchema(many=True))
def dispatch_candidates(alert_id: str) -> Any:
    """The officers on duty covering the alert's community, the nearest first (then the
    least busy, then by name)."""
    rows = alert_dispatch.candidates(scope(), alert_id)
    return [alert_dispatch.candidate_answer(row) for row in rows]


@blp.post("/alerts/<alert_id>/dispatch")
@blp.arguments(DispatchInputSchema)
@blp.response(200, AlertDetailSchema)
def dispatch_alert(data: dict[str, Any], alert_id: str) -> Any:
    """Dispatch the alert to an officer on duty (without ``officer_id``: the nearest).
    409 when the officer is off duty, nobody is on duty or the alert is resolved; 422 when
    ``officer_id`` is no officer covering the community."""
    row = alert_dispatch.dispatch(scope(), alert_id, data.get("officer_id"))
    db.session.commit()
    return alert_answer(row, history=True)


@blp.post("/alerts/<alert_id>/dispatch/accept")
@blp.arguments(AlertNoteSchema)
@blp.response(200, AlertDetailSchema)
def accept_dispatch(data: dict[str, Any], alert_id: str) -> Any:
    """The officer it was dispatched to acknowledges it (and the alert, while open): no
    escalation to the station. 403 for anyone else; 409 when there is nothing to accept."""
    row = alert_dispatch.accept(scope(), alert_id, data.get("note"))
    db.session.commit()
    return alert_answer(row, history=True)
