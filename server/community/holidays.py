"""The holiday calendar of a community: staff list holidays; the verify path reads today's.

A holiday is a local date or a named period ``[first_day, last_day]`` (both included, in the
community's zone) that closes the access points it lists, or gives them other ``hours``
(``gatekeeper.holidays``; docs/policy.md, "The holiday calendar"). Here holidays are made,
changed and removed, each change written to the audit log, and ``calendar_for`` reads the
holidays that cover one point around an instant (one query per verify).

Rules staff meet as problem documents: the last day not before the first, a period of at
most a year, hours only with the ``hours`` effect (and required there), points of this
community, a ``closed`` holiday never for every point (residents must reach their homes),
and no two holidays on the same point on the same day (409).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, bindparam, or_, select

from gatekeeper import holidays as calendar
from gatekeeper.holidays import HolidayEffect, hours_from_json, local_day
from server.core import audit
from server.core.errors import Conflict, Invalid
from server.core.scope import Scope
from server.extensions import db
from server.models import AccessPoint, Community, Holiday, holiday_access_points

# The longest period one holiday may span (a whole year of closed side gates is a typo).
MAX_DAYS = 366

_FIELDS = ("name", "first_day", "last_day", "effect", "hours", "all_points")


def holidays(scope: Scope, community_id: str, *, since: date | None = None) -> list[Holiday]:
    """The community's holidays by first day (those ending on or after ``since``, if given)."""
    community = scope.get(Community, community_id)
    query = scope.query(Holiday).where(Holiday.community_id == community.id)
    if since is not None:
        query = query.where(Holiday.last_day >= since)
    return list(db.session.scalars(query.order_by(Holiday.first_day, Holiday.name, Holiday.id)))


def access_points(scope: Scope, community_id: str) -> list[AccessPoint]:
    """The points a holiday may list: the community's, by name."""
    community = scope.get(Community, community_id)
    return list(
        db.session.scalars(
            scope.query(AccessPoint)
            .where(AccessPoint.community_id == community.id)
            .order_by(AccessPoint.name, AccessPoint.id)
        )
    )


def _checked(
    community_id: str, data: dict[str, Any], current: Holiday | None = None
) -> tuple[dict[str, Any], list[AccessPoint] | None]:
    """The fields as stored and the listed points (``None``: unchanged), or ``Invalid``."""
    errors: dict[str, list[str]] = {}

    def value(key: str) -> Any:
        if key in data:
            return data[key]
        return getattr(current, key) if current is not None else None

    first, last = value("first_day"), value("last_day")
    if first is not None and last is None and current is None:
        last = data["last_day"] = first  # a single day
    if first is not None and last is not None:
        if last < first:
            errors["last_day"] = [str(_l("The last day is before the first day."))]
        elif (last - first).days >= MAX_DAYS:
            errors["last_day"] = [str(_l("A holiday spans at most %(days)s days.", days=MAX_DAYS))]
    effect = data["effect"] = HolidayEffect(value("effect") or HolidayEffect.CLOSED)
    hours = value("hours")
    if effect is HolidayEffect.HOURS:
        if not hours:
            errors["hours"] = [str(_l("A holiday with other hours needs its hours."))]
        else:
            try:
                data["hours"] = hours_from_json(hours).to_json()
            except ValueError as error:
                errors["hours"] = [str(error)]
    else:
        if data.get("hours"):
            errors["hours"] = [str(_l("A closing holiday has no hours."))]
        data["hours"] = None

    points: list[AccessPoint] | None = None
    if "access_point_ids" in data:
        ids = list(data.pop("access_point_ids") or [])
        if len(set(ids)) != len(ids):
            errors["access_point_ids"] = [str(_l("An access point is listed twice."))]
        else:
            found = {
                p.id: p
                for p in db.session.scalars(
                    select(AccessPoint).where(
                        AccessPoint.community_id == community_id, AccessPoint.id.in_(ids)
                    )
                )
            }
            unknown = [i for i in ids if i not in found]
            if unknown:
                errors["access_point_ids"] = [
                    str(
                        _l(
                            "Not an access point of this community: %(points)s",
                            points=", ".join(unknown),
                        )
                    )
                ]
            points = [found[i] for i in ids if i in found]
    all_points = bool(value("all_points"))
    if all_points and points:
        errors["access_point_ids"] = [
            str(_l("List access points, or apply the holiday to all of them, not both."))
        ]
    listed = points if points is not None else (current.access_points if current else [])
    if not all_points and not listed and "access_point_ids" not in errors:
        errors["access_point_ids"] = [
            str(_l("List the access points the holiday applies to, or choose all of them."))
        ]
    if all_points and effect is HolidayEffect.CLOSED:
        errors["all_points"] = [
            str(
                _l(
                    "A holiday cannot close every access point: residents must reach their "
                    "homes. List the points it closes, or give all of them other hours."
                )
            )
        ]
    if errors:
        raise Invalid(_l("The holiday is not valid."), errors=errors)
    return data, points


