"""What the page modules share: who is signed in and their scope, the rows and names a page
looks up, times typed in the community's zone, form messages, and flashed outcomes.

Each helper is written once here; the page modules keep only what is theirs alone.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import marshmallow as ma
from flask import flash
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from flask_babel.speaklater import LazyString
from flask_login import current_user
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from server.core.errors import DomainError, NotFound, Text
from server.core.localtime import local_to_utc
from server.core.scope import Scope
from server.extensions import db
from server.models import AccessPoint, Building, Community, Person, Unit, User, UserRole

T = TypeVar("T")
M = TypeVar("M")

# A ``datetime-local`` input's value.
LOCAL_INPUT = "%Y-%m-%dT%H:%M"


# Who is signed in --------------------------------------------------------------------------


def signed_in_user() -> User:
    """The account behind this request (the pages are all ``login_required``)."""
    return current_user._get_current_object()  # type: ignore[attr-defined]


def current_scope() -> Scope:
    """What the signed-in user may see and change."""
    return Scope(signed_in_user())


def scope_for(*roles: UserRole) -> Scope:
    """The signed-in user's scope when their role is one of ``roles``; else no such page (404)."""
    scope = current_scope()
    if scope.role not in roles:
        raise NotFound(_l("No such page."))
    return scope


def desk_scope() -> Scope:
    """The property office's and the officers' pages: staff, admins and officers (who read).

    Residents find no such page.
    """
    return scope_for(UserRole.OFFICER, UserRole.STAFF, UserRole.ADMIN)


# Rows and names ----------------------------------------------------------------------------


def communities_of(scope: Scope) -> list[Community]:
    """The communities the caller may see, by name."""
    return list(db.session.scalars(scope.query(Community).order_by(Community.name)))


def community_rows(
    scope: Scope, model: type[M], community_id: str, *order_by: Any, limit: int | None = None
) -> list[M]:
    """The community's rows of ``model`` the caller may see, in ``order_by``, at most ``limit``."""
    query = scope.query(model).where(model.community_id == community_id)  # type: ignore[attr-defined]
    return list(db.session.scalars(query.order_by(*order_by).limit(limit)))


def access_points_of(scope: Scope, community_id: str) -> list[AccessPoint]:
    """The community's access points the caller may see, by name."""
    return community_rows(scope, AccessPoint, community_id, AccessPoint.name)


def buildings_of(scope: Scope, community_id: str) -> list[Building]:
    """The community's buildings the caller may see, by name."""
    return community_rows(scope, Building, community_id, Building.name)


def rows_by_id(scope: Scope, model: type, ids: Iterable[str | None]) -> dict[str, Any]:
    """Id -> row of ``model`` for these ids, those the caller may see (one query)."""
    wanted = {ident for ident in ids if ident}
    if not wanted:
        return {}
    rows = db.session.scalars(scope.query(model).where(model.id.in_(wanted)))  # type: ignore[attr-defined]
    return {row.id: row for row in rows}


def names_by_id(id_column: Any, name_column: Any, ids: Iterable[str | None]) -> dict[str, str]:
    """Id -> name for the given ids (one query; none for no ids)."""
    wanted = {ident for ident in ids if ident}
    if not wanted:
        return {}
    rows = db.session.execute(select(id_column, name_column).where(id_column.in_(wanted)))
    return {ident: name for ident, name in rows}


def point_names(ids: Iterable[str | None]) -> dict[str, str]:
    """Access point id -> its name."""
    return names_by_id(AccessPoint.id, AccessPoint.name, ids)


def person_names(ids: Iterable[str | None]) -> dict[str, str]:
    """Person id -> the person's name; only for rows the caller may already read about them."""
    return names_by_id(Person.id, Person.name, ids)


def user_names(ids: Iterable[str | None]) -> dict[str, str]:
    """Account id -> the name shown for it (the display name, else the username)."""
    wanted = {ident for ident in ids if ident}
    if not wanted:
        return {}
    users = db.session.scalars(select(User).where(User.id.in_(wanted)))
    return {user.id: user.display_name or user.username for user in users}


