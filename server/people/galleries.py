"""Each process's in-memory face galleries, kept in step with the database.

Every template added or removed bumps the community's gallery version and appends
a change row, in the same transaction (``record_change``). A process checks the
version on each search (one primary-key read) and applies only the changes it has
not seen, so enrolments and removals reach every web worker without a restart or a
full reload. Writers of one community are serialised by the version row's update,
so change versions are committed in order.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from flask import Flask
from sqlalchemy import insert, select, update

from gatekeeper.faces import template_from_bytes
from gatekeeper.gallery import Gallery
from server.core import crypto
from server.core.appstate import per_app
from server.extensions import db
from server.models import FaceGallery, FaceGalleryChange, FaceTemplate


def _ensure_row(community_id: str) -> None:
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    db.session.execute(
        dialect_insert(FaceGallery)
        .values(community_id=community_id, version=0)
        .on_conflict_do_nothing(index_elements=["community_id"])
    )


def record_change(community_id: str, template_id: str, person_id: str, op: str) -> None:
    """Note a template added (``op="add"``) or removed (``"remove"``); the caller commits."""
    _ensure_row(community_id)
    version = db.session.execute(
        update(FaceGallery)
        .where(FaceGallery.community_id == community_id)
        .values(version=FaceGallery.version + 1)
        .returning(FaceGallery.version)
    ).scalar_one()
    db.session.execute(
        insert(FaceGalleryChange).values(
            community_id=community_id,
            version=version,
            template_id=template_id,
            person_id=person_id,
            op=op,
        )
    )


@dataclass
class _Entry:
    gallery: Gallery
    version: int
    lock: threading.Lock = field(default_factory=threading.Lock)


class GalleryCache:
    """This process's galleries, one per community, loaded on first use."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def gallery(self, community_id: str) -> Gallery:
        """The community's gallery, brought up to date with the database."""
        current = (
            db.session.scalar(
                select(FaceGallery.version).where(FaceGallery.community_id == community_id)
            )
            or 0
        )
        with self._lock:
            entry = self._entries.get(community_id)
            if entry is None:
                entry = self._entries[community_id] = _Entry(Gallery(), -1)
        with entry.lock:
            if entry.version < 0:
                self._load(community_id, entry, current)
            elif entry.version < current:
                self._catch_up(community_id, entry, current)
        return entry.gallery

    @staticmethod
    def _load(community_id: str, entry: _Entry, version: int) -> None:
        rows = db.session.execute(
            select(FaceTemplate.id, FaceTemplate.person_id, FaceTemplate.template_encrypted).where(
                FaceTemplate.community_id == community_id
            )
        )
        entry.gallery.add_many(
            [(tid, pid, template_from_bytes(crypto.decrypt(blob))) for tid, pid, blob in rows]
        )
        entry.version = version

    @staticmethod
    def _catch_up(community_id: str, entry: _Entry, version: int) -> None:
        changes = db.session.execute(
            select(FaceGalleryChange.template_id, FaceGalleryChange.person_id, FaceGalleryChange.op)
            .where(
                FaceGalleryChange.community_id == community_id,
                FaceGalleryChange.version > entry.version,
                FaceGalleryChange.version <= version,
            )
            .order_by(FaceGalleryChange.version)
        ).all()
        added = [c.template_id for c in changes if c.op == "add"]
        blobs = (
            dict(
                db.session.execute(
                    select(FaceTemplate.id, FaceTemplate.template_encrypted).where(
                        FaceTemplate.id.in_(added)
                    )
                ).all()
            )
            if added
            else {}
        )
        for template_id, person_id, op in changes:
            if op == "remove":
                entry.gallery.remove(template_id)
            elif template_id in blobs:  # absent: removed again since
                entry.gallery.add(
                    template_id, person_id, template_from_bytes(crypto.decrypt(blobs[template_id]))
                )
        entry.version = version


def galleries(app: Flask | None = None) -> GalleryCache:
    return per_app("face_galleries", GalleryCache, app)
