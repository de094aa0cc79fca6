"""The audit log: who changed what, in which community, from where."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request

from server.extensions import db
from server.models import AuditEntry, User


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