def unit_label(building: Building, unit: Unit) -> str:
    """A unit as staff read it: ``A1 · 101``."""
    return f"{building.name} · {unit.number}"


# Times in the community's zone -------------------------------------------------------------


def zone_of(community: Community) -> ZoneInfo:
    return ZoneInfo(community.timezone)


def local_input(value: datetime | None, zone: ZoneInfo) -> str:
    """A UTC datetime as a ``datetime-local`` value in the community's zone ("" for none)."""
    return value.astimezone(zone).strftime(LOCAL_INPUT) if value else ""


def from_local_input(text: str, zone: ZoneInfo) -> datetime:
    """A ``datetime-local`` value (a wall-clock time in ``zone``) as aware UTC.

    ValueError when it is not a time, or a time the zone's clocks skip.
    """
    return local_to_utc(datetime.fromisoformat(text).replace(tzinfo=None), zone)


def read_local(
    form: MultiDict[str, str], name: str, zone: ZoneInfo, errors: dict[str, list[str]]
) -> datetime | None:
    """A ``datetime-local`` input as aware UTC; a message in ``errors`` when it is not one."""
    text = form.get(name, "").strip()
    if not text:
        add_error(errors, name, _("Enter a date and time."))
        return None
    try:
        datetime.fromisoformat(text)
    except ValueError:
        add_error(errors, name, _("Enter a date and time like 2026-12-01 09:00."))
        return None
    try:
        return from_local_input(text, zone)
    except ValueError as error:
        add_error(errors, name, _("%(problem)s.", problem=str(error)))
        return None


# Weekly schedules typed in a form ----------------------------------------------------------

# How many windows a schedule form shows at most (the API's limit).
MAX_WINDOWS = 28


def schedule_window(
    form: MultiDict[str, str], prefix: str, errors: dict[str, list[str]]
) -> list[dict[str, Any]] | None:
    """One weekly window from day checkboxes and two time inputs; None: any time."""
    days = form.getlist(prefix + "days")
    start = form.get(prefix + "start", "").strip()[:5]
    end = form.get(prefix + "end", "").strip()[:5]
    if not days and not start and not end:
        return None
    if not days or not start or not end:
        add_error(
            errors,
            prefix + "schedule",
            _("Give the days, a start and an end time (or none of them for any time)."),
        )
        return None
    try:
        numbers = sorted({int(day) for day in days})
    except ValueError:
        add_error(errors, prefix + "schedule", _("Days are 1 (Monday) to 7 (Sunday)."))
        return None
    if start == end and end != "00:00":
        add_error(
            errors,
            prefix + "schedule",
            _("The start and the end are the same time; 00:00 to 00:00 is the whole day."),
        )
        return None
    # A time input cannot say 24:00; an end at midnight means the end of the day.
    return [{"days": numbers, "start": start, "end": "24:00" if end == "00:00" else end}]


def schedule_windows(
    form: MultiDict[str, str], errors: dict[str, list[str]]
) -> tuple[list[dict[str, Any]], list[int]]:
    """Every window of a form's rows ``w0_``, ``w1_``, ... (``windows`` says how many), the
    empty rows left out; and for each window kept, its row (to put a message on the row).

    A row's messages go under ``w<row>_schedule``.
    """
    try:
        rows = min(max(int(form.get("windows", "0")), 0), MAX_WINDOWS + 1)
    except ValueError:
        rows = 0
    windows: list[dict[str, Any]] = []
    kept: list[int] = []
    for row in range(rows):
        window = schedule_window(form, f"w{row}_", errors)
        if window:
            windows.extend(window)
            kept.append(row)
    return windows, kept


