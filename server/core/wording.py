"""Words people read: the one translated vocabulary of domain values, refusal reasons of the
face quality check and of doors, input rules.

Pages never show a domain value raw (``owner``, ``panic_button``, ``unlock_hold``): they
show ``word(value)``, the ``word`` filter in templates, which looks the value up by its type
here and answers in the request's language (``server.core.i18n``). Each text is written in
English and translated in the catalogue.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from flask_babel.speaklater import LazyString

from gatekeeper.antipassback import PassbackMode
from gatekeeper.doormodes import DoorModeKind, ModeScope
from gatekeeper.faces import ENROLMENT_THRESHOLDS, FaceQualityReason
from gatekeeper.holidays import HolidayEffect
from gatekeeper.identity import DocumentType
from gatekeeper.pincodes import CodeStatus
from gatekeeper.plates import PlateKind
from gatekeeper.vocabulary import (
    AccessPointKind,
    AlertStatus,
    AlertType,
    CredentialType,
    Decision,
    DeviceKind,
    IntercomStatus,
    PassStatus,
    PersonRole,
    PersonStatus,
    Reason,
    Severity,
    Zone,
)
from hardware.protocol import Command, CommandStatus, EventType
from server.models.accounts import UserRole
from server.models.onboarding import RegistrationStatus
from server.models.parking import PaymentMethod, TicketStatus
from server.models.people import WorkerTag

# The phone rule of PersonSchema, in words (its own message is a bare "does not match").
PHONE_FORMAT = _l("digits, spaces and dashes, with an optional + in front (5 to 20 characters)")

# Staff-facing words for the quality check's reason codes.
FACE_REASON_WORDS: dict[str, LazyString] = {
    FaceQualityReason.NO_FACE: _l("No face found"),
    FaceQualityReason.MULTIPLE_FACES: _l("More than one face in the photo"),
    FaceQualityReason.FACE_TOO_SMALL: _l(
        "The face is too small: come closer or use a larger photo"
    ),
    FaceQualityReason.TOO_BLURRY: _l("The photo is too blurry"),
}


def face_reason_words(reason: str | None) -> str:
    """The words for a quality reason code (the code itself when it is unknown)."""
    try:
        return str(FACE_REASON_WORDS[FaceQualityReason(reason)])
    except ValueError:
        return str(reason)


def face_measurement_lines(measurements: dict[str, Any] | None) -> list[str]:
    """What the quality check measured, with the minimums the face had to reach."""
    if not measurements:
        return []
    lines = []
    if "image_width" in measurements:
        lines.append(
            str(
                _l(
                    "image %(width)s x %(height)s px",
                    width=measurements["image_width"],
                    height=measurements["image_height"],
                )
            )
        )
    if "face_width_px" in measurements:
        lines.append(str(_l("face width %(px)s px", px=measurements["face_width_px"])))
    if "eye_distance_px" in measurements:
        lines.append(
            str(
                _l(
                    "eye distance %(px)s px (at least %(minimum)s)",
                    px=measurements["eye_distance_px"],
                    minimum=f"{ENROLMENT_THRESHOLDS.min_eye_distance_px:g}",
                )
            )
        )
    if "sharpness" in measurements:
        lines.append(
            str(
                _l(
                    "sharpness %(value)s (at least %(minimum)s)",
                    value=measurements["sharpness"],
                    minimum=f"{ENROLMENT_THRESHOLDS.min_sharpness:g}",
                )
            )
        )
    if "brightness" in measurements:
        lines.append(str(_l("brightness %(value)s of 255", value=measurements["brightness"])))
    return lines


# Why a door opened or stayed shut, in words a resident reads on their phone.
REASON_WORDS: dict[str, LazyString] = {
    Reason.RESIDENT: _l("Resident"),
    Reason.TENANT: _l("Tenant"),
    Reason.WORKER: _l("Worker's permit"),
    Reason.VISITOR_PASS: _l("Visitor pass"),
    Reason.RESIDENT_VEHICLE: _l("Household car"),
    Reason.VISITOR_VEHICLE: _l("Guest's car"),
    Reason.CARD: _l("Card"),
    Reason.REMOTE_OPEN: _l("Opened from the phone"),
    Reason.UNKNOWN_FACE: _l("Face not recognised"),
    Reason.NO_FACE: _l("No face seen"),
    Reason.MULTIPLE_FACES: _l("More than one face in view"),
    Reason.SPOOF_SUSPECTED: _l("Looked like a photo or a screen"),
    Reason.LEASE_EXPIRED: _l("The lease has ended"),
    Reason.LEASE_NOT_STARTED: _l("The lease has not started yet"),
    Reason.OUTSIDE_SCHEDULE: _l("Outside the door's opening hours"),
    Reason.NOT_AUTHORIZED_HERE: _l("Not allowed at this door"),
    Reason.PASS_EXPIRED: _l("The pass had expired"),
    Reason.PASS_USED_UP: _l("The pass was used up"),
    Reason.PASS_REVOKED: _l("The pass was revoked"),
    Reason.PASS_INVALID: _l("Code not valid (or not valid yet)"),
    Reason.UNKNOWN_PLATE: _l("Plate not known"),
    Reason.PLATE_BLOCKED: _l("Plate blocked"),
    Reason.UNKNOWN_CARD: _l("Card not known"),
    Reason.CARD_DISABLED: _l("Card disabled"),
    Reason.PERSON_SUSPENDED: _l("Access suspended"),
    Reason.WATCHLIST: _l("Refused by security"),
    Reason.HOLIDAY_CLOSED: _l("Closed for a holiday"),
    Reason.ANTI_PASSBACK: _l("Entered already, not yet out (anti-passback)"),
    Reason.COURIER_CODE: _l("Courier code"),
    Reason.PIN_INVALID: _l("Wrong code"),
    Reason.KEYPAD_LOCKED: _l("Keypad locked after wrong codes"),
    Reason.LOCKDOWN: _l("The door is locked down"),
    Reason.TEMPORARY_VEHICLE: _l("Temporary car"),
    Reason.PAYMENT_REQUIRED: _l("Parking fee to pay"),
    Reason.INTERCOM_ANSWERED: _l("Let in over the intercom"),
    Reason.INTERCOM_REFUSED: _l("Intercom call declined"),
    Reason.INTERCOM_UNANSWERED: _l("Intercom call not answered"),
}
CREDENTIAL_WORDS: dict[str, LazyString] = {
    CredentialType.FACE: _l("face"),
    CredentialType.QR: _l("QR code"),
    CredentialType.PLATE: _l("plate"),
    CredentialType.CARD: _l("card"),
    CredentialType.TAG: _l("tag"),
    CredentialType.REMOTE: _l("phone"),
    CredentialType.PIN: _l("keypad code"),
    CredentialType.INTERCOM: _l("intercom"),
}


def reason_words(reason: str | None) -> str:
    """A decision's reason code in words (the code itself when it is unknown)."""
    words = REASON_WORDS.get(reason or "")
    return str(words) if words is not None else (reason or "unknown").replace("_", " ")


