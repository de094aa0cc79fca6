"""User accounts: who may create whom, and with which scope."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from server.core import audit
from server.core.auth import end_sign_ins, hash_password
from server.core.errors import Conflict, Forbidden, Invalid
from server.core.scope import Scope
from server.core.wording import word
from server.extensions import db
from server.models import Community, Membership, Person, Unit, User, UserRole, utcnow

_COMMUNITY_ROLES = {UserRole.STAFF, UserRole.OFFICER}

# The messages in an error's ``errors`` are translated when raised (gettext, ``_``): the
# command line joins them as text. Its ``detail`` is lazy (``_l``) like every other.


def _communities(ids: list[str]) -> list[Community]:
    found = list(db.session.scalars(select(Community).where(Community.id.in_(ids))))
    missing = sorted(set(ids) - {c.id for c in found})
    if missing:
        raise Invalid(
            _l("Unknown communities."),
            errors={
                "community_ids": [_("No community with id %(id)s.", id=repr(m)) for m in missing]
            },
        )
    return found


def create_user(scope: Scope, data: dict[str, Any]) -> User:
    """A new account. Staff may create residents of their communities; admins anyone."""
    scope.require_write(User)
    role: UserRole = data["role"]
    if not scope.is_admin and role is not UserRole.RESIDENT:
        raise Forbidden(_l("Staff can create resident accounts only."))
    user = User(
        username=data["username"],
        role=role,
        display_name=data.get("display_name"),
        password_hash=hash_password(data["password"]),
    )
    errors: dict[str, list[str]] = {}
    if role in _COMMUNITY_ROLES:
        if not data.get("community_ids"):
            errors["community_ids"] = [
                _("An account of the role %(role)s needs at least one community.", role=word(role))
            ]
        else:
            user.communities = _communities(data["community_ids"])
    elif data.get("community_ids"):
        errors["community_ids"] = [
            _("An account of the role %(role)s has no community list.", role=word(role))
        ]
    if data.get("supervisor"):
        if role is UserRole.STAFF:
            user.supervisor = True
        else:
            errors["supervisor"] = [_("Only staff accounts can be supervisors.")]
    if role is UserRole.RESIDENT:
        _bind_resident(scope, user, data, errors)
    elif data.get("unit_id") or data.get("person_id"):
        errors["unit_id"] = [_("Only resident accounts belong to a unit.")]
    if errors:
        raise Invalid(_l("The account is not valid."), errors=errors)
    if db.session.scalar(select(User.id).where(User.username == user.username)):
        raise Conflict(_l("The username %(username)s is taken.", username=repr(user.username)))
    db.session.add(user)
    db.session.flush()
    community_id = user.unit.community_id if user.unit else None
    audit.record(
        scope.user,
        "user.create",
        community_id=community_id,
        target=user,
        details={
            "username": user.username,
            "role": role.value,
            "community_ids": [c.id for c in user.communities],
            "supervisor": user.supervisor,
        },
    )
    return user


def _bind_resident(
    scope: Scope, user: User, data: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    unit_id = data.get("unit_id")
    unit = db.session.scalar(scope.query(Unit).where(Unit.id == unit_id)) if unit_id else None
    if unit is None:
        errors["unit_id"] = [_("A resident account needs a unit in your communities.")]
        return
    user.unit = unit
    if data.get("person_id"):
        person = db.session.scalar(
            select(Person).where(
                Person.id == data["person_id"], Person.community_id == unit.community_id
            )
        )
        if person is None:
            errors["person_id"] = [_("No such person in the unit's community.")]
        elif not _lives_in(person, unit):
            message = _("This person has no current membership in this unit.")
            errors["person_id"], errors["unit_id"] = [message], [message]
        else:
            user.person_id = person.id


def _lives_in(person: Person, unit: Unit) -> bool:
    """Whether ``person`` holds a membership of ``unit`` now.

    A resident account acts for its unit (passes, remote open, the household's history)
    and as its person (the door policy), so the two must belong together: the person of
    102 bound to an account of 101 would issue 101's passes with 102's rights.
    """
    now = utcnow()
    return (
        db.session.scalar(
            select(Membership.id).where(
                Membership.person_id == person.id,
                Membership.unit_id == unit.id,
                or_(Membership.valid_from.is_(None), Membership.valid_from <= now),
                or_(Membership.valid_until.is_(None), Membership.valid_until > now),
            )
        )
        is not None
    )


def update_user(scope: Scope, user_id: str, changes: dict[str, Any]) -> User:
    user = scope.get(User, user_id)
    is_self = user.id == scope.user.id
    if not is_self:
        scope.require_write(User)
        if not scope.is_admin and user.role is not UserRole.RESIDENT:
            raise Forbidden(_l("Staff can change resident accounts only."))
    elif set(changes) - {"password", "display_name"}:
        raise Forbidden(_l("You can change your own password and display name only."))
    details: dict[str, Any] = {}
    if "community_ids" in changes:
        scope.require_admin()
        if user.role not in _COMMUNITY_ROLES or not changes["community_ids"]:
            raise Invalid(
                _l("Only staff and officers have communities, at least one."),
                errors={"community_ids": [_("Not applicable or empty.")]},
            )
        user.communities = _communities(changes["community_ids"])
        details["community_ids"] = [c.id for c in user.communities]
    if "supervisor" in changes:
        scope.require_admin()
        if user.role is not UserRole.STAFF:
            raise Invalid(
                _l("Only staff accounts can be supervisors."),
                errors={"supervisor": [_("Only staff accounts can be supervisors.")]},
            )
        user.supervisor = details["supervisor"] = changes["supervisor"]
    if "display_name" in changes:
        user.display_name = details["display_name"] = changes["display_name"]
    if "password" in changes:
        user.password_hash = hash_password(changes["password"])
        details["password_changed"] = True
        # Every API client and every other browser is signed out; the browser of a user
        # who changed their own password stays signed in.
        end_sign_ins(user, keep_this_browser=is_self)
    if "disabled" in changes:
        user.disabled_at = utcnow() if changes["disabled"] else None
        details["disabled"] = changes["disabled"]
        if changes["disabled"]:
            end_sign_ins(user)
    if details:
        audit.record(
            scope.user,
            "user.update",
            community_id=user.unit.community_id if user.unit else None,
            target=user,
            details=details,
        )
    return user
