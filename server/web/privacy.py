"""Staff pages' share of a person's rights (PIPL): download their data, erase it.

The person page offers both (``_person_privacy.html``); the export is the API's document
(``server.privacy.export``), the erasure the API's action with a confirmation first.
"""

from __future__ import annotations

import json

from flask import Response, redirect, url_for
from flask_babel import gettext as _
from flask_login import login_required

from server.core.errors import NotFound
from server.core.scope import Scope
from server.extensions import db
from server.models import Person
from server.privacy import erasure, export
from server.web import bp
from server.web.helpers import attempt, current_scope


def _staff_person(pid: str) -> tuple[Person, Scope]:
    """The person, for the property office of their community (others: no such page)."""
    scope = current_scope()
    person = scope.get(Person, pid)
    if not scope.can_write(Person):
        raise NotFound(_("No such page."))
    return person, scope


@bp.get("/people/<pid>/export.json")
@login_required
def person_export(pid: str) -> Response:
    """The person's data as a JSON download (recorded as a read, audited)."""
    person, scope = _staff_person(pid)
    document = export.export_person(scope.user, person)
    db.session.commit()
    return Response(
        json.dumps(document, ensure_ascii=False, indent=2),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="person-{person.id}.json"'},
    )


@bp.post("/people/<pid>/erasure")
@login_required
def person_erasure(pid: str) -> Response:
    person, scope = _staff_person(pid)
    attempt(
        lambda: erasure.erase_person(scope, person.id),
        _("Personal information erased: the name is now a pseudonym in every record."),
    )
    return redirect(url_for("web.person_page", pid=person.id, _anchor="personal-information"))
