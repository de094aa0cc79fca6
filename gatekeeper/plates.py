"""Licence plates: normalisation (validation against GA 36-2018 comes with the car-gate work)."""

from __future__ import annotations

import unicodedata

_SEPARATORS = str.maketrans("", "", " \t·•.-_")


def normalise_plate(text: str) -> str:
    """Camera and keyboard spellings to one form: half-width, no separators, upper case.

    ``"浙Ａ·１２３４５"`` and ``"浙a 12345"`` both become ``"浙A12345"``.
    """
    return unicodedata.normalize("NFKC", text).translate(_SEPARATORS).upper()
