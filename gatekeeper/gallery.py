"""A community's face gallery in memory: float32 matrices, searched with one product each.

Distances come from ``|g - p|^2 = |g|^2 - 2 g.p + |p|^2`` with the row norms kept up to
date, so a search over 100,000 templates is one matrix-vector product and an argmin.
A grant needs the best distance under the tolerance AND a margin to the best
*different* person: two people who look alike must not be told apart by a hair.

A gallery has two parts. The *base* (:class:`GalleryArrays`) is a frozen set of rows
sorted by template id, held in plain numpy arrays (ids as fixed-width bytes, no Python
object per template), so it may be a read-only memory map that several processes share
(``server/people/galleries.py``). The *tail* takes the templates added later and grows
by doubling; a base row that is removed (or replaced) is only masked. ``arrays()`` folds
both into a new base. Search answers the same whatever the split.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TEMPLATE_SIZE = 128
# What a tail row costs beyond its arrays: its two id strings (79 bytes each at 30
# characters) and their list slots and dict entry (about 130 bytes, tracemalloc).
TAIL_ROW_OBJECT_BYTES = 290
# The gallery object itself: its lock, lists, dicts and array headers.
GALLERY_OBJECT_BYTES = 2048


@dataclass(frozen=True)
class GalleryMatch:
    """The outcome of a 1:N search."""

    person_id: str | None  # None: no one close enough, or not clearly one person
    template_id: str | None
    distance: float | None  # to the closest template
    second_distance: float | None  # to the closest template of a different person
    reason: str | None = None  # why nobody matched: "empty", "too_far", "ambiguous"


def _id_array(values: Sequence[str] | np.ndarray) -> np.ndarray:
    """Ids as a fixed-width bytes array (UTF-8); an array of bytes is taken as it is."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "S":
        return values
    if len(values) == 0:
        return np.zeros(0, dtype="S1")
    return np.array([value.encode() for value in values], dtype=np.bytes_)


def row_norms(matrix: np.ndarray) -> np.ndarray:
    """``|g|^2`` of every row, float32: one formula for the base and the tail."""
    return np.einsum("ij,ij->i", matrix, matrix, dtype=np.float32)


@dataclass(frozen=True)
class GalleryArrays:
    """A frozen gallery: rows sorted by template id, ``codes[i]`` indexes ``person_ids``.

    Every array may be read-only (a memory map); nothing here ever writes to them.
    """

    matrix: np.ndarray  # (n, 128) float32
    norms: np.ndarray  # (n,) float32
    codes: np.ndarray  # (n,) int32
    template_ids: np.ndarray  # (n,) bytes, sorted, unique
    person_ids: np.ndarray  # (p,) bytes, sorted, unique

    @classmethod
    def empty(cls) -> GalleryArrays:
        return cls.build([], [], np.zeros((0, TEMPLATE_SIZE), dtype=np.float32))

    @classmethod
    def build(
        cls,
        template_ids: Sequence[str] | np.ndarray,
        person_ids: Sequence[str] | np.ndarray,
        matrix: np.ndarray,
    ) -> GalleryArrays:
        """Rows in any order (one template id once) to sorted arrays."""
        matrix = np.asarray(matrix, dtype=np.float32).reshape(-1, TEMPLATE_SIZE)
        templates, people = _id_array(template_ids), _id_array(person_ids)
        if not len(templates) == len(people) == len(matrix):
            raise ValueError("as many template ids, person ids and rows are needed")
        order = np.argsort(templates, kind="stable")
        templates = templates[order]
        if len(templates) > 1 and bool((templates[1:] == templates[:-1]).any()):
            raise ValueError("a template id appears twice")
        unique, codes = np.unique(people[order], return_inverse=True)
        matrix = np.ascontiguousarray(matrix[order])
        return cls(matrix, row_norms(matrix), codes.astype(np.int32), templates, unique)

    @property
    def nbytes(self) -> int:
        return sum(
            a.nbytes
            for a in (self.matrix, self.norms, self.codes, self.template_ids, self.person_ids)
        )

    def __len__(self) -> int:
        return len(self.template_ids)


def _find(sorted_ids: np.ndarray, value: str) -> int | None:
    """The index of ``value`` in a sorted bytes array, or None."""
    key = value.encode()
    if not len(sorted_ids) or len(key) > sorted_ids.dtype.itemsize:
        return None
    index = int(np.searchsorted(sorted_ids, key))
    if index < len(sorted_ids) and sorted_ids[index] == key:
        return index
    return None


