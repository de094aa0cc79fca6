"""Each process's face galleries: kept in step with the database, bounded in memory, and
shared by the web processes of one machine.

In step. Every template added or removed bumps the community's gallery version and appends
a change row, in the same transaction (``record_change``). A process checks the version on
each search (one primary-key read) and applies only the changes it has not seen, so
enrolments and removals reach every web worker without a restart or a full reload.
Writers of one community are serialised by the version row's update, so change versions
are committed in order. Applying a change is idempotent (an add puts, a remove deletes),
so a gallery read while enrolments commit is made right by replaying from its version.

Bounded. A process keeps galleries up to ``FACE_GALLERY_MEMORY_MB`` (memory maps counted);
past it, the least recently searched communities' galleries are dropped. A search that
already holds a dropped gallery finishes on it (it is freed with its last reference), and
the community's next face loads it again, changes made meanwhile included.

Shared. With ``FACE_GALLERY_DIR`` (by default ``<INSTANCE_DIR>/face-galleries``) the
first process that needs a community's gallery decrypts it once and writes it as a file,
``<dir>/<community>/<version>.gallery``; every process then maps that file read-only, so
the machine holds one copy whatever the number of web workers, and a gallery dropped for
the budget comes back in milliseconds without the database or DATA_KEY. Changes after the
file's version live in each process's memory until enough of them gather (or the process
compacts) and a newer file is written. The files are biometric data: mode 0600 in 0700
folders, signed with a key derived from DATA_KEY (a file changed or written by anyone else
is refused and rebuilt), bound to the change row of their version (a restored database
cannot be answered from a file of another history), and deleted once a template they hold
is removed (the removing transaction deletes them after its commit; any process that
catches up over a removal deletes older files too). ``docs/faces.md`` says more.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import mmap
import os
import re
import secrets
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from flask import Flask, current_app, has_app_context
from sqlalchemy import event, insert, select, update
from sqlalchemy.orm import Session

from gatekeeper.faces import TEMPLATE_BYTES, template_from_bytes
from gatekeeper.gallery import TEMPLATE_SIZE, Gallery, GalleryArrays
from server.core import crypto, metrics
from server.core.appstate import per_app
from server.extensions import db
from server.models import FaceGallery, FaceGalleryChange, FaceTemplate

_LOGGER = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_BUDGET_MB = 256
# A gallery is written (or rebuilt in memory) again once this many rows, or an eighth of
# it, changed since its base: the changes' Python objects cost about 1.5 times a base row.
COMPACT_AFTER_CHANGES = 128

FILE_MAGIC = b"GKFACES1"
FILE_SUFFIX = ".gallery"
FILE_FORMAT = 1
_ALIGN = 64  # every array starts on a 64-byte boundary of the file
_MAC_BYTES = 32
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_REMOVALS = "face_gallery_removals"  # session.info: communities whose templates were removed


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
    """Note a template added (``op="add"``) or removed (``"remove"``); the caller commits.

    A removal also deletes this machine's shared files of the community once the commit is
    done: an erased face must not outlive its row in a file."""
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
    if op == "remove":
        db.session.info.setdefault(_REMOVALS, set()).add(community_id)
        if not event.contains(Session, "after_commit", _discard_removed_files):
            event.listen(Session, "after_commit", _discard_removed_files)
            event.listen(Session, "after_rollback", _forget_removals)


def _discard_removed_files(session: Session) -> None:
    communities = session.info.pop(_REMOVALS, None)
    if not communities or not has_app_context():
        return
    cache = galleries()
    for community_id in communities:
        cache.discard_files(community_id)


def _forget_removals(session: Session) -> None:
    session.info.pop(_REMOVALS, None)


# The shared files ------------------------------------------------------------------------------


def _private_dir(path: Path) -> None:
    """``path`` as a folder only this user may enter (made, or narrowed, to 0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = os.lstat(path)
    if not stat.S_ISDIR(status.st_mode) and not path.is_dir():
        raise NotADirectoryError(str(path))
    if status.st_uid == os.getuid() and status.st_mode & 0o077:
        os.chmod(path, 0o700)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _ALIGN)


