"""User accounts and the caller's own session."""

from __future__ import annotations

from typing import Any

from flask import g
from flask_babel import lazy_gettext as _l

from server.api import authenticated_blueprint, scope
from server.api.pagination import paginated
from server.api.schemas import MqttCredentialsSchema, UserPatchSchema, UserSchema
from server.core import audit
from server.core.auth import end_sign_ins, revoke_token
from server.core.errors import Invalid
from server.devices.broker_sync import issue_officer_credentials, sync_broker
from server.extensions import db
from server.models import User
from server.people import accounts

blp = authenticated_blueprint("accounts", "User accounts")


def user_answer(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "display_name": user.display_name,
        "community_ids": [c.id for c in user.communities],
        "unit_id": user.unit_id,
        "person_id": user.person_id,
        "disabled": user.disabled,
        "created_at": user.created_at,
        "last_login_at": user.last_login_at,
        "supervisor": user.supervisor,
    }


@blp.get("/me")
@blp.response(200, UserSchema)
def me() -> Any:
    """The signed-in account."""
    return user_answer(g.principal)


@blp.delete("/auth/token")
@blp.response(204)
def delete_token() -> None:
    """Revoke the bearer token this request carries (sign out an API client)."""
    if "bearer_token" not in g:
        raise Invalid(_l("This request carries no bearer token to revoke."))
    revoke_token(g.bearer_token)
    db.session.commit()


@blp.post("/auth/sign-out-everywhere")
@blp.response(204)
def sign_out_everywhere() -> None:
    """End every sign-in of the caller's account: all API tokens (this one too) and every
    browser's page session."""
    end_sign_ins(g.principal)
    audit.record(g.principal, "auth.sign_out_everywhere", community_id=None, target=g.principal)
    db.session.commit()


@blp.get("/users")
@blp.response(200, UserSchema(many=True))
@blp.paginate()
def list_users(pagination_parameters: Any) -> Any:
    """Accounts the caller may see: all for admins, their communities' for staff."""
    rows = paginated(scope().query(User).order_by(User.username), pagination_parameters)
    return [user_answer(u) for u in rows]


@blp.post("/users")
@blp.arguments(UserSchema)
@blp.response(201, UserSchema)
def create_user(data: dict[str, Any]) -> Any:
    """Create an account. Staff create residents of their communities; admins anyone.
    Residents need ``unit_id``; staff and officers at least one of ``community_ids``."""
    user = accounts.create_user(scope(), data)
    db.session.commit()
    return user_answer(user)


@blp.get("/users/<user_id>")
@blp.response(200, UserSchema)
def get_user(user_id: str) -> Any:
    return user_answer(scope().get(User, user_id))


@blp.patch("/users/<user_id>")
@blp.arguments(UserPatchSchema)
@blp.response(200, UserSchema)
def update_user(changes: dict[str, Any], user_id: str) -> Any:
    """Change the display name or password, disable, or (admins) change communities (staff
    and officer accounts only). An empty body answers 422: nothing to change."""
    user = accounts.update_user(scope(), user_id, changes)
    db.session.commit()
    if user.mqtt_password_hash:  # an officer's broker account follows disabling and communities
        sync_broker()
    return user_answer(user)


@blp.post("/users/<user_id>/mqtt-credentials")
@blp.response(200, MqttCredentialsSchema)
def issue_mqtt_credentials(user_id: str) -> Any:
    """New MQTT credentials for an officer, shown once; the previous password stops working.

    For the officer themself or an administrator. The officer's broker account may read
    ``gk/v1/{community_id}/alerts`` of each community they cover.
    """
    credentials = issue_officer_credentials(scope(), user_id)
    db.session.commit()
    sync_broker()
    return credentials.as_answer()
