"""Identity-document numbers for tests, built with the engine's own check character."""

from __future__ import annotations

from datetime import date

from gatekeeper.identity import check_character


def make_resident_id(
    region: str = "330106", birth: date = date(1990, 1, 1), sequence: int = 123
) -> str:
    """A resident ID number with a correct check character (GB 11643-1999).

    ``region`` is the 6-digit area code, ``sequence`` 0-999 (odd for men, even for
    women). Neither the region nor the date is judged, so tests can also build numbers
    that fail only on them.
    """
    if len(region) != 6 or not region.isascii() or not region.isdigit():
        raise ValueError(f"region must be 6 digits, got {region!r}")
    if not 0 <= sequence <= 999:
        raise ValueError(f"sequence must be 0-999, got {sequence}")
    body = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return body + check_character(body)
