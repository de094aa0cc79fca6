"""IC cards at the door: whose card the reader sent, then the ordinary policy.

The uid is looked up among the door's community's cards (upper-case hex, as enrolled);
a card nobody holds is an ``unknown_card`` denial, stored with the uid. A known card is
its holder's credential, with its own window and ``disabled`` flag. Everything ends in
``server.access.decision.decide``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select

from gatekeeper.vocabulary import CredentialType, Reason
from server.access.decision import Door, Presented, Verdict, decide, held_credential
from server.extensions import db
from server.models import Card


@cache
def _card_statement() -> Select[Any]:
    """A community's card by uid; built once (the verify path's hot read). Its holder comes
    with their subject in ``held_credential``."""
    return select(Card).where(
        Card.community_id == bindparam("community_id"), Card.uid == bindparam("uid")
    )


def verify(door: Door, uid: str) -> Verdict:
    """Decide on the card ``uid`` (hex) read at ``door``; store the event; the caller commits."""
    uid = uid.upper()
    card = db.session.scalar(_card_statement(), {"community_id": door.community.id, "uid": uid})
    if card is None:
        presented = Presented(
            CredentialType.CARD, unknown_reason=Reason.UNKNOWN_CARD, details={"uid": uid}
        )
    else:
        presented = held_credential(CredentialType.CARD, card, details={"card_id": card.id})
    return decide(door, presented)
