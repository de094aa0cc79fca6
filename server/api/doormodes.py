"""Door modes: lockdowns and emergency releases of a community (staff and officers)."""

from __future__ import annotations

from typing import Any

from server.access import doormodes
from server.api import authenticated_blueprint, scope
from server.api.schemas import DoorModeInputSchema, DoorModeQuerySchema, DoorModeSchema
from server.extensions import db

blp = authenticated_blueprint("doormodes", "Lockdowns and emergency releases")


@blp.get("/communities/<cid>/door-modes")
@blp.arguments(DoorModeQuerySchema, location="query")
@blp.response(200, DoorModeSchema(many=True))
def list_door_modes(query: dict[str, Any], cid: str) -> Any:
    """The community's lockdowns and emergency releases, newest first; ``active`` chooses
    those that hold now (``true``) or the lifted ones (``false``)."""
    return doormodes.listing(scope(), cid, query.get("active"))


@blp.post("/communities/<cid>/door-modes")
@blp.arguments(DoorModeInputSchema)
@blp.response(201, DoorModeSchema)
def start_door_mode(data: dict[str, Any], cid: str) -> Any:
    """Start a lockdown (every credential denied ``lockdown`` but the exempt roles; doors get
    ``lock``) or an emergency release (doors get ``unlock_hold``; a critical alert). Staff,
    administrators and officers of the community; audited."""
    row = doormodes.start(scope(), cid, data)
    db.session.commit()
    return row


@blp.post("/door-modes/<mode_id>/lift")
@blp.response(200, DoorModeSchema)
def lift_door_mode(mode_id: str) -> Any:
    """Lift a lockdown (nothing is sent to the doors) or a release (doors get ``lock``);
    ``409`` when it was lifted already. Audited."""
    row = doormodes.lift(scope(), mode_id)
    db.session.commit()
    return row
