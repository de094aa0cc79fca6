"""``flask retention run``: every retention job now, with how much each deleted."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from server.privacy import retention

# AppGroup: each command of the group runs inside the application context.
retention_group = AppGroup("retention", help="Retention of personal data (docs/privacy.md).")


@retention_group.command("run")
def run() -> None:
    """Delete now what is past its community's retention (held evidence stays); print the
    count of each kind of row."""
    counts = retention.run_all()
    for name, count in counts.items():
        click.echo(f"{name}: {count}")
    click.echo(f"total: {sum(counts.values())}")
