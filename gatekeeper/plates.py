"""Licence plates: normalisation, validation against GA 36-2018, fuzzy matching of camera reads.

**Formats** (after :func:`normalise_plate`; ``P`` a province abbreviation, ``L`` the issuing
authority letter, ``X`` a letter or digit, letters never ``I`` or ``O``):

================================  ========================  ===============
kind                              shape                     example
================================  ========================  ===============
ordinary (blue, yellow)           ``P L XXXXX``             ``浙B12345``
new energy, small car (green)     ``P L E X 9999``          ``粤BD12345``
new energy, large vehicle         ``P L 99999 E``           ``粤B12345D``
police                            ``P L XXXX 警``            ``京A1234警``
driving school                    ``P L XXXX 学``            ``京N1234学``
trailer                           ``P L XXXX 挂``            ``苏E1234挂``
consulate                         ``P L XXXX 领``            ``沪A1234领``
Hong Kong / Macau cross-border    ``粤Z XXXX 港|澳``          ``粤Z1234港``
embassy                           ``使 999999``               ``使014578``
emergency                         ``P L XXXX 应急``           ``粤B1234应急``
================================  ========================  ===============

``E`` is the energy letter: ``D A B C E`` electric, ``F G H J K`` hybrid and others.

**Fuzzy matching.** Barrier cameras read the plate themselves and confuse some shapes:
``0 O D Q``, ``8 B``, ``1 I``, ``2 Z``, ``5 S``, ``6 G``, and the province character (a
Chinese character the OCR reads worst). :class:`PlateIndex` maps every plate to a
*skeleton*, each confusable character replaced by its class and the province by ``*``,
so the registered plates a read could be are one dictionary lookup away. A near match
differs from the read in at most :data:`MAX_DIFFERENCES` positions, each a confusion.
Whether a near match may open a barrier (unique, low camera confidence, enabled by the
community) is the server's decision.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

_SEPARATORS = str.maketrans("", "", " \t·•.-_")
# Longer input is not looked at (a plate is at most 8 characters).
MAX_INPUT_CHARS = 32

PROVINCES = frozenset("京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼")
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I, no O
ENERGY_LETTERS = "DABCEFGHJK"
_X = f"[{LETTERS}0-9]"


class PlateKind(StrEnum):
    ORDINARY = "ordinary"
    NEW_ENERGY_SMALL = "new_energy_small"
    NEW_ENERGY_LARGE = "new_energy_large"
    POLICE = "police"
    DRIVING_SCHOOL = "driving_school"
    TRAILER = "trailer"
    CONSULATE = "consulate"
    HONG_KONG = "hong_kong"
    MACAU = "macau"
    EMBASSY = "embassy"
    EMERGENCY = "emergency"


class PlateProblem(StrEnum):
    """Why a string is not a plate."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    UNKNOWN_PROVINCE = "unknown_province"
    BAD_AUTHORITY_LETTER = "bad_authority_letter"
    FORBIDDEN_LETTER = "forbidden_letter"
    BAD_LENGTH = "bad_length"
    BAD_FORMAT = "bad_format"


