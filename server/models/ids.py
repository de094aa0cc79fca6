"""Opaque, sortable identifiers: a short type prefix and a ULID (``evt_01JD...``)."""

from ulid import ULID


def new_id(prefix: str) -> str:
    """A new identifier such as ``com_01JD6Z...``; sortable by creation time."""
    return f"{prefix}_{ULID()}"