def _overlapping(
    community_id: str,
    first: date,
    last: date,
    all_points: bool,
    point_ids: set[str],
    exclude: str | None,
) -> Holiday | None:
    """Another holiday of the community on one of these days at one of these points."""
    query = select(Holiday).where(
        Holiday.community_id == community_id,
        Holiday.first_day <= last,
        Holiday.last_day >= first,
    )
    if exclude is not None:
        query = query.where(Holiday.id != exclude)
    if not all_points:
        listing = select(holiday_access_points.c.holiday_id).where(
            holiday_access_points.c.access_point_id.in_(point_ids)
        )
        query = query.where(or_(Holiday.all_points.is_(True), Holiday.id.in_(listing)))
    return db.session.scalars(query.order_by(Holiday.first_day).limit(1)).first()


def _refuse_overlap(holiday: Holiday) -> None:
    other = _overlapping(
        holiday.community_id,
        holiday.first_day,
        holiday.last_day,
        holiday.all_points,
        {p.id for p in holiday.access_points},
        holiday.id,
    )
    if other is not None:
        raise Conflict(
            _l(
                "The holiday overlaps %(name)s (%(first)s to %(last)s) at the same access "
                "points; one point has one holiday a day.",
                name=other.name,
                first=other.first_day.isoformat(),
                last=other.last_day.isoformat(),
            ),
            holiday_id=other.id,
        )


def _audit_details(holiday: Holiday) -> dict[str, Any]:
    return {
        "name": holiday.name,
        "first_day": holiday.first_day.isoformat(),
        "last_day": holiday.last_day.isoformat(),
        "effect": str(holiday.effect),
        "hours": holiday.hours,
        "all_points": holiday.all_points,
        "access_point_ids": [p.id for p in holiday.access_points],
    }


def create(scope: Scope, community_id: str, data: dict[str, Any]) -> Holiday:
    community = scope.get(Community, community_id)
    scope.require_write(Holiday)
    data, points = _checked(community.id, dict(data))
    holiday = Holiday(community_id=community.id, **{k: data[k] for k in _FIELDS if k in data})
    holiday.access_points = points or []
    db.session.add(holiday)
    db.session.flush()
    _refuse_overlap(holiday)
    audit.record(
        scope.user,
        "holiday.create",
        community_id=community.id,
        target=holiday,
        details=_audit_details(holiday),
    )
    return holiday


