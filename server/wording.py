"""Words staff read: refusal reasons of the face quality check, input rules in plain language."""

from __future__ import annotations

from typing import Any

from gatekeeper.faces import ENROLMENT_THRESHOLDS, FaceQualityReason

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
