"""Is the face at the door a real one? Depth (3D) when the terminal sends it, else 2D only."""

from __future__ import annotations

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


def check_liveness(
    image: np.ndarray, face: AlignedFace, depth_png: bytes | None, *, requires_depth: bool
) -> Liveness:
    """Judge the face from the depth map; without one, refuse at doors that require it."""
    if depth_png is None:
        if requires_depth:
            return Liveness(
                False, False, None, "none", False, "depth missing: this door requires a 3D check"
            )
        return Liveness(False, None, None, "2d", True, "no depth sent: checked as 2D only")
    return _depth_liveness(image, face, depth_png)


def _depth_liveness(image: np.ndarray, face: AlignedFace, depth_png: bytes) -> Liveness:
    """The 3D check (``gatekeeper.liveness``); an unusable depth upload is a 4xx."""
    try:
        result = liveness.assess_depth(depth_png, image, face.box)
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
