"""Strangers: unknown faces seen at the doors, clustered per person (officers only)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from server.alerts import evidence, strangers, watchlist
from server.api import authenticated_blueprint, scope
from server.api.pagination import paginated
from server.api.schemas import NamedRefSchema
from server.api.watchlist import WatchlistEntrySchema
from server.core.fields import JsonBool
from server.extensions import db
from server.models import StrangerCluster, WatchlistEntry

blp = authenticated_blueprint("strangers", "Unknown faces at the doors, one cluster per person")

# A listed cluster shows its newest sightings; GET /strangers/{id} shows them all.
LISTED_SIGHTINGS = 20


class SightingSchema(ma.Schema):
    event_id = fields.Str()
    seen_at = fields.AwareDateTime()
    access_point = fields.Nested(NamedRefSchema, allow_none=True)
    snapshot_url = fields.Str(allow_none=True, metadata={"description": "the face crop, if kept"})


class StrangerSchema(ma.Schema):
    id = fields.Str()
    community_id = fields.Str()
    status = fields.Str(metadata={"description": "watching, known or watchlisted"})
    sighting_count = fields.Int()
    first_seen_at = fields.AwareDateTime()
    last_seen_at = fields.AwareDateTime()
    alert_id = fields.Str(allow_none=True)
    note = fields.Str(allow_none=True)
    marked_by_user_id = fields.Str(allow_none=True)
    held_at = fields.AwareDateTime(
        allow_none=True,
        metadata={"description": "since when an officer holds its sightings' evidence"},
    )
    sightings = fields.List(fields.Nested(SightingSchema), metadata={"description": "newest first"})


class StrangerQuerySchema(ma.Schema):
    status = fields.Str(validate=validate.OneOf(["watching", "known", "watchlisted"]))


class KnownSchema(ma.Schema):
    note = fields.Str(required=True, validate=validate.Length(min=1, max=500))


class PromoteSchema(ma.Schema):
    name = fields.Str(required=True, validate=validate.Length(min=1, max=80))
    category = fields.Str(required=True, validate=validate.OneOf(watchlist.CATEGORIES))
    door_opens = JsonBool(load_default=True)
    note = fields.Str(validate=validate.Length(max=500))


def _answer(cluster: StrangerCluster, sightings: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **{
            name: getattr(cluster, name)
            for name in (
                "id",
                "community_id",
                "status",
                "first_seen_at",
                "last_seen_at",
                "alert_id",
                "note",
                "marked_by_user_id",
                "held_at",
            )
        },
        "sighting_count": cluster.sightings,
        "sightings": sightings,
    }


@blp.get("/communities/<cid>/strangers")
@blp.arguments(StrangerQuerySchema, location="query")
@blp.response(200, StrangerSchema(many=True))
@blp.paginate()
def list_strangers(query: dict[str, Any], cid: str, pagination_parameters: Any) -> Any:
    """The community's strangers, last seen first, each with its newest sightings."""
    rows = paginated(strangers.clusters(scope(), cid, query.get("status")), pagination_parameters)
    seen = strangers.sightings_of([c.id for c in rows], per_cluster=LISTED_SIGHTINGS)
    return [_answer(cluster, seen[cluster.id]) for cluster in rows]


@blp.get("/strangers/<cluster_id>")
@blp.response(200, StrangerSchema)
def get_stranger(cluster_id: str) -> Any:
    """One stranger with every sighting."""
    caller = scope()
    caller.require_sees(StrangerCluster)
    cluster = caller.get(StrangerCluster, cluster_id)
    return _answer(cluster, strangers.sightings_of([cluster.id])[cluster.id])


@blp.post("/strangers/<cluster_id>/known")
@blp.arguments(KnownSchema)
@blp.response(200, StrangerSchema)
def mark_known(data: dict[str, Any], cluster_id: str) -> Any:
    """The officer knows who this is (with a note): no more alerts for this stranger."""
    cluster = strangers.mark_known(scope(), cluster_id, data["note"])
    db.session.commit()
    return _answer(cluster, strangers.sightings_of([cluster.id])[cluster.id])


@blp.post("/strangers/<cluster_id>/watchlist")
@blp.arguments(PromoteSchema)
@blp.response(201, WatchlistEntrySchema)
def promote(data: dict[str, Any], cluster_id: str) -> WatchlistEntry:
    """Put this stranger on the watchlist (the cluster's centroid is the face)."""
    entry = strangers.promote(scope(), cluster_id, **data)
    db.session.commit()
    return entry


@blp.put("/strangers/<cluster_id>/hold")
@blp.response(200, StrangerSchema)
def hold_stranger(cluster_id: str) -> Any:
    """Hold this stranger's evidence: retention keeps its sightings' events and crops until
    the hold is released (officers; audited)."""
    cluster = evidence.hold_cluster(scope(), cluster_id)
    db.session.commit()
    return _answer(cluster, strangers.sightings_of([cluster.id])[cluster.id])


@blp.delete("/strangers/<cluster_id>/hold")
@blp.response(200, StrangerSchema)
def release_stranger(cluster_id: str) -> Any:
    """Release the hold: the sightings' events and crops follow their retention again."""
    cluster = evidence.release_cluster(scope(), cluster_id)
    db.session.commit()
    return _answer(cluster, strangers.sightings_of([cluster.id])[cluster.id])
