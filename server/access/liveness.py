"""Is the face at the door a real one? Depth (3D) when the terminal sends it, else 2D only."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

from gatekeeper import liveness
from gatekeeper.faces import AlignedFace
from server.core.errors import Invalid, PayloadTooLarge

# Why a depth upload is refused, in words (the library's own detail follows, in English).
DEPTH_PROBLEM_WORDS: dict[liveness.DepthProblem, LazyString] = {
    liveness.DepthProblem.EMPTY: _l("the depth map is empty"),
    liveness.DepthProblem.TOO_LARGE: _l("the depth map is too large"),
    liveness.DepthProblem.NOT_PNG: _l("the depth map must be a PNG"),
    liveness.DepthProblem.UNREADABLE: _l("the depth map cannot be read"),
    liveness.DepthProblem.NOT_16_BIT: _l("the depth map must be a 16-bit grayscale PNG"),
    liveness.DepthProblem.TOO_SMALL: _l("the depth map is too small"),
    liveness.DepthProblem.WRONG_ASPECT: _l("the depth map's shape does not match the photo"),
}


@dataclass(frozen=True)
class Liveness:
    """What the door's answer says about liveness (docs/protocol.md: ``liveness``)."""

    checked: bool
    live: bool | None
    score: float | None
    method: str  # "depth", "2d" (no depth sent, the door allows it) or "none"
    passed: bool  # may the decision go on to recognition
    detail: str | None = None
    measurements: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "checked": self.checked,
            "live": self.live,
            "score": self.score,
            "method": self.method,
        }
        if self.detail:
            body["detail"] = self.detail
        return body

    @classmethod
    def not_checked(cls, detail: str) -> Liveness:
        return cls(False, None, None, "none", False, detail)


class DepthUpload:
    """A depth map upload, decoded on a helper thread from the moment it is made: the PNG
    decoder lets go of the GIL, so the decode (4 ms of a 720p door's 50) runs beside the face
    search instead of after it. An unusable upload says so where ``decoded`` is called, so a
    frame without a face still gets its decision, whatever its depth map."""

    def __init__(self, png: bytes, image: np.ndarray) -> None:
        height, width = image.shape[:2]
        self._decoding: Future[np.ndarray] = _decoder().submit(
            liveness.load_depth, png, width / height
        )

    def decoded(self) -> np.ndarray:
        """The ``H x W`` millimetres; raises :class:`gatekeeper.liveness.DepthError`."""
        return self._decoding.result()

    def drop(self) -> None:
        """Not needed after all: not decoded if it has not started."""
        self._decoding.cancel()


# The decoding threads of this process (one per gunicorn worker: made on first use, after the
# fork; two, as a worker serves two requests at once).
_DECODER_THREADS = 2
_decoder_lock = threading.Lock()
_decoder_pool: tuple[int, ThreadPoolExecutor] | None = None


def _decoder() -> ThreadPoolExecutor:
    global _decoder_pool
    with _decoder_lock:
        if _decoder_pool is None or _decoder_pool[0] != os.getpid():
            pool = ThreadPoolExecutor(_DECODER_THREADS, thread_name_prefix="depth-decode")
            _decoder_pool = (os.getpid(), pool)
        return _decoder_pool[1]


def check_liveness(
    image: np.ndarray, face: AlignedFace, depth: DepthUpload | None, *, requires_depth: bool
) -> Liveness:
    """Judge the face from the depth map; without one, refuse at doors that require it."""
    if depth is None:
        if requires_depth:
            return Liveness(
                False, False, None, "none", False, "depth missing: this door requires a 3D check"
            )
        return Liveness(False, None, None, "2d", True, "no depth sent: checked as 2D only")
    return _depth_liveness(image, face, depth)


def _depth_liveness(image: np.ndarray, face: AlignedFace, depth: DepthUpload) -> Liveness:
    """The 3D check (``gatekeeper.liveness``); an unusable depth upload is a 4xx."""
    try:
        result = liveness.assess_loaded(depth.decoded(), image, face.box)
    except liveness.DepthError as error:
        problem = PayloadTooLarge if error.reason is liveness.DepthProblem.TOO_LARGE else Invalid
        words = DEPTH_PROBLEM_WORDS.get(error.reason, error.reason.value)
        raise problem(
            _l("depth: %(problem)s (%(detail)s)", problem=str(words), detail=error.detail),
            errors={"depth": [str(words)]},
            reason=error.reason.value,
        ) from error
    return Liveness(
        result.checked,
        result.live,
        round(result.score, 3),
        result.method,
        passed=result.live,
        detail=result.reason.value if result.reason is not None else None,
        measurements=dict(result.measurements),
    )
