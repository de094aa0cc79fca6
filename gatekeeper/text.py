"""Text that can be stored and sent on: no lone UTF-16 surrogates.

JSON may spell a character as a ``\\uXXXX`` escape, and ``json.loads`` turns a lone
surrogate escape (``"\\ud800"``, half of a UTF-16 pair) into a Python string that UTF-8
cannot encode: SQLite, PostgreSQL and every JSON encoder with ``ensure_ascii=False``
fail on it later, far from where it came in. The server's HTTP boundary and the MQTT
decoder check every string (keys too) once with :func:`lone_surrogate_at`, and refuse the
whole body or message.
"""

from __future__ import annotations

from typing import Any


def _is_clean(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def lone_surrogate_at(value: Any) -> str | None:
    """Where the first string holding a lone surrogate is in decoded JSON, or None.

    The answer is a dotted path (``"items.2.name"``; ``""`` for the top level); a key that
    holds one is named by the path of its object. Iterative, so any depth the JSON parser
    accepted is walked.
    """
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if not _is_clean(item):
                return path
        elif isinstance(item, dict):
            if not all(_is_clean(str(key)) for key in item):
                return path
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
