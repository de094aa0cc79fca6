"""The holiday calendar: days on which listed access points close or keep other hours
(staff change; officers read). Rules in ``server.community.holidays`` and docs/policy.md.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from gatekeeper.holidays import HolidayEffect
from server.api import authenticated_blueprint, scope
from server.api.schemas import PatchSchema
from server.community import holidays
from server.extensions import db
from server.models import Holiday

blp = authenticated_blueprint("holidays", "The holiday calendar of a community")

_HHMM = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"


class HolidayWindowSchema(ma.Schema):
    """A window of a holiday's hours in community time; without ``days``, every day."""

    days = fields.List(
        fields.Int(validate=validate.Range(min=1, max=7)),
        validate=validate.Length(min=1, max=7),
        metadata={"description": "ISO weekdays, 1 = Monday ... 7 = Sunday (default: all)"},
    )
    start = fields.Str(
        required=True, validate=validate.Regexp(_HHMM), metadata={"example": "10:00"}
    )
    end = fields.Str(required=True, validate=validate.Regexp(_HHMM), metadata={"example": "16:00"})


def _points() -> fields.List:
    return fields.List(
        fields.Str(validate=validate.Length(min=1, max=40)),
        validate=validate.Length(max=200),
        metadata={
            "description": "The access points of the community the holiday applies to "
            "(leave empty with all_points)"
        },
    )


class _HolidayFields(ma.Schema):
    last_day = fields.Date(
        metadata={"description": "The last day, included (default: first_day), community date"}
    )
    effect = fields.Enum(
        HolidayEffect,
        by_value=True,
        metadata={
            "description": "closed: nobody passes the points (holiday_closed); hours: they "
            "keep `hours` instead of their weekly schedule (default closed)"
        },
    )
    hours = fields.List(
        fields.Nested(HolidayWindowSchema),
        allow_none=True,
        validate=validate.Length(max=28),
        metadata={"description": "With effect hours: the windows the points are open"},
    )
    all_points = fields.Bool(
        metadata={
            "description": "Every access point of the community (only with effect hours: "
            "a holiday never closes every door)"
        }
    )


class HolidaySchema(_HolidayFields):
    id = fields.Str(dump_only=True)
    community_id = fields.Str(dump_only=True)
    name = fields.Str(
        required=True, validate=validate.Length(min=1, max=80), metadata={"example": "春节"}
    )
    first_day = fields.Date(
        required=True, metadata={"description": "The first day, a date in community time"}
    )
    access_point_ids = _points()
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)


class HolidayPatchSchema(PatchSchema, _HolidayFields):
    name = fields.Str(validate=validate.Length(min=1, max=80))
    first_day = fields.Date()
    access_point_ids = _points()


class HolidayListArgs(ma.Schema):
    since = fields.Date(
        metadata={"description": "Only holidays that end on or after this community date"}
    )


@blp.get("/communities/<cid>/holidays")
@blp.arguments(HolidayListArgs, location="query")
@blp.response(200, HolidaySchema(many=True))
def list_holidays(args: dict[str, Any], cid: str) -> Any:
    """The community's holidays by first day."""
    return holidays.holidays(scope(), cid, since=args.get("since"))


@blp.post("/communities/<cid>/holidays")
@blp.arguments(HolidaySchema)
@blp.response(201, HolidaySchema)
def create_holiday(data: dict[str, Any], cid: str) -> Any:
    """A holiday: listed access points closed (or on other hours) on its days.

    422 for a last day before the first, a period over 366 days, hours with `closed` or
    none with `hours`, points of another community, `closed` for every point; 409 when it
    overlaps another holiday at one of its points."""
    holiday = holidays.create(scope(), cid, data)
    db.session.commit()
    return holiday


@blp.get("/holidays/<holiday_id>")
@blp.response(200, HolidaySchema)
def get_holiday(holiday_id: str) -> Any:
    return scope().get(Holiday, holiday_id)


@blp.patch("/holidays/<holiday_id>")
@blp.arguments(HolidayPatchSchema)
@blp.response(200, HolidaySchema)
def update_holiday(changes: dict[str, Any], holiday_id: str) -> Any:
    """Change a holiday (the rules of the POST hold for the result)."""
    holiday = holidays.update(scope(), holiday_id, changes)
    db.session.commit()
    return holiday


@blp.delete("/holidays/<holiday_id>")
@blp.response(204)
def delete_holiday(holiday_id: str) -> None:
    holidays.delete(scope(), holiday_id)
    db.session.commit()
