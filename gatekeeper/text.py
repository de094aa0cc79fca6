"""Text that can be stored and sent on: no lone UTF-16 surrogates, no NUL characters.

JSON may spell a character as a ``\\uXXXX`` escape, and ``json.loads`` turns two kinds of
escape into Python strings that fail later, far from where they came in:

- a lone surrogate (``"\\ud800"``, half of a UTF-16 pair), which UTF-8 cannot encode:
  SQLite, PostgreSQL and every JSON encoder with ``ensure_ascii=False`` fail on it;
- a NUL (``"\\u0000"``), which PostgreSQL's text cannot hold and C firmware reads as the
  end of the string, so one backend would store what the other refuses.

The server's HTTP boundary and the MQTT decoder check every string (keys too) once with
:func:`unstorable_text_at`, and refuse the whole body or message.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

NUL = "\x00"


class Flaw(StrEnum):
    """Why a text cannot be stored."""

    LONE_SURROGATE = "lone UTF-16 surrogate"
    NUL = "NUL character"


def text_flaw(text: str) -> Flaw | None:
    """What makes ``text`` unstorable, or None for text like any other."""
    if NUL in text:
        return Flaw.NUL
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return Flaw.LONE_SURROGATE
    return None


def unstorable_text_at(value: Any) -> tuple[str, Flaw] | None:
    """Where the first unstorable string is in decoded JSON, and why; None if there is none.

    The path is dotted (``"items.2.name"``; ``""`` for the top level); a key that is
    unstorable is named by the path of its object. Iterative, so any depth the JSON parser
    accepted is walked.
    """
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            flaw = text_flaw(item)
            if flaw is not None:
                return path, flaw
        elif isinstance(item, dict):
            for key in item:
                flaw = text_flaw(str(key))
                if flaw is not None:
                    return path, flaw
            pending.extend(
                (f"{path}.{key}" if path else str(key), child)
                for key, child in reversed(item.items())
            )
        elif isinstance(item, list):
            pending.extend(
                (f"{path}.{index}" if path else str(index), child)
                for index, child in reversed(list(enumerate(item)))
            )
    return None
