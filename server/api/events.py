"""Access events: search, CSV export, snapshots, and "where else was this face seen".

Everyone reads the events their scope holds (residents: their household's and their
guests'). The CSV export, snapshots and face matches are the property office's and the
officers' (residents get 404). Names in the CSV follow ``server.access.events``:
in full for staff and admins, masked (``王*明``) next to the person's id for officers;
the ``person`` column is the masked name for everyone.

The CSV opens as it should in Excel on Chinese Windows: UTF-8 with a byte order mark,
CRLF line ends, and no cell a spreadsheet would run as a formula. Its header row is the
column keys (``event_id`` ...) unless the request's language (``Accept-Language``) is
Chinese, then their Chinese names; the values are the same either way.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import marshmallow as ma
from flask import Response, stream_with_context
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from flask_babel.speaklater import LazyString
from marshmallow import fields, validate

from gatekeeper.identity import mask_name
from gatekeeper.plates import normalise_plate
from gatekeeper.vocabulary import CredentialType, Reason
from server.access import events, snapshots
from server.access.events import MAX_PLATE, EventFilters
from server.api import authenticated_blueprint, scope
from server.api.pagination import Cursor, keyset_paginated
from server.api.schemas import AccessEventSchema, EventQuerySchema
from server.core import audit
from server.core.errors import NotFound
from server.core.i18n import ENGLISH, current_locale
from server.core.scope import Scope
from server.core.wording import reason_words
from server.extensions import db
from server.models import (
    AccessEvent,
    AccessPoint,
    Community,
    Person,
    UserRole,
    VisitorPass,
    utcnow,
)

blp = authenticated_blueprint(
    "events", "Access events: search, CSV export, snapshots, face matches"
)

_NO_STORE = {"Cache-Control": "no-store"}
# Rows fetched from the database at a time while a CSV streams out.
_CSV_CHUNK = 500
CSV_COLUMNS = (
    "event_id",
    "occurred_at",
    "community",
    "access_point_id",
    "access_point",
    "direction",
    "credential_type",
    "decision",
    "reason",
    "reason_text",
    "person_id",
    "name",
    "pass_id",
    "device_id",
    "detail",
    "plate",
    "person",
    "offline",
)
# The header row in another language than English (the keys are the English header).
CSV_HEADERS = {
    "event_id": _p("CSV column", "event_id"),
    "occurred_at": _p("CSV column", "occurred_at"),
    "community": _p("CSV column", "community"),
    "access_point_id": _p("CSV column", "access_point_id"),
    "access_point": _p("CSV column", "access_point"),
    "direction": _p("CSV column", "direction"),
    "credential_type": _p("CSV column", "credential_type"),
    "decision": _p("CSV column", "decision"),
    "reason": _p("CSV column", "reason"),
    "reason_text": _p("CSV column", "reason_text"),
    "person_id": _p("CSV column", "person_id"),
    "name": _p("CSV column", "name"),
    "pass_id": _p("CSV column", "pass_id"),
    "device_id": _p("CSV column", "device_id"),
    "detail": _p("CSV column", "detail"),
    "plate": _p("CSV column", "plate"),
    "person": _p("CSV column", "person"),
    "offline": _p("CSV column", "offline"),
}
# What Excel needs to read the file as UTF-8 rather than the system's code page (GBK).
BOM = "\ufeff"


def _searchable_plate(value: str) -> None:
    """A plate as typed (``浙a 12345``, full-width, with a dot): 1 to 16 characters once
    normalised as the barrier's decision normalises what it reads."""
    if not 1 <= len(normalise_plate(value)) <= MAX_PLATE:
        raise ma.ValidationError(_l("Enter a plate like 浙A12345."))


class EventSearchSchema(EventQuerySchema):
    community_id = fields.Str()
    person_id = fields.Str()
    reason = fields.Str(validate=validate.OneOf([reason.value for reason in Reason]))
    credential_type = fields.Str(validate=validate.OneOf([kind.value for kind in CredentialType]))
    plate = fields.Str(
        validate=[validate.Length(max=64), _searchable_plate],
        metadata={"description": "events of this plate at car gates (any spelling of it)"},
    )
    offline = fields.Bool(
        metadata={"description": "true: only decisions doors made offline; false: only live ones"}
    )


