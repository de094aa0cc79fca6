"""A plate as people and cameras type it, checked once for every room (GA 36-2018).

The rule is the engine's (``gatekeeper.plates``); this turns its verdict into the typed
error every API and page answers with: 422 with the reason code.
"""

from __future__ import annotations

from gatekeeper.plates import PlateError, PlateProblem, normalise_plate, validate_plate
from server.core.errors import Invalid


def checked_plate(text: str, field: str = "plate", *, ocr_slips: bool = False) -> str:
    """The normalised plate, or 422 with the GA 36-2018 reason.

    ``ocr_slips``: a camera's read with an ``I`` or ``O`` passes (normalised), since it can
    only be a misread of ``1`` or ``0``; fuzzy matching sorts it out.
    """
    try:
        return validate_plate(text).text
    except PlateError as error:
        if ocr_slips and error.problem is PlateProblem.FORBIDDEN_LETTER:
            return normalise_plate(text)
        raise Invalid(error.detail, errors={field: [error.detail]}, reason=error.problem) from error
