"""The words of the domain, shared by the engine, the server and the devices.

Values are stable: they are stored in the database and sent to devices.
"""

from enum import StrEnum


class PersonRole(StrEnum):
    """A person's role in a community."""

    OWNER = "owner"
    RESIDENT = "resident"
    TENANT = "tenant"
    WORKER = "worker"
    ELDER = "elder"
    CHILD = "child"


class PersonStatus(StrEnum):
    """A person's standing in the community."""

    ACTIVE = "active"
    PENDING = "pending"  # enrolled, not yet activated (e.g. awaiting a person-ID match)
    SUSPENDED = "suspended"
    MOVED_OUT = "moved_out"


class AccessPointKind(StrEnum):
    DOOR = "door"
    GATE = "gate"
    BARRIER = "barrier"


class Zone(StrEnum):
    """Where an access point or reader sits."""

    PERIMETER = "perimeter"
    BUILDING = "building"
    KINDERGARTEN = "kindergarten"
    PATROL_CHECKPOINT = "patrol_checkpoint"


class DeviceKind(StrEnum):
    DOOR = "door"
    BARRIER = "barrier"
    RFID_READER = "rfid_reader"
    PANIC_BUTTON = "panic_button"


# Doors and barriers act for one access point; readers and panic buttons watch a zone.
DEVICE_KINDS_WITH_ACCESS_POINT = frozenset({DeviceKind.DOOR, DeviceKind.BARRIER})


class CredentialType(StrEnum):
    FACE = "face"
    QR = "qr"
    PLATE = "plate"
    CARD = "card"
    TAG = "tag"
    REMOTE = "remote"
    PIN = "pin"  # a one-time courier code typed on a door's keypad
    INTERCOM = "intercom"  # a visitor let in (or not) by a resident or guard over the intercom


class Decision(StrEnum):
    GRANT = "grant"
    DENY = "deny"


class Reason(StrEnum):
    """Machine-readable reason of a decision (docs/protocol.md section 4)."""

    # grants
    RESIDENT = "resident"
    TENANT = "tenant"
    WORKER = "worker"
    VISITOR_PASS = "visitor_pass"
    RESIDENT_VEHICLE = "resident_vehicle"
    VISITOR_VEHICLE = "visitor_vehicle"
    CARD = "card"
    REMOTE_OPEN = "remote_open"
    # denials
    UNKNOWN_FACE = "unknown_face"
    NO_FACE = "no_face"
    MULTIPLE_FACES = "multiple_faces"
    SPOOF_SUSPECTED = "spoof_suspected"
    LEASE_EXPIRED = "lease_expired"
    LEASE_NOT_STARTED = "lease_not_started"
    OUTSIDE_SCHEDULE = "outside_schedule"
    NOT_AUTHORIZED_HERE = "not_authorized_here"
    PASS_EXPIRED = "pass_expired"
    PASS_USED_UP = "pass_used_up"
    PASS_REVOKED = "pass_revoked"
    PASS_INVALID = "pass_invalid"
    UNKNOWN_PLATE = "unknown_plate"
    PLATE_BLOCKED = "plate_blocked"
    UNKNOWN_CARD = "unknown_card"
    CARD_DISABLED = "card_disabled"
    PERSON_SUSPENDED = "person_suspended"
    WATCHLIST = "watchlist"
    HOLIDAY_CLOSED = "holiday_closed"
    ANTI_PASSBACK = "anti_passback"
    # a one-time courier code typed on a door's keypad (server.access.pin)
    COURIER_CODE = "courier_code"
    PIN_INVALID = "pin_invalid"
    KEYPAD_LOCKED = "keypad_locked"
    LOCKDOWN = "lockdown"  # a lockdown holds over the access point (gatekeeper.doormodes)
    # temporary cars (server.access.parking): an unknown plate let in on a ticket (grant),
    # and a temporary car's exit until its fee is paid (deny)
    TEMPORARY_VEHICLE = "temporary_vehicle"
    PAYMENT_REQUIRED = "payment_required"
    # The door intercom (server.access.intercom): a resident or the guard opened (grant),
    # refused, or nobody answered in time (denials).
    INTERCOM_ANSWERED = "intercom_answered"
    INTERCOM_REFUSED = "intercom_refused"
    INTERCOM_UNANSWERED = "intercom_unanswered"


class PassStatus(StrEnum):
    """Where a visitor pass stands at an instant (derived, never stored: ``policy.pass_status``)."""

    UPCOMING = "upcoming"
    ACTIVE = "active"
    USED = "used"
    EXPIRED = "expired"
    REVOKED = "revoked"


class AlertType(StrEnum):
    STRANGER = "stranger"
    WATCHLIST_HIT = "watchlist_hit"
    ELDER_WANDERING = "elder_wandering"
    CHILD_WANDERING = "child_wandering"
    ELDER_INACTIVE = "elder_inactive"
    PANIC = "panic"
    DOOR_FORCED = "door_forced"
    DOOR_HELD_OPEN = "door_held_open"
    TAMPER = "tamper"
    DEVICE_OFFLINE = "device_offline"
    SPOOF_ATTEMPT = "spoof_attempt"
    PLATE_BLOCKED = "plate_blocked"
    OVERSTAY = "overstay"
    PATROL_MISSED = "patrol_missed"
    KEYPAD_LOCKED = "keypad_locked"
    EMERGENCY_RELEASE = "emergency_release"
    PLATE_FACE_MISMATCH = "plate_face_mismatch"
    TAG_EXIT_WITHOUT_FACE = "tag_exit_without_face"
    IMPOSSIBLE_TRAVEL = "impossible_travel"
    OFFLINE_GRANT_REFUSED = "offline_grant_refused"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class IntercomStatus(StrEnum):
    """Where a door intercom call stands (``server.access.intercom``).

    ``ringing`` (the unit's phones ring) -> ``answered`` (opened), ``refused``, or, unanswered,
    ``rolled_over`` to the guard booth (where the community says so) or ``timed_out``; a
    rolled-over call ends ``answered``, ``refused`` or ``timed_out`` too.
    """

    RINGING = "ringing"
    ROLLED_OVER = "rolled_over"
    ANSWERED = "answered"
    REFUSED = "refused"
    TIMED_OUT = "timed_out"
