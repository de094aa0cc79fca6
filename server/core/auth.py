"""Who is calling: passwords, bearer tokens, page sessions and device credentials."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app, g, request, session
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select, update

from server.core.errors import Forbidden, Unauthorized
from server.extensions import csrf, db, login_manager
from server.models import ApiToken, Device, User, WebSession, utcnow

# The page session's key in Flask's (signed) session cookie; its SHA-256 is a WebSession row.
SESSION_KEY = "gk_session"
TOKEN_PREFIX = "gkt_"  # noqa: S105 - a prefix that makes leaked tokens easy to spot
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def init_app(app: Flask) -> None:
    # Argon2id with the library's defaults; tests use cheap parameters to stay fast.
    if app.config["SETTINGS"].env == "test":
        app.extensions["password_hasher"] = PasswordHasher(
            time_cost=1, memory_cost=1024, parallelism=1
        )
    else:
        app.extensions["password_hasher"] = PasswordHasher()
    login_manager.login_view = "web.login"
    login_manager.login_message = None
    login_manager.user_loader(_load_session_user)


def _hasher() -> PasswordHasher:
    return current_app.extensions["password_hasher"]


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def check_password(user: User | None, password: str) -> bool:
    """True when ``password`` is ``user``'s; spends the same time when there is no user."""
    if user is None:
        _hasher().hash(password)  # keep the answer's timing from telling whether users exist
        return False
    try:
        _hasher().verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher().check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return True


def authenticate_user(username: str, password: str) -> User | None:
    """The enabled user with these credentials, or None."""
    user = db.session.scalar(select(User).where(User.username == username))
    if not check_password(user, password) or user is None or user.disabled:
        return None
    return user


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def issue_token(user: User) -> tuple[str, datetime]:
    """A new bearer token for ``user`` (returned once; only its hash is kept)."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = utcnow() + timedelta(hours=current_app.config["SETTINGS"].token_ttl_hours)
    db.session.add(ApiToken(user_id=user.id, token_hash=_sha256(raw), expires_at=expires_at))
    return raw, expires_at


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized(_l("Use 'Authorization: Bearer <token>'."))
    return value.strip()


def _token_record(raw: str) -> ApiToken | None:
    return db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _sha256(raw)))


def revoke_token(raw: str) -> None:
    record = _token_record(raw)
    if record is not None and record.revoked_at is None:
        record.revoked_at = utcnow()


def _credential_lifetime() -> timedelta:
    return timedelta(hours=current_app.config["SETTINGS"].token_ttl_hours)


def start_web_session(user: User) -> None:
    """Sign ``user`` in on this browser: a new WebSession row, its key in the cookie."""
    raw = secrets.token_urlsafe(32)
    db.session.add(
        WebSession(
            user_id=user.id, key_hash=_sha256(raw), expires_at=utcnow() + _credential_lifetime()
        )
    )
    session[SESSION_KEY] = raw  # replaces any earlier sign-in's key
    login_user(user)


def _web_session() -> WebSession | None:
    raw = session.get(SESSION_KEY)
    if not isinstance(raw, str):
        return None
    return db.session.scalar(select(WebSession).where(WebSession.key_hash == _sha256(raw)))


def end_web_session() -> None:
    """Sign this browser out: its row is revoked, so a copy of the cookie is worthless too."""
    record = _web_session()
    if record is not None and record.revoked_at is None:
        record.revoked_at = utcnow()
    logout_user()
    session.pop(SESSION_KEY, None)


def end_sign_ins(user: User, *, keep_this_browser: bool = False) -> None:
    """End every page session and API token of ``user`` (a new password keeps the browser
    that set it signed in, when ``keep_this_browser``)."""
    now = utcnow()
    sessions = update(WebSession).where(
        WebSession.user_id == user.id, WebSession.revoked_at.is_(None)
    )
    current = _web_session() if keep_this_browser else None
    if current is not None:
        sessions = sessions.where(WebSession.id != current.id)
    db.session.execute(sessions.values(revoked_at=now))
    db.session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def _load_session_user(user_id: str) -> User | None:
    """Flask-Login's loader: the user only while this browser's WebSession is live."""
    record = _web_session()
    if (
        record is None
        or record.user_id != user_id
        or record.revoked_at is not None
        or record.expires_at <= utcnow()
        or record.user.disabled
    ):
        return None
    return record.user


def authenticate_api_request() -> User:
    """The user behind this API request: a bearer token, else the page session.

    A session-authenticated change must carry the CSRF token (``X-CSRFToken``);
    bearer-token requests cannot be forged by another site, so they need none.
    """
    for name in ("principal", "scope", "bearer_token"):  # never trust a previous request's
        g.pop(name, None)
    raw = _bearer(request.headers.get("Authorization"))
    if raw is not None:
        record = _token_record(raw)
        if (
            record is None
            or record.revoked_at is not None
            or record.expires_at <= utcnow()
            or record.user.disabled
        ):
            raise Unauthorized(_l("The token is unknown, expired or revoked."))
        g.principal = record.user
        g.bearer_token = raw
        return record.user
    if current_user.is_authenticated:
        if request.method not in _SAFE_METHODS:
            csrf.protect()
        g.principal = current_user._get_current_object()
        return g.principal
    raise Unauthorized(
        _l("Sign in, or send 'Authorization: Bearer <token>' from POST /api/v1/auth/token.")
    )


def current_principal() -> User:
    """The authenticated user of this request (set by ``authenticate_api_request``)."""
    principal = g.get("principal")
    if principal is None:
        if not current_user.is_authenticated:
            raise Unauthorized(_l("Sign in first."))
        principal = g.principal = current_user._get_current_object()
    return principal


# Devices -------------------------------------------------------------------------------------


def new_device_secret() -> str:
    """A fresh device secret: 256 random bits, URL-safe, without dots."""
    return secrets.token_urlsafe(32)


def device_secret_hash(secret: str) -> str:
    """What is stored of a device secret for HTTP authentication."""
    return _sha256(secret)


def authenticate_device(
    header: str | None, find: Callable[[str], Device | None] | None = None
) -> Device:
    """The device behind ``Authorization: Bearer <device_id>.<secret>``.

    Wrong or revoked credentials raise 401; a disabled device raises 403 (docs/protocol.md
    section 2). ``find`` reads the device by id (default ``session.get``; the verify
    endpoints read its access point and community in the same statement).
    """
    raw = _bearer(header)
    if raw is None:
        raise Unauthorized(_l("Devices send 'Authorization: Bearer <device_id>.<secret>'."))
    device_id, dot, secret = raw.partition(".")
    if not (dot and secret):
        device = None
    elif find is not None:
        device = find(device_id)
    else:
        device = db.session.get(Device, device_id)
    if device is None or not hmac.compare_digest(device.secret_hash, device_secret_hash(secret)):
        raise Unauthorized(_l("Unknown device or wrong secret."))
    if device.disabled:
        raise Forbidden(_l("This device is disabled."))
    return device
