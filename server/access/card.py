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
from server.models import Card, Person


@cache
def _card_statement() -> Select[Any]:
    """A community's card by uid with its holder; built once (the verify path's hot read)."""
    return (
        select(Card, Person)
        .outerjoin(Person, Person.id == Card.person_id)
        .where(Card.community_id == bindparam("community_id"), Card.uid == bindparam("uid"))
    )


def verify(door: Door, uid: str) -> Verdict:
    """Decide on the card ``uid`` (hex) read at ``door``; store the event; the caller commits."""
    uid = uid.upper()
    # The holder comes in the same statement (``held_credential`` finds them in the session).
    row = db.session.execute(
        _card_statement(), {"community_id": door.community.id, "uid": uid}
    ).first()
    card = row[0] if row is not None else None
    if card is None:
        presented = Presented(
            CredentialType.CARD, unknown_reason=Reason.UNKNOWN_CARD, details={"uid": uid}
        )
    else:
        presented = held_credential(CredentialType.CARD, card, details={"card_id": card.id})
    return decide(door, presented)
