"""A plate as people and cameras type it, checked once for every room (GA 36-2018).

The rule is the engine's (``gatekeeper.plates``); this turns its verdict into the typed
error every API and page answers with: 422 with the reason code, and the engine's
English words in the caller's language.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

from gatekeeper.plates import (
    MAX_INPUT_CHARS,
    PlateError,
    PlateProblem,
    normalise_plate,
    validate_plate,
)
from server.core.errors import Invalid


def plate_words(problem: PlateProblem, text: str) -> LazyString:
    """Why ``text`` is not a plate, in words: the engine's detail, translatable."""
    plate = normalise_plate(text[: MAX_INPUT_CHARS + 1])
    if problem is PlateProblem.EMPTY:
        return _l("no plate given")
    if problem is PlateProblem.TOO_LONG:
        count = len(text) if len(text) > MAX_INPUT_CHARS else len(plate)
        return _l("%(count)s characters; a plate has 7 or 8", count=count)
    if problem is PlateProblem.UNKNOWN_PROVINCE:
        return _l("%(character)s is not a province abbreviation", character=repr(plate[:1]))
    if problem is PlateProblem.FORBIDDEN_LETTER:
        return _l("plates never use the letters I and O")
    if problem is PlateProblem.BAD_AUTHORITY_LETTER:
        return _l(
            "the second character must be the issuing letter, not %(character)s",
            character=repr(plate[1:2]),
        )
    if problem is PlateProblem.BAD_LENGTH:
        return _l("%(count)s characters; a plate has 7 (8 new energy)", count=len(plate))
    return _l("%(plate)s matches no GA 36-2018 plate format", plate=repr(plate))


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
        words = plate_words(error.problem, text)
        raise Invalid(words, errors={field: [words]}, reason=error.problem) from error
