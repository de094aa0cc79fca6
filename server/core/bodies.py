"""What a request's JSON body may hold, checked once where it is parsed.

Both parsers of request bodies call :func:`checked`: Flask's (``request.get_json``, through
:class:`JSONProvider`, set on the app in ``create_app``) and webargs' (the API's
arguments, ``server.api._JsonParser``). A string with a lone UTF-16 surrogate
(``"\\ud800"``) cannot be stored or sent on (``gatekeeper.text``): the whole body is
refused with a 422 naming where it was, and nothing is stored.
"""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider

from gatekeeper.text import lone_surrogate_at
from server.core.errors import Invalid

LONE_SURROGATE = "Text must be valid Unicode: this holds a lone UTF-16 surrogate."


def checked(data: Any) -> Any:
    """``data`` (decoded JSON) unchanged, or :class:`Invalid` if any string cannot be UTF-8."""
    path = lone_surrogate_at(data)
    if path is not None:
        raise Invalid(
            "The body holds text that is not valid Unicode (a lone UTF-16 surrogate).",
            errors={path or "_body": [LONE_SURROGATE]},
        )
    return data


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, with request bodies :func:`checked` as they are loaded."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return checked(super().loads(s, **kwargs))
