"""Communities, buildings, units and access points."""

from __future__ import annotations

from typing import Any

from flask import current_app

from server.api import authenticated_blueprint, scope
from server.api.pagination import paginated
from server.api.schemas import (
    AccessPointPatchSchema,
    AccessPointSchema,
    BuildingPatchSchema,
    BuildingSchema,
    CommunityPatchSchema,
    CommunitySchema,
    UnitPatchSchema,
    UnitSchema,
)
from server.community import structure
from server.community.settings import effective
from server.extensions import db
from server.models import AccessPoint, Building, Community, Unit

blp = authenticated_blueprint("structure", "Communities, buildings, units and access points")


def community_answer(community: Community) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "id": community.id,
        "name": community.name,
        "timezone": community.timezone,
        "settings": asdict(effective(community.settings)),
        "created_at": community.created_at,
    }


@blp.get("/communities")
@blp.response(200, CommunitySchema(many=True))
@blp.paginate()
def list_communities(pagination_parameters: Any) -> Any:
    """Communities the caller may see."""
    rows = paginated(scope().query(Community).order_by(Community.name), pagination_parameters)
    return [community_answer(c) for c in rows]


@blp.post("/communities")
@blp.arguments(CommunitySchema)
@blp.response(201, CommunitySchema)
def create_community(data: dict[str, Any]) -> Any:
    """Create a community (administrators only)."""
    community = structure.create_community(
        scope(), data, current_app.config["SETTINGS"].default_timezone
    )
    db.session.commit()
    return community_answer(community)


@blp.get("/communities/<cid>")
@blp.response(200, CommunitySchema)
def get_community(cid: str) -> Any:
    return community_answer(scope().get(Community, cid))


@blp.patch("/communities/<cid>")
@blp.arguments(CommunityPatchSchema)
@blp.response(200, CommunitySchema)
def update_community(changes: dict[str, Any], cid: str) -> Any:
    """Rename, change the time zone, or change settings (merged into the current ones)."""
    community = structure.update_community(scope(), cid, changes)
    db.session.commit()
    return community_answer(community)


# Buildings -----------------------------------------------------------------------------------


@blp.get("/communities/<cid>/buildings")
@blp.response(200, BuildingSchema(many=True))
@blp.paginate()
def list_buildings(cid: str, pagination_parameters: Any) -> Any:
    community = scope().get(Community, cid)
    query = scope().query(Building).where(Building.community_id == community.id)
    return paginated(query.order_by(Building.name), pagination_parameters)


@blp.post("/communities/<cid>/buildings")
@blp.arguments(BuildingSchema)
@blp.response(201, BuildingSchema)
def create_building(data: dict[str, Any], cid: str) -> Any:
    building = structure.create_building(scope(), cid, data)
    db.session.commit()
    return building


@blp.get("/buildings/<bid>")
@blp.response(200, BuildingSchema)
def get_building(bid: str) -> Any:
    return scope().get(Building, bid)


@blp.patch("/buildings/<bid>")
@blp.arguments(BuildingPatchSchema)
@blp.response(200, BuildingSchema)
def update_building(changes: dict[str, Any], bid: str) -> Any:
    building = structure.update_building(scope(), bid, changes)
    db.session.commit()
    return building


@blp.delete("/buildings/<bid>")
@blp.response(204)
def delete_building(bid: str) -> None:
    """Remove an empty building (409 while it has units or access points)."""
    structure.delete_building(scope(), bid)
    db.session.commit()


# Units ---------------------------------------------------------------------------------------


@blp.get("/communities/<cid>/units")
@blp.response(200, UnitSchema(many=True))
@blp.paginate()
def list_units(cid: str, pagination_parameters: Any) -> Any:
    community = scope().get(Community, cid)
    query = scope().query(Unit).where(Unit.community_id == community.id)
    return paginated(query.order_by(Unit.building_id, Unit.number), pagination_parameters)


@blp.post("/communities/<cid>/units")
@blp.arguments(UnitSchema)
@blp.response(201, UnitSchema)
def create_unit(data: dict[str, Any], cid: str) -> Any:
    unit = structure.create_unit(scope(), cid, data)
    db.session.commit()
    return unit


@blp.get("/units/<uid>")
@blp.response(200, UnitSchema)
def get_unit(uid: str) -> Any:
    return scope().get(Unit, uid)


@blp.patch("/units/<uid>")
@blp.arguments(UnitPatchSchema)
@blp.response(200, UnitSchema)
def update_unit(changes: dict[str, Any], uid: str) -> Any:
    unit = structure.update_unit(scope(), uid, changes)
    db.session.commit()
    return unit


@blp.delete("/units/<uid>")
@blp.response(204)
def delete_unit(uid: str) -> None:
    """Remove a unit nobody uses (409 while people, leases, logins, passes or
    registrations name it)."""
    structure.delete_unit(scope(), uid)
    db.session.commit()


# Access points -------------------------------------------------------------------------------


@blp.get("/communities/<cid>/access-points")
@blp.response(200, AccessPointSchema(many=True))
@blp.paginate()
def list_access_points(cid: str, pagination_parameters: Any) -> Any:
    community = scope().get(Community, cid)
    query = scope().query(AccessPoint).where(AccessPoint.community_id == community.id)
    return paginated(query.order_by(AccessPoint.name), pagination_parameters)


@blp.post("/communities/<cid>/access-points")
@blp.arguments(AccessPointSchema)
@blp.response(201, AccessPointSchema)
def create_access_point(data: dict[str, Any], cid: str) -> Any:
    """A door, gate or barrier. Unit doors require the depth (3D) check unless told otherwise."""
    point = structure.create_access_point(scope(), cid, data)
    db.session.commit()
    return point


@blp.get("/access-points/<apid>")
@blp.response(200, AccessPointSchema)
def get_access_point(apid: str) -> Any:
    return scope().get(AccessPoint, apid)


@blp.patch("/access-points/<apid>")
@blp.arguments(AccessPointPatchSchema)
@blp.response(200, AccessPointSchema)
def update_access_point(changes: dict[str, Any], apid: str) -> Any:
    point = structure.update_access_point(scope(), apid, changes)
    db.session.commit()
    return point
