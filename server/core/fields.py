"""Marshmallow fields shared by the request schemas."""

from __future__ import annotations

from typing import Any

from marshmallow import fields


class JsonBool(fields.Boolean):
    """A JSON ``true`` or ``false``; marshmallow's Boolean would also take "yes", "off", 1."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value
