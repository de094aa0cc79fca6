"""Words people read: refusal reasons of the face quality check and of doors, input rules."""

from __future__ import annotations

from typing import Any

from gatekeeper.faces import ENROLMENT_THRESHOLDS, FaceQualityReason
from gatekeeper.vocabulary import CredentialType, Reason

# The phone rule of PersonSchema, in words (its own message is a bare "does not match").
PHONE_FORMAT = "digits, spaces and dashes, with an optional + in front (5 to 20 characters)"

# Staff-facing words for the quality check's reason codes.
FACE_REASON_WORDS = {
    FaceQualityReason.NO_FACE: "No face found",
    FaceQualityReason.MULTIPLE_FACES: "More than one face in the photo",
    FaceQualityReason.FACE_TOO_SMALL: "The face is too small: come closer or use a larger photo",
    FaceQualityReason.TOO_BLURRY: "The photo is too blurry",
}


def face_reason_words(reason: str | None) -> str:
    """The words for a quality reason code (the code itself when it is unknown)."""
    try:
        return FACE_REASON_WORDS[FaceQualityReason(reason)]
    except ValueError:
        return str(reason)


def face_measurement_lines(measurements: dict[str, Any] | None) -> list[str]:
    """What the quality check measured, with the minimums the face had to reach."""
    if not measurements:
        return []
    lines = []
    if "image_width" in measurements:
        lines.append(f"image {measurements['image_width']}x{measurements['image_height']} px")
    if "face_width_px" in measurements:
        lines.append(f"face width {measurements['face_width_px']} px")
    if "eye_distance_px" in measurements:
        lines.append(
            f"eye distance {measurements['eye_distance_px']} px"
            f" (at least {ENROLMENT_THRESHOLDS.min_eye_distance_px:g})"
        )
    if "sharpness" in measurements:
        lines.append(
            f"sharpness {measurements['sharpness']}"
            f" (at least {ENROLMENT_THRESHOLDS.min_sharpness:g})"
        )
    if "brightness" in measurements:
        lines.append(f"brightness {measurements['brightness']} of 255")
    return lines


# Why a door opened or stayed shut, in words a resident reads on their phone.
REASON_WORDS: dict[str, str] = {
    Reason.RESIDENT: "Resident",
    Reason.TENANT: "Tenant",
    Reason.WORKER: "Worker's permit",
    Reason.VISITOR_PASS: "Visitor pass",
    Reason.RESIDENT_VEHICLE: "Household car",
    Reason.VISITOR_VEHICLE: "Guest's car",
    Reason.CARD: "Card",
    Reason.REMOTE_OPEN: "Opened from the phone",
    Reason.UNKNOWN_FACE: "Face not recognised",
    Reason.NO_FACE: "No face seen",
    Reason.MULTIPLE_FACES: "More than one face in view",
    Reason.SPOOF_SUSPECTED: "Looked like a photo or a screen",
    Reason.LEASE_EXPIRED: "The lease has ended",
    Reason.LEASE_NOT_STARTED: "The lease has not started yet",
    Reason.OUTSIDE_SCHEDULE: "Outside the door's opening hours",
    Reason.NOT_AUTHORIZED_HERE: "Not allowed at this door",
    Reason.PASS_EXPIRED: "The pass had expired",
    Reason.PASS_USED_UP: "The pass was used up",
    Reason.PASS_REVOKED: "The pass was revoked",
    Reason.PASS_INVALID: "Code not valid (or not valid yet)",
    Reason.UNKNOWN_PLATE: "Plate not known",
    Reason.PLATE_BLOCKED: "Plate blocked",
    Reason.UNKNOWN_CARD: "Card not known",
    Reason.CARD_DISABLED: "Card disabled",
    Reason.PERSON_SUSPENDED: "Access suspended",
    Reason.WATCHLIST: "Refused by security",
}
CREDENTIAL_WORDS: dict[str, str] = {
    CredentialType.FACE: "face",
    CredentialType.QR: "QR code",
    CredentialType.PLATE: "plate",
    CredentialType.CARD: "card",
    CredentialType.TAG: "tag",
    CredentialType.REMOTE: "phone",
}


def reason_words(reason: str | None) -> str:
    """A decision's reason code in words (the code itself when it is unknown)."""
    return REASON_WORDS.get(reason or "", (reason or "unknown").replace("_", " "))
