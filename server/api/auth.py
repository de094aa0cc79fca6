"""Bearer tokens for API clients."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

from server.api import public_blueprint
from server.api.schemas import TokenRequestSchema, TokenSchema
from server.core import audit
from server.core.auth import authenticate_user, issue_token
from server.core.errors import Unauthorized
from server.core.ratelimits import signing_in
from server.extensions import db
from server.models import utcnow

blp = public_blueprint("auth", "Sign in for API clients")


@blp.post("/auth/token")
@signing_in
@blp.arguments(TokenRequestSchema)
@blp.response(201, TokenSchema)
@blp.doc(security=[])
def create_token(credentials: dict[str, Any]) -> dict[str, Any]:
    """Exchange a username and password for a bearer token."""
    user = authenticate_user(credentials["username"], credentials["password"])
    if user is None:
        raise Unauthorized(_l("Wrong username or password, or the account is disabled."))
    token, expires_at = issue_token(user)
    user.last_login_at = utcnow()
    audit.record(user, "auth.token", community_id=None, target=user)
    db.session.commit()
    return {"token": token, "expires_at": expires_at}
