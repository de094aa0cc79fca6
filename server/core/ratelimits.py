"""Per-account rate limits shared by the API and the pages (Flask-Limiter).

Issuing passes and opening doors remotely are counted per signed-in account, not per
address: a household behind one NAT does not share one budget, and one account cannot
spread its requests over addresses.
"""

from __future__ import annotations

from flask import current_app

from server.core.auth import current_principal
from server.extensions import limiter


def _per_account() -> str:
    return f"account:{current_principal().id}"


def _pass_limit() -> str:
    return current_app.config["SETTINGS"].pass_rate_limit


def _remote_open_limit() -> str:
    return current_app.config["SETTINGS"].remote_open_rate_limit


# Decorators: one budget each, whichever interface the request comes through.
issuing_passes = limiter.shared_limit(
    _pass_limit, scope="pass-issue", key_func=_per_account, methods=["POST"]
)
remote_opens = limiter.shared_limit(
    _remote_open_limit, scope="remote-open", key_func=_per_account, methods=["POST"]
)