def window_rows(
    schedule: list[dict[str, Any]] | None, form: MultiDict[str, str] | None = None
) -> list[dict[str, Any]]:
    """What a schedule form's rows show: the form's rows as typed when given (in their
    places, so a row's messages stay on it), else the stored windows; then one empty row to
    add a window. ``days`` as text, as a form sends them."""
    rows: list[dict[str, Any]] = []
    if form is not None:
        try:
            count = min(max(int(form.get("windows", "0")), 0), MAX_WINDOWS + 1)
        except ValueError:
            count = 0
        for row in range(count):
            prefix = f"w{row}_"
            rows.append(
                {
                    "days": form.getlist(prefix + "days"),
                    "start": form.get(prefix + "start", ""),
                    "end": form.get(prefix + "end", ""),
                }
            )
    else:
        for window in schedule or []:
            rows.append(
                {
                    "days": [str(day) for day in window["days"]],
                    "start": window["start"],
                    "end": window["end"],
                }
            )
    last = rows[-1] if rows else None
    if (last is None or last["days"] or last["start"] or last["end"]) and len(rows) < MAX_WINDOWS:
        rows.append({"days": [], "start": "", "end": ""})
    return rows


def schedule_field(key: str, kept: list[int]) -> str:
    """The input a schema's message about ``schedule.<i>...`` belongs to: its window's row."""
    parts = key.split(".")
    if len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < len(kept):
        return f"w{kept[int(parts[1])]}_schedule"
    return "schedule"


# Form messages -----------------------------------------------------------------------------