class EventListSchema(EventSearchSchema):
    after = Cursor(datetime, str)


class SimilarEventSchema(AccessEventSchema):
    distance = fields.Float(
        allow_none=True, metadata={"description": "face distance to the event asked about"}
    )


def event_answers(
    rows: list[AccessEvent], more: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The answers of ``rows``; their access points' names read in one statement, not one
    per row. ``more``: event id -> fields to add to its answer."""
    points = events.point_names(rows)
    more = more or {}
    return [{**event_answer(row, points), **more.get(row.id, {})} for row in rows]


def event_answer(event: AccessEvent, points: dict[str, str]) -> dict[str, Any]:
    """One event's answer; ``points``: access point id -> name (``events.point_names``)."""
    point_id = event.access_point_id
    return {
        **{
            name: getattr(event, name)
            for name in (
                "id",
                "occurred_at",
                "device_id",
                "credential_type",
                "direction",
                "decision",
                "reason",
                "rule",
                "person_id",
                "pass_id",
            )
        },
        "access_point": (
            {"id": point_id, "name": points[point_id]} if point_id in points else None
        ),
        "detail": (event.details or {}).get("detail"),
        "offline": bool(event.offline),
    }


def _not_for_residents(caller: Scope, detail: LazyString) -> None:
    if caller.role is UserRole.RESIDENT:
        raise NotFound(detail)


@blp.get("/events")
@blp.arguments(EventListSchema, location="query")
@blp.response(200, AccessEventSchema(many=True))
@blp.paginate()
def list_events(query: dict[str, Any], pagination_parameters: Any) -> Any:
    """Access events you may see, newest first (residents: your household's and your
    guests'); filter by time (``since`` included, ``until`` not), community, access point,
    person, pass, decision, reason, credential type, plate (``浙A12345``, as a car gate read
    it: any spelling of it, full-width or with separators) and ``offline`` (decided by the
    door from its allowlist and uploaded later).

    Page with ``after`` (the ``next_after`` of the previous page's ``X-Pagination``): each
    page is then read from an index wherever it is in the history, and events recorded
    meanwhile do not shift it. 422 for a cursor this list did not give."""
    caller, after = scope(), query.pop("after", None)
    filters = EventFilters.from_query(query)
    rows = keyset_paginated(
        lambda limit: db.session.scalars(events.search(caller, filters).limit(limit)).all(),
        lambda key, limit: db.session.scalars(
            events.search(caller, filters, after=key).limit(limit)
        ).all(),
        events.event_key,
        lambda: events.search(caller, filters),
        after,
        pagination_parameters,
    )
    return event_answers(rows)


@blp.get("/events.csv")
@blp.arguments(EventSearchSchema, location="query")
@blp.response(200, content_type="text/csv")
def events_csv(query: dict[str, Any]) -> Response:
    """The same search as ``GET /events``, every match as CSV (staff and officers).

    UTF-8 with a byte order mark and CRLF line ends (Excel). Times are ISO 8601 in the
    community's time zone with its offset; ``name`` is masked for officers, ``person`` (the
    person or the guest) for everyone; ``plate`` is the plate read at a car gate; ``offline``
    is ``true`` for a decision a door made from its allowlist. The header
    row is the column keys, or their Chinese names when ``Accept-Language`` asks for Chinese.
    """
    caller = scope()
    _not_for_residents(caller, _l("No such export."))
    statement = events.search(caller, EventFilters.from_query(query))
    stamp = f"access-events-{utcnow():%Y%m%d-%H%M}"
    return Response(
        stream_with_context(_csv_rows(caller, statement)),
        mimetype="text/csv",
        headers={
            **_NO_STORE,
            "Content-Disposition": f'attachment; filename="{stamp}.csv"',
        },
    )


def csv_header() -> list[str]:
    """The header row in the request's language: the column keys in English."""
    if current_locale() == ENGLISH:
        return list(CSV_COLUMNS)
    return [str(CSV_HEADERS[column]) for column in CSV_COLUMNS]


def _csv_rows(caller: Scope, statement: Any) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # CRLF line ends, as Excel writes them
    buffer.write(BOM)
    writer.writerow(_cell(column) for column in csv_header())
    communities = {c.id: c for c in db.session.scalars(caller.query(Community))}
    zones = {cid: ZoneInfo(c.timezone) for cid, c in communities.items()}
    points: dict[str, str] = {}
    result = db.session.scalars(statement.execution_options(yield_per=_CSV_CHUNK))
    for chunk in result.partitions():
        wanted = {e.access_point_id for e in chunk if e.access_point_id} - points.keys()
        if wanted:
            points.update(
                db.session.execute(
                    db.select(AccessPoint.id, AccessPoint.name).where(AccessPoint.id.in_(wanted))
                ).all()
            )
        names = events.who(caller, chunk)
        masked = _masked_names(chunk)
        for event in chunk:
            writer.writerow(
                [
                    _cell(value)
                    for value in (
                        event.id,
                        event.occurred_at.astimezone(zones[event.community_id]).isoformat(),
                        communities[event.community_id].name,
                        event.access_point_id,
                        points.get(event.access_point_id or ""),
                        event.direction,
                        event.credential_type.value,
                        event.decision.value,
                        event.reason,
                        reason_words(event.reason),
                        event.person_id,
                        names.get(event.id),
                        event.pass_id,
                        event.device_id,
                        (event.details or {}).get("detail"),
                        _plate(event),
                        masked.get(event.id),
                        "true" if event.offline else "false",
                    )
                ]
            )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _plate(event: AccessEvent) -> str | None:
    """The plate a car gate read (as the event recorded it); none for other events."""
    if event.credential_type is not CredentialType.PLATE:
        return None
    return (event.details or {}).get("plate")


def _masked_names(chunk: list[AccessEvent]) -> dict[str, str]:
    """Event id -> the masked name of whom it was about: the person, else the pass's guest."""
    people = _names(Person.id, Person.name, {e.person_id for e in chunk})
    guests = _names(VisitorPass.id, VisitorPass.guest_name, {e.pass_id for e in chunk})
    answer = {}
    for event in chunk:
        name = people.get(event.person_id or "") or guests.get(event.pass_id or "")
        if name:
            answer[event.id] = mask_name(name)
    return answer


def _names(id_column: Any, name_column: Any, ids: set[str | None]) -> dict[str, str]:
    wanted = {ident for ident in ids if ident}
    if not wanted:
        return {}
    rows = db.session.execute(db.select(id_column, name_column).where(id_column.in_(wanted)))
    return {ident: name for ident, name in rows if name}


def _cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula is quoted with a leading '."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


@blp.get("/events/<event_id>/snapshot")
@blp.response(200, content_type="image/jpeg")
def event_snapshot(event_id: str) -> Response:
    """The picture kept with an event (a face crop, a barrier's snapshot); staff and officers.

    404 when none was kept (the community's settings) or it was erased after retention.
    """
    caller = scope()
    event = caller.get(AccessEvent, event_id)
    no_snapshot = _l("No snapshot for event %(id)s.", id=repr(event_id))
    _not_for_residents(caller, no_snapshot)
    picture = snapshots.load(event)
    if picture is None:
        raise NotFound(no_snapshot)
    if event.person_id:  # a known person's face: a read of their personal data
        audit.record_read(
            caller.user, event.person_id, "event_snapshot", community_id=event.community_id
        )
        db.session.commit()
    return Response(picture, mimetype="image/jpeg", headers=_NO_STORE)


@blp.get("/events/<event_id>/similar")
@blp.response(200, SimilarEventSchema(many=True))
def similar_events(event_id: str) -> Any:
    """Where else this event's face was seen (staff and officers): for an unknown face, the
    community's events with a close face, closest first, with their ``distance``; for a
    known person, their other face events, newest first; nothing for any other event."""
    caller = scope()
    event = caller.get(AccessEvent, event_id)
    _not_for_residents(caller, _l("No access event with id %(id)s.", id=repr(event_id)))
    matches = events.similar(caller, event)
    rows = [row for row, _distance in matches]
    return event_answers(rows, {row.id: {"distance": d} for row, d in matches})