class GalleryFiles:
    """One machine's shared galleries: ``<directory>/<community>/<version>.gallery``.

    A file is ``FILE_MAGIC``, the length of a JSON header, the header (community, version,
    the fingerprint of that version's change row, where each array lies), the arrays of a
    :class:`GalleryArrays` (little-endian, 64-byte aligned), then an HMAC-SHA256 of all
    that under ``key``. Files are written under a temporary name and renamed, so a reader
    sees a whole file or none. Who writes and deletes holds the community's lock
    (``locked``); readers need none.
    """

    def __init__(self, directory: Path, key: bytes, also: tuple[bytes, ...] = ()):
        self.directory = directory
        self._key = key
        # Keys whose files are still good (derived from DATA_KEYS_RETIRED): processes with
        # the old and the new DATA_KEY share files during a rotation instead of deleting them.
        self._also = also

    def folder(self, community_id: str) -> Path:
        if not _SAFE_NAME.fullmatch(community_id):
            raise ValueError(f"not a name for a folder: {community_id!r}")
        return self.directory / community_id

    @contextmanager
    def locked(self, community_id: str) -> Iterator[None]:
        """The community's files to this thread alone, across processes (``flock``, which
        the kernel releases if the process dies)."""
        folder = self.folder(community_id)
        _private_dir(self.directory)
        _private_dir(folder)
        fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def versions(self, community_id: str) -> list[int]:
        """The versions of the community's files, oldest first."""
        try:
            names = os.listdir(self.folder(community_id))
        except FileNotFoundError:
            return []
        stems = (name.removesuffix(FILE_SUFFIX) for name in names if name.endswith(FILE_SUFFIX))
        return sorted(int(stem) for stem in stems if stem.isdigit())

    def write(
        self, community_id: str, version: int, fingerprint: str, arrays: GalleryArrays
    ) -> Path:
        """Write ``arrays`` as the community's file of ``version`` (replacing one there)."""
        sections = {
            "matrix": np.ascontiguousarray(arrays.matrix, dtype="<f4"),
            "norms": np.ascontiguousarray(arrays.norms, dtype="<f4"),
            "codes": np.ascontiguousarray(arrays.codes, dtype="<i4"),
            "template_ids": np.ascontiguousarray(arrays.template_ids),
            "person_ids": np.ascontiguousarray(arrays.person_ids),
        }
        header = {
            "format": FILE_FORMAT,
            "community_id": community_id,
            "version": version,
            "fingerprint": fingerprint,
            "count": len(arrays),
            "people": len(arrays.person_ids),
            "template_id_dtype": sections["template_ids"].dtype.str,
            "person_id_dtype": sections["person_ids"].dtype.str,
        }
        # The header's length depends on the offsets it holds: lay out with room to spare.
        offset = _ALIGN * (1 + (len(FILE_MAGIC) + 4 + 1024 + len(json.dumps(header))) // _ALIGN)
        layout = {}
        for name, array in sections.items():
            layout[name] = [offset, array.nbytes]
            offset += array.nbytes + len(_padding(array.nbytes))
        header["sections"] = layout
        encoded = json.dumps(header, sort_keys=True).encode()
        start = FILE_MAGIC + len(encoded).to_bytes(4, "little") + encoded
        start += b"\0" * (layout["matrix"][0] - len(start))
        chunks = [start]
        for array in sections.values():
            chunks += [array.data, _padding(array.nbytes)]
        folder = self.folder(community_id)
        _private_dir(self.directory)
        _private_dir(folder)
        temporary = folder / f".{version}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            mac = hmac.new(self._key, digestmod=hashlib.sha256)
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    mac.update(chunk)
                out.write(mac.digest())
            path = folder / f"{version}{FILE_SUFFIX}"
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return path

    def open(
        self, community_id: str, version: int, fingerprint: str | None
    ) -> GalleryArrays | None:
        """The community's file of ``version``, mapped read-only; None when there is none.

        A file that is not what it should be (another owner, readable by others, a wrong
        signature, another community or version, a fingerprint that is not the database's)
        is deleted, so that it is written again from the database."""
        path = self.folder(community_id) / f"{version}{FILE_SUFFIX}"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        try:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode) or status.st_uid != os.getuid():
                _LOGGER.warning("face gallery file %s is not this user's own file: ignored", path)
                return None
            problem = "readable by others" if status.st_mode & 0o077 else None
            mapped = None
            if problem is None and status.st_size > len(FILE_MAGIC) + 4 + _MAC_BYTES:
                mapped = mmap.mmap(fd, status.st_size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        arrays = None
        if mapped is not None:
            arrays, problem = self._read(mapped, community_id, version, fingerprint)
        if arrays is None:
            if mapped is not None:
                mapped.close()
            _LOGGER.warning("face gallery file %s deleted: %s", path, problem or "too short")
            path.unlink(missing_ok=True)
        return arrays

    @staticmethod
    def _signed(mapped: mmap.mmap, size: int, key: bytes) -> bool:
        mac = hmac.new(key, digestmod=hashlib.sha256)
        with memoryview(mapped) as whole, whole[: size - _MAC_BYTES] as signed:
            mac.update(signed)
        return hmac.compare_digest(mac.digest(), mapped[size - _MAC_BYTES :])

    def _read(
        self, mapped: mmap.mmap, community_id: str, version: int, fingerprint: str | None
    ) -> tuple[GalleryArrays | None, str | None]:
        size = len(mapped)
        if not any(self._signed(mapped, size, key) for key in (self._key, *self._also)):
            return None, "wrong signature (changed, torn, or written under another DATA_KEY)"
        if mapped[: len(FILE_MAGIC)] != FILE_MAGIC:
            return None, "not a gallery file"
        length = int.from_bytes(mapped[len(FILE_MAGIC) : len(FILE_MAGIC) + 4], "little")
        start = len(FILE_MAGIC) + 4
        header = json.loads(mapped[start : start + length])
        if header.get("format") != FILE_FORMAT:
            return None, "another format"
        if (header["community_id"], header["version"]) != (community_id, version):
            return None, "another community's or version's file"
        if fingerprint is None or header["fingerprint"] != fingerprint:
            return None, "made from another history of the database (restored?)"
        count, people = header["count"], header["people"]
        sections = header["sections"]

        def section(name: str, dtype: str, items: int) -> np.ndarray:
            offset, _nbytes = sections[name]
            return np.frombuffer(mapped, dtype=np.dtype(dtype), count=items, offset=offset)

        arrays = GalleryArrays(
            matrix=section("matrix", "<f4", count * TEMPLATE_SIZE).reshape(count, TEMPLATE_SIZE),
            norms=section("norms", "<f4", count),
            codes=section("codes", "<i4", count),
            template_ids=section("template_ids", header["template_id_dtype"], count),
            person_ids=section("person_ids", header["person_id_dtype"], people),
        )
        return arrays, None

    def discard(self, community_id: str, *, below: int | None = None) -> int:
        """Delete the community's files (those of versions under ``below``) and what writers
        that died left; the caller holds the lock. How many files went."""
        folder = self.folder(community_id)
        gone = 0
        for version in self.versions(community_id):
            if below is None or version < below:
                (folder / f"{version}{FILE_SUFFIX}").unlink(missing_ok=True)
                gone += 1
        try:
            leftovers = [name for name in os.listdir(folder) if name.endswith(".tmp")]
        except FileNotFoundError:
            leftovers = []
        for name in leftovers:  # a writer holds the lock while its file is temporary
            (folder / name).unlink(missing_ok=True)
        return gone


# The cache -------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    gallery: Gallery | None = None
    version: int = -1
    nbytes: int = 0  # what the cache counts for it (0 while loading)
    cached: bool = True  # False once dropped from the cache


@dataclass(frozen=True)
class GalleryStats:
    """What a process's galleries hold, and what it did to keep them (counters since start)."""

    communities: int
    nbytes: int
    budget_bytes: int
    loads_from_database: int  # decrypted from the database
    loads_from_file: int  # mapped from a shared file
    files_written: int
    evictions: int


class GalleryCache:
    """This process's galleries, one per community, loaded on first use and dropped least
    recently used first past ``budget_bytes``; shared through ``files`` when given."""

    def __init__(
        self, budget_bytes: int = DEFAULT_BUDGET_MB * MIB, files: GalleryFiles | None = None
    ) -> None:
        self.budget_bytes = budget_bytes
        self.files = files
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self._nbytes = 0
        self._counts = {"database": 0, "file": 0, "written": 0, "evicted": 0}

    def __contains__(self, community_id: object) -> bool:
        with self._lock:
            entry = self._entries.get(community_id)  # type: ignore[call-overload]
            return entry is not None and entry.gallery is not None

    def stats(self) -> GalleryStats:
        with self._lock:
            return GalleryStats(
                communities=sum(1 for e in self._entries.values() if e.gallery is not None),
                nbytes=self._nbytes,
                budget_bytes=self.budget_bytes,
                loads_from_database=self._counts["database"],
                loads_from_file=self._counts["file"],
                files_written=self._counts["written"],
                evictions=self._counts["evicted"],
            )

    def gallery(self, community_id: str, version: int | None = None) -> Gallery:
        """The community's gallery, brought up to date with the database (``version``: its
        ``face_galleries.version``, when the caller read it already)."""
        current = version
        if current is None:
            current = (
                db.session.scalar(
                    select(FaceGallery.version).where(FaceGallery.community_id == community_id)
                )
                or 0
            )
        with self._lock:
            entry = self._entries.get(community_id)
            if entry is None:
                entry = self._entries[community_id] = _Entry()
            else:
                self._entries.move_to_end(community_id)
        with entry.lock:
            if entry.gallery is None:
                gallery = self._load(community_id, entry, current)
            elif entry.version < current:
                gallery = self._catch_up(community_id, entry, entry.gallery, current)
            else:
                gallery = entry.gallery
            self._count(entry, gallery.nbytes)
            metrics.gallery_size(community_id, len(gallery))  # /metrics (cheap when unchanged)
        self._evict(keep=entry)
        return gallery

    def discard_files(self, community_id: str) -> None:
        """Delete this machine's shared files of the community (after a removal)."""
        files = self._files_for(community_id)
        if files is None:
            return
        try:
            with files.locked(community_id):
                files.discard(community_id)
        except OSError as error:
            _LOGGER.warning("cannot delete the face gallery files of %s: %s", community_id, error)

    def _bump(self, counter: str) -> None:
        with self._lock:
            self._counts[counter] += 1

    # Memory ------------------------------------------------------------------------------------

    def _count(self, entry: _Entry, nbytes: int) -> None:
        with self._lock:
            if entry.cached:
                self._nbytes += nbytes - entry.nbytes
                entry.nbytes = nbytes

    def _evict(self, keep: _Entry) -> None:
        """Drop the least recently used galleries until the rest fit the budget; never the
        one just used (a gallery larger than the budget stays until another is used)."""
        with self._lock:
            if self._nbytes <= self.budget_bytes:
                return
            for community_id in list(self._entries):
                victim = self._entries[community_id]
                if victim is keep or victim.nbytes == 0:  # 0: being loaded
                    continue
                del self._entries[community_id]
                metrics.gallery_size(community_id, 0)
                victim.cached = False
                self._nbytes -= victim.nbytes
                self._counts["evicted"] += 1
                if self._nbytes <= self.budget_bytes:
                    break

    # Loading and catching up ----------------------------------------------------------------

    def _files_for(self, community_id: str) -> GalleryFiles | None:
        if self.files is None or not _SAFE_NAME.fullmatch(community_id):
            return None
        return self.files

    def _load(self, community_id: str, entry: _Entry, current: int) -> Gallery:
        files = self._files_for(community_id)
        gallery, version = None, current
        if files is not None and current > 0:
            try:
                gallery, version = self._load_shared(files, community_id, current)
            except OSError as error:
                _LOGGER.warning("face gallery files unusable, kept in memory: %s", error)
        if gallery is None:
            gallery = Gallery(base=self._arrays_from_database(community_id))
            version = current
            self._bump("database")
        entry.gallery, entry.version = gallery, version
        if version < current:
            return self._catch_up(community_id, entry, gallery, current)
        return gallery

    def _load_shared(
        self, files: GalleryFiles, community_id: str, current: int
    ) -> tuple[Gallery | None, int]:
        """From the newest file this transaction may read, else from the database, written
        as a file for the other processes; under the community's lock, so that one process
        decrypts while the others wait and then map its file."""
        with files.locked(community_id):
            for version in reversed(files.versions(community_id)):
                if version > current:  # newer than this transaction sees: left alone
                    continue
                arrays = files.open(community_id, version, self._fingerprint(community_id, version))
                if arrays is not None:
                    self._bump("file")
                    return Gallery(base=arrays), version
            arrays = self._arrays_from_database(community_id)
            self._bump("database")
            mapped = self._publish(files, community_id, current, arrays)
        return Gallery(base=mapped if mapped is not None else arrays), current

    def _publish(
        self, files: GalleryFiles, community_id: str, version: int, arrays: GalleryArrays
    ) -> GalleryArrays | None:
        """Write ``arrays`` (the gallery at ``version``) as the community's file and map it
        back; None when it must not be written. The caller holds the community's lock.

        Not written when a template was removed after ``version`` (read on a connection of
        its own, past this transaction's snapshot): the removing process deletes files
        after its commit, under the same lock, so no file can hold an erased face once
        both are done, whichever came first."""
        if not len(arrays) or any(v > version for v in files.versions(community_id)):
            return None
        fingerprint = self._fingerprint(community_id, version)
        if fingerprint is None or _removed_after(community_id, version):
            return None
        try:
            files.write(community_id, version, fingerprint, arrays)
        except OSError as error:  # a full disk, a folder made by another user
            _LOGGER.warning("face gallery file of %s not written: %s", community_id, error)
            return None
        self._bump("written")
        files.discard(community_id, below=version)
        return files.open(community_id, version, fingerprint)

    @staticmethod
    def _fingerprint(community_id: str, version: int) -> str | None:
        """What ties a file to this database's history: the change row of its version."""
        row = db.session.execute(
            select(FaceGalleryChange.template_id, FaceGalleryChange.op).where(
                FaceGalleryChange.community_id == community_id,
                FaceGalleryChange.version == version,
            )
        ).first()
        return None if row is None else f"{version}:{row.template_id}:{row.op}"

    @staticmethod
    def _arrays_from_database(community_id: str) -> GalleryArrays:
        result = db.session.execute(
            select(FaceTemplate.id, FaceTemplate.person_id, FaceTemplate.template_encrypted).where(
                FaceTemplate.community_id == community_id
            )
        )
        # A few hundred rows at a time: thousands of row objects alive at once would outlive
        # the collector's young generations and bring on full collections (100-300 ms each
        # in a web process) every few dozen loads.
        template_ids: list[str] = []
        person_ids: list[str] = []
        tokens: list[bytes] = []
        for part in result.partitions(256):
            for template_id, person_id, token in part:
                template_ids.append(template_id)
                person_ids.append(person_id)
                tokens.append(token)
        if not tokens:
            return GalleryArrays.empty()
        return GalleryArrays.build(
            template_ids, person_ids, _templates(crypto.decrypt_many(tokens))
        )

    def _catch_up(
        self, community_id: str, entry: _Entry, gallery: Gallery, version: int
    ) -> Gallery:
        """``gallery`` (the entry's) with the changes up to ``version``: the same object, or
        a compacted one that replaces it in the entry."""
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
                gallery.remove(template_id)
            elif template_id in blobs:  # absent: removed again since
                gallery.add(
                    template_id, person_id, template_from_bytes(crypto.decrypt(blobs[template_id]))
                )
        entry.version = version
        files = self._files_for(community_id)
        if files is not None and any(c.op == "remove" for c in changes):
            # Older files hold what was just removed (the remover deletes its machine's
            # files; this covers the other machines, and a remover that died before).
            try:
                with files.locked(community_id):
                    files.discard(community_id, below=version)
            except OSError as error:
                _LOGGER.warning("cannot delete old face gallery files: %s", error)
        if gallery.changes_since_base > max(COMPACT_AFTER_CHANGES, len(gallery) // 8):
            gallery = entry.gallery = self._compact(community_id, entry.version, gallery)
        return gallery

    def _compact(self, community_id: str, version: int, gallery: Gallery) -> Gallery:
        """The changes folded into a new base: a new shared file, or this process's arrays.
        Searches running on the old gallery finish on it."""
        arrays = gallery.arrays()
        mapped = None
        files = self._files_for(community_id)
        if files is not None:
            try:
                with files.locked(community_id):
                    mapped = self._publish(files, community_id, version, arrays)
            except OSError as error:
                _LOGGER.warning("face gallery files of %s unusable: %s", community_id, error)
        return Gallery(base=mapped if mapped is not None else arrays)


def _removed_after(community_id: str, version: int) -> bool:
    with db.engine.connect() as connection:
        return (
            connection.scalar(
                select(FaceGalleryChange.version)
                .where(
                    FaceGalleryChange.community_id == community_id,
                    FaceGalleryChange.version > version,
                    FaceGalleryChange.op == "remove",
                )
                .limit(1)
            )
            is not None
        )


def _templates(plain: list[bytes]) -> np.ndarray:
    """Decrypted templates (as ``template_to_bytes`` wrote them) as one (n, 128) matrix; a
    wrong length or a NaN raises ``TemplateError`` as ``template_from_bytes`` does."""
    if any(len(item) != TEMPLATE_BYTES for item in plain):
        for item in plain:
            template_from_bytes(item)
    matrix = np.frombuffer(b"".join(plain), dtype="<f4").reshape(-1, TEMPLATE_SIZE)
    if not np.isfinite(matrix).all():
        for item in plain:
            template_from_bytes(item)
    return matrix


def _new_cache(app: Flask) -> GalleryCache:
    settings = app.config["SETTINGS"]
    files = None
    if settings.face_gallery_dir is not None:
        current, *retired = crypto.derived_keys("face gallery files", app)
        files = GalleryFiles(settings.face_gallery_dir, current, tuple(retired))
    return GalleryCache(settings.face_gallery_memory_mb * MIB, files)


def galleries(app: Flask | None = None) -> GalleryCache:
    """This process's galleries for ``app`` (default: the current app)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return per_app("face_galleries", lambda: _new_cache(app), app)