# The vocabulary: every domain value a page shows, by its type. StrEnum members of
# different types can share a value ("resident" is a role of a person, of an account and a
# reason), so the key is the type as well as the value.
VOCABULARY: dict[type[StrEnum], dict[str, LazyString]] = {
    PersonRole: {
        PersonRole.OWNER: _p("person role", "owner"),
        PersonRole.RESIDENT: _p("person role", "family member"),
        PersonRole.TENANT: _p("person role", "tenant"),
        PersonRole.WORKER: _p("person role", "worker"),
        PersonRole.ELDER: _p("person role", "elder"),
        PersonRole.CHILD: _p("person role", "child"),
    },
    PersonStatus: {
        PersonStatus.ACTIVE: _p("person status", "active"),
        PersonStatus.PENDING: _p("person status", "pending"),
        PersonStatus.SUSPENDED: _p("person status", "suspended"),
        PersonStatus.MOVED_OUT: _p("person status", "moved out"),
    },
    UserRole: {
        UserRole.ADMIN: _p("account role", "administrator"),
        UserRole.STAFF: _p("account role", "property staff"),
        UserRole.RESIDENT: _p("account role", "resident"),
        UserRole.OFFICER: _p("account role", "police officer"),
    },
    AccessPointKind: {
        AccessPointKind.DOOR: _p("access point kind", "door"),
        AccessPointKind.GATE: _p("access point kind", "gate"),
        AccessPointKind.BARRIER: _p("access point kind", "car barrier"),
    },
    Zone: {
        Zone.PERIMETER: _p("zone", "perimeter"),
        Zone.BUILDING: _p("zone", "building"),
        Zone.KINDERGARTEN: _p("zone", "kindergarten"),
        Zone.PATROL_CHECKPOINT: _p("zone", "patrol checkpoint"),
    },
    DeviceKind: {
        DeviceKind.DOOR: _p("device kind", "door terminal"),
        DeviceKind.BARRIER: _p("device kind", "barrier camera"),
        DeviceKind.RFID_READER: _p("device kind", "RFID reader"),
        DeviceKind.PANIC_BUTTON: _p("device kind", "panic button"),
    },
    CredentialType: CREDENTIAL_WORDS,
    Decision: {Decision.GRANT: _p("decision", "opened"), Decision.DENY: _p("decision", "refused")},
    Reason: REASON_WORDS,
    PassStatus: {
        PassStatus.UPCOMING: _p("pass status", "not yet valid"),
        PassStatus.ACTIVE: _p("pass status", "valid"),
        PassStatus.USED: _p("pass status", "used"),
        PassStatus.EXPIRED: _p("pass status", "expired"),
        PassStatus.REVOKED: _p("pass status", "cancelled"),
    },
    AlertType: {
        AlertType.STRANGER: _p("alert type", "stranger"),
        AlertType.WATCHLIST_HIT: _p("alert type", "watchlist hit"),
        AlertType.ELDER_WANDERING: _p("alert type", "elder wandering"),
        AlertType.CHILD_WANDERING: _p("alert type", "child wandering"),
        AlertType.ELDER_INACTIVE: _p("alert type", "elder not seen"),
        AlertType.PANIC: _p("alert type", "panic button"),
        AlertType.DOOR_FORCED: _p("alert type", "door forced"),
        AlertType.DOOR_HELD_OPEN: _p("alert type", "door held open"),
        AlertType.TAMPER: _p("alert type", "tamper"),
        AlertType.DEVICE_OFFLINE: _p("alert type", "device offline"),
        AlertType.SPOOF_ATTEMPT: _p("alert type", "spoof attempts"),
        AlertType.PLATE_BLOCKED: _p("alert type", "blocked plate"),
        AlertType.OVERSTAY: _p("alert type", "car overstaying"),
        AlertType.PATROL_MISSED: _p("alert type", "patrol missed"),
        AlertType.KEYPAD_LOCKED: _p("alert type", "keypad locked"),
        AlertType.EMERGENCY_RELEASE: _p("alert type", "emergency release"),
        AlertType.PLATE_FACE_MISMATCH: _p("alert type", "known car, stranger's face"),
        AlertType.TAG_EXIT_WITHOUT_FACE: _p("alert type", "tag out, no face"),
        AlertType.IMPOSSIBLE_TRAVEL: _p("alert type", "card in two places"),
    },
    Severity: {
        Severity.LOW: _p("severity", "low"),
        Severity.MEDIUM: _p("severity", "medium"),
        Severity.HIGH: _p("severity", "high"),
        Severity.CRITICAL: _p("severity", "critical"),
    },
    AlertStatus: {
        AlertStatus.OPEN: _p("alert status", "open"),
        AlertStatus.ACKNOWLEDGED: _p("alert status", "acknowledged"),
        AlertStatus.RESOLVED: _p("alert status", "resolved"),
    },
    Command: {
        Command.OPEN: _p("command", "open"),
        Command.LOCK: _p("command", "lock"),
        Command.UNLOCK_HOLD: _p("command", "hold unlocked"),
        Command.DISPLAY: _p("command", "show text"),
        Command.REBOOT: _p("command", "restart"),
    },
    CommandStatus: {
        CommandStatus.QUEUED: _p("command status", "queued"),
        CommandStatus.SENT: _p("command status", "sent"),
        CommandStatus.ACKED: _p("command status", "done"),
        CommandStatus.FAILED: _p("command status", "failed"),
        CommandStatus.EXPIRED: _p("command status", "expired"),
    },
    EventType: {
        EventType.DOOR_OPENED: _p("device event", "door opened"),
        EventType.DOOR_CLOSED: _p("device event", "door closed"),
        EventType.DOOR_FORCED: _p("device event", "door forced"),
        EventType.DOOR_HELD_OPEN: _p("device event", "door held open"),
        EventType.EXIT_REQUEST: _p("device event", "exit button"),
        EventType.TAMPER: _p("device event", "tamper"),
        EventType.PANIC: _p("device event", "panic button"),
        EventType.TAG_READ: _p("device event", "tag read"),
        EventType.HEARTBEAT: _p("device event", "heartbeat"),
        EventType.PASS_USED: _p("device event", "pass used offline"),
        EventType.INTERCOM_CALL: _p("device event", "intercom call"),
        EventType.OFFLINE_DECISION: _p("device event", "offline decision"),
    },
    WorkerTag: {
        WorkerTag.CLEANER: _p("work", "cleaner"),
        WorkerTag.PLUMBER: _p("work", "plumber"),
        WorkerTag.GARDENER: _p("work", "gardener"),
        WorkerTag.REPAIR: _p("work", "repair"),
        WorkerTag.DELIVERY: _p("work", "delivery"),
        WorkerTag.OTHER: _p("work", "other"),
    },
    DocumentType: {
        DocumentType.RESIDENT_ID: _p("document", "resident identity card"),
        DocumentType.PASSPORT: _p("document", "passport"),
        DocumentType.HK_MACAU_PERMIT: _p("document", "Hong Kong and Macao travel permit"),
        DocumentType.TAIWAN_PERMIT: _p("document", "Taiwan travel permit"),
        DocumentType.FOREIGNER_PERMANENT_RESIDENCE: _p(
            "document", "foreigner's permanent residence card"
        ),
    },
    RegistrationStatus: {
        RegistrationStatus.PENDING: _p("registration status", "waiting"),
        RegistrationStatus.APPROVED: _p("registration status", "approved"),
        RegistrationStatus.REJECTED: _p("registration status", "rejected"),
    },
    PlateKind: {
        PlateKind.ORDINARY: _p("plate kind", "ordinary"),
        PlateKind.NEW_ENERGY_SMALL: _p("plate kind", "new energy, small"),
        PlateKind.NEW_ENERGY_LARGE: _p("plate kind", "new energy, large"),
        PlateKind.POLICE: _p("plate kind", "police"),
        PlateKind.DRIVING_SCHOOL: _p("plate kind", "driving school"),
        PlateKind.TRAILER: _p("plate kind", "trailer"),
        PlateKind.CONSULATE: _p("plate kind", "consulate"),
        PlateKind.HONG_KONG: _p("plate kind", "Hong Kong"),
        PlateKind.MACAU: _p("plate kind", "Macao"),
        PlateKind.EMBASSY: _p("plate kind", "embassy"),
        PlateKind.EMERGENCY: _p("plate kind", "emergency"),
    },
    HolidayEffect: {
        HolidayEffect.CLOSED: _p("holiday effect", "closed"),
        HolidayEffect.HOURS: _p("holiday effect", "other hours"),
    },
    PassbackMode: {
        PassbackMode.SOFT: _p("anti-passback mode", "soft: let in and record"),
        PassbackMode.HARD: _p("anti-passback mode", "hard: refuse"),
    },
    CodeStatus: {
        CodeStatus.UNUSED: _p("courier code status", "not used yet"),
        CodeStatus.USED: _p("courier code status", "used"),
        CodeStatus.EXPIRED: _p("courier code status", "expired"),
        CodeStatus.REVOKED: _p("courier code status", "cancelled"),
    },
    DoorModeKind: {
        DoorModeKind.LOCKDOWN: _p("door mode", "lockdown"),
        DoorModeKind.EMERGENCY_RELEASE: _p("door mode", "emergency release"),
    },
    ModeScope: {
        ModeScope.ACCESS_POINT: _p("door mode scope", "access point"),
        ModeScope.BUILDING: _p("door mode scope", "building"),
        ModeScope.COMMUNITY: _p("door mode scope", "whole community"),
    },
}

