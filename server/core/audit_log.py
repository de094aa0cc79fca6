"""The audit viewer's data: changes (``AuditEntry``) and reads of personal data
(``DataRead``) of the communities a supervisor oversees, filtered, merged newest first, and
written as CSV.

Who reads it: administrators (every community, and the server-wide entries) and staff marked
``supervisor`` (their communities); everyone else is refused (403). docs/audit.md.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    cast,
    func,
    literal,
    or_,
    select,
    union_all,
)

from server.core.errors import Forbidden
from server.core.scope import Scope
from server.core.wording import audit_action, word
from server.extensions import db
from server.models import AuditEntry, Community, DataRead, User, UserRole

CHANGE = "change"
READ = "read"
KINDS = (CHANGE, READ)
# The most rows one CSV export holds (narrow the filter for more).
EXPORT_LIMIT = 50_000


def is_supervisor(user: User) -> bool:
    """Administrators, and staff marked as supervisors."""
    return user.role is UserRole.ADMIN or (user.role is UserRole.STAFF and user.supervisor)


def require_supervisor(scope: Scope) -> None:
    if not is_supervisor(scope.user):
        raise Forbidden(_l("Only supervisors and administrators read the audit log."))


@dataclass(frozen=True)
class AuditFilters:
    """Which entries: ``community_ids`` None means every community and the server-wide ones
    (administrators only)."""

    community_ids: frozenset[str] | None
    actor: str | None = None
    person_id: str | None = None
    kind: str | None = None  # change | read | None: both
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AuditRow:
    """One line of the viewer: a change or a read, in the same columns."""

    kind: str
    id: str
    at: datetime
    community_id: str | None
    actor: str
    actor_role: str | None
    action: str  # a change's action (``person.update``), a read's ``what``
    subject: str | None  # ``Person:per_...`` for a change, the person's id for a read
    purpose: str | None
    alert_id: str | None
    details: dict[str, Any]
    remote_addr: str | None


def _mentions(column: Any, ident: str) -> ColumnElement[bool]:
    """Whether a JSON column's text names ``ident`` as a whole string value."""
    return cast(column, String).contains(f'"{ident}"', autoescape=True)


