"""Publishing the public keys that sign QR codes, so doors can check codes offline.

Each community gets its key set on its own retained topic ``gk/v1/{community}/keys``
(``hardware.messages.KeySetMessage``): the same keys everywhere, with the community tag
its codes carry. The worker publishes at start (a fresh broker then holds the retained
message) and after every key rotation; a new community gets its set when it is created.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from flask import Flask
from sqlalchemy import select

from gatekeeper import passtokens
from hardware.messages import KeySetMessage, PublishedKey
from hardware.topics import keys_topic
from server.community.structure import community_created
from server.core.messaging import OutgoingMessage, queue_message
from server.extensions import db
from server.models import Community, utcnow
from server.passes import keys as passkeys

_LOGGER = logging.getLogger(__name__)


def init_app(_app: Flask) -> None:
    """A new community's doors need its key set before they can check QR codes offline."""
    community_created.connect(_on_community_created)


def _on_community_created(community: Community, **_: object) -> None:
    publish_key_set([community.id])


def publish_key_set(
    community_ids: Iterable[str] | None = None, *, now: datetime | None = None
) -> int:
    """Queue the retained key set for each community (all when None); published on commit.

    The set lists every key that still verifies at ``now``. Returns how many messages were
    queued.
    """
    now = now or utcnow()
    keys = tuple(
        PublishedKey(key.key_id, key.public_key, key.signs_until, key.verifies_until)
        for key in passkeys.public_keys(now)
    )
    if community_ids is None:
        community_ids = db.session.scalars(select(Community.id).order_by(Community.id))
    queued = 0
    for community_id in community_ids:
        message = KeySetMessage(passtokens.community_tag(community_id), keys, now)
        queue_message(
            db.session, OutgoingMessage(keys_topic(community_id), message.encode(), retain=True)
        )
        queued += 1
    _LOGGER.info("key set of %d keys queued for %d communities", len(keys), queued)
    return queued