# Temporary cars (server.access.parking).
VOCABULARY[TicketStatus] = {
    TicketStatus.INSIDE: _p("parking ticket", "inside"),
    TicketStatus.DUE: _p("parking ticket", "waiting to pay"),
    TicketStatus.PAID: _p("parking ticket", "paid"),
    TicketStatus.FREE: _p("parking ticket", "left free"),
    TicketStatus.REENTERED: _p("parking ticket", "came in again"),
}
VOCABULARY[PaymentMethod] = {
    PaymentMethod.CASH: _p("payment", "cash"),
    PaymentMethod.WECHAT: _p("payment", "WeChat Pay"),
    PaymentMethod.ALIPAY: _p("payment", "Alipay"),
}
VOCABULARY[IntercomStatus] = {
    IntercomStatus.RINGING: _p("intercom call", "ringing"),
    IntercomStatus.ROLLED_OVER: _p("intercom call", "at the guard booth"),
    IntercomStatus.ANSWERED: _p("intercom call", "opened"),
    IntercomStatus.REFUSED: _p("intercom call", "declined"),
    IntercomStatus.TIMED_OUT: _p("intercom call", "not answered"),
}

# Values stored as plain text rather than as an enum (a consent's purpose).
CONSENT_PURPOSES: dict[str, LazyString] = {
    "face_recognition": _p("consent purpose", "face recognition"),
}

