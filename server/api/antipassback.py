"""Anti-passback: gate pairs, who is inside them, and a staff reset (staff and admins only).

A person who entered through a pair may not enter again, by any credential, until they left
through its exit or the pair's forgiveness time passed: ``hard`` pairs deny
``anti_passback``, ``soft`` ones grant and record (``docs/policy.md``, Anti-passback).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from gatekeeper.antipassback import PassbackMode
from server.access import antipassback
from server.api import authenticated_blueprint, scope
from server.api.schemas import PatchSchema
from server.extensions import db
from server.models import AntiPassbackPair

blp = authenticated_blueprint("antipassback", "Anti-passback: gate pairs and who is inside")

_MODE = "soft: grant a second entry and record it; hard: deny it anti_passback"
_FORGIVE = (
    "Minutes after an entry when a person who did not exit may enter again (1 to 10080); "
    "null: never, only a staff reset"
)
_DIRECTIONAL = (
    "true when entry and exit are one access point used both ways: its devices send "
    "direction in (entry) or out (exit); required then, refused otherwise"
)


class _PairFields(ma.Schema):
    mode = fields.Str(
        validate=validate.OneOf([m.value for m in PassbackMode]),
        metadata={"description": _MODE + " (default hard)"},
    )
    forgive_minutes = fields.Int(
        allow_none=True,
        validate=validate.Range(min=1, max=7 * 24 * 60),
        metadata={"description": _FORGIVE},
    )
    directional = fields.Bool(load_only=True, metadata={"description": _DIRECTIONAL})


class AntiPassbackPairSchema(_PairFields):
    id = fields.Str(dump_only=True)
    community_id = fields.Str(dump_only=True)
    name = fields.Str(required=True, validate=validate.Length(min=1, max=80))
    entry_point_id = fields.Str(
        required=True,
        validate=validate.Length(min=1, max=40),
        metadata={"description": "The access point where people enter (of this community)"},
    )
    exit_point_id = fields.Str(
        required=True,
        validate=validate.Length(min=1, max=40),
        metadata={"description": "The access point where people leave (may be the entry)"},
    )
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)


class AntiPassbackPairPatchSchema(PatchSchema, _PairFields):
    name = fields.Str(validate=validate.Length(min=1, max=80))
    entry_point_id = fields.Str(validate=validate.Length(min=1, max=40))
    exit_point_id = fields.Str(validate=validate.Length(min=1, max=40))


class AntiPassbackStateSchema(ma.Schema):
    pair_id = fields.Str()
    person_id = fields.Str()
    inside = fields.Bool(metadata={"description": "Entered and not yet out"})
    entered_at = fields.AwareDateTime(allow_none=True)
    exited_at = fields.AwareDateTime(allow_none=True)
    violations = fields.Int(metadata={"description": "Soft-mode re-entries since the last reset"})
    last_violation_at = fields.AwareDateTime(allow_none=True)


class ResetQuerySchema(ma.Schema):
    pair_id = fields.Str(
        validate=validate.Length(min=1, max=40),
        metadata={"description": "Reset in this pair only (default: every pair)"},
    )


class ResetSchema(ma.Schema):
    reset = fields.Int(metadata={"description": "How many pairs' states changed"})


@blp.get("/communities/<cid>/anti-passback-pairs")
@blp.response(200, AntiPassbackPairSchema(many=True))
def list_pairs(cid: str) -> Any:
    return antipassback.pairs(scope(), cid)


@blp.post("/communities/<cid>/anti-passback-pairs")
@blp.arguments(AntiPassbackPairSchema)
@blp.response(201, AntiPassbackPairSchema)
def create_pair(data: dict[str, Any], cid: str) -> Any:
    """A gate pair; its access points must be of the community, and one point named twice
    needs ``directional: true``."""
    pair = antipassback.create(scope(), cid, data)
    db.session.commit()
    return pair


@blp.get("/anti-passback-pairs/<pair_id>")
@blp.response(200, AntiPassbackPairSchema)
def get_pair(pair_id: str) -> Any:
    return scope().get(AntiPassbackPair, pair_id)


@blp.patch("/anti-passback-pairs/<pair_id>")
@blp.arguments(AntiPassbackPairPatchSchema)
@blp.response(200, AntiPassbackPairSchema)
def update_pair(changes: dict[str, Any], pair_id: str) -> Any:
    """Change a pair (the rules of POST); people's states stay."""
    pair = antipassback.update(scope(), pair_id, changes)
    db.session.commit()
    return pair


@blp.delete("/anti-passback-pairs/<pair_id>")
@blp.response(204)
def delete_pair(pair_id: str) -> None:
    antipassback.delete(scope(), pair_id)
    db.session.commit()


@blp.get("/anti-passback-pairs/<pair_id>/inside")
@blp.response(200, AntiPassbackStateSchema(many=True))
def list_inside(pair_id: str) -> Any:
    """People who entered through the pair and have not left, latest entry first."""
    return antipassback.inside(scope(), pair_id)


@blp.get("/people/<pid>/anti-passback")
@blp.response(200, AntiPassbackStateSchema(many=True))
def person_state(pid: str) -> Any:
    """The person's state in every pair they passed."""
    return antipassback.person_states(scope(), pid)


@blp.delete("/people/<pid>/anti-passback")
@blp.arguments(ResetQuerySchema, location="query")
@blp.response(200, ResetSchema)
def reset_person(query: dict[str, Any], pid: str) -> Any:
    """Reset: the person is outside in every pair (or ``pair_id``), violations cleared;
    audited."""
    count = antipassback.reset(scope(), pid, query.get("pair_id"))
    db.session.commit()
    return {"reset": count}
