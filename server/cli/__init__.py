"""Command-line entry points (``flask --app server COMMAND``).

``seed``, ``create-user``, ``worker``, ``broker-files`` (server/devices/broker_sync.py),
``demo-fleet`` and ``enrol-csv`` (server/cli/bulk.py), ``rotate-data-key`` and ``data-key``
(server/cli/datakey.py), ``retention run`` (server/cli/retention.py). Errors are one-line
messages with a non-zero exit status, never tracebacks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask, current_app
from sqlalchemy.exc import OperationalError, ProgrammingError

from server.cli.retention import retention_group
from server.core.errors import DomainError
from server.devices import broker_sync
from server.extensions import db
from server.models import User, UserRole

SEEDS_DIR = Path(__file__).resolve().parents[2] / "seeds"


def init_app(app: Flask) -> None:
    app.cli.add_command(seed)
    app.cli.add_command(create_user)
    app.cli.add_command(worker)
    app.cli.add_command(demo_fleet)
    app.cli.add_command(broker_sync.broker_files)  # flask broker-files
    app.cli.add_command(enrol_csv)  # flask enrol-csv
    from server.cli import datakey

    app.cli.add_command(datakey.rotate_data_key)  # flask rotate-data-key
    app.cli.add_command(datakey.data_key)  # flask data-key new|status
    app.cli.add_command(retention_group)  # flask retention run (server/cli/retention.py)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


_seed_file_option = click.option(
    "--file",
    "seed_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=SEEDS_DIR / "demo.json",
    show_default=True,
    help="Seed file (JSON).",
)


@click.command("seed")
@_seed_file_option
def seed(seed_file: Path) -> None:
    """Load the demo community (safe to run again: existing rows are kept)."""
    from server.cli.seeding import SeedError, load_seed

    if current_app.config["SETTINGS"].is_production:
        _fail("refusing to load demo data with GK_ENV=production")
    try:
        summary = load_seed(seed_file)
    except SeedError as error:
        db.session.rollback()
        _fail(str(error))
    except (OperationalError, ProgrammingError) as error:
        db.session.rollback()
        _fail(f"the database is not ready ({error.orig}); run 'flask db upgrade' first")
    db.session.commit()
    added = ", ".join(f"{count} {kind}" for kind, count in summary.items())
    click.echo(f"Seeded {seed_file.name}: {added or 'nothing new'} added.")


@click.command("create-user")
@click.option("--username", required=True, help="Login name.")
@click.option(
    "--role",
    required=True,
    type=click.Choice([r.value for r in UserRole]),
    help="admin, staff, resident or officer.",
)
@click.option(
    "--community",
    "communities",
    multiple=True,
    help="Community id (staff: runs it; officer: covers it). Repeatable.",
)
@click.option("--unit", "unit_id", help="Unit id, for residents.")
@click.option("--display-name", help="Name shown on pages.")
@click.option(
    "--supervisor", is_flag=True, help="Staff: may read the audit log of their communities."
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (for automation)."
)
def create_user(
    username: str,
    role: str,
    communities: tuple[str, ...],
    unit_id: str | None,
    display_name: str | None,
    supervisor: bool,
    password_stdin: bool,
) -> None:
    """Create a user account; prompts for the password unless --password-stdin."""
    from server.core.scope import Scope
    from server.people.accounts import create_user as create

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    # The command line acts as an administrator; this account is never stored.
    system = User(username="cli", role=UserRole.ADMIN, password_hash="!")  # noqa: S106
    data = {
        "username": username,
        "password": password,
        "role": UserRole(role),
        "community_ids": list(communities),
        "unit_id": unit_id,
        "display_name": display_name,
        "supervisor": supervisor,
    }
    from server.api.schemas import UserSchema

    errors = UserSchema().validate({**data, "role": role}, partial=False)
    if errors:
        _fail("; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in errors.items()))
    try:
        user = create(Scope(system), data)
    except DomainError as error:
        db.session.rollback()
        details = getattr(error, "extensions", {}).get("errors", {})
        _fail(str(error) + "".join(f" {k}: {' '.join(map(str, v))}" for k, v in details.items()))
    except (OperationalError, ProgrammingError) as error:
        db.session.rollback()
        _fail(f"the database is not ready ({error.orig}); run 'flask db upgrade' first")
    db.session.commit()
    click.echo(f"Created {user.role.value} {user.username} ({user.id})")


@click.command("worker")
@click.option(
    "--run-seconds",
    type=float,
    default=None,
    help="Stop after this many seconds (for tests and smoke checks).",
)
def worker(run_seconds: float | None) -> None:
    """Run a worker: MQTT consumer, and scheduler while it leads (run one or more)."""
    from server.core.metrics import serve_worker_metrics
    from server.worker import Worker, WorkerIdTaken

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    metrics_server = serve_worker_metrics(app.config["SETTINGS"])  # METRICS_PORT, when set
    try:
        Worker(app).run(run_seconds)
    except WorkerIdTaken as error:
        _fail(f"{error}; set another WORKER_ID, or leave it unset")
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()


@click.command("demo-fleet")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the fleet file (JSON, mode 0600: it holds device secrets).",
)
@_seed_file_option
def demo_fleet(out: Path, seed_file: Path) -> None:
    """Write the simulator fleet file for the seeded demo devices (make run uses it)."""
    import json
    import os

    from server.cli.seeding import SeedError
    from server.cli.seeding import demo_fleet as fleet_of

    try:
        fleet = fleet_of(seed_file)
    except SeedError as error:
        _fail(str(error))
    except (OperationalError, ProgrammingError) as error:
        _fail(f"the database is not ready ({error.orig}); run 'flask db upgrade' first")
    if not fleet:
        _fail("no seeded device with its demo secret; run 'flask seed' first")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(fleet, handle, ensure_ascii=False, indent=2)
    click.echo(f"Wrote {len(fleet)} simulated devices to {out}")


@click.command("enrol-csv")
@click.option("--community", "community_id", required=True, help="Community id (com_...).")
@click.option(
    "--photos",
    "photos_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder holding the files named in the photo column.",
)
@click.option(
    "--consent/--no-consent",
    default=False,
    show_default=True,
    help="The people in the file consented to face recognition: record it and store photos.",
)
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def enrol_csv(community_id: str, photos_dir: Path | None, consent: bool, csv_file: Path) -> None:
    """Enrol people from CSV_FILE, each row in its own transaction.

    \b
    Columns: name,role,building,unit,phone,id_type,id_number,lease_start,lease_end,photo
    Lease times are local to the community: 2026-12-01T09:00, or a date (as lease_end,
    a date is the lease's last day). Photos are stored only with --consent.
    More in server/cli/bulk.py.

    Exit status: 0 every row enrolled; 1 some rows failed (each listed with its line and
    why; the others are stored); 2 unusable input (no such file, community or column).
    """
    from server.cli.bulk import BulkEnrolment, UnusableInput, read_csv
    from server.core.scope import Scope

    # The command line acts as an administrator; this account is never stored.
    system = User(username="cli", role=UserRole.ADMIN, password_hash="!")  # noqa: S106
    try:
        rows = read_csv(csv_file)
        enrolment = BulkEnrolment(Scope(system), community_id, photos_dir, consent)
    except UnusableInput as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except (OperationalError, ProgrammingError) as error:
        db.session.rollback()
        click.echo(
            f"error: the database is not ready ({error.orig}); run 'flask db upgrade'", err=True
        )
        sys.exit(2)
    with click.progressbar(rows, label=f"Enrolling {len(rows)} rows", file=sys.stderr) as progress:
        summary = enrolment.run(progress)
    for line in summary.lines():
        click.echo(line)
    sys.exit(0 if summary.ok else 1)
