"""Indexes of the reads that must not grow with a city's history (migration 0016).

Declared here, beside the models, for the lists officers and the property office page
through newest first (``server.alerts.service.alerts_after``, ``server.access.events.search``):
each page is a range read of one of these, wherever it is in the list.

- alerts: the unresolved ones by time (a partial index: a year of resolved alerts does not
  lengthen it), per community and across communities; and every alert by time, for the
  resolved half of the list.
- access events: by time across communities (an officer's search of every community they
  cover); per community the model's ``(community_id, occurred_at)`` serves; and the events
  that have a plate, by plate and time (a search by plate, migration 0018); and a person's
  events by time (the card-against-the-walk check reads the last minutes', migration 0036).
"""

from __future__ import annotations

from sqlalchemy import Index, text

from server.models.activity import AccessEvent, Alert

# The one predicate of the partial indexes; queries spell it the same way (a literal) so
# PostgreSQL can prove a statement's rows are in the index.
UNRESOLVED = "status <> 'resolved'"
HAS_PLATE = "plate IS NOT NULL"

CITY_INDEXES = (
    Index(
        "ix_alerts_unresolved_created_at",
        Alert.created_at,
        Alert.id,
        postgresql_where=text(UNRESOLVED),
        sqlite_where=text(UNRESOLVED),
    ),
    Index(
        "ix_alerts_unresolved_community_id_created_at",
        Alert.community_id,
        Alert.created_at,
        Alert.id,
        postgresql_where=text(UNRESOLVED),
        sqlite_where=text(UNRESOLVED),
    ),
    Index("ix_alerts_created_at_id", Alert.created_at, Alert.id),
    Index("ix_alerts_community_id_created_at_id", Alert.community_id, Alert.created_at, Alert.id),
    Index("ix_access_events_occurred_at_id", AccessEvent.occurred_at, AccessEvent.id),
    Index("ix_access_events_person_id_occurred_at", AccessEvent.person_id, AccessEvent.occurred_at),
    # Where has this car been (migration 0018): the events that have a plate, by plate.
    Index(
        "ix_access_events_plate_occurred_at",
        AccessEvent.plate,
        AccessEvent.occurred_at,
        postgresql_where=text(HAS_PLATE),
        sqlite_where=text(HAS_PLATE),
    ),
)
