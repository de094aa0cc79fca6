"""Per-community tunables, stored as JSON on the community and read through defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import marshmallow as ma
from flask_babel import lazy_gettext as _l
from marshmallow import validate

from gatekeeper.tariff import MAX_FEN, MAX_FREE_MINUTES
from server.core.fields import JsonBool
from server.core.i18n import DEFAULT_LOCALE, LOCALES


@dataclass(frozen=True)
class CommunitySettings:
    """What a community can tune; every field has a safe default."""

    # 1:N face matching: best distance must be under the tolerance and beat the
    # next different person by the margin (values chosen in the face issue).
    face_tolerance: float = 0.5
    face_margin: float = 0.06
    # Visitor passes: default validity and the longest a resident may give.
    pass_default_hours: int = 24
    pass_max_days: int = 7
    # Keep face crops of access events (off: templates only), and for how long.
    keep_snapshots: bool = False
    snapshot_retention_days: int = 30
    # Access events older than this are deleted (server.access.retention), with their crops.
    event_retention_days: int = 180
    # Keep enrolment photos next to the templates (off by default).
    keep_enrolment_photos: bool = False
    # Residents and tenants stay pending until a person-ID match succeeds.
    require_id_match: bool = False
    # Let barrier cameras' near-miss plates match (unique and low confidence only) ...
    fuzzy_plates: bool = False
    # ... when the camera's own confidence is below this.
    fuzzy_plate_max_confidence: float = 0.9
    # Strangers: unknown faces closer than this are one person; one alert when a person is
    # seen this many times within the window, or at this many access points, or at night.
    stranger_tolerance: float = 0.5
    stranger_sightings: int = 3
    stranger_window_hours: int = 24
    stranger_access_points: int = 2
    # Keep the face crops of unknown faces as a stranger alert's evidence (erased after
    # snapshot_retention_days like other snapshots); residents' crops follow keep_snapshots.
    keep_stranger_crops: bool = True
    # Night (community time; may cross midnight): strangers alert at once, wandering is high.
    night_start: str = "22:00"
    night_end: str = "06:00"
    # A guardian passing the same exit this many minutes before or after: no wandering alert.
    guardian_window_minutes: int = 5
    # Kindergarten hours (Monday-Friday, community time) for child_wandering at its reader.
    school_start: str = "08:00"
    school_end: str = "17:00"
    # An elder living alone not seen for this many hours: elder_inactive.
    elder_inactive_hours: int = 24
    # This many spoof_suspected at one door within the minutes: spoof_attempt.
    spoof_attempts: int = 3
    spoof_window_minutes: int = 10
    # An alert not acknowledged within this many minutes escalates.
    alert_ack_minutes: int = 15
    # The pages' language for people who chose none and whose browser asks for none
    # (server.core.i18n): zh_CN (Simplified Chinese) or en.
    default_locale: str = DEFAULT_LOCALE
    # Courier codes (server.couriers): this many wrong codes at one keypad within the
    # minutes lock it for keypad_lock_minutes (keypad_locked, an alert to staff); a
    # resident's code lasts courier_code_minutes unless they choose (at most the max).
    keypad_max_failures: int = 5
    keypad_failure_window_minutes: int = 10
    keypad_lock_minutes: int = 15
    courier_code_minutes: int = 30
    courier_code_max_minutes: int = 24 * 60
    # Temporary cars (临时车, server.access.parking): an unknown plate may enter a barrier
    # with a ticket by plate and pays on exit by this tariff (gatekeeper.tariff; fen, CNY):
    # free minutes, the price of each started hour, a night price (None: the day price)
    # within the night window (community time), a cap per calendar day (None: no cap).
    temporary_cars: bool = False
    parking_free_minutes: int = 15
    parking_hour_fen: int = 500
    parking_night_hour_fen: int | None = None
    parking_night_start: str = "22:00"
    parking_night_end: str = "07:00"
    parking_daily_cap_fen: int | None = None
    # The door intercom (server.access.intercom): how long the unit's phones ring; whether an
    # unanswered call then rolls over to the guard booth's console, and for how long it waits
    # there; how long the visitor's snapshot is kept after the call ended (personal data).
    intercom_ring_seconds: int = 45
    intercom_guard_rollover: bool = True
    intercom_guard_seconds: int = 60
    intercom_snapshot_minutes: int = 10
    # Evidence (server.alerts.evidence): the events (and crops) an alert names are kept while
    # it is open or acknowledged and this many days after it was resolved, whatever the
    # retention above says.
    evidence_hold_days: int = 30
    # Cross-checks (server.alerts.cross_checks, docs/alert_rules.md): access points that are
    # one gate (lists of access point ids, e.g. a barrier and the pedestrian gate beside it);
    # a stranger's face this many seconds before or after a known car's plate at that gate:
    # plate_face_mismatch; an elder's tag at an exit with no face of theirs at that gate this
    # many seconds either side: tag_exit_without_face; one card at two points sooner than the
    # walk between them (walk_seconds: [{"from", "to", "seconds"}], else min_gate_seconds
    # between two perimeter gates; 0: none) allows: impossible_travel.
    gate_groups: list[list[str]] = field(default_factory=list)
    plate_face_window_seconds: int = 60
    tag_face_window_seconds: int = 120
    min_gate_seconds: int = 60
    walk_seconds: list[dict[str, Any]] = field(default_factory=list)
    # Retention of what else is personal (server.privacy.retention, docs/privacy.md): rows
    # older than this many days are deleted by the worker's retention job (held evidence
    # stays); unknown faces' templates on access events are stripped (the event stays).
    device_event_retention_days: int = 90
    unknown_template_retention_days: int = 30
    delivery_retention_days: int = 90
    notification_retention_days: int = 180
    intercom_call_retention_days: int = 90
    courier_code_retention_days: int = 30
    registration_retention_days: int = 90
    id_check_retention_days: int = 365
    audit_retention_days: int = 1095
    data_read_retention_days: int = 1095
    # Dispatch (server.alerts.dispatch, docs/alerts.md): an alert dispatched to an officer
    # who has not acknowledged it within this many minutes is escalated to the station.
    dispatch_ack_minutes: int = 3


DEFAULTS = CommunitySettings()


_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
# Formatted by marshmallow when a value fails (a LazyString: in the request's language).
_HHMM_ERROR = _l("HH:MM")


# One row of ``walk_seconds``: the least seconds between two access points. Built from a
# dict because ``from`` is a keyword: a field named ``from_`` with ``data_key="from"`` would
# load as ``from_``, which the settings' second validation (``merged``) and the cross-checks
# (``row["from"]``) do not know.
WalkSecondsSchema = ma.Schema.from_dict(
    {
        "from": ma.fields.Str(required=True, validate=validate.Length(min=1, max=40)),
        "to": ma.fields.Str(required=True, validate=validate.Length(min=1, max=40)),
        "seconds": ma.fields.Int(
            strict=True, required=True, validate=validate.Range(min=1, max=3600)
        ),
    },
    name="WalkSecondsSchema",
)


class CommunitySettingsSchema(ma.Schema):
    face_tolerance = ma.fields.Float(validate=validate.Range(min=0.2, max=0.7))
    face_margin = ma.fields.Float(validate=validate.Range(min=0.0, max=0.3))
    pass_default_hours = ma.fields.Int(validate=validate.Range(min=1, max=24 * 31))
    pass_max_days = ma.fields.Int(validate=validate.Range(min=1, max=366))
    keep_snapshots = JsonBool()
    snapshot_retention_days = ma.fields.Int(validate=validate.Range(min=1, max=3650))
    event_retention_days = ma.fields.Int(validate=validate.Range(min=7, max=3650))
    keep_enrolment_photos = JsonBool()
    require_id_match = JsonBool()
    fuzzy_plates = JsonBool()
    fuzzy_plate_max_confidence = ma.fields.Float(validate=validate.Range(min=0.0, max=1.0))
    stranger_tolerance = ma.fields.Float(validate=validate.Range(min=0.2, max=0.8))
    stranger_sightings = ma.fields.Int(validate=validate.Range(min=1, max=100))
    stranger_window_hours = ma.fields.Int(validate=validate.Range(min=1, max=24 * 30))
    stranger_access_points = ma.fields.Int(validate=validate.Range(min=1, max=50))
    keep_stranger_crops = JsonBool()
    night_start = ma.fields.Str(validate=validate.Regexp(_HHMM, error=_HHMM_ERROR))
    night_end = ma.fields.Str(validate=validate.Regexp(_HHMM, error=_HHMM_ERROR))
    guardian_window_minutes = ma.fields.Int(validate=validate.Range(min=0, max=120))
    school_start = ma.fields.Str(validate=validate.Regexp(_HHMM, error=_HHMM_ERROR))
    school_end = ma.fields.Str(validate=validate.Regexp(_HHMM, error=_HHMM_ERROR))
    elder_inactive_hours = ma.fields.Int(validate=validate.Range(min=1, max=24 * 14))
    spoof_attempts = ma.fields.Int(validate=validate.Range(min=2, max=100))
    spoof_window_minutes = ma.fields.Int(validate=validate.Range(min=1, max=24 * 60))
    alert_ack_minutes = ma.fields.Int(validate=validate.Range(min=1, max=24 * 60))
    default_locale = ma.fields.Str(validate=validate.OneOf(LOCALES))
    keypad_max_failures = ma.fields.Int(validate=validate.Range(min=2, max=50))
    keypad_failure_window_minutes = ma.fields.Int(validate=validate.Range(min=1, max=24 * 60))
    keypad_lock_minutes = ma.fields.Int(validate=validate.Range(min=1, max=24 * 60))
    courier_code_minutes = ma.fields.Int(validate=validate.Range(min=5, max=7 * 24 * 60))
    courier_code_max_minutes = ma.fields.Int(validate=validate.Range(min=5, max=7 * 24 * 60))
    temporary_cars = JsonBool()
    parking_free_minutes = ma.fields.Int(
        strict=True, validate=validate.Range(min=0, max=MAX_FREE_MINUTES)
    )
    parking_hour_fen = ma.fields.Int(strict=True, validate=validate.Range(min=0, max=MAX_FEN))
    parking_night_hour_fen = ma.fields.Int(
        strict=True, allow_none=True, validate=validate.Range(min=0, max=MAX_FEN)
    )
    parking_night_start = ma.fields.Str(validate=validate.Regexp(_HHMM, error=_HHMM_ERROR))
    parking_night_end = ma.fields.Str(validate=validate.Regexp(_HHMM, error=_HHMM_ERROR))
    parking_daily_cap_fen = ma.fields.Int(
        strict=True, allow_none=True, validate=validate.Range(min=0, max=MAX_FEN)
    )
    intercom_ring_seconds = ma.fields.Int(validate=validate.Range(min=10, max=300))
    intercom_guard_rollover = JsonBool()
    intercom_guard_seconds = ma.fields.Int(validate=validate.Range(min=10, max=600))
    intercom_snapshot_minutes = ma.fields.Int(validate=validate.Range(min=0, max=24 * 60))
    evidence_hold_days = ma.fields.Int(validate=validate.Range(min=0, max=3650))
    gate_groups = ma.fields.List(
        ma.fields.List(
            ma.fields.Str(validate=validate.Length(min=1, max=40)),
            validate=validate.Length(min=2, max=20),
        ),
        validate=validate.Length(max=50),
    )
    plate_face_window_seconds = ma.fields.Int(validate=validate.Range(min=5, max=600))
    tag_face_window_seconds = ma.fields.Int(validate=validate.Range(min=10, max=1800))
    min_gate_seconds = ma.fields.Int(validate=validate.Range(min=0, max=3600))
    walk_seconds = ma.fields.List(
        ma.fields.Nested(WalkSecondsSchema), validate=validate.Length(max=200)
    )
    device_event_retention_days = ma.fields.Int(validate=validate.Range(min=1, max=3650))
    unknown_template_retention_days = ma.fields.Int(validate=validate.Range(min=1, max=3650))
    delivery_retention_days = ma.fields.Int(validate=validate.Range(min=1, max=3650))
    notification_retention_days = ma.fields.Int(validate=validate.Range(min=1, max=3650))
    intercom_call_retention_days = ma.fields.Int(validate=validate.Range(min=1, max=3650))
    courier_code_retention_days = ma.fields.Int(validate=validate.Range(min=1, max=3650))
    registration_retention_days = ma.fields.Int(validate=validate.Range(min=7, max=3650))
    id_check_retention_days = ma.fields.Int(validate=validate.Range(min=30, max=3650))
    audit_retention_days = ma.fields.Int(validate=validate.Range(min=180, max=3650))
    data_read_retention_days = ma.fields.Int(validate=validate.Range(min=180, max=3650))
    dispatch_ack_minutes = ma.fields.Int(validate=validate.Range(min=1, max=24 * 60))

    @ma.validates_schema
    def _pass_default_within_max(self, data: dict[str, Any], **_kwargs: Any) -> None:
        # Only with both values: a partial change is checked by ``merged`` against the
        # community's stored settings, not against the defaults.
        if "pass_default_hours" not in data or "pass_max_days" not in data:
            return
        hours, days = data["pass_default_hours"], data["pass_max_days"]
        if hours > days * 24:
            raise ma.ValidationError(
                str(_l("must not exceed pass_max_days.")), "pass_default_hours"
            )


def effective(stored: dict[str, Any] | None) -> CommunitySettings:
    """The stored overrides laid over the defaults (unknown keys are ignored)."""
    names = {f.name for f in fields(CommunitySettings)}
    return CommunitySettings(**{k: v for k, v in (stored or {}).items() if k in names})


def merged(stored: dict[str, Any] | None, changes: dict[str, Any]) -> dict[str, Any]:
    """Full settings after applying ``changes``; validated as a whole."""
    result = {**asdict(effective(stored)), **changes}
    errors = CommunitySettingsSchema().validate(result)
    if errors:
        raise ma.ValidationError(errors)
    return result
