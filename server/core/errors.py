"""Typed errors raised by services; ``server.core.problems`` turns them into HTTP answers.

A ``detail`` (and each message in an ``Invalid``'s ``errors``) is written with
``lazy_gettext`` (``_l``): it stays a lazy text until the answer is built, so a problem
document's ``detail`` is in the caller's language (``server.core.problems`` makes every
lazy text in it a plain string); ``str(error)`` is the detail in the language of the
moment (English outside a request: the command line, the logs).
"""

from __future__ import annotations

from typing import Any

from flask_babel.speaklater import LazyString

# What a detail or a field message may be: plain text, or a lazy translation.
Text = str | LazyString


class DomainError(Exception):
    """Base of the errors a service raises on purpose."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: Text, **extensions: Any):
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    def __str__(self) -> str:
        return str(self.detail)


class NotFound(DomainError):
    """Missing, or outside the caller's scope: both answer the same, so ids cannot be probed."""

    status = 404
    slug = "not-found"
    title = "Not found"


class Unauthorized(DomainError):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"


class Forbidden(DomainError):
    status = 403
    slug = "forbidden"
    title = "Not allowed"


class Conflict(DomainError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class Invalid(DomainError):
    """Well-formed input that breaks a rule; ``errors`` maps fields to messages."""

    status = 422
    slug = "validation-error"
    title = "Invalid input"

    def __init__(self, detail: Text, errors: dict[str, Any] | None = None, **extensions: Any):
        if errors:
            extensions["errors"] = errors
        super().__init__(detail, **extensions)


class PayloadTooLarge(DomainError):
    """An upload over the size limits (bytes or pixels)."""

    status = 413
    slug = "payload-too-large"
    title = "Payload too large"
