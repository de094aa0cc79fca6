"""Cars inside as a live feed (``server.core.live``): each entry and exit, for the staff's
cars page (staff and admins; officers read the page but follow no feed)."""

from __future__ import annotations

from typing import Any

from server.access.vehicles import kind_of
from server.core import live
from server.models import UserRole, VehiclePresence


def presence_payload(row: VehiclePresence) -> dict[str, Any]:
    return {
        "id": row.id,
        "community_id": row.community_id,
        "plate": row.plate,
        "kind": kind_of(row),
        "inside": row.exited_at is None,
        "entered_at": row.entered_at.isoformat(),
        "exited_at": row.exited_at.isoformat() if row.exited_at else None,
    }


CARS = live.register(
    live.Feed(
        name="cars",
        model=VehiclePresence,
        changed=(VehiclePresence.entered_at, VehiclePresence.exited_at),
        community=VehiclePresence.community_id,
        event="car",
        payload=presence_payload,
        readers=frozenset({UserRole.ADMIN, UserRole.STAFF}),
    )
)
