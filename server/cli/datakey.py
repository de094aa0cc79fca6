"""DATA_KEY rotation: ``flask rotate-data-key`` and ``flask data-key new``.

Every encrypted column (``ENCRYPTED``) and the encrypted face crops on disk are
re-encrypted under the current ``DATA_KEY`` in batches, each batch its own transaction.
Rows whose token already names the current key are skipped, so a run that stopped (a
crash, ``--max-batches``) carries on where it was, and a second run finds nothing to do.
A row is written back only if it still holds the token that was read (a web process may
have changed it meanwhile: then it is already under the current key). A token that no
configured key opens stops the run: that batch is rolled back and the command exits 1
naming the row. docs/deploy.md, "Rotating DATA_KEY", gives the whole procedure.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from cryptography.fernet import Fernet
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select, update

from server.core import audit, crypto
from server.extensions import db
from server.models import (
    AccessEvent,
    FaceTemplate,
    NotificationGateway,
    Person,
    RegistrationRequest,
    SigningKey,
    StrangerCluster,
    WatchlistEntry,
    Webhook,
)

# Every column encrypted with DATA_KEY (server.core.crypto): (model, column).
ENCRYPTED: tuple[tuple[Any, str], ...] = (
    (FaceTemplate, "template_encrypted"),
    (FaceTemplate, "photo_encrypted"),
    (Person, "id_document_encrypted"),
    (RegistrationRequest, "template_encrypted"),
    (RegistrationRequest, "id_document_encrypted"),
    (AccessEvent, "template_encrypted"),
    (StrangerCluster, "centroid_encrypted"),
    (WatchlistEntry, "template_encrypted"),
    (SigningKey, "private_key_encrypted"),
    (Webhook, "secret_encrypted"),
    (NotificationGateway, "secret_encrypted"),
)
CROPS = "snapshots (face crop files)"


class RotationError(Exception):
    """Stored data that no configured key opens: the rotation stops there."""


@dataclass
class Tally:
    """Per column (``table.column``) or for the crop files: re-encrypted and left."""

    done: dict[str, int] = field(default_factory=dict)
    left: dict[str, int] = field(default_factory=dict)
    batches: int = 0


def _primary_key(model: Any) -> Any:
    return model.__mapper__.primary_key[0]


def _name(model: Any, column: str) -> str:
    return f"{model.__tablename__}.{column}"


def _stale(model: Any, column: str, ring: crypto.KeyRing) -> Any:
    """SQL: the column holds a token that does not name the current key."""
    col = getattr(model, column)
    header = ring.header
    return col.is_not(None) & (func.substr(col, 1, len(header)) != header)


def count_left(ring: crypto.KeyRing) -> Tally:
    """What a rotation would still re-encrypt (``--dry-run``)."""
    tally = Tally()
    for model, column in ENCRYPTED:
        tally.left[_name(model, column)] = db.session.scalar(
            select(func.count()).select_from(model).where(_stale(model, column, ring))
        )
    tally.left[CROPS] = sum(1 for _path in _stale_crops(ring))
    db.session.rollback()
    return tally


def rotate(ring: crypto.KeyRing, batch_size: int, max_batches: int | None) -> Tally:
    """Re-encrypt under ``ring``'s current key; stop after ``max_batches`` (None: all)."""
    tally = Tally()
    for model, column in ENCRYPTED:
        name = _name(model, column)
        tally.done[name] = 0
        if max_batches is None or tally.batches < max_batches:
            tally.done[name] = _rotate_column(model, column, ring, batch_size, max_batches, tally)
        tally.left[name] = db.session.scalar(
            select(func.count()).select_from(model).where(_stale(model, column, ring))
        )
        db.session.rollback()
    tally.done[CROPS] = 0
    if max_batches is None or tally.batches < max_batches:
        tally.done[CROPS] = _rotate_crops(ring, batch_size, max_batches, tally)
    tally.left[CROPS] = sum(1 for _path in _stale_crops(ring))
    return tally


def _rotate_column(
    model: Any, column: str, ring: crypto.KeyRing, size: int, max_batches: int | None, tally: Tally
) -> int:
    pk, col = _primary_key(model), getattr(model, column)
    done, after = 0, None
    while max_batches is None or tally.batches < max_batches:
        query = select(pk, col).where(_stale(model, column, ring)).order_by(pk).limit(size)
        if after is not None:
            query = query.where(pk > after)
        rows = db.session.execute(query).all()
        if not rows:
            break
        try:
            fresh = [
                (key, old, ring.encrypt(_open(ring, model, column, key, old))) for key, old in rows
            ]
            for key, old, new in fresh:
                # Only if no one changed it since it was read (else it is current already).
                result = db.session.execute(
                    update(model)
                    .where(pk == key, col == old)
                    .values({column: new})
                    .execution_options(synchronize_session=False)
                )
                done += result.rowcount
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        tally.batches += 1
        after = rows[-1][0]
    return done


