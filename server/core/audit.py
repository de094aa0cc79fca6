"""The audit log: who changed what, in which community, from where; and who read whose
personal data, what, why and when (``record_read``, docs/audit.md)."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request

from server.extensions import db
from server.models import AuditEntry, DataRead, User, UserRole


def record(
    actor: User | None,
    action: str,
    *,
    community_id: str | None,
    target: Any = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit entry to the session (committed with the change it describes).

    ``details`` must never hold secrets, ID numbers or biometric data.
    """
    entry = AuditEntry(
        community_id=community_id,
        actor_user_id=actor.id if actor else None,
        actor=actor.username if actor else "system",
        action=action,
        target_type=type(target).__name__ if target is not None else None,
        target_id=getattr(target, "id", None),
        details=details or {},
        remote_addr=request.remote_addr if has_request_context() else None,
    )
    db.session.add(entry)
    return entry


def record_read(
    actor: User | None,
    person_or_id: Any,
    what: str,
    *,
    community_id: str | None,
    purpose: str | None = None,
    alert_id: str | None = None,
    person_ids: list[str] | None = None,
) -> DataRead | None:
    """Add a record of a read of one person's personal data (one INSERT, committed with the
    request's transaction).

    ``person_or_id`` is the person (or a watchlist entry) or its id; a list's read passes
    ``LISTED`` and the ids shown in ``person_ids``. Residents reading their own unit's data
    are not recorded (None): only staff, officers and administrators are.
    """
    if actor is None or actor.role is UserRole.RESIDENT:
        return None
    entry = DataRead(
        community_id=community_id,
        actor_user_id=actor.id,
        actor=actor.username,
        actor_role=actor.role.value,
        person_id=getattr(person_or_id, "id", person_or_id),
        what=what,
        purpose=purpose,
        alert_id=alert_id,
        person_ids=person_ids,
        remote_addr=request.remote_addr if has_request_context() else None,
    )
    db.session.add(entry)
    return entry


# ``person_id`` of a list's read: the people shown are in ``person_ids``.
LISTED = "*"
