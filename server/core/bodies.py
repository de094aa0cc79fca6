"""What a request may hold as text, checked once where it comes in.

Text that no backend can store the same way (``gatekeeper.text``: a lone UTF-16
surrogate, a NUL character) is refused before any view runs, so SQLite and PostgreSQL
answer alike and nothing is half-stored:

- JSON bodies, through both parsers, which call :func:`checked`: Flask's
  (``request.get_json``, through :class:`CheckedRequest`) and webargs' (the API's
  arguments, ``server.api._JsonParser``): a 422 naming the field;
- query arguments and form fields (pages and multipart uploads): a 422 naming them;
- a path segment with a NUL names no resource: a 404, as any unknown id.

:func:`init_app` installs the request class and the hook.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, request
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

from gatekeeper.text import Flaw, text_flaw, unstorable_text_at
from server.core.errors import Invalid, NotFound

MESSAGES: dict[Flaw, LazyString] = {
    Flaw.LONE_SURROGATE: _l("Text must be valid Unicode: this holds a lone UTF-16 surrogate."),
    Flaw.NUL: _l("Text must not hold a NUL character."),
}
LONE_SURROGATE = MESSAGES[Flaw.LONE_SURROGATE]
NUL_CHARACTER = MESSAGES[Flaw.NUL]


def _refused(errors: dict[str, list[LazyString]]) -> Invalid:
    return Invalid(
        _l(
            "The request holds text that cannot be stored (a lone UTF-16 surrogate or a NUL "
            "character); see `errors`."
        ),
        errors=errors,
    )


def checked(data: Any) -> Any:
    """``data`` (decoded JSON) unchanged, or :class:`Invalid` if any string is unstorable."""
    found = unstorable_text_at(data)
    if found is not None:
        path, flaw = found
        raise _refused({path or "_body": [MESSAGES[flaw]]})
    return data


class CheckedRequest(Request):
    """Flask's request, with its JSON body :func:`checked` as it is loaded."""

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        return checked(super().get_json(force=force, silent=silent, cache=cache))


def _check_url_and_form() -> None:
    for value in (request.view_args or {}).values():
        if isinstance(value, str) and text_flaw(value) is not None:
            raise NotFound(_l("No such resource."))
    errors: dict[str, list[LazyString]] = {}
    fields = [*request.args.items(multi=True)]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fields.extend(request.form.items(multi=True))
    for name, value in fields:  # a multipart part may come without a name
        name_flaw = text_flaw(name or "")
        flaw = name_flaw or text_flaw(value or "")
        if flaw is not None:
            errors.setdefault("_fields" if name_flaw or not name else name, [MESSAGES[flaw]])
    if errors:
        raise _refused(errors)


def init_app(app: Flask) -> None:
    app.request_class = CheckedRequest
    app.before_request(_check_url_and_form)