class Gallery:
    """Templates with their person and template ids; thread-safe.

    ``base`` is the frozen part (kept as given, never written: it may be a read-only
    memory map); ``capacity`` the tail's first size, doubled as it fills.
    """

    def __init__(self, capacity: int = 1024, *, base: GalleryArrays | None = None):
        self._lock = threading.Lock()
        self._base = base if base is not None else GalleryArrays.empty()
        self._dead: np.ndarray | None = None  # base rows removed or replaced since
        self._dead_count = 0
        self._first_capacity = max(1, capacity)
        self._matrix = np.zeros((0, TEMPLATE_SIZE), dtype=np.float32)
        self._norms = np.zeros(0, dtype=np.float32)
        # Each row's person as a small integer, so "another person" is one vector compare;
        # the base's people keep their codes, people first seen in the tail come after them.
        self._codes = np.zeros(0, dtype=np.int64)
        self._template_ids: list[str] = []
        self._person_ids: list[str] = []
        self._row_of: dict[str, int] = {}
        self._extra_code_of: dict[str, int] = {}
        self._extra_people: list[str] = []

    @property
    def base(self) -> GalleryArrays:
        return self._base

    def __len__(self) -> int:
        return len(self._base) - self._dead_count + len(self._template_ids)

    def __contains__(self, template_id: object) -> bool:
        if not isinstance(template_id, str):
            return False
        with self._lock:
            return template_id in self._row_of or self._base_row(template_id) is not None

    @property
    def nbytes(self) -> int:
        """Memory this gallery holds, its base's arrays (mapped or not) included."""
        size = GALLERY_OBJECT_BYTES + self._base.nbytes
        size += 0 if self._dead is None else self._dead.nbytes
        size += len(self._matrix) * (TEMPLATE_SIZE * 4 + 4 + 8)
        size += len(self._template_ids) * TAIL_ROW_OBJECT_BYTES
        return size + len(self._extra_people) * TAIL_ROW_OBJECT_BYTES // 2

    @property
    def changes_since_base(self) -> int:
        """Rows added to the tail plus base rows masked: how far the base is out of date."""
        return len(self._template_ids) + self._dead_count

    def add(self, template_id: str, person_id: str, template: np.ndarray) -> None:
        """Add (or replace) one template."""
        vector = np.asarray(template, dtype=np.float32).reshape(TEMPLATE_SIZE)
        with self._lock:
            base_row = self._base_row(template_id)
            if base_row is not None:  # a replaced base row: the new one goes to the tail
                self._kill(base_row)
            row = self._row_of.get(template_id)
            if row is None:
                row = len(self._template_ids)
                if row == len(self._matrix):
                    self._grow()
                self._template_ids.append(template_id)
                self._person_ids.append(person_id)
                self._row_of[template_id] = row
            else:
                self._person_ids[row] = person_id
            self._matrix[row] = vector
            self._norms[row] = row_norms(vector[None, :])[0]
            self._codes[row] = self._person_code(person_id, create=True)

    def add_many(self, rows: list[tuple[str, str, np.ndarray]]) -> None:
        for template_id, person_id, template in rows:
            self.add(template_id, person_id, template)

    def remove(self, template_id: str) -> bool:
        """Remove one template; False if absent. In the tail the last row moves into its
        place; in the base the row is masked."""
        with self._lock:
            base_row = self._base_row(template_id)
            if base_row is not None:
                self._kill(base_row)
                return True
            row = self._row_of.pop(template_id, None)
            if row is None:
                return False
            last = len(self._template_ids) - 1
            if row != last:
                self._matrix[row] = self._matrix[last]
                self._norms[row] = self._norms[last]
                self._codes[row] = self._codes[last]
                self._template_ids[row] = self._template_ids[last]
                self._person_ids[row] = self._person_ids[last]
                self._row_of[self._template_ids[row]] = row
            self._template_ids.pop()
            self._person_ids.pop()
            return True

    def arrays(self) -> GalleryArrays:
        """The gallery as it is now, as one frozen base (the base's live rows and the tail)."""
        with self._lock:
            base, count = self._base, len(self._template_ids)
            alive = slice(None) if self._dead is None else ~self._dead
            templates = [base.template_ids[alive], _id_array(self._template_ids)]
            people = [base.person_ids[base.codes[alive]], _id_array(self._person_ids)]
            matrix = [base.matrix[alive], self._matrix[:count]]
        return GalleryArrays.build(
            np.concatenate(templates), np.concatenate(people), np.concatenate(matrix)
        )

    def _base_row(self, template_id: str) -> int | None:
        row = _find(self._base.template_ids, template_id)
        if row is None or (self._dead is not None and self._dead[row]):
            return None
        return row

    def _kill(self, row: int) -> None:
        if self._dead is None:
            self._dead = np.zeros(len(self._base), dtype=bool)
        self._dead[row] = True
        self._dead_count += 1

    def _person_code(self, person_id: str, *, create: bool) -> int | None:
        code = _find(self._base.person_ids, person_id)
        if code is not None:
            return code
        code = self._extra_code_of.get(person_id)
        if code is None and create:
            code = len(self._base.person_ids) + len(self._extra_people)
            self._extra_code_of[person_id] = code
            self._extra_people.append(person_id)
        return code

    def _grow(self) -> None:
        capacity = max(self._first_capacity, 2 * len(self._matrix))
        matrix = np.zeros((capacity, TEMPLATE_SIZE), dtype=np.float32)
        norms = np.zeros(capacity, dtype=np.float32)
        codes = np.zeros(capacity, dtype=np.int64)
        used = len(self._matrix)
        matrix[:used], norms[:used], codes[:used] = self._matrix, self._norms, self._codes
        self._matrix, self._norms, self._codes = matrix, norms, codes

    def _squared(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Squared distances (a new array) and person codes of all rows, base rows first;
        masked base rows are infinitely far. Under the lock."""
        base, count = self._base, len(self._template_ids)
        probe_norm = float(vector @ vector)
        parts, codes = [], []
        if len(base):
            squared = base.norms - 2.0 * (base.matrix @ vector)
            squared += probe_norm
            if self._dead is not None:
                squared[self._dead] = np.inf
            parts.append(squared)
            codes.append(base.codes)
        if count:
            squared = self._norms[:count] - 2.0 * (self._matrix[:count] @ vector)
            squared += probe_norm
            parts.append(squared)
            codes.append(self._codes[:count])
        if len(parts) == 1:
            return parts[0], codes[0]
        return np.concatenate(parts), np.concatenate(codes)

    def _ids_of(self, row: int) -> tuple[str, str]:
        """(person id, template id) of a row of ``_squared``'s answer. Under the lock."""
        base = self._base
        if row < len(base):
            return (
                base.person_ids[base.codes[row]].decode(),
                base.template_ids[row].decode(),
            )
        row -= len(base)
        return self._person_ids[row], self._template_ids[row]

    def nearest_other(self, probe: np.ndarray, person_id: str | None) -> GalleryMatch | None:
        """The closest template of anyone but ``person_id`` (None: nobody else is enrolled).

        Enrolment asks this before storing a face: a template of person P within the door's
        tolerance plus margin of person Q's would leave both P and Q ``unknown_face``
        (ambiguous) at the door.
        """
        vector = np.asarray(probe, dtype=np.float32).reshape(TEMPLATE_SIZE)
        with self._lock:
            if len(self) == 0:
                return None
            squared, codes = self._squared(vector)
            code = self._person_code(person_id, create=False) if person_id is not None else None
            if code is not None:
                squared[codes == code] = np.inf
            row = int(np.argmin(squared))
            if not np.isfinite(squared[row]):
                return None
            found_person, found_template = self._ids_of(row)
        distance = float(np.sqrt(max(float(squared[row]), 0.0)))
        return GalleryMatch(found_person, found_template, distance, None)

    def search(self, probe: np.ndarray, *, tolerance: float, margin: float) -> GalleryMatch:
        """The person whose template is closest, if under ``tolerance`` and by ``margin``."""
        vector = np.asarray(probe, dtype=np.float32).reshape(TEMPLATE_SIZE)
        with self._lock:
            if len(self) == 0:
                return GalleryMatch(None, None, None, None, "empty")
            squared, codes = self._squared(vector)
            best = int(np.argmin(squared))
            best_person, best_template = self._ids_of(best)
            others = squared[codes != codes[best]]
            second_squared = float(others.min()) if len(others) else None
        if second_squared is not None and not np.isfinite(second_squared):
            second_squared = None  # the only other people's rows were removed
        distance = float(np.sqrt(max(float(squared[best]), 0.0)))
        second = None if second_squared is None else float(np.sqrt(max(second_squared, 0.0)))
        if distance > tolerance:
            return GalleryMatch(None, None, distance, second, "too_far")
        if second is not None and second - distance < margin:
            return GalleryMatch(None, None, distance, second, "ambiguous")
        return GalleryMatch(best_person, best_template, distance, second)
