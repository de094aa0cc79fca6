"""Helpers for the management-API tests: the two-community world by id, DB snapshots, problems.

Requests are made with no application context pushed: the test client then gives each
request its own, as in production. (Inside the ``ctx`` fixture every request would share
one ``g`` and one database session, so the caller's scope and identity would leak from one
request into the next.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

from flask import Flask
from sqlalchemy import select

from server.extensions import db
from tests import factories

PROBLEM_MEMBERS = ("type", "title", "status", "detail", "instance")


@dataclass(frozen=True)
class WorldIds:
    """The ids of ``factories.world()``'s rows, usable outside an application context."""

    a: str
    b: str
    building_a: str
    building_b: str
    unit_a: str
    unit_b: str
    door_a: str
    door_b: str
    device_a: str
    device_b: str
    admin: str
    staff_a: str
    staff_b: str
    officer_a: str
    resident_a: str
    resident_b: str

    def fill(self, value: Any) -> Any:
        """``value`` with ``{name}`` placeholders in its strings replaced by these ids."""
        if isinstance(value, str):
            for f in fields(self):
                value = value.replace("{" + f.name + "}", getattr(self, f.name))
            return value
        if isinstance(value, dict):
            return {key: self.fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.fill(item) for item in value]
        return value


def build_world(app: Flask) -> WorldIds:
    with in_app(app):
        world = factories.world()
        return WorldIds(**{f.name: getattr(world, f.name).id for f in fields(WorldIds)})


@contextmanager
def in_app(app: Flask) -> Iterator[None]:
    """An application context for direct model work, closed before the next request."""
    with app.app_context():
        try:
            yield
        finally:
            db.session.remove()


def snapshot(app: Flask) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table, as text, in a stable order: to prove nothing changed."""
    with in_app(app):
        state = {}
        for table in db.metadata.sorted_tables:
            rows = db.session.execute(select(table)).all()
            state[table.name] = sorted(tuple(repr(value) for value in row) for row in rows)
        return state


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem document with ``status``; returns its body."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "application/problem+json", response.headers
    body = response.get_json()
    for member in PROBLEM_MEMBERS:
        assert member in body, (member, body)
    assert body["status"] == status
    assert body["type"].startswith("/problems/"), body
    assert body["title"] and body["detail"], body
    assert body["instance"] == response.request.path, body
    return body
