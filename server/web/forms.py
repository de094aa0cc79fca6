"""Helpers the pages share for reading forms and showing validation messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.datastructures import MultiDict

from server.core.localtime import local_to_utc


def read_local(
    form: MultiDict[str, str], name: str, zone: ZoneInfo, errors: dict[str, list[str]]
) -> datetime | None:
    """A ``datetime-local`` input as aware UTC; a message in ``errors`` when it is not one."""
    text = form.get(name, "").strip()
    if not text:
        errors.setdefault(name, []).append("Enter a date and time.")
        return None
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        errors.setdefault(name, []).append("Enter a date and time like 2026-12-01 09:00.")
        return None
    try:
        return local_to_utc(naive.replace(tzinfo=None), zone)
    except ValueError as error:
        errors.setdefault(name, []).append(f"{error}.")
        return None


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Marshmallow's nested messages (or a service's ``errors``) as dotted keys."""
    if isinstance(messages, dict):
        out: dict[str, list[str]] = {}
        for key, value in messages.items():
            name = "" if key == "_schema" else str(key)
            dotted = f"{prefix}.{name}" if prefix and name else prefix or name
            for field, texts in flatten_messages(value, dotted).items():
                out.setdefault(field, []).extend(texts)
        return out
    if isinstance(messages, list | tuple):
        out = {}
        for item in messages:
            for field, texts in flatten_messages(item, prefix).items():
                out.setdefault(field, []).extend(texts)
        return out
    return {prefix: [str(messages)]}
