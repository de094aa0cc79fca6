"""Car gates: the blocked-plate list and the cars inside (staff; officers read)."""

from __future__ import annotations

from typing import Any

from server.access import vehicles
from server.api import authenticated_blueprint, scope
from server.api.schemas import BlockedPlateInputSchema, BlockedPlateSchema, VehiclePresenceSchema
from server.extensions import db
from server.models import BlockedPlate, Community

blp = authenticated_blueprint("vehicles", "Blocked plates and the cars inside")


@blp.get("/communities/<cid>/blocked-plates")
@blp.response(200, BlockedPlateSchema(many=True))
def list_blocked_plates(cid: str) -> Any:
    community = scope().get(Community, cid)
    return db.session.scalars(
        scope()
        .query(BlockedPlate)
        .where(BlockedPlate.community_id == community.id)
        .order_by(BlockedPlate.plate)
    ).all()


@blp.post("/communities/<cid>/blocked-plates")
@blp.arguments(BlockedPlateInputSchema)
@blp.response(201, BlockedPlateSchema)
def block_plate(data: dict[str, Any], cid: str) -> Any:
    """Block a plate: barriers deny it ``plate_blocked`` (a near camera read too) and alert."""
    row = vehicles.block_plate(scope(), cid, data)
    db.session.commit()
    return row


@blp.delete("/blocked-plates/<blocked_id>")
@blp.response(204)
def unblock_plate(blocked_id: str) -> None:
    vehicles.unblock_plate(scope(), blocked_id)
    db.session.commit()


@blp.get("/communities/<cid>/vehicles-inside")
@blp.response(200, VehiclePresenceSchema(many=True))
def vehicles_inside(cid: str) -> Any:
    """The cars inside now (entered through a barrier with ``direction``, not yet out)."""
    return vehicles.inside(scope(), cid)
