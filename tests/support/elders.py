"""A community for the wandering rule: an elder with an RFID tag and a perimeter reader."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from gatekeeper.vocabulary import AccessPointKind, DeviceKind, PersonRole, Zone
from server.extensions import db
from server.models import Community, RfidTag
from tests import factories

ELDER_TAG = "E1DE5001"


@dataclass(frozen=True)
class WanderingElder:
    """Ids in community A, and the reader's device secret."""

    community_id: str
    gate_id: str
    reader_id: str
    reader_secret: str
    elder_id: str


def build_wandering_elder(app: Flask, guardian_window_minutes: int | None = None) -> WanderingElder:
    """Community A (``factories.world()``) with a wandering-risk elder of unit A1-101 carrying
    the tag ``ELDER_TAG``, and an RFID reader at the perimeter gate "North gate".

    ``guardian_window_minutes``, when given, is set in the community's settings (0: the rule
    judges each read at once).
    """
    with app.app_context():
        world = factories.world()
        if guardian_window_minutes is not None:
            community = db.session.get(Community, world.a.id)
            community.settings = {
                **(community.settings or {}),
                "guardian_window_minutes": guardian_window_minutes,
            }
        gate = factories.access_point(
            world.a, name="North gate", kind=AccessPointKind.GATE, zone=Zone.PERIMETER
        )
        reader, secret = factories.device(gate, kind=DeviceKind.RFID_READER)
        elder = factories.person(world.a, "王老明", wander_risk=True)
        factories.membership(elder, PersonRole.ELDER, unit_of=world.unit_a)
        db.session.add(RfidTag(community_id=world.a.id, person_id=elder.id, epc=ELDER_TAG))
        db.session.commit()
        built = WanderingElder(world.a.id, gate.id, reader.id, secret, elder.id)
        db.session.remove()
    return built
