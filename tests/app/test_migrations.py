"""Migrations build the schema from nothing, and the models match them exactly."""

from __future__ import annotations

import itertools
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from server import create_app
from server.extensions import db
from server.models import Base
from server.models.activity import is_event_partition
from tests.conftest import app_environment

_names = itertools.count()


def _fresh_app(workdir: Path, new_database):
    url = new_database(f"migrations_{next(_names)}")
    return create_app(app_environment(workdir, url))


def _pending_diff():
    with db.engine.connect() as connection:
        # access_events' partitions (PostgreSQL) are no model's: migrations/env.py skips them too.
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_name": lambda name, type_, _parents: (
                    not (type_ == "table" and is_event_partition(name))
                ),
            },
        )
        return compare_metadata(context, Base.metadata)


def test_upgrade_empty_database_to_head_matches_models(workdir: Path, new_database) -> None:
    app = _fresh_app(workdir, new_database)
    with app.app_context():
        assert inspect(db.engine).get_table_names() == []
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        assert "alembic_version" in tables
        assert _pending_diff() == []


def test_downgrade_to_base_and_up_again(workdir: Path, new_database) -> None:
    app = _fresh_app(workdir, new_database)
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        assert _pending_diff() == []
        db.engine.dispose()


def test_every_community_owned_table_has_community_id() -> None:
    """Isolation and the future shard key: rows that belong to a community say which."""
    global_tables = {
        "communities",
        "users",
        "user_communities",
        "api_tokens",
        "web_sessions",  # like api_tokens: an account's, not a community's
        "service_heartbeats",
        "guardianships",
        "pass_access_points",
        "worker_permit_access_points",
        "holiday_access_points",
        "door_mode_access_points",
        "audit_log",
        "signing_keys",  # one key ring signs every community's QR tokens
        "push_subscriptions",  # like web_sessions: an account's browsers
        "notification_preferences",  # an account's choices
        "officer_duties",  # an officer's, who covers several communities
    }
    for name, table in Base.metadata.tables.items():
        if name in global_tables:
            continue
        assert "community_id" in table.columns, name
