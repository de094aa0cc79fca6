"""Access events for the property office and officers: search, "where else", who, statistics.

Read-only. Every query starts from the caller's ``Scope``, so a search never reaches
another community's events. Names follow the scope of people: staff and admins read
them in full; officers only in the masked form a door terminal shows (``王*明``) next to
the person's id, because people and visitor passes are not theirs to read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import Integer, Select, cast, func, or_, select

from gatekeeper.identity import mask_name
from gatekeeper.plates import normalise_plate
from gatekeeper.vocabulary import AlertType, CredentialType, Decision
from server.alerts.strangers import similar_events
from server.core.scope import Scope
from server.extensions import db
from server.models import AccessEvent, AccessPoint, Alert, Person, UserRole, VisitorPass

SIMILAR_LIMIT = 50
MAX_PLATE = 16  # the longest plate a search takes, normalised (``AccessEvent.plate``)


@dataclass(frozen=True)
class EventFilters:
    """What a search narrows access events by; ``None`` means any."""

    community_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    access_point_id: str | None = None
    person_id: str | None = None
    pass_id: str | None = None
    decision: Decision | None = None
    reason: str | None = None
    credential_type: CredentialType | None = None
    plate: str | None = None  # normalised (``gatekeeper.plates.normalise_plate``)
    offline: bool | None = None  # decided by the door offline (``offline_decision``)

    @classmethod
    def from_query(cls, query: Mapping[str, Any]) -> EventFilters:
        """From a parsed query (unknown keys ignored)."""
        values = {f.name: query[f.name] for f in fields(cls) if query.get(f.name) is not None}
        if "decision" in values:
            values["decision"] = Decision(values["decision"])
        if "credential_type" in values:
            values["credential_type"] = CredentialType(values["credential_type"])
        if "plate" in values:
            values["plate"] = normalise_plate(values["plate"])
        return cls(**values)

    def as_query(self) -> dict[str, str]:
        """The filters as API query parameters (times ISO 8601 with their offset)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool):
                out[f.name] = "true" if value else "false"
            else:
                out[f.name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return out


EventKey = tuple[datetime, str]


def event_key(event: AccessEvent) -> EventKey:
    """Where ``event`` sits in a search's order (``search(after=...)`` starts after it)."""
    return (event.occurred_at, event.id)


def search(
    scope: Scope,
    filters: EventFilters,
    *,
    before: AccessEvent | None = None,
    after: EventKey | None = None,
) -> Select:
    """The caller's events matching ``filters``, newest first; older than ``before`` (an
    event) or than the key ``after`` if given: a range of the indexes by time, per community
    or across them (``server.models.indexes``), wherever it lies in the history."""
    statement = scope.query(AccessEvent)
    for name in (
        "community_id",
        "access_point_id",
        "person_id",
        "pass_id",
        "decision",
        "reason",
        "credential_type",
        "plate",  # the events that have a plate, by plate and time (a partial index)
        "offline",
    ):
        value = getattr(filters, name)
        if value is not None:
            statement = statement.where(getattr(AccessEvent, name) == value)
    if filters.since is not None:
        statement = statement.where(AccessEvent.occurred_at >= filters.since)
    if filters.until is not None:
        statement = statement.where(AccessEvent.occurred_at < filters.until)
    if before is not None:
        after = event_key(before)
    if after is not None:
        occurred_at, ident = after
        statement = statement.where(
            or_(
                AccessEvent.occurred_at < occurred_at,
                (AccessEvent.occurred_at == occurred_at) & (AccessEvent.id < ident),
            )
        )
    return statement.order_by(AccessEvent.occurred_at.desc(), AccessEvent.id.desc())


def similar(
    scope: Scope, event: AccessEvent, *, limit: int = SIMILAR_LIMIT
) -> list[tuple[AccessEvent, float | None]]:
    """Where else this event's face was seen (``server.alerts.strangers.similar_events``): an
    unknown face's closest matches with their distance, a known person's other face events
    without one. Only events the caller may see."""
    matches = similar_events(event, limit=limit)
    ids = {row.id for row, _ in matches}
    if not ids:
        return []
    visible = set(
        db.session.scalars(
            select(AccessEvent.id).where(scope.visible(AccessEvent), AccessEvent.id.in_(ids))
        )
    )
    return [
        (row, distance) for row, distance in matches if row.id in visible and row.id != event.id
    ]


# Who and where -----------------------------------------------------------------------------


def point_names(events: Iterable[AccessEvent]) -> dict[str, str]:
    """Access point id -> name for ``events``, in one statement (not one per event)."""
    return _column_by_id(AccessPoint.id, AccessPoint.name, (e.access_point_id for e in events))


def sees_names(scope: Scope) -> bool:
    """Staff and admins read people's names; officers (and others) only masked ones."""
    return scope.role in (UserRole.ADMIN, UserRole.STAFF)


def who(scope: Scope, events: Iterable[AccessEvent]) -> dict[str, str]:
    """Event id -> who it was (a person or a pass's guest), masked unless ``sees_names``.

    Events without a person or pass are absent. The names are read here, outside the
    people scope, because they belong to events the caller may see; officers get the
    form a door terminal shows to anyone in front of it.
    """
    events = list(events)
    people = _column_by_id(Person.id, Person.name, (e.person_id for e in events))
    guests = _column_by_id(VisitorPass.id, VisitorPass.guest_name, (e.pass_id for e in events))
    full = sees_names(scope)
    answer = {}
    for event in events:
        if event.person_id in people:
            name = people[event.person_id]
            answer[event.id] = name if full else mask_name(name)
        elif event.pass_id in guests:
            name = guests[event.pass_id]
            answer[event.id] = _("Guest: %(name)s", name=name if full else mask_name(name))
    return answer


def _column_by_id(id_column: Any, column: Any, ids: Iterable[str | None]) -> dict[str, str]:
    wanted = {ident for ident in ids if ident}
    if not wanted:
        return {}
    return dict(db.session.execute(select(id_column, column).where(id_column.in_(wanted))).all())


# Statistics --------------------------------------------------------------------------------


def _hour_bucket(column: Any) -> Any:
    """Whole UTC hours since the epoch of a timestamp column, on either database."""
    if db.engine.dialect.name == "sqlite":  # stored as UTC wall time text
        return cast(func.strftime("%s", column), Integer) / 3600
    return cast(func.floor(func.extract("epoch", column) / 3600), Integer)


def events_by_hour(
    scope: Scope, community_id: str, since: datetime, until: datetime, zone: ZoneInfo
) -> Counter[tuple[str | None, int]]:
    """(access point id, local hour of day 0-23) -> events, in ``[since, until)``.

    Counted by the database per UTC hour, then placed at the local hour each UTC hour
    starts in (exact for zones a whole number of hours from UTC, like China's).
    """
    bucket = _hour_bucket(AccessEvent.occurred_at).label("bucket")
    rows = db.session.execute(
        select(AccessEvent.access_point_id, bucket, func.count())
        .where(
            scope.visible(AccessEvent),
            AccessEvent.community_id == community_id,
            AccessEvent.occurred_at >= since,
            AccessEvent.occurred_at < until,
        )
        .group_by(AccessEvent.access_point_id, bucket)
    )
    counts: Counter[tuple[str | None, int]] = Counter()
    for point_id, hours, count in rows:
        hour = datetime.fromtimestamp(int(hours) * 3600, UTC).astimezone(zone).hour
        counts[(point_id, hour)] += count
    return counts


def alerts_by_day(
    scope: Scope, community_id: str, since: datetime, until: datetime, zone: ZoneInfo
) -> Counter[tuple[date, AlertType]]:
    """(local day, alert type) -> alerts raised in ``[since, until)``."""
    rows = db.session.execute(
        select(Alert.created_at, Alert.type).where(
            scope.visible(Alert),
            Alert.community_id == community_id,
            Alert.created_at >= since,
            Alert.created_at < until,
        )
    )
    counts: Counter[tuple[date, AlertType]] = Counter()
    for created_at, alert_type in rows:
        counts[(created_at.astimezone(zone).date(), alert_type)] += 1
    return counts


def local_days(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last``, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
