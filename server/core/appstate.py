"""Objects kept once per app in ``app.extensions``: made on first use, shared by its threads."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app

T = TypeVar("T")


def per_app(key: str, make: Callable[[], T], app: Flask | None = None) -> T:
    """The app's one object under ``key``, made by ``make`` the first time it is asked for.

    ``app`` defaults to the current app. Two threads asking at once may both call ``make``;
    ``setdefault`` keeps the first object, so every thread holds the same one.
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    existing = app.extensions.get(key)
    if existing is None:
        existing = app.extensions.setdefault(key, make())
    return existing