def _changes_where(filters: AuditFilters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if filters.community_ids is not None:
        where.append(AuditEntry.community_id.in_(filters.community_ids))
    if filters.actor:
        where.append(AuditEntry.actor == filters.actor)
    if filters.person_id:
        where.append(
            or_(
                AuditEntry.target_id == filters.person_id,
                _mentions(AuditEntry.details, filters.person_id),
            )
        )
    if filters.since:
        where.append(AuditEntry.at >= filters.since)
    if filters.until:
        where.append(AuditEntry.at < filters.until)
    return where


def _reads_where(filters: AuditFilters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if filters.community_ids is not None:
        where.append(DataRead.community_id.in_(filters.community_ids))
    if filters.actor:
        where.append(DataRead.actor == filters.actor)
    if filters.person_id:
        where.append(
            or_(
                DataRead.person_id == filters.person_id,
                and_(
                    DataRead.person_ids.is_not(None),
                    _mentions(DataRead.person_ids, filters.person_id),
                ),
            )
        )
    if filters.since:
        where.append(DataRead.at >= filters.since)
    if filters.until:
        where.append(DataRead.at < filters.until)
    return where


def changes_query(filters: AuditFilters) -> Select[tuple[AuditEntry]]:
    """Audit entries (changes), newest first."""
    return (
        select(AuditEntry)
        .where(*_changes_where(filters))
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    )


def reads_query(filters: AuditFilters) -> Select[tuple[DataRead]]:
    """Reads of personal data, newest first."""
    return (
        select(DataRead)
        .where(*_reads_where(filters))
        .order_by(DataRead.at.desc(), DataRead.id.desc())
    )


def _keys(filters: AuditFilters) -> Any:
    parts = []
    if filters.kind in (None, CHANGE):
        parts.append(
            select(
                literal(CHANGE, String).label("kind"),
                AuditEntry.id.label("id"),
                AuditEntry.at.label("at"),
            ).where(*_changes_where(filters))
        )
    if filters.kind in (None, READ):
        parts.append(
            select(
                literal(READ, String).label("kind"),
                DataRead.id.label("id"),
                DataRead.at.label("at"),
            ).where(*_reads_where(filters))
        )
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()


def count(filters: AuditFilters) -> int:
    keys = _keys(filters)
    return db.session.scalar(select(func.count()).select_from(keys)) or 0


def rows(filters: AuditFilters, *, limit: int, offset: int = 0) -> list[AuditRow]:
    """Changes and reads together, newest first: one page."""
    keys = _keys(filters)
    page = list(
        db.session.execute(
            select(keys.c.kind, keys.c.id)
            .order_by(keys.c.at.desc(), keys.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    change_ids = [ident for kind, ident in page if kind == CHANGE]
    read_ids = [ident for kind, ident in page if kind == READ]
    loaded: dict[str, AuditRow] = {}
    if change_ids:
        for entry in db.session.scalars(select(AuditEntry).where(AuditEntry.id.in_(change_ids))):
            loaded[entry.id] = change_row(entry)
    if read_ids:
        for read in db.session.scalars(select(DataRead).where(DataRead.id.in_(read_ids))):
            loaded[read.id] = read_row(read)
    return [loaded[ident] for _kind, ident in page if ident in loaded]


def change_row(entry: AuditEntry) -> AuditRow:
    return AuditRow(
        kind=CHANGE,
        id=entry.id,
        at=entry.at,
        community_id=entry.community_id,
        actor=entry.actor,
        actor_role=None,
        action=entry.action,
        subject=f"{entry.target_type}:{entry.target_id}" if entry.target_type else None,
        purpose=None,
        alert_id=None,
        details=entry.details or {},
        remote_addr=entry.remote_addr,
    )


def read_row(read: DataRead) -> AuditRow:
    return AuditRow(
        kind=READ,
        id=read.id,
        at=read.at,
        community_id=read.community_id,
        actor=read.actor,
        actor_role=read.actor_role,
        action=read.what,
        subject=read.person_id,
        purpose=read.purpose,
        alert_id=read.alert_id,
        details={"person_ids": read.person_ids} if read.person_ids else {},
        remote_addr=read.remote_addr,
    )


# CSV -----------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "kind",
    "at",
    "community_id",
    "community",
    "actor",
    "actor_role",
    "action",
    "action_description",
    "subject",
    "purpose",
    "alert_id",
    "details",
    "remote_addr",
)


def _cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula is quoted with a leading '."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def csv_chunks(filters: AuditFilters) -> Iterator[str]:
    """The filtered entries as CSV (UTF-8 with a BOM, so a spreadsheet reads Chinese), times
    ISO 8601 in each community's zone, at most ``EXPORT_LIMIT`` rows, newest first."""
    zones = {
        c.id: (c.name, ZoneInfo(c.timezone))
        for c in db.session.scalars(
            select(Community)
            if filters.community_ids is None
            else select(Community).where(Community.id.in_(filters.community_ids))
        )
    }
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(CSV_COLUMNS)
    step = 1000
    for offset in range(0, EXPORT_LIMIT, step):
        page = rows(filters, limit=min(step, EXPORT_LIMIT - offset), offset=offset)
        for row in page:
            name, zone = zones.get(row.community_id or "", (None, ZoneInfo("UTC")))
            writer.writerow(
                [
                    _cell(value)
                    for value in (
                        row.kind,
                        row.at.astimezone(zone).isoformat(),
                        row.community_id,
                        name,
                        row.actor,
                        row.actor_role,
                        row.action,
                        audit_action(row.action) if row.kind == CHANGE else word(row.action),
                        row.subject,
                        row.purpose,
                        row.alert_id,
                        json.dumps(row.details, ensure_ascii=False) if row.details else "",
                        row.remote_addr,
                    )
                ]
            )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(page) < step:
            return
