"""Alembic environment, run through Flask-Migrate (``flask db ...``)."""

import logging
from logging.config import fileConfig
from typing import Any

from alembic import context
from flask import current_app

from server.models.activity import is_event_partition
from server.models.base import UTCDateTime

config = context.config
# Keep the app's loggers: an in-process upgrade must not silence them.
fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

db = current_app.extensions["migrate"].db
config.set_main_option(
    "sqlalchemy.url", db.engine.url.render_as_string(hide_password=False).replace("%", "%%")
)


def render_item(type_: str, obj: Any, autogen_context: Any) -> Any:
    """Write our column types as plain SQLAlchemy types, so migrations import only ``sa``."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    """Leave access_events' partitions (PostgreSQL, migration 0017) out of autogenerate."""
    return not (type_ == "table" and name is not None and is_event_partition(name))


def _options() -> dict[str, Any]:
    return {
        "target_metadata": db.metadata,
        "render_as_batch": True,  # SQLite can only ALTER through table copies
        "compare_type": True,
        "render_item": render_item,
        "include_name": include_name,
        **current_app.extensions["migrate"].configure_args,
    }


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **_options()
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    def skip_empty(context_: Any, revision: Any, directives: list[Any]) -> None:
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            logger.info("No changes in schema detected.")

    options = _options()
    options.setdefault("process_revision_directives", skip_empty)
    with db.engine.connect() as connection:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
