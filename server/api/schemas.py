"""Request and response shapes of the management API (they also make the OpenAPI document).

Request schemas reject unknown fields (marshmallow's default ``RAISE``): a caller
cannot slip in ``community_id``, ``role`` or any field it may not set.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Any, ClassVar

import marshmallow as ma
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import fields, validate

from gatekeeper.doormodes import EXEMPT_CHOICES, DoorModeKind, ModeScope
from gatekeeper.doormodes import POINTS_MAX as DOOR_MODE_POINTS_MAX
from gatekeeper.vocabulary import AccessPointKind, DeviceKind, PersonRole, Zone
from hardware.protocol import Command, CommandStatus
from server.community.settings import CommunitySettingsSchema
from server.core.fields import JsonBool
from server.devices.commands import ACCESS_POINT_COMMANDS
from server.models import PersonStatus, UserRole, WorkerTag
from server.settings import is_time_zone

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")

# Our own field messages (marshmallow's built-in ones stay English); lazy, so that a
# validator formats them in the caller's language.
HEX_8_TO_32 = _l("Hex, 8 to 32 digits.")
HEX_8_TO_64 = _l("Hex, 8 to 64 digits.")


def _name(max_length: int = 80) -> fields.Str:
    return fields.Str(required=True, validate=validate.Length(min=1, max=max_length))


# The IANA time zones this machine knows, listed in the document.
_TIME_ZONES = validate.OneOf(
    sorted(name for name in zoneinfo.available_timezones() if is_time_zone(name)),
    error=_l("Not an IANA time zone (e.g. Asia/Shanghai)."),
)


class PatchSchema(ma.Schema):
    """A ``PATCH`` body: at least one field; an empty one answers 422, nothing to change.

    ``OPENAPI`` joins the schema's component in the document (``server.api.SchemaRules``)."""

    OPENAPI: ClassVar[dict[str, Any]] = {"minProperties": 1}

    @ma.validates_schema
    def _changes_something(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data:
            raise ma.ValidationError(_("Nothing to change: send at least one field."))


class ProblemSchema(ma.Schema):
    """RFC 9457 problem document; other members (``reason``, ...) extend it."""

    class Meta:
        unknown = ma.INCLUDE

    type = fields.Str()
    title = fields.Str()
    status = fields.Int()
    detail = fields.Str()
    instance = fields.Str()
    errors = fields.Dict(metadata={"description": "Field -> messages, for validation errors."})
    reason = fields.Str(metadata={"description": "Why an input was refused, as a code."})


# Auth ----------------------------------------------------------------------------------------


class TokenRequestSchema(ma.Schema):
    username = fields.Str(required=True, validate=validate.Length(min=1, max=64))
    password = fields.Str(required=True, validate=validate.Length(min=1, max=256), load_only=True)


class TokenSchema(ma.Schema):
    token = fields.Str()
    expires_at = fields.AwareDateTime()


# Communities and structure --------------------------------------------------------------------


class CommunitySchema(ma.Schema):
    id = fields.Str(dump_only=True)
    name = _name(120)
    timezone = fields.Str(validate=_TIME_ZONES, metadata={"example": "Asia/Shanghai"})
    settings = fields.Nested(CommunitySettingsSchema)
    created_at = fields.AwareDateTime(dump_only=True)


class CommunityPatchSchema(PatchSchema):
    name = fields.Str(validate=validate.Length(min=1, max=120))
    timezone = fields.Str(validate=_TIME_ZONES)
    settings = fields.Nested(CommunitySettingsSchema)


class BuildingSchema(ma.Schema):
    id = fields.Str(dump_only=True)
    community_id = fields.Str(dump_only=True)
    name = _name()
    created_at = fields.AwareDateTime(dump_only=True)


class BuildingPatchSchema(PatchSchema):
    name = fields.Str(validate=validate.Length(min=1, max=80))


class UnitSchema(ma.Schema):
    id = fields.Str(dump_only=True)
    community_id = fields.Str(dump_only=True)
    building_id = fields.Str(required=True)
    number = _name(40)
    floor = fields.Int(allow_none=True, validate=validate.Range(min=-10, max=300))
    created_at = fields.AwareDateTime(dump_only=True)


class UnitPatchSchema(PatchSchema):
    number = fields.Str(validate=validate.Length(min=1, max=40))
    floor = fields.Int(allow_none=True, validate=validate.Range(min=-10, max=300))


class ScheduleWindowSchema(ma.Schema):
    """A weekly window in the community's time zone; ``end`` before ``start`` crosses midnight."""

    days = fields.List(
        fields.Int(validate=validate.Range(min=1, max=7)),
        required=True,
        validate=validate.Length(min=1, max=7),
        metadata={"description": "ISO weekdays, 1 = Monday ... 7 = Sunday"},
    )
    start = fields.Str(
        required=True, validate=validate.Regexp(_HHMM), metadata={"example": "07:00"}
    )
    end = fields.Str(required=True, validate=validate.Regexp(_HHMM), metadata={"example": "22:00"})

    @ma.validates_schema
    def _not_empty(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("start") == data.get("end"):
            raise ma.ValidationError(_("start and end must differ."), "end")


class PlanPositionFields(ma.Schema):
    """Where a row is on the community's site plan: fractions of the picture's width and
    height from the top left, both or neither; null for both clears (issue 17, "Where")."""

    plan_x = fields.Float(
        allow_none=True,
        validate=validate.Range(min=0, max=1),
        metadata={"description": "0..1 of the site plan's width from the left; with plan_y"},
    )
    plan_y = fields.Float(
        allow_none=True,
        validate=validate.Range(min=0, max=1),
        metadata={"description": "0..1 of the site plan's height from the top; with plan_x"},
    )

    @ma.validates_schema
    def _both_or_neither(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if ("plan_x" in data) != ("plan_y" in data):
            missing = "plan_y" if "plan_x" in data else "plan_x"
            raise ma.ValidationError(_("Send plan_x and plan_y together."), missing)
        if (data.get("plan_x") is None) != (data.get("plan_y") is None):
            raise ma.ValidationError(
                _("Both plan_x and plan_y are numbers, or both are null."), "plan_x"
            )


class _AccessPointFields(PlanPositionFields):
    zone = fields.Enum(Zone, by_value=True)
    building_id = fields.Str(allow_none=True)
    open_ms = fields.Int(validate=validate.Range(min=500, max=60_000))
    requires_depth = JsonBool()
    has_keypad = JsonBool(metadata={"description": "a keypad for courier codes (verify/pin)"})
    schedule = fields.List(
        fields.Nested(ScheduleWindowSchema),
        allow_none=True,
        validate=validate.Length(max=28),
        metadata={"description": "null: no schedule of its own"},
    )


class AccessPointSchema(_AccessPointFields):
    id = fields.Str(dump_only=True)
    community_id = fields.Str(dump_only=True)
    name = _name()
    kind = fields.Enum(AccessPointKind, by_value=True, required=True)
    zone = fields.Enum(Zone, by_value=True, required=True)
    created_at = fields.AwareDateTime(dump_only=True)


class AccessPointPatchSchema(PatchSchema, _AccessPointFields):
    name = fields.Str(validate=validate.Length(min=1, max=80))


# Devices -------------------------------------------------------------------------------------


class DeviceSchema(PlanPositionFields):
    id = fields.Str(dump_only=True)
    community_id = fields.Str(dump_only=True)
    name = _name()
    kind = fields.Enum(DeviceKind, by_value=True, required=True)
    access_point_id = fields.Str(allow_none=True)
    zone = fields.Enum(Zone, by_value=True, allow_none=True)
    disabled = fields.Bool(dump_only=True)
    online = fields.Bool(dump_only=True)
    last_seen_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    firmware = fields.Str(dump_only=True, allow_none=True)
    secret_rotated_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    created_at = fields.AwareDateTime(dump_only=True)


class DevicePatchSchema(PatchSchema, PlanPositionFields):
    name = fields.Str(validate=validate.Length(min=1, max=80))
    disabled = JsonBool()
    access_point_id = fields.Str(allow_none=True)
    zone = fields.Enum(Zone, by_value=True, allow_none=True)


class MqttAccountSchema(ma.Schema):
    username = fields.Str()
    topic_prefix = fields.Str()


class DeviceSecretSchema(DeviceSchema):
    """A device with its secret: answered once, on provisioning or rotation."""

    secret = fields.Str(metadata={"description": "Shown once; the server keeps only a hash."})
    mqtt = fields.Nested(MqttAccountSchema)


# Users ---------------------------------------------------------------------------------------


class UserSchema(ma.Schema):
    id = fields.Str(dump_only=True)
    username = fields.Str(
        required=True,
        validate=[validate.Length(min=3, max=64), validate.Regexp(r"^[A-Za-z0-9_.@-]+$")],
    )
    password = fields.Str(required=True, load_only=True, validate=validate.Length(min=10, max=256))
    role = fields.Enum(UserRole, by_value=True, required=True)
    display_name = fields.Str(allow_none=True, validate=validate.Length(max=80))
    community_ids = fields.List(
        fields.Str(),
        load_default=list,
        metadata={"description": "staff: communities run; officer: communities covered"},
    )
    unit_id = fields.Str(allow_none=True, metadata={"description": "residents: their unit"})
    person_id = fields.Str(allow_none=True, metadata={"description": "residents: who they are"})
    disabled = fields.Bool(dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)
    last_login_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    supervisor = fields.Bool(
        load_default=False,
        metadata={"description": "staff: reads the audit log of their communities (admins set it)"},
    )


class MqttCredentialsSchema(ma.Schema):
    """An officer's broker login: answered once; the server keeps only a hash."""

    username = fields.Str()
    password = fields.Str(metadata={"description": "Shown once."})
    topics = fields.List(fields.Str(), metadata={"example": ["gk/v1/com_01JD.../alerts"]})


class UserPatchSchema(PatchSchema):
    display_name = fields.Str(allow_none=True, validate=validate.Length(max=80))
    password = fields.Str(load_only=True, validate=validate.Length(min=10, max=256))
    disabled = JsonBool()
    community_ids = fields.List(fields.Str())
    supervisor = JsonBool(metadata={"description": "staff only; administrators set it"})


# Commands and device events -------------------------------------------------------------------


class AccessPointCommandSchema(ma.Schema):
    # A string of the commands access points take (an Enum field would list every command).
    command = fields.Str(
        required=True, validate=validate.OneOf(sorted(c.value for c in ACCESS_POINT_COMMANDS))
    )


class DeviceCommandRequestSchema(ma.Schema):
    # display needs its text; the other commands take none.
    OPENAPI: ClassVar[dict[str, Any]] = {
        "anyOf": [
            {
                "properties": {
                    "command": {"enum": [c.value for c in Command if c != Command.DISPLAY]}
                }
            },
            {"required": ["text"]},
        ]
    }

    command = fields.Enum(Command, by_value=True, required=True)
    text = fields.Str(validate=validate.Length(min=1, max=200), metadata={"description": "display"})


class CommandSchema(ma.Schema):
    id = fields.Str(metadata={"description": "the cmd_id sent to the device"})
    device_id = fields.Str()
    access_point_id = fields.Str(allow_none=True)
    command = fields.Enum(Command, by_value=True)
    status = fields.Enum(CommandStatus, by_value=True)
    issued_at = fields.AwareDateTime()
    expires_at = fields.AwareDateTime()
    status_at = fields.AwareDateTime(allow_none=True)
    detail = fields.Str(allow_none=True)
    issued_by_user_id = fields.Str(allow_none=True)


class DeviceEventSchema(ma.Schema):
    id = fields.Str()
    device_id = fields.Str()
    seq = fields.Int()
    type = fields.Str()
    occurred_at = fields.AwareDateTime()
    received_at = fields.AwareDateTime()
    payload = fields.Dict()


# People and credentials ------------------------------------------------------------------------


class IdDocumentSchema(ma.Schema):
    type = fields.Str(
        required=True,
        validate=validate.OneOf(
            [
                "resident_id",
                "passport",
                "hk_macau_permit",
                "taiwan_permit",
                "foreigner_permanent_residence",
            ]
        ),
    )
    number = fields.Str(required=True, load_only=True, validate=validate.Length(min=1, max=40))


class LeaseInputSchema(ma.Schema):
    unit_id = fields.Str(metadata={"description": "default: the tenant's unit"})
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(required=True)


class WorkerPermitInputSchema(ma.Schema):
    tag = fields.Enum(WorkerTag, by_value=True, required=True)
    sponsor_person_id = fields.Str(
        allow_none=True, metadata={"description": "a resident vouching; default: you (staff)"}
    )
    access_point_ids = fields.List(fields.Str(), required=True, validate=validate.Length(min=1))
    schedule = fields.List(fields.Nested(ScheduleWindowSchema), allow_none=True)
    valid_from = fields.AwareDateTime(required=True)
    valid_until = fields.AwareDateTime(required=True)


class WorkerPermitSchema(WorkerPermitInputSchema):
    id = fields.Str(dump_only=True)
    person_id = fields.Str(dump_only=True)
    sponsor_user_id = fields.Str(dump_only=True, allow_none=True)
    access_point_ids = fields.Method("_point_ids", dump_only=True)

    def _point_ids(self, permit: Any) -> list[str]:
        return [p.id for p in permit.access_points]


class WorkerPermitPatchSchema(PatchSchema):
    tag = fields.Enum(WorkerTag, by_value=True)
    access_point_ids = fields.List(fields.Str(), validate=validate.Length(min=1))
    schedule = fields.List(fields.Nested(ScheduleWindowSchema), allow_none=True)
    valid_from = fields.AwareDateTime()
    valid_until = fields.AwareDateTime()


class MembershipSchema(ma.Schema):
    role = fields.Enum(PersonRole, by_value=True)
    unit_id = fields.Str(allow_none=True)


class LeaseSchema(ma.Schema):
    id = fields.Str()
    person_id = fields.Str()
    unit_id = fields.Str()
    starts_at = fields.AwareDateTime()
    ends_at = fields.AwareDateTime()
    ended_early_at = fields.AwareDateTime(allow_none=True)
    closed_at = fields.AwareDateTime(allow_none=True)


class LeasePatchSchema(PatchSchema):
    ends_at = fields.AwareDateTime(metadata={"description": "renew (later) or shorten"})
    end_now = JsonBool(metadata={"description": "end the lease now"})


class PersonSchema(ma.Schema):
    id = fields.Str(dump_only=True)
    community_id = fields.Str(dump_only=True)
    name = _name()
    role = fields.Enum(PersonRole, by_value=True, required=True, load_only=True)
    unit_id = fields.Str(load_only=True, allow_none=True)
    phone = fields.Str(allow_none=True, validate=validate.Regexp(r"^\+?[0-9 -]{5,20}$"))
    id_document = fields.Nested(IdDocumentSchema, allow_none=True, load_only=True)
    id_document_type = fields.Str(dump_only=True)
    id_document_masked = fields.Str(dump_only=True)
    status = fields.Enum(PersonStatus, by_value=True, dump_only=True)
    valid_from = fields.AwareDateTime(allow_none=True)
    valid_until = fields.AwareDateTime(allow_none=True)
    lives_alone = JsonBool()
    wander_risk = JsonBool()
    guardian_ids = fields.List(fields.Str())
    lease = fields.Nested(LeaseInputSchema, load_only=True)
    worker = fields.Nested(WorkerPermitInputSchema, load_only=True)
    memberships = fields.List(fields.Nested(MembershipSchema), dump_only=True)
    moved_out_at = fields.AwareDateTime(dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)


class PersonPatchSchema(PatchSchema):
    name = fields.Str(validate=validate.Length(min=1, max=80))
    phone = fields.Str(allow_none=True, validate=validate.Regexp(r"^\+?[0-9 -]{5,20}$"))
    id_document = fields.Nested(IdDocumentSchema, allow_none=True)
    status = fields.Enum(PersonStatus, by_value=True)
    valid_from = fields.AwareDateTime(allow_none=True)
    valid_until = fields.AwareDateTime(allow_none=True)
    lives_alone = JsonBool()
    wander_risk = JsonBool()
    guardian_ids = fields.List(fields.Str())


class PersonQuerySchema(ma.Schema):
    q = fields.Str(validate=validate.Length(max=80), metadata={"description": "name or phone"})
    role = fields.Enum(PersonRole, by_value=True)
    status = fields.Enum(PersonStatus, by_value=True)
    unit_id = fields.Str()


class _CredentialFields(ma.Schema):
    id = fields.Str(dump_only=True)
    person_id = fields.Str(dump_only=True)
    valid_from = fields.AwareDateTime(allow_none=True)
    valid_until = fields.AwareDateTime(allow_none=True)
    disabled = fields.Method("_disabled", dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)

    def _disabled(self, row: Any) -> bool:
        return row.disabled_at is not None


class CardSchema(_CredentialFields):
    uid = fields.Str(
        required=True,
        validate=validate.Regexp(r"^[0-9A-Fa-f]{8,32}$", error=HEX_8_TO_32),
    )


class VehicleSchema(_CredentialFields):
    plate = fields.Str(required=True, validate=validate.Length(min=2, max=20))
    color = fields.Str(
        allow_none=True, validate=validate.OneOf(["blue", "yellow", "green", "white", "black"])
    )


class RfidTagSchema(_CredentialFields):
    epc = fields.Str(
        required=True,
        validate=validate.Regexp(r"^[0-9A-Fa-f]{8,64}$", error=HEX_8_TO_64),
    )
    guard = JsonBool(
        load_default=False,
        metadata={"description": "A guard's tag: only these count at patrol checkpoints"},
    )


class CredentialPatchSchema(PatchSchema):
    disabled = JsonBool()
    valid_from = fields.AwareDateTime(allow_none=True)
    valid_until = fields.AwareDateTime(allow_none=True)


class ConsentRequestSchema(ma.Schema):
    purpose = fields.Str(
        load_default="face_recognition", validate=validate.OneOf(["face_recognition"])
    )


class ConsentSchema(ma.Schema):
    id = fields.Str()
    person_id = fields.Str()
    purpose = fields.Str()
    recorded_by_id = fields.Str(allow_none=True)
    granted_at = fields.AwareDateTime()
    withdrawn_at = fields.AwareDateTime(allow_none=True)


# Visitor passes ------------------------------------------------------------------------------


class PassInputSchema(ma.Schema):
    unit_id = fields.Str(metadata={"description": "staff: required; residents: their own unit"})
    guest_name = _name()
    valid_from = fields.AwareDateTime(metadata={"description": "default: now"})
    valid_until = fields.AwareDateTime(
        metadata={"description": "default: the community's pass_default_hours after valid_from"}
    )
    max_uses = fields.Int(validate=validate.Range(min=1, max=50), load_default=1)
    access_point_ids = fields.List(
        fields.Str(),
        metadata={"description": "default: the unit's building door(s) and the perimeter gates"},
    )
    plate = fields.Str(
        validate=validate.Length(min=2, max=16),
        allow_none=True,
        metadata={"description": "the guest's car (honoured by barriers)"},
    )


class PassQuerySchema(ma.Schema):
    status = fields.Str(
        validate=validate.OneOf(["upcoming", "active", "used", "expired", "revoked"])
    )
    unit_id = fields.Str()


class NamedRefSchema(ma.Schema):
    id = fields.Str()
    name = fields.Str()


class PassSchema(ma.Schema):
    id = fields.Str()
    community_id = fields.Str()
    unit_id = fields.Str()
    guest_name = fields.Str()
    plate = fields.Str(allow_none=True)
    valid_from = fields.AwareDateTime()
    valid_until = fields.AwareDateTime()
    max_uses = fields.Int()
    uses = fields.Int()
    status = fields.Str(metadata={"description": "upcoming, active, used, expired or revoked"})
    revoked_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()
    issued_by_user_id = fields.Str(allow_none=True)
    access_points = fields.List(fields.Nested(NamedRefSchema))
    token = fields.Str(metadata={"description": "the signed QR token (no personal data)"})
    qr_png_url = fields.Str()
    qr_svg_url = fields.Str()
    share_url = fields.Str(metadata={"description": "the guest's page; no login needed"})


class AccessEventSchema(ma.Schema):
    id = fields.Str()
    occurred_at = fields.AwareDateTime()
    access_point = fields.Nested(NamedRefSchema, allow_none=True)
    device_id = fields.Str(allow_none=True)
    credential_type = fields.Str()
    direction = fields.Str(allow_none=True)
    decision = fields.Str()
    reason = fields.Str()
    rule = fields.Str(allow_none=True)
    person_id = fields.Str(allow_none=True)
    pass_id = fields.Str(allow_none=True)
    detail = fields.Str(allow_none=True)
    offline = fields.Bool(
        metadata={"description": "decided by the door from its allowlist while offline"}
    )


class EventQuerySchema(ma.Schema):
    pass_id = fields.Str()
    access_point_id = fields.Str()
    decision = fields.Str(validate=validate.OneOf(["grant", "deny"]))
    since = fields.AwareDateTime()
    until = fields.AwareDateTime()


class ResidentCodeSchema(ma.Schema):
    token = fields.Str(metadata={"description": "the current code; verify with /verify/qr"})
    valid_until = fields.AwareDateTime(metadata={"description": "when the next code takes over"})
    step_s = fields.Int()


# Car gates -----------------------------------------------------------------------------------


class BlockedPlateInputSchema(ma.Schema):
    plate = fields.Str(required=True, validate=validate.Length(min=1, max=64))
    reason = _name(200)


class BlockedPlateSchema(ma.Schema):
    id = fields.Str()
    community_id = fields.Str()
    plate = fields.Str()
    reason = fields.Str()
    created_by_user_id = fields.Str(allow_none=True)
    created_at = fields.AwareDateTime()


class VehiclePresenceSchema(ma.Schema):
    id = fields.Str()
    plate = fields.Str()
    vehicle_id = fields.Str(allow_none=True)
    pass_id = fields.Str(allow_none=True)
    entered_at = fields.AwareDateTime()
    entry_event_id = fields.Str(allow_none=True)
    overstay_alerted_at = fields.AwareDateTime(allow_none=True)


class DoorModeInputSchema(ma.Schema):
    """A lockdown or an emergency release to start (docs/policy.md, "Door modes")."""

    kind = fields.Str(required=True, validate=validate.OneOf([k.value for k in DoorModeKind]))
    scope = fields.Str(
        required=True,
        validate=validate.OneOf([s.value for s in ModeScope]),
        metadata={"description": "what it covers: chosen access points, a building, the community"},
    )
    access_point_ids = fields.List(
        fields.Str(),
        validate=validate.Length(
            min=1, max=DOOR_MODE_POINTS_MAX, error=_l("Choose 1 to 100 access points.")
        ),
        metadata={
            "description": "the chosen points (1 to 100, each once, of the community), for "
            "scope access_point"
        },
    )
    building_id = fields.Str(metadata={"description": "the building, for scope building"})
    reason = _name(200)
    exempt_roles = fields.List(
        fields.Str(validate=validate.OneOf(EXEMPT_CHOICES)),
        validate=validate.Length(max=len(EXEMPT_CHOICES)),
        metadata={
            "description": "lockdowns only: the roles that still pass (person roles; staff "
            "and officer for their remote opens); default staff and officer"
        },
    )


class DoorModeQuerySchema(ma.Schema):
    active = fields.Boolean(
        metadata={"description": "true: the modes that hold now; false: the lifted ones"}
    )


class DoorModeSchema(ma.Schema):
    id = fields.Str()
    community_id = fields.Str()
    kind = fields.Str()
    scope = fields.Str()
    access_point_ids = fields.List(fields.Str())
    building_id = fields.Str(allow_none=True)
    reason = fields.Str()
    exempt_roles = fields.List(fields.Str())
    active = fields.Boolean()
    started_by_user_id = fields.Str(allow_none=True)
    started_at = fields.AwareDateTime()
    lifted_by_user_id = fields.Str(allow_none=True)
    lifted_at = fields.AwareDateTime(allow_none=True)


class RfidTagPatchSchema(CredentialPatchSchema):
    guard = JsonBool(
        metadata={"description": "A guard's tag: only these count at patrol checkpoints"}
    )