# Reads of personal data (``DataRead``, docs/audit.md): why an officer opened an identity,
# and what was read. Plain text in the table, like a consent's purpose.
READ_WORDS: dict[str, LazyString] = {
    "welfare_check": _p("read purpose", "welfare check"),
    "investigation": _p("read purpose", "investigation"),
    "welfare_view": _p("data read", "identity behind an alert"),
    "person_page": _p("data read", "person page"),
    "person_api": _p("data read", "person (API)"),
    "person_list": _p("data read", "list of people"),
    "event_snapshot": _p("data read", "picture of a known person"),
    "wanted": _p("watchlist category", "wanted"),
    "missing": _p("watchlist category", "missing"),
}


# What each audit action (``AuditEntry.action``) means, for the audit viewer and its CSV:
# every code ``audit.record`` is called with (tests/core/test_audit_words.py checks).
AUDIT_ACTIONS: dict[str, LazyString] = {
    "access_point.create": _p("audit action", "access point added"),
    "access_point.lock": _p("audit action", "door locked remotely"),
    "access_point.open": _p("audit action", "door opened remotely"),
    "access_point.unlock_hold": _p("audit action", "door held open remotely"),
    "access_point.update": _p("audit action", "access point changed"),
    "alert.acknowledged": _p("audit action", "alert acknowledged"),
    "alert.bundle": _p("audit action", "alert evidence downloaded"),
    "alert.dispatch": _p("audit action", "alert dispatched to an officer"),
    "alert.dispatch_accept": _p("audit action", "dispatch accepted"),
    "alert.resolved": _p("audit action", "alert resolved"),
    "anti_passback.reset": _p("audit action", "anti-passback reset"),
    "anti_passback_pair.create": _p("audit action", "anti-passback pair added"),
    "anti_passback_pair.delete": _p("audit action", "anti-passback pair deleted"),
    "anti_passback_pair.update": _p("audit action", "anti-passback pair changed"),
    "audit.export": _p("audit action", "audit log exported"),
    "auth.login": _p("audit action", "signed in"),
    "auth.sign_out_everywhere": _p("audit action", "signed out on every device"),
    "auth.token": _p("audit action", "API token issued"),
    "building.create": _p("audit action", "building added"),
    "building.delete": _p("audit action", "building deleted"),
    "building.update": _p("audit action", "building changed"),
    "cards.create": _p("audit action", "card issued"),
    "cards.update": _p("audit action", "card changed"),
    "community.create": _p("audit action", "community added"),
    "community.update": _p("audit action", "community changed"),
    "consent.grant": _p("audit action", "consent given"),
    "consent.withdraw": _p("audit action", "consent withdrawn"),
    "courier_code.create": _p("audit action", "courier code issued"),
    "courier_code.revoke": _p("audit action", "courier code cancelled"),
    "data_key.rotate": _p("audit action", "data key rotated"),
    "device.display": _p("audit action", "text sent to a device"),
    "device.lock": _p("audit action", "device told to lock"),
    "device.open": _p("audit action", "device told to open"),
    "device.provision": _p("audit action", "device provisioned"),
    "device.reboot": _p("audit action", "device restarted"),
    "device.rotate_secret": _p("audit action", "device secret replaced"),
    "device.unlock_hold": _p("audit action", "device told to hold open"),
    "device.update": _p("audit action", "device changed"),
    "door_mode.emergency_release.lift": _p("audit action", "emergency release lifted"),
    "door_mode.emergency_release.start": _p("audit action", "emergency release started"),
    "door_mode.lockdown.lift": _p("audit action", "lockdown lifted"),
    "door_mode.lockdown.start": _p("audit action", "lockdown started"),
    "face.delete": _p("audit action", "face deleted"),
    "face.enrol": _p("audit action", "face enrolled"),
    "holiday.create": _p("audit action", "holiday added"),
    "holiday.delete": _p("audit action", "holiday deleted"),
    "holiday.update": _p("audit action", "holiday changed"),
    "intercom.open": _p("audit action", "door opened from the intercom"),
    "intercom.refuse": _p("audit action", "intercom call refused"),
    "lease.create": _p("audit action", "lease added"),
    "lease.end_early": _p("audit action", "lease ended early"),
    "lease.ended": _p("audit action", "lease ended"),
    "lease.renew": _p("audit action", "lease renewed"),
    "lease.shorten": _p("audit action", "lease shortened"),
    "notification_gateway.delete": _p("audit action", "SMS gateway removed"),
    "notification_gateway.set": _p("audit action", "SMS gateway set"),
    "officer.duty": _p("audit action", "officer on or off duty"),
    "parking.payment": _p("audit action", "parking fee paid"),
    "pass.create": _p("audit action", "visitor pass issued"),
    "pass.revoke": _p("audit action", "visitor pass cancelled"),
    "patrol_route.create": _p("audit action", "patrol route added"),
    "patrol_route.delete": _p("audit action", "patrol route deleted"),
    "patrol_route.update": _p("audit action", "patrol route changed"),
    "person.create": _p("audit action", "person created"),
    "person.erasure": _p("audit action", "personal data erased"),
    "person.export": _p("audit action", "personal data exported"),
    "person.id_check": _p("audit action", "ID check"),
    "person.move_out": _p("audit action", "person moved out"),
    "person.update": _p("audit action", "person changed"),
    "plate.block": _p("audit action", "plate blocked"),
    "plate.unblock": _p("audit action", "plate unblocked"),
    "registration.approve": _p("audit action", "registration approved"),
    "registration.edit": _p("audit action", "registration corrected"),
    "registration.reject": _p("audit action", "registration rejected"),
    "registration.submit": _p("audit action", "registration submitted"),
    "registration_link.create": _p("audit action", "registration link made"),
    "registration_link.disable": _p("audit action", "registration link disabled"),
    "rfid_tags.create": _p("audit action", "RFID tag issued"),
    "rfid_tags.update": _p("audit action", "RFID tag changed"),
    "site_plan.delete": _p("audit action", "site plan deleted"),
    "site_plan.replace": _p("audit action", "site plan replaced"),
    "site_plan.upload": _p("audit action", "site plan uploaded"),
    "stranger.hold": _p("audit action", "stranger's evidence held"),
    "stranger.known": _p("audit action", "stranger marked as known"),
    "stranger.release": _p("audit action", "stranger's evidence released"),
    "unit.create": _p("audit action", "unit added"),
    "unit.delete": _p("audit action", "unit deleted"),
    "unit.update": _p("audit action", "unit changed"),
    "user.activate": _p("audit action", "account activated"),
    "user.create": _p("audit action", "account created"),
    "user.invite": _p("audit action", "account invited"),
    "user.invite_again": _p("audit action", "account invited again"),
    "user.mqtt_credentials": _p("audit action", "MQTT credentials issued"),
    "user.update": _p("audit action", "account changed"),
    "vehicles.create": _p("audit action", "vehicle registered"),
    "vehicles.update": _p("audit action", "vehicle changed"),
    "watchlist.enrol": _p("audit action", "added to the watchlist"),
    "watchlist.remove": _p("audit action", "removed from the watchlist"),
    "webhook.create": _p("audit action", "webhook added"),
    "webhook.delete": _p("audit action", "webhook deleted"),
    "worker_permit.update": _p("audit action", "worker permit changed"),
}


def audit_action(code: str) -> str:
    """An audit action in words in the request's language; an unknown code as it is."""
    words = AUDIT_ACTIONS.get(code)
    return str(words) if words is not None else code


def word(value: Any) -> str:
    """A domain value in words in the request's language (``—`` for none).

    ``value`` is a member of one of the vocabulary's enums; a plain string is looked up in
    every type (the first type that knows it answers), and a value nobody translated is
    shown with spaces for underscores rather than not at all.
    """
    if value is None:
        return "—"
    if isinstance(value, StrEnum):
        words = VOCABULARY.get(type(value), {}).get(value)
        if words is not None:
            return str(words)
        text = value.value
    else:
        text = str(value)
        for table in (*VOCABULARY.values(), CONSENT_PURPOSES, READ_WORDS):
            if text in table:
                return str(table[text])
    return text.replace("_", " ")
