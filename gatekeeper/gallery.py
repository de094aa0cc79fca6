"""A community's face gallery in memory: one float32 matrix, searched with one product.

Distances come from ``|g - p|^2 = |g|^2 - 2 g.p + |p|^2`` with the row norms kept up to
date, so a search over 100,000 templates is one matrix-vector product and an argmin.
A grant needs the best distance under the tolerance AND a margin to the best
*different* person: two people who look alike must not be told apart by a hair.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

TEMPLATE_SIZE = 128


@dataclass(frozen=True)
class GalleryMatch:
    """The outcome of a 1:N search."""

    person_id: str | None  # None: no one close enough, or not clearly one person
    template_id: str | None
    distance: float | None  # to the closest template
    second_distance: float | None  # to the closest template of a different person
    reason: str | None = None  # why nobody matched: "empty", "too_far", "ambiguous"


class Gallery:
    """Templates with their person and template ids; thread-safe; grows by doubling."""

    def __init__(self, capacity: int = 1024):
        self._lock = threading.Lock()
        self._matrix = np.zeros((capacity, TEMPLATE_SIZE), dtype=np.float32)
        self._norms = np.zeros(capacity, dtype=np.float32)
        # Each row's person as a small integer, so "another person" is one vector compare.
        self._person_codes = np.zeros(capacity, dtype=np.int64)
        self._code_of: dict[str, int] = {}
        self._person_ids: list[str] = []
        self._template_ids: list[str] = []
        self._row_of: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._template_ids)

    def __contains__(self, template_id: object) -> bool:
        return template_id in self._row_of

    def add(self, template_id: str, person_id: str, template: np.ndarray) -> None:
        """Add (or replace) one template."""
        vector = np.asarray(template, dtype=np.float32).reshape(TEMPLATE_SIZE)
        with self._lock:
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
            self._norms[row] = float(vector @ vector)
            self._person_codes[row] = self._code_of.setdefault(person_id, len(self._code_of))

    def add_many(self, rows: list[tuple[str, str, np.ndarray]]) -> None:
        for template_id, person_id, template in rows:
            self.add(template_id, person_id, template)

    def remove(self, template_id: str) -> bool:
        """Remove one template (the last row moves into its place); False if absent."""
        with self._lock:
            row = self._row_of.pop(template_id, None)
            if row is None:
                return False
            last = len(self._template_ids) - 1
            if row != last:
                self._matrix[row] = self._matrix[last]
                self._norms[row] = self._norms[last]
                self._person_codes[row] = self._person_codes[last]
                self._template_ids[row] = self._template_ids[last]
                self._person_ids[row] = self._person_ids[last]
                self._row_of[self._template_ids[row]] = row
            self._template_ids.pop()
            self._person_ids.pop()
            return True

    def _grow(self) -> None:
        capacity = max(1024, 2 * len(self._matrix))
        matrix = np.zeros((capacity, TEMPLATE_SIZE), dtype=np.float32)
        norms = np.zeros(capacity, dtype=np.float32)
        codes = np.zeros(capacity, dtype=np.int64)
        used = len(self._matrix)
        matrix[:used], norms[:used], codes[:used] = self._matrix, self._norms, self._person_codes
        self._matrix, self._norms, self._person_codes = matrix, norms, codes

    def nearest_other(self, probe: np.ndarray, person_id: str | None) -> GalleryMatch | None:
        """The closest template of anyone but ``person_id`` (None: nobody else is enrolled).

        Enrolment asks this before storing a face: a template of person P within the door's
        tolerance plus margin of person Q's would leave both P and Q ``unknown_face``
        (ambiguous) at the door.
        """
        vector = np.asarray(probe, dtype=np.float32).reshape(TEMPLATE_SIZE)
        with self._lock:
            count = len(self._template_ids)
            if count == 0:
                return None
            squared = self._norms[:count] - 2.0 * (self._matrix[:count] @ vector)
            squared += float(vector @ vector)
            code = self._code_of.get(person_id) if person_id is not None else None
            if code is not None:
                squared[self._person_codes[:count] == code] = np.inf
            row = int(np.argmin(squared))
            if not np.isfinite(squared[row]):
                return None
            found_person, found_template = self._person_ids[row], self._template_ids[row]
        distance = float(np.sqrt(max(float(squared[row]), 0.0)))
        return GalleryMatch(found_person, found_template, distance, None)

    def search(self, probe: np.ndarray, *, tolerance: float, margin: float) -> GalleryMatch:
        """The person whose template is closest, if under ``tolerance`` and by ``margin``."""
        vector = np.asarray(probe, dtype=np.float32).reshape(TEMPLATE_SIZE)
        with self._lock:
            count = len(self._template_ids)
            if count == 0:
                return GalleryMatch(None, None, None, None, "empty")
            squared = self._norms[:count] - 2.0 * (self._matrix[:count] @ vector)
            squared += float(vector @ vector)
            best = int(np.argmin(squared))
            best_person = self._person_ids[best]
            best_template = self._template_ids[best]
            others = self._person_codes[:count] != self._person_codes[best]
            second_squared = float(squared[others].min()) if others.any() else None
        distance = float(np.sqrt(max(float(squared[best]), 0.0)))
        second = None if second_squared is None else float(np.sqrt(max(second_squared, 0.0)))
        if distance > tolerance:
            return GalleryMatch(None, None, distance, second, "too_far")
        if second is not None and second - distance < margin:
            return GalleryMatch(None, None, distance, second, "ambiguous")
        return GalleryMatch(best_person, best_template, distance, second)
