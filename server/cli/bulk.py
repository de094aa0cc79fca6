"""Bulk enrolment from a CSV file and a folder of photos (``flask enrol-csv``).

Columns (a header row names them, in any order)::

    name,role,building,unit,phone,id_type,id_number,lease_start,lease_end,photo

``name``, ``role``, ``building`` and ``unit`` are required columns; the others may be left
out. Every row goes through the same services as the API and the pages, in its own
transaction: a row that fails stores nothing (not even the person when only the photo
was refused), so the failed rows can be fixed and run again on their own.

- ``role``: owner, resident, tenant, elder or child. Workers need a permit (access points,
  schedule) that a CSV row does not carry: enrol them on the enrolment page.
- ``building`` and ``unit``: the building's name and the unit's number, as on the site.
- ``lease_start`` / ``lease_end`` (tenants): local times in the community's time zone,
  ``2026-12-01T09:00``, or dates. A date alone starts the lease at 00:00 that day; as an
  end it is the lease's last day, so the lease runs to 00:00 the day after.
- ``photo``: a file name in the ``--photos`` folder. Stored only with ``--consent``, which
  records the person's consent to face recognition first; without it the photo is skipped
  with a note. A photo refused by the quality check fails the row.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import marshmallow as ma
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from gatekeeper.faces import FaceQualityReason
from gatekeeper.vocabulary import PersonRole
from server.api.schemas import PersonSchema
from server.core.errors import DomainError
from server.core.localtime import parse_local_time
from server.core.scope import Scope
from server.core.wording import PHONE_FORMAT, face_measurement_lines, face_reason_words
from server.extensions import db
from server.models import Building, Community, Unit
from server.people import faces
from server.people import service as people

COLUMNS = (
    "name",
    "role",
    "building",
    "unit",
    "phone",
    "id_type",
    "id_number",
    "lease_start",
    "lease_end",
    "photo",
)
REQUIRED_COLUMNS = ("name", "role", "building", "unit")


class UnusableInput(Exception):
    """The CSV (or the command's arguments) cannot be used at all: nothing was enrolled."""


@dataclass(frozen=True)
class CsvRow:
    """One data row and the line of the file it starts on."""

    line: int
    values: dict[str, str]
    extra_values: bool = False


@dataclass(frozen=True)
class RowProblem:
    """Why a row failed, or a note about something skipped in a row that worked."""

    line: int
    name: str
    text: str


@dataclass
class BulkSummary:
    """What a run did: people created, rows that failed and why, notes."""

    total: int = 0
    created: int = 0
    failures: list[RowProblem] = field(default_factory=list)
    notes: list[RowProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        """The summary as text lines, for the command line."""
        out = [f"Created {self.created} of {self.total} people."]
        if self.failures:
            out.append(f"Failed rows ({len(self.failures)}):")
            out.extend(f"  line {p.line}, {p.name or '(no name)'}: {p.text}" for p in self.failures)
        if self.notes:
            out.append("Notes:")
            out.extend(f"  line {p.line}, {p.name or '(no name)'}: {p.text}" for p in self.notes)
        return out


def read_csv(path: Path) -> list[CsvRow]:
    """The data rows of ``path`` (UTF-8, a BOM allowed); UnusableInput when it cannot be used."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise UnusableInput(f"{path.name} is empty: expected a header row")
            columns = [c.strip().lower() for c in header]
            _check_columns(columns)
            rows = []
            start = reader.line_num + 1
            for record in reader:
                if any(cell.strip() for cell in record):
                    values = {c: (v or "").strip() for c, v in zip(columns, record, strict=False)}
                    rows.append(CsvRow(start, values, extra_values=len(record) > len(columns)))
                start = reader.line_num + 1
    except UnicodeDecodeError:
        raise UnusableInput(
            f"{path.name} is not UTF-8 text: save it as 'CSV UTF-8' and try again"
        ) from None
    except csv.Error as error:
        raise UnusableInput(f"{path.name} is not a readable CSV file: {error}") from None
    except OSError as error:
        raise UnusableInput(f"cannot read {path}: {error.strerror}") from None
    if not rows:
        raise UnusableInput(f"{path.name} has a header but no rows")
    return rows


def _check_columns(columns: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in COLUMNS]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(repr(c) for c in unknown)}")
    if repeated:
        problems.append(f"repeated column(s) {', '.join(repeated)}")
    if problems:
        raise UnusableInput("; ".join(problems) + f". The columns are: {','.join(COLUMNS)}")


class RowFailed(Exception):
    """One row cannot be enrolled; the message says why."""


class BulkEnrolment:
    """Enrols rows into one community, each row in its own transaction."""

    def __init__(
        self, scope: Scope, community_id: str, photos_dir: Path | None, consent: bool
    ) -> None:
        try:
            self.community = scope.get(Community, community_id)
        except DomainError:
            raise UnusableInput(f"no community with id {community_id!r}") from None
        self.scope = scope
        self.zone = ZoneInfo(self.community.timezone)
        self.photos_dir = photos_dir.resolve() if photos_dir else None
        self.consent = consent
        self.units = self._unit_index()

    def _unit_index(self) -> dict[tuple[str, str], str]:
        rows = db.session.execute(
            select(Building.name, Unit.number, Unit.id)
            .join(Unit, Unit.building_id == Building.id)
            .where(Building.community_id == self.community.id)
        )
        return {(b.casefold(), u.casefold()): uid for b, u, uid in rows}

    def run(self, rows: Iterable[CsvRow]) -> BulkSummary:
        summary = BulkSummary()
        for row in rows:
            summary.total += 1
            name = row.values.get("name", "")
            try:
                note = self.enrol(row)
            except RowFailed as failure:
                db.session.rollback()
                summary.failures.append(RowProblem(row.line, name, str(failure)))
                continue
            summary.created += 1
            if note:
                summary.notes.append(RowProblem(row.line, name, note))
        return summary

    def enrol(self, row: CsvRow) -> str | None:
        """Enrol one row and commit; RowFailed (nothing stored) or an optional note."""
        data, photo = self._prepare(row)
        try:
            person = people.create_person(self.scope, self.community.id, data)
            note = None
            if photo is not None and self.consent:
                people.record_consent(self.scope, person.id, people.FACE_PURPOSE)
                faces.enrol_face(self.scope, person.id, photo.read_bytes())
            elif photo is not None:
                note = "photo skipped: no --consent (record consent, then upload it)"
            db.session.commit()
        except DomainError as error:
            db.session.rollback()
            raise RowFailed(_domain_error_text(error)) from None
        except SQLAlchemyError as error:
            db.session.rollback()
            raise RowFailed(f"database error: {type(error).__name__}") from None
        except OSError as error:
            db.session.rollback()
            raise RowFailed(f"cannot read the photo: {error.strerror}") from None
        if row.values.get("photo") and self.photos_dir is None:
            note = "photo skipped: no --photos folder given"
        return note

    def _prepare(self, row: CsvRow) -> tuple[dict[str, Any], Path | None]:
        """The service's input for a row, and its photo file; RowFailed when it cannot be."""
        values = row.values
        if row.extra_values:
            raise RowFailed("more values than columns (a comma inside an unquoted value?)")
        if not values.get("name"):
            raise RowFailed("name is empty")
        role_text = values.get("role", "").lower()
        try:
            role = PersonRole(role_text)
        except ValueError:
            known = ", ".join(r.value for r in PersonRole if r is not PersonRole.WORKER)
            raise RowFailed(f"unknown role {role_text!r} (one of {known})") from None
        if role is PersonRole.WORKER:
            raise RowFailed(
                "workers need a permit (access points, schedule): use the enrolment page"
            )
        payload: dict[str, Any] = {"name": values["name"], "role": role.value}
        payload["unit_id"] = self._unit_id(values.get("building", ""), values.get("unit", ""))
        if values.get("phone"):
            payload["phone"] = values["phone"]
        id_type, id_number = values.get("id_type", ""), values.get("id_number", "")
        if bool(id_type) != bool(id_number):
            raise RowFailed("id_type and id_number go together: give both or neither")
        if id_type:
            payload["id_document"] = {"type": id_type, "number": id_number}
        start, end = values.get("lease_start", ""), values.get("lease_end", "")
        if role is PersonRole.TENANT:
            if not start or not end:
                raise RowFailed("a tenant needs lease_start and lease_end")
            try:
                payload["lease"] = {
                    "starts_at": parse_local_time(start, self.zone).isoformat(),
                    "ends_at": parse_local_time(end, self.zone, end_of_day=True).isoformat(),
                }
            except ValueError as error:
                raise RowFailed(f"lease: {error}") from None
        elif start or end:
            raise RowFailed(f"lease dates given for a {role.value}: only tenants have leases")
        try:
            data = PersonSchema().load(payload)
        except ma.ValidationError as error:
            messages = dict(error.messages)  # type: ignore[arg-type]
            if "phone" in messages:
                messages["phone"] = [PHONE_FORMAT]
            raise RowFailed(_validation_text(messages)) from None
        return data, self._photo(values.get("photo", ""))

    def _unit_id(self, building: str, unit: str) -> str:
        if not building or not unit:
            raise RowFailed("building and unit are required")
        unit_id = self.units.get((building.casefold(), unit.casefold()))
        if unit_id is None:
            known = {b for b, _ in self.units}
            if building.casefold() not in known:
                raise RowFailed(f"unknown building {building!r}")
            raise RowFailed(f"unknown unit {unit!r} in building {building!r}")
        return unit_id

    def _photo(self, name: str) -> Path | None:
        if not name or self.photos_dir is None:
            return None
        if Path(name).name != name or name in (".", ".."):
            raise RowFailed(f"photo {name!r} must be a file name in the photos folder")
        path = self.photos_dir / name
        if not path.is_file():
            raise RowFailed(f"photo {name!r} is not in {self.photos_dir}")
        return path


def _validation_text(messages: Any, prefix: str = "") -> str:
    """Marshmallow's nested messages as ``field: message; ...``."""
    if isinstance(messages, dict):
        parts = []
        for key, value in messages.items():
            name = key if key != "_schema" else ""
            dotted = f"{prefix}.{name}" if prefix and name else prefix or str(name)
            parts.append(_validation_text(value, dotted))
        return "; ".join(parts)
    if isinstance(messages, list):
        text = " ".join(str(m) for m in messages if not isinstance(m, (dict, list)))
        return f"{prefix}: {text}" if prefix else text
    return f"{prefix}: {messages}" if prefix else str(messages)


def _domain_error_text(error: DomainError) -> str:
    reason = error.extensions.get("reason")
    if reason in set(FaceQualityReason):
        measured = face_measurement_lines(error.extensions.get("measurements"))
        words = face_reason_words(reason)
        return f"photo rejected: {reason} ({words}{'; ' if measured else ''}{', '.join(measured)})"
    if reason is not None:
        return f"photo refused: {error}"
    errors = error.extensions.get("errors")
    if errors:
        return _validation_text(errors)
    return str(error)
