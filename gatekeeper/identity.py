"""Identity documents: format checks, normalisation and masking.

Numbers are normalised before they are checked: full-width characters become ASCII
(NFKC), white space is removed, letters are upper-cased. Messages never repeat the
number, so an error can be logged or shown without leaking the document.

- ``resident_id``: mainland 居民身份证, 18 characters, GB 11643-1999 (ISO 7064 MOD 11-2
  check character, birth date at positions 7-14, province-level region code).
- ``passport``: Chinese passports (``E`` + 8 digits, ``E`` + letter + 7 digits) and
  foreign passports, whose formats vary by country: any 5-20 letters and digits.
- ``hk_macau_permit``: 港澳居民来往内地通行证, ``H`` or ``M`` + 8 digits (new) or 10 (old).
- ``taiwan_permit``: 台湾居民来往大陆通行证, 8 digits (new) or 10 (old).
- ``foreigner_permanent_residence``: 外国人永久居留身份证, 18 characters starting with 9
  with the same MOD 11-2 check as a resident ID (2017 and 2023 cards), or the old
  3 letters + 12 digits.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum


class DocumentType(StrEnum):
    """The identity documents a person can be enrolled with."""

    RESIDENT_ID = "resident_id"
    PASSPORT = "passport"
    HK_MACAU_PERMIT = "hk_macau_permit"
    TAIWAN_PERMIT = "taiwan_permit"
    FOREIGNER_PERMANENT_RESIDENCE = "foreigner_permanent_residence"


class DocumentProblem(StrEnum):
    """Why a document number was refused (stable codes for forms and APIs)."""

    UNKNOWN_TYPE = "unknown_type"
    EMPTY = "empty"
    BAD_LENGTH = "bad_length"
    BAD_CHARACTERS = "bad_characters"
    BAD_FORMAT = "bad_format"
    BAD_REGION = "bad_region"
    BAD_BIRTH_DATE = "bad_birth_date"
    BAD_CHECK_DIGIT = "bad_check_digit"


class DocumentError(ValueError):
    """A document number that cannot be accepted; ``reason`` says why, the message how to fix."""

    def __init__(self, reason: DocumentProblem, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# GB 11643-1999: weights of the first 17 digits, and the check character by sum mod 11.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_MAP = "10X98765432"

# Province-level divisions (GB/T 2260): the first two digits of a resident ID.
PROVINCE_CODES = frozenset(
    {
        "11", "12", "13", "14", "15",
        "21", "22", "23",
        "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46",
        "50", "51", "52", "53", "54",
        "61", "62", "63", "64", "65",
        "71", "81", "82",
    }
)  # fmt: skip

# China Standard Time has no summer time; "today" for a birth date is China's today.
_CHINA = timezone(timedelta(hours=8), "CST")
_EARLIEST_BIRTH = date(1900, 1, 1)

_RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]", re.ASCII)
_PASSPORT = re.compile(r"[A-Z0-9]{5,20}", re.ASCII)
_HK_MACAU = re.compile(r"[HM]([0-9]{8}|[0-9]{10})", re.ASCII)
_TAIWAN = re.compile(r"[0-9]{8}|[0-9]{10}", re.ASCII)
_PERMANENT_NEW = re.compile(r"9[0-9]{16}[0-9X]", re.ASCII)
_PERMANENT_OLD = re.compile(r"[A-Z]{3}[0-9]{12}", re.ASCII)
# The documents checked by their pattern alone, and what a number that does not fit is told.
_FORMATS: dict[DocumentType, tuple[re.Pattern[str], str]] = {
    DocumentType.PASSPORT: (
        _PASSPORT,
        "a passport number is 5-20 letters and digits "
        "(Chinese passports: E and 8 digits, or E, a letter and 7 digits)",
    ),
    DocumentType.HK_MACAU_PERMIT: (
        _HK_MACAU,
        "a Hong Kong/Macau permit number is H or M followed by 8 digits (or 10 on old cards)",
    ),
    DocumentType.TAIWAN_PERMIT: (
        _TAIWAN,
        "a Taiwan permit number is 8 digits (or 10 on old cards)",
    ),
}

_LABELS = {
    DocumentType.RESIDENT_ID: "a resident ID number",
    DocumentType.PASSPORT: "a passport number",
    DocumentType.HK_MACAU_PERMIT: "a Hong Kong/Macau permit number",
    DocumentType.TAIWAN_PERMIT: "a Taiwan permit number",
    DocumentType.FOREIGNER_PERMANENT_RESIDENCE: "a permanent residence card number",
}


def document_type(value: DocumentType | str) -> DocumentType:
    """The :class:`DocumentType` for a stored or submitted value; DocumentError if unknown."""
    try:
        return DocumentType(value)
    except ValueError:
        known = ", ".join(t.value for t in DocumentType)
        raise DocumentError(
            DocumentProblem.UNKNOWN_TYPE,
            f"unknown document type {value!r}; expected one of {known}",
        ) from None


def normalise_number(number: str) -> str:
    """Full-width to ASCII, white space removed, upper case; no validation."""
    if not isinstance(number, str):
        raise TypeError(f"a document number must be a string, not {type(number).__name__}")
    text = unicodedata.normalize("NFKC", number)
    return "".join(text.split()).upper()


def check_character(body: str) -> str:
    """The GB 11643 / ISO 7064 MOD 11-2 check character for the first 17 digits."""
    if len(body) != 17 or not body.isascii() or not body.isdigit():
        raise ValueError("the check character is computed from exactly 17 digits")
    total = sum(int(digit) * weight for digit, weight in zip(body, _WEIGHTS, strict=True))
    return _CHECK_MAP[total % 11]


def _china_today() -> date:
    return datetime.now(UTC).astimezone(_CHINA).date()


def _check_mod11(number: str, label: str) -> None:
    if check_character(number[:17]) != number[17]:
        raise DocumentError(
            DocumentProblem.BAD_CHECK_DIGIT,
            f"{label} fails its check digit: a character is probably mistyped",
        )


def _birth_date(number: str) -> date:
    text = number[6:14]
    try:
        born = date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise DocumentError(
            DocumentProblem.BAD_BIRTH_DATE,
            "a resident ID number's characters 7-14 must be a real date of birth (YYYYMMDD)",
        ) from None
    return born


def _validate_resident_id(number: str, today: date | None) -> str:
    label = _LABELS[DocumentType.RESIDENT_ID]
    if len(number) == 15 and number.isdigit():
        raise DocumentError(
            DocumentProblem.BAD_LENGTH,
            "15-digit first-generation ID cards are no longer valid; "
            "a resident ID number has 18 characters",
        )
    if len(number) != 18:
        raise DocumentError(
            DocumentProblem.BAD_LENGTH,
            f"{label} has 18 characters, this one has {len(number)}",
        )
    if not _RESIDENT_ID.fullmatch(number):
        raise DocumentError(
            DocumentProblem.BAD_CHARACTERS,
            f"{label} is 17 digits followed by a digit or X",
        )
    if number[:2] not in PROVINCE_CODES:
        raise DocumentError(
            DocumentProblem.BAD_REGION,
            f"{label} starts with a province code (11-82); {number[:2]} is not one",
        )
    born = _birth_date(number)
    if born < _EARLIEST_BIRTH:
        raise DocumentError(DocumentProblem.BAD_BIRTH_DATE, f"{label} gives a birth before 1900")
    if born > (today or _china_today()):
        raise DocumentError(
            DocumentProblem.BAD_BIRTH_DATE, f"{label} gives a birth date in the future"
        )
    _check_mod11(number, label)
    return number


def _validate_permanent_residence(number: str) -> str:
    label = _LABELS[DocumentType.FOREIGNER_PERMANENT_RESIDENCE]
    if _PERMANENT_OLD.fullmatch(number):
        return number
    if _PERMANENT_NEW.fullmatch(number):
        _check_mod11(number, label)
        return number
    raise DocumentError(
        DocumentProblem.BAD_FORMAT,
        f"{label} is 18 characters starting with 9 (17 digits and a digit or X), "
        "or on old cards 3 letters and 12 digits",
    )


def validate_document(
    doc_type: DocumentType | str, number: str, *, today: date | None = None
) -> str:
    """Check a document number and return it normalised; raise DocumentError if refused.

    ``today`` (for the "birth date not in the future" check) defaults to today in China.
    """
    kind = document_type(doc_type)
    normalised = normalise_number(number)
    if not normalised:
        raise DocumentError(DocumentProblem.EMPTY, f"{_LABELS[kind]} is required")
    if not normalised.isascii():
        raise DocumentError(
            DocumentProblem.BAD_CHARACTERS, f"{_LABELS[kind]} has only letters and digits"
        )
    if kind is DocumentType.RESIDENT_ID:
        return _validate_resident_id(normalised, today)
    if kind in _FORMATS:
        pattern, rule = _FORMATS[kind]
        if not pattern.fullmatch(normalised):
            raise DocumentError(DocumentProblem.BAD_FORMAT, rule)
        return normalised
    return _validate_permanent_residence(normalised)


def birth_date_from_resident_id(number: str, *, today: date | None = None) -> date:
    """The date of birth in a (valid) resident ID number; DocumentError if the number is not."""
    return _birth_date(validate_document(DocumentType.RESIDENT_ID, number, today=today))


def mask_document(doc_type: DocumentType | str, number: str) -> str:
    """The number for display: resident IDs keep 4 characters at each end, others 2.

    ``3301**********1234``; ``E1******78``. The length is kept. Short numbers keep fewer
    characters so that at least half of the number is hidden (``A***5``).
    """
    kind = document_type(doc_type)
    text = normalise_number(number)
    keep = 4 if kind is DocumentType.RESIDENT_ID else 2
    keep = min(keep, len(text) // 4)
    if keep == 0:
        return "*" * len(text)
    return text[:keep] + "*" * (len(text) - 2 * keep) + text[-keep:]


def mask_name(name: str) -> str:
    """A name a terminal or a console may show: ``王小明`` -> ``王*明``, ``李华`` -> ``李*``."""
    name = name.strip()
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]
