"""Temporary cars' tickets as a live feed (``server.core.live``): a car let in, held at the
exit with a fee, paid or gone, for the staff's cars page (staff and admins, like ``cars``)."""

from __future__ import annotations

from typing import Any

from server.core import live
from server.models import ParkingTicket, UserRole


def ticket_payload(row: ParkingTicket) -> dict[str, Any]:
    return {
        "id": row.id,
        "community_id": row.community_id,
        "plate": row.plate,
        "status": row.status.value,
        "fee_fen": row.fee_fen,
    }


PARKING = live.register(
    live.Feed(
        name="parking",
        model=ParkingTicket,
        changed=(ParkingTicket.updated_at,),
        community=ParkingTicket.community_id,
        event="parking",
        payload=ticket_payload,
        readers=frozenset({UserRole.ADMIN, UserRole.STAFF}),
    )
)
