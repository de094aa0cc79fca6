"""Rate limits shared by the API and the pages (Flask-Limiter).

Issuing passes and opening doors remotely are counted per signed-in account, not per
address: a household behind one NAT does not share one budget, and one account cannot
spread its requests over addresses. Sign-ins are counted per account tried and client
address, one budget for the login page and ``POST /api/v1/auth/token`` together.

The counters live in ``RATELIMIT_STORAGE_URI``: Redis in production (``make run``
starts one), so every web process counts into the same budget; ``memory://`` counts per
process and is for tests of a single process only.
"""

from __future__ import annotations

from flask import current_app, g, request
from flask_limiter.util import get_remote_address

from server.core.auth import current_principal
from server.core.errors import DomainError
from server.extensions import limiter


def _per_account() -> str:
    return f"account:{current_principal().id}"


def _per_account_tried_and_client() -> str:
    """The account a sign-in names (the form's or the JSON body's ``username``) and the
    client's address: wrong passwords for one account from one client share a budget."""
    username = request.form.get("username")
    if username is None:
        try:
            body = request.get_json(silent=True)
        except (RecursionError, DomainError):  # the view answers these bodies itself
            body = None
        named = body.get("username") if isinstance(body, dict) else None
        username = named if isinstance(named, str) else ""
    return f"login:{username.strip().casefold()[:64]}|{get_remote_address()}"


def _login_limit() -> str:
    return current_app.config["SETTINGS"].login_rate_limit


def _pass_limit() -> str:
    return current_app.config["SETTINGS"].pass_rate_limit


def _registration_limit() -> str:
    return current_app.config["SETTINGS"].registration_rate_limit


def _pin_limit() -> str:
    return current_app.config["SETTINGS"].pin_rate_limit


def _per_device() -> str:
    return f"device:{g.door.device.id}"


def _remote_open_limit() -> str:
    return current_app.config["SETTINGS"].remote_open_rate_limit


# One budget each, whichever interface the request comes through.
signing_in = limiter.shared_limit(
    _login_limit, scope="login", key_func=_per_account_tried_and_client, methods=["POST"]
)
issuing_passes = limiter.shared_limit(
    _pass_limit, scope="pass-issue", key_func=_per_account, methods=["POST"]
)
# Nobody is signed in on the lobby's form: counted per client address.
registering = limiter.shared_limit(
    _registration_limit, scope="registration", key_func=get_remote_address, methods=["POST"]
)
_remote_opens = limiter.shared_limit(
    _remote_open_limit, scope="remote-open", key_func=_per_account, methods=["POST"]
)


@_remote_opens
def spend_remote_open() -> None:
    """Count one remote open against the caller's budget; 429 once it is spent.

    Called by the remote-open service after it has found the door in the caller's scope,
    not as a view decorator: a decorator runs before the view, so a door the caller cannot
    see would spend their budget and answer 429 where the scope rule says 404.
    """


_pin_entries = limiter.shared_limit(_pin_limit, scope="pin", key_func=_per_device, methods=["POST"])


@_pin_entries
def spend_pin_entry() -> None:
    """Count one keypad code against the calling device's budget; 429 once it is spent.

    Called by ``POST /api/v1/verify/pin`` once the device is authenticated (``g.door``), so
    requests with a bad credential spend no device's budget.
    """