class PlateError(ValueError):
    def __init__(self, problem: PlateProblem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail


@dataclass(frozen=True)
class Plate:
    text: str
    kind: PlateKind


def normalise_plate(text: str) -> str:
    """Camera and keyboard spellings to one form: half-width, no separators, upper case.

    ``"浙Ａ·１２３４５"`` and ``"浙a 12345"`` both become ``"浙A12345"``.
    """
    return unicodedata.normalize("NFKC", text).translate(_SEPARATORS).upper()


_BODY_PATTERNS: tuple[tuple[re.Pattern[str], PlateKind], ...] = (
    (re.compile(f"{_X}{{5}}"), PlateKind.ORDINARY),
    (re.compile(f"[{ENERGY_LETTERS}]{_X}[0-9]{{4}}"), PlateKind.NEW_ENERGY_SMALL),
    (re.compile(f"[0-9]{{5}}[{ENERGY_LETTERS}]"), PlateKind.NEW_ENERGY_LARGE),
    (re.compile(f"{_X}{{4}}警"), PlateKind.POLICE),
    (re.compile(f"{_X}{{4}}学"), PlateKind.DRIVING_SCHOOL),
    (re.compile(f"{_X}{{4}}挂"), PlateKind.TRAILER),
    (re.compile(f"{_X}{{4}}领"), PlateKind.CONSULATE),
    (re.compile(f"{_X}{{4}}港"), PlateKind.HONG_KONG),
    (re.compile(f"{_X}{{4}}澳"), PlateKind.MACAU),
    (re.compile(f"{_X}{{4}}应急"), PlateKind.EMERGENCY),
)
_EMBASSY = re.compile("使[0-9]{6}")


def validate_plate(text: str) -> Plate:
    """The normalised plate and its kind; :class:`PlateError` with the reason otherwise."""
    if len(text) > MAX_INPUT_CHARS:
        raise PlateError(PlateProblem.TOO_LONG, f"{len(text)} characters; a plate has 7 or 8")
    plate = normalise_plate(text)
    if not plate:
        raise PlateError(PlateProblem.EMPTY, "no plate given")
    if _EMBASSY.fullmatch(plate):
        return Plate(plate, PlateKind.EMBASSY)
    if len(plate) > 8:
        raise PlateError(PlateProblem.TOO_LONG, f"{len(plate)} characters; a plate has 7 or 8")
    province, authority, body = plate[0], plate[1:2], plate[2:]
    if province not in PROVINCES:
        raise PlateError(
            PlateProblem.UNKNOWN_PROVINCE, f"{province!r} is not a province abbreviation"
        )
    if authority in ("I", "O") or any(c in "IO" for c in body):
        raise PlateError(PlateProblem.FORBIDDEN_LETTER, "plates never use the letters I and O")
    if not authority or authority not in LETTERS:
        raise PlateError(
            PlateProblem.BAD_AUTHORITY_LETTER,
            f"the second character must be the issuing letter, not {authority!r}",
        )
    if len(plate) < 7:
        raise PlateError(
            PlateProblem.BAD_LENGTH, f"{len(plate)} characters; a plate has 7 (8 new energy)"
        )
    for pattern, kind in _BODY_PATTERNS:
        if pattern.fullmatch(body):
            if kind in (PlateKind.HONG_KONG, PlateKind.MACAU) and plate[:2] != "粤Z":
                break
            return Plate(plate, kind)
    raise PlateError(PlateProblem.BAD_FORMAT, f"{plate!r} matches no GA 36-2018 plate format")


# --- fuzzy matching --------------------------------------------------------------------------

CONFUSIONS = ("0ODQ", "8B", "1I", "2Z", "5S", "6G")
_CLASS = {char: group[0] for group in CONFUSIONS for char in group}
# A near match may differ in this many positions (each a confusion or the province).
MAX_DIFFERENCES = 2


def skeleton(plate: str) -> str:
    """``plate`` with the province as ``*`` and each confusable character as its class."""
    return "*" + "".join(_CLASS.get(char, char) for char in plate[1:]) if plate else ""


def differences(read: str, registered: str) -> int:
    return sum(1 for a, b in zip(read, registered, strict=True) if a != b)


class MatchKind(StrEnum):
    EXACT = "exact"
    NEAR = "near"
    AMBIGUOUS = "ambiguous"
    NONE = "none"


@dataclass(frozen=True)
class PlateMatch:
    kind: MatchKind
    plate: str | None = None  # the registered plate (exact or near)
    candidates: tuple[str, ...] = ()  # near matches considered
    differences: int = 0


class PlateIndex:
    """Registered plates by exact text and by skeleton."""

    def __init__(self, plates: Iterable[str] = ()) -> None:
        self._plates: set[str] = set()
        self._by_skeleton: dict[str, set[str]] = {}
        for plate in plates:
            self.add(plate)

    def __len__(self) -> int:
        return len(self._plates)

    def add(self, plate: str) -> None:
        self._plates.add(plate)
        self._by_skeleton.setdefault(skeleton(plate), set()).add(plate)

    def discard(self, plate: str) -> None:
        self._plates.discard(plate)
        group = self._by_skeleton.get(skeleton(plate))
        if group is not None:
            group.discard(plate)
            if not group:
                del self._by_skeleton[skeleton(plate)]

    def match(self, read: str) -> PlateMatch:
        """Exact, a unique near match, ambiguous, or nothing, for a normalised read."""
        if read in self._plates:
            return PlateMatch(MatchKind.EXACT, read)
        near = sorted(
            (differences(read, plate), plate)
            for plate in self._by_skeleton.get(skeleton(read), ())
            if differences(read, plate) <= MAX_DIFFERENCES
        )
        if not near:
            return PlateMatch(MatchKind.NONE)
        candidates = tuple(plate for _count, plate in near)
        if len(near) > 1:
            return PlateMatch(MatchKind.AMBIGUOUS, candidates=candidates)
        count, plate = near[0]
        return PlateMatch(MatchKind.NEAR, plate, candidates, count)