def _open(ring: crypto.KeyRing, model: Any, column: str, key: Any, token: bytes) -> bytes:
    try:
        return ring.decrypt(bytes(token))
    except crypto.DecryptionError as error:
        raise RotationError(
            f"{_name(model, column)} of row {key}: {error}; configure the key it was made "
            "under in DATA_KEYS_RETIRED"
        ) from error


def _crop_root() -> Path:
    return current_app.config["SETTINGS"].instance_dir / "snapshots"


def _crop_paths() -> Iterator[Path]:
    """The crop files events point to (a file whose event is gone is erased anyway)."""
    root, after = _crop_root(), None
    while True:
        query = (
            select(AccessEvent.id, AccessEvent.snapshot_path)
            .where(AccessEvent.snapshot_path.is_not(None))
            .order_by(AccessEvent.id)
            .limit(1000)
        )
        if after is not None:
            query = query.where(AccessEvent.id > after)
        rows = db.session.execute(query).all()
        db.session.rollback()
        if not rows:
            return
        for _id, path in rows:
            yield root / path
        after = rows[-1][0]


def _stale_crops(ring: crypto.KeyRing) -> Iterator[Path]:
    header = ring.header
    for path in _crop_paths():
        try:
            with path.open("rb") as handle:
                start = handle.read(len(header))
        except FileNotFoundError:
            continue
        if start != header:
            yield path


def _rotate_crops(ring: crypto.KeyRing, size: int, max_batches: int | None, tally: Tally) -> int:
    """Each file is replaced whole (written aside, then renamed over it)."""
    done, in_batch = 0, 0
    for path in _stale_crops(ring):
        if max_batches is not None and tally.batches >= max_batches:
            break
        try:
            plain = ring.decrypt(path.read_bytes())
        except FileNotFoundError:
            continue  # erased meanwhile
        except crypto.DecryptionError as error:
            raise RotationError(
                f"face crop {path.name}: {error}; configure the key it was made under in "
                "DATA_KEYS_RETIRED"
            ) from error
        aside = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        aside.write_bytes(ring.encrypt(plain))
        os.replace(aside, path)
        done += 1
        in_batch += 1
        if in_batch == size:
            tally.batches += 1
            in_batch = 0
    if in_batch:
        tally.batches += 1
    return done


# Commands --------------------------------------------------------------------------------------


@click.command("rotate-data-key")
@click.option("--dry-run", is_flag=True, help="Only count what is not yet under DATA_KEY.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=500,
    show_default=True,
    help="Rows per transaction.",
)
@click.option(
    "--max-batches",
    type=click.IntRange(1),
    default=None,
    help="Stop after this many batches (run again to go on).",
)
@with_appcontext
def rotate_data_key(dry_run: bool, batch_size: int, max_batches: int | None) -> None:
    """Re-encrypt every template, ID document, pass key, secret and face crop under
    DATA_KEY (resumable: what is already under it is skipped)."""
    ring = crypto.key_ring()
    if dry_run:
        tally = count_left(ring)
        for name, left in tally.left.items():
            click.echo(f"{name}: {left} to re-encrypt")
        click.echo(f"Under key {ring.current}: {sum(tally.left.values())} left.")
        return
    try:
        tally = rotate(ring, batch_size, max_batches)
    except RotationError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    for name in tally.done:
        click.echo(f"{name}: {tally.done[name]} re-encrypted, {tally.left[name]} left")
    left = sum(tally.left.values())
    audit.record(
        None,
        "data_key.rotate",
        community_id=None,
        details={"key_id": ring.current, "re_encrypted": sum(tally.done.values()), "left": left},
    )
    db.session.commit()
    if left:
        click.echo(f"Key {ring.current}: {left} left; run it again to go on.")
    else:
        click.echo(
            f"Everything is under key {ring.current}; the retired keys may be dropped "
            "(DATA_KEYS_RETIRED)."
        )


@click.group("data-key")
def data_key() -> None:
    """DATA_KEY: make a new key, see which key is current."""


@data_key.command("new")
@with_appcontext
def new_key() -> None:
    """Print a fresh key (urlsafe base64 of 32 bytes) and its id; nothing is stored."""
    key = Fernet.generate_key().decode()
    click.echo(key)
    click.echo(f"key id {crypto.key_id(key)}", err=True)


@data_key.command("status")
@with_appcontext
def status() -> None:
    """The current key's id and the retired keys' ids (never the keys)."""
    ring = crypto.key_ring()
    click.echo(f"DATA_KEY: {ring.current}")
    retired = [kid for kid in ring.keys if kid != ring.current]
    click.echo(f"DATA_KEYS_RETIRED: {', '.join(retired) or '(none)'}")