def update(scope: Scope, holiday_id: str, changes: dict[str, Any]) -> Holiday:
    """Change a holiday; the next verify at its points follows the change."""
    holiday = scope.writable(Holiday, holiday_id)
    changes, points = _checked(holiday.community_id, dict(changes), holiday)
    details: dict[str, Any] = {}
    for key in _FIELDS:
        if key in changes and changes[key] != getattr(holiday, key):
            setattr(holiday, key, changes[key])
            value = changes[key]
            details[key] = value.isoformat() if isinstance(value, date) else value
    if holiday.all_points and points is None and holiday.access_points:
        points = []  # every point now: the list goes
    if points is not None and [p.id for p in points] != [p.id for p in holiday.access_points]:
        holiday.access_points = points
        details["access_point_ids"] = [p.id for p in points]
    if details:
        db.session.flush()
        _refuse_overlap(holiday)
        audit.record(
            scope.user,
            "holiday.update",
            community_id=holiday.community_id,
            target=holiday,
            details=details,
        )
    return holiday


def delete(scope: Scope, holiday_id: str) -> None:
    holiday = scope.writable(Holiday, holiday_id)
    audit.record(
        scope.user,
        "holiday.delete",
        community_id=holiday.community_id,
        target=holiday,
        details=_audit_details(holiday),
    )
    db.session.delete(holiday)


def calendar_for(point: AccessPoint, community: Community, at: datetime) -> calendar.Calendar:
    """The holidays covering ``point`` from the day before ``at`` to the day after (local
    dates), as the policy reads them: one query, most often answering nothing."""
    today = local_day(at, community.timezone)
    day = timedelta(days=1)
    return calendar_between(point, community, today - day, today + day)


def near_clause(
    community_id: ColumnElement[str], point_id: ColumnElement[str | None]
) -> ColumnElement[bool]:
    """Whether any holiday of the community may cover the point within a day of now: a cheap
    EXISTS a hot statement carries, so that the calendar's own query (``calendar_for``) runs
    only when it may answer something. The dates are bound by ``near_parameters``."""
    # Two levels down from the outer statement: auto-correlation stops at the holidays'
    # SELECT, and would join a second, unrelated copy of the point's table in here.
    listing = (
        select(holiday_access_points.c.holiday_id)
        .where(holiday_access_points.c.access_point_id == point_id)
        .correlate_except(holiday_access_points)
    )
    return (
        select(Holiday.id)
        .where(
            Holiday.community_id == community_id,
            Holiday.first_day <= bindparam("holiday_last"),
            Holiday.last_day >= bindparam("holiday_first"),
            or_(Holiday.all_points.is_(True), Holiday.id.in_(listing)),
        )
        .exists()
    )


def near_parameters(at: datetime) -> dict[str, date]:
    """``near_clause``'s dates: UTC's date two days either side of ``at``, which holds every
    zone's yesterday, today and tomorrow (zones are within 14 hours of UTC)."""
    today = at.astimezone(UTC).date()
    return {"holiday_first": today - timedelta(days=2), "holiday_last": today + timedelta(days=2)}


def calendar_between(
    point: AccessPoint, community: Community, first: date, last: date
) -> calendar.Calendar:
    """The holidays covering ``point`` on any local date from ``first`` to ``last``."""
    listing = select(holiday_access_points.c.holiday_id).where(
        holiday_access_points.c.access_point_id == point.id
    )
    rows = db.session.execute(
        select(
            Holiday.name,
            Holiday.first_day,
            Holiday.last_day,
            Holiday.effect,
            Holiday.hours,
            Holiday.all_points,
        )
        .where(
            Holiday.community_id == community.id,
            Holiday.first_day <= last,
            Holiday.last_day >= first,
            or_(Holiday.all_points.is_(True), Holiday.id.in_(listing)),
        )
        .order_by(Holiday.first_day, Holiday.id)
    ).all()
    return calendar.Calendar.of(
        calendar.Holiday(
            name=row.name,
            first_day=row.first_day,
            last_day=row.last_day,
            effect=row.effect,
            hours=hours_from_json(row.hours) if row.effect is HolidayEffect.HOURS else None,
            access_point_ids=None if row.all_points else frozenset({point.id}),
        )
        for row in rows
    )
