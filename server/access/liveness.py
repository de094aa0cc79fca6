"""Is the face at the door a real one? Depth (3D) when the terminal sends it, else 2D only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gatekeeper import liveness
from gatekeeper.faces import AlignedFace
from server.core.errors import Invalid, PayloadTooLarge


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
        raise problem(
            f"depth: {error.detail}", errors={"depth": [error.detail]}, reason=error.reason.value
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