def add_error(errors: dict[str, list[str]], field: str, text: Text) -> None:
    """One more message for one input (a lazy text is rendered now)."""
    errors.setdefault(field, []).append(str(text))


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Marshmallow's nested messages (or a service's ``errors``) as dotted keys."""
    if isinstance(messages, dict):
        out: dict[str, list[str]] = {}
        for key, value in messages.items():
            name = "" if key == "_schema" else str(key)
            dotted = f"{prefix}.{name}" if prefix and name else prefix or name
            for field, texts in flatten_messages(value, dotted).items():
                out.setdefault(field, []).extend(texts)
        return out
    if isinstance(messages, list | tuple):
        out = {}
        for item in messages:
            for field, texts in flatten_messages(item, prefix).items():
                out.setdefault(field, []).extend(texts)
        return out
    return {prefix: [str(messages)]}


def merge_errors(
    errors: dict[str, list[str]],
    messages: Any,
    field_of: Callable[[str], str],
    friendly: dict[str, Text] | None = None,
) -> None:
    """Schema or service messages onto a form's inputs, unless an input has its own already.

    ``field_of`` names the input for a dotted message key (``"form"`` for the whole form);
    ``friendly`` replaces an input's messages with one plainer sentence.
    """
    for key, texts in flatten_messages(messages).items():
        field = field_of(key)
        if field in errors and field != "form":
            continue
        if friendly and field in friendly:
            add_error(errors, field, friendly[field])
        else:
            errors.setdefault(field, []).extend(t for t in texts if t)


def load_form(
    schema: Any,
    payload: dict[str, Any],
    errors: dict[str, list[str]],
    kept: list[int],
    field_of: Callable[[str], str],
    friendly: dict[str, Text] | None = None,
) -> dict[str, Any] | None:
    """A form's payload through the API's schema; its messages onto the inputs (a weekly
    schedule's on the row of its window, the rest by ``field_of``). None when refused."""
    try:
        return schema.load(payload)
    except ma.ValidationError as error:
        merge_errors(
            errors,
            error.messages,
            lambda key: schedule_field(key, kept) if key.startswith("schedule") else field_of(key),
            friendly,
        )
        return None


def refusal_errors(
    errors: dict[str, list[str]],
    error: DomainError,
    field_of: Callable[[str], str],
    conflict_field: str = "form",
) -> None:
    """A service's refusal onto a form: its field messages on their inputs, else its detail
    (on ``conflict_field`` for a conflict such as a name already taken, else on the form)."""
    messages = error.extensions.get("errors")
    if messages:
        merge_errors(errors, messages, field_of)
    elif error.status == 409:
        add_error(errors, conflict_field, error.detail)
    else:
        add_error(errors, "form", error.detail)


def save_form(
    action: Callable[[], T],
    errors: dict[str, list[str]],
    refused: Callable[[DomainError], None],
) -> T | None:
    """Run a form's service action and commit, unless the form has messages: then the action
    still runs, so that its own refusals join the form's messages, and is rolled back.

    A refusal rolls back and goes to ``refused``; a row out of the caller's scope stays a 404.
    The action's result when it was committed, else None.
    """
    try:
        result = action()
    except NotFound:
        db.session.rollback()
        raise
    except DomainError as error:
        db.session.rollback()
        refused(error)
        return None
    if errors:
        db.session.rollback()
        return None
    db.session.commit()
    return result


def stand_in(text: str) -> str:
    """A name typed empty, while the rest of the form is checked: no row ever holds it (the
    form has a message, so nothing is saved), and it is like no name in use."""
    return text or "\u2063" + secrets.token_hex(8)


def error_text(error: DomainError) -> str:
    """A service error in one line: the detail, then any field messages it does not repeat."""
    detail = str(error.detail)
    parts = [detail]
    for field, texts in flatten_messages(error.extensions.get("errors") or {}).items():
        for text in texts:
            if text not in detail:
                parts.append(f"{field_label(field)}: {text}" if field else text)
    return " ".join(parts)


# Flashed outcomes --------------------------------------------------------------------------


def flash_ok(message: Text) -> None:
    """What an action did, shown once on the next page (translated now, as errors are)."""
    flash(str(message), "info")


def flash_error(message: Text) -> None:
    """Why an action did not happen, shown once on the next page (translated now: the
    session keeps text, not a lazy translation)."""
    flash(str(message), "error")


def flash_form_errors(errors: dict[str, list[str]]) -> None:
    """A form's messages when the page it came from is shown again (one flash per input)."""
    for field, texts in errors.items():
        words = " ".join(str(text) for text in texts)
        flash_error(f"{field_label(field)}: {words}" if field else words)


# The inputs a flashed message names, in words ("valid from: ..."); a name not listed is
# shown with spaces for underscores. Each part of a dotted name ("schedule.0.days") is
# looked up alone.
FIELD_LABELS: dict[str, LazyString] = {
    "access points": _p("form field", "access points"),
    "access_point_ids": _p("form field", "access points"),
    "color": _p("form field", "plate colour"),
    "days": _p("form field", "days"),
    "end": _p("form field", "end"),
    "ends_at": _p("form field", "ends at"),
    "epc": _p("form field", "tag EPC"),
    "name": _p("form field", "name"),
    "phone": _p("form field", "phone"),
    "plate": _p("form field", "plate"),
    "schedule": _p("form field", "schedule"),
    "start": _p("form field", "start"),
    "starts_at": _p("form field", "starts at"),
    "tag": _p("form field", "work"),
    "uid": _p("form field", "card UID"),
    "unit": _p("form field", "unit"),
    "unit_id": _p("form field", "unit"),
    "valid_from": _p("form field", "valid from"),
    "valid_until": _p("form field", "valid until"),
}


def field_label(field: str) -> str:
    """An input's name as a flashed message shows it, in the request's language."""
    parts = field.split(".")
    return " · ".join(str(FIELD_LABELS.get(part) or part.replace("_", " ")) for part in parts)


def attempt(action: Callable[[], T], done: Text | Callable[[T], Text]) -> bool:
    """Run one service action and commit, then flash ``done`` (or ``done(result)``).

    A refusal (``DomainError``) rolls back and flashes its text instead; a row out of the
    caller's scope (``NotFound``) rolls back and stays a 404. True when the action happened.
    """
    try:
        result = action()
        message = done(result) if callable(done) else done
        db.session.commit()
    except NotFound:
        db.session.rollback()
        raise
    except DomainError as error:
        db.session.rollback()
        flash_error(error_text(error))
        return False
    flash_ok(message)
    return True
