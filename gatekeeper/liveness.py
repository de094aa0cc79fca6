"""Depth (3D) liveness: does the depth map under a detected face have the relief of a real face?

The door terminal may send, with its colour frame, a depth map (docs/protocol.md section 3: a 16-bit
grayscale PNG in millimetres, 0 = no reading, the same field of view as the colour frame, any
resolution with the same aspect ratio). This module judges it from GEOMETRY only, never from
texture: a printed photo or a screen is a plane, a bent photo a cylinder, a photo held at an angle
a tilted plane, and none of them has a nose standing out of the surface around it.

- :func:`load_depth` turns the uploaded PNG into a ``uint16`` array (millimetres), refusing
  anything else with :class:`DepthError` (never a crash; decompression bombs are refused from the
  header).
- :func:`face_landmarks` places dlib's 68 landmarks in a face box the face engine detected
  (the model is loaded once per process, on first use).
- :func:`check_depth` maps those landmarks into the depth map (same field of view: a scale per
  axis), samples the depth robustly and runs the geometric checks; the answer is a
  :class:`LivenessResult` with a score in [0, 1], ``live``, a reason when not live, and every
  measurement behind it.
- :func:`assess_depth` does all three from the PNG bytes, the RGB frame and the face box
  (:func:`assess_loaded` the last two, on a map decoded already).

docs/liveness.md explains the geometry, every threshold, the synthetic depth model
(``tests/support/depthmaps.py``) used to test it, and the measured error rates.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from PIL import Image

from gatekeeper.faces import FaceBox, png_is_complete

# --- limits of the depth upload -------------------------------------------------------------

#: Largest depth upload accepted, in bytes (the same limit as the colour image).
MAX_DEPTH_BYTES = 8 * 1024 * 1024
#: Largest width or height of a depth map, in pixels (checked from the header, before decoding).
MAX_DEPTH_SIDE = 4096
#: Smallest width or height of a depth map: anything smaller cannot show a face's relief.
MIN_DEPTH_SIDE = 16
#: The depth map's width/height may differ from the colour frame's by this fraction at most.
ASPECT_TOLERANCE = 0.02

# --- the face geometry ----------------------------------------------------------------------

#: dlib's 68-point (iBUG 300-W) indices used here.
JAW_LEFT, JAW_RIGHT, CHIN = 0, 16, 8
NASION, NOSE_TIP, SUBNASALE = 27, 30, 33
NOSE_LEFT, NOSE_RIGHT = 31, 35
EYE_OUTER_LEFT, EYE_INNER_LEFT, EYE_INNER_RIGHT, EYE_OUTER_RIGHT = 36, 39, 42, 45
MOUTH_LEFT, MOUTH_RIGHT = 48, 54
MOUTH_CENTRE = (51, 57, 62, 66)
LANDMARK_COUNT = 68

#: Assumed distance between the outer eye corners (adult exocanthion width is about 85-100 mm):
#: used only to express in-plane distances and tilts in millimetres in ``measurements``. Every
#: decision compares depths (measured in mm by the sensor), so none depends on this value.
EYE_CORNER_WIDTH_MM = 90.0
#: Half-width of the window sampled around a landmark, as a fraction of the eye-corner distance
#: in depth pixels (at least 1 px: a 3x3 window).
SAMPLE_WINDOW = 0.05
#: Depth readings further than this from the nose tip are background (a wall, the attacker's
#: body), not face: they are left out of every fit and count as missing.
FACE_BAND_MM = 300.0
#: Radii of the rings around the nose tip on which the peak check samples, in eye-corner
#: distances (0.3: about 27 mm, past the nostrils, short of the eyes); a point without readings
#: on the first ring is taken from the second, then the third.
PEAK_RINGS = (0.3, 0.22, 0.38)
#: Directions (over half a turn) in which the peak check compares the nose with the ring: 16
#: leaves a fold's axis at most 5.6 degrees from one of them.
PEAK_DIRECTIONS = 16
#: Most cells per side of the grid laid over the face region for the surface fits.
GRID_CELLS = 12


class DepthProblem(StrEnum):
    """Why an uploaded depth map is refused (a 413 or 422, never a 500)."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    NOT_PNG = "not_png"
    UNREADABLE = "unreadable"
    NOT_16_BIT = "not_16_bit"
    TOO_SMALL = "too_small"
    WRONG_ASPECT = "wrong_aspect"


class DepthError(ValueError):
    """A depth upload that cannot be used; ``reason`` says why, ``detail`` says more."""

    def __init__(self, reason: DepthProblem, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class LivenessReason(StrEnum):
    """Why a depth map was judged not live (stored with the access event)."""

    TOO_FEW_DEPTH_PIXELS = "too_few_depth_pixels"
    TOO_CLOSE = "too_close"
    TOO_FAR = "too_far"
    FLAT_SURFACE = "flat_surface"
    CURVED_SHEET = "curved_sheet"
    NO_RELIEF = "no_relief"
    IMPLAUSIBLE_RELIEF = "implausible_relief"
    DEPTH_MISSING = "depth_missing"


@dataclass(frozen=True)
class Ramp:
    """A check's soft score: 0 at ``bad``, 1 at ``good``, linear between; passes at 0.5.

    ``bad < good`` for a "high enough" check, ``bad > good`` for a "low enough" one. The pass
    threshold is therefore the midpoint, ``(bad + good) / 2``.
    """

    bad: float
    good: float

    @property
    def threshold(self) -> float:
        return (self.bad + self.good) / 2

    def score(self, value: float) -> float:
        return min(1.0, max(0.0, (value - self.bad) / (self.good - self.bad)))


@dataclass(frozen=True)
class DepthThresholds:
    """Every number the depth check decides with (docs/liveness.md says where each comes from).

    Depths and distances in millimetres.
    """

    #: Valid readings (non-zero, within FACE_BAND_MM of the nose) needed over the face region.
    min_valid_fraction: float = 0.6
    #: Nose tip distance from the sensor.
    min_distance_mm: float = 200.0
    max_distance_mm: float = 1500.0
    #: Nose tip in front of the plane through the outer eye corners and mouth corners (live
    #: faces: 20-50 mm; passes from 12 mm, up to 70 mm).
    relief_low: Ramp = Ramp(6.0, 18.0)
    relief_high: Ramp = Ramp(80.0, 60.0)
    #: Cheeks behind the nose tip (live: about 20 mm or more; passes from 8 mm, up to 90 mm).
    cheek_low: Ramp = Ramp(3.0, 13.0)
    cheek_high: Ramp = Ramp(100.0, 80.0)
    #: Temples (jaw-line ends at eye level) not in front of the eye/mouth-corner plane
    #: (passes from 0 mm behind it).
    temple_low: Ramp = Ramp(-4.0, 4.0)
    #: Nose tip above the mean of two points opposite each other on a ring about 27 mm around
    #: it, in the direction where that is least (of 16): a fold or a cylinder through the nose
    #: has ~0 along its axis (passes from 4 mm).
    peak_low: Ramp = Ramp(1.0, 7.0)
    #: Depth span of the face region (5th to 95th percentile of the grid cells; live: 20-200 mm,
    #: passes from 15 mm, up to 200 mm).
    span_low: Ramp = Ramp(10.0, 20.0)
    span_high: Ramp = Ramp(220.0, 180.0)
    #: RMS distance of the face region from its best plane: a photo or screen, tilted or not,
    #: leaves only sensor noise (passes from 3 mm).
    plane_rms_low: Ramp = Ramp(1.5, 4.5)
    #: Nose tip in front of the smooth (quadric) surface fitted to the face region without the
    #: nose: any plane or cylinder, bent either way, fits itself and leaves no nose (passes from
    #: 5 mm).
    nose_above_sheet_low: Ramp = Ramp(2.0, 8.0)
    #: A sheet that fails is "curved" (not "flat") when its plane residual is at least this many
    #: mm and at least twice the quadric residual.
    curved_min_plane_rms_mm: float = 1.5


DEFAULT_THRESHOLDS = DepthThresholds()

#: Which reason each geometric check gives when it is the one that fails (see _reason()).
_HIGH_CHECKS = ("relief_high", "cheek_high", "span_high")
_FLAT_CHECKS = ("plane_rms_low", "span_low")
_SHEET_CHECKS = ("nose_above_sheet_low", "peak_low")


@dataclass(frozen=True)
class Landmarks:
    """dlib's 68 face landmarks, ``(x, y)`` in colour-frame pixels, and the detected face box.

    :func:`face_landmarks` makes one from a frame and a box; ``points`` follow the iBUG 300-W
    order (0-16 jaw line, 17-26 brows, 27-35 nose, 36-47 eyes, 48-67 mouth).
    """

    points: tuple[tuple[float, float], ...]
    box: FaceBox | None = None

    def __post_init__(self) -> None:
        if len(self.points) != LANDMARK_COUNT:
            raise ValueError(f"expected {LANDMARK_COUNT} landmarks, not {len(self.points)}")

    def array(self) -> np.ndarray:
        """The points as a ``68 x 2`` float64 array."""
        return np.asarray(self.points, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class LivenessResult:
    """The liveness verdict for one face.

    ``checked`` is False when no depth was judged (``method`` is then ``"none"``). ``score`` is
    the weakest check's soft score: 0 clearly not a face, 0.5 at that check's threshold, 1
    clearly a face's relief; ``live`` is ``score >= 0.5`` (every check passed). ``reason`` says
    why not live; ``measurements`` hold the numbers behind it (mm unless named otherwise).
    """

    checked: bool
    live: bool
    score: float
    method: str
    reason: LivenessReason | None = None
    measurements: dict[str, float | None] = field(default_factory=dict)

    @classmethod
    def not_checked(cls, reason: LivenessReason = LivenessReason.DEPTH_MISSING) -> LivenessResult:
        """No depth map came with the frame: nothing was judged (the door's policy decides)."""
        return cls(checked=False, live=False, score=0.0, method="none", reason=reason)

    def to_json(self) -> dict[str, Any]:
        """The verify answer's ``liveness`` object (docs/protocol.md), plus ``reason`` if any."""
        body: dict[str, Any] = {
            "checked": self.checked,
            "live": self.live,
            "score": self.score,
            "method": self.method,
        }
        if self.reason is not None:
            body["reason"] = str(self.reason)
        return body


# --- loading the upload ---------------------------------------------------------------------


def load_depth(
    png_bytes: bytes,
    expected_aspect: float,
    *,
    max_bytes: int = MAX_DEPTH_BYTES,
    max_side: int = MAX_DEPTH_SIDE,
    aspect_tolerance: float = ASPECT_TOLERANCE,
) -> np.ndarray:
    """Decode a 16-bit grayscale PNG depth map into an ``H x W`` ``uint16`` array (millimetres).

    ``expected_aspect`` is the colour frame's width / height; the depth map must have the same
    within ``aspect_tolerance`` (a fraction). 8-bit, colour, palette and alpha PNGs are refused
    (``not_16_bit``): 8 bits cannot hold millimetres. Sizes are checked from the header before
    any pixel is decoded, so a decompression bomb costs nothing. Raises :class:`DepthError`.
    """
    if not png_bytes:
        raise DepthError(DepthProblem.EMPTY, "the depth file is empty")
    if len(png_bytes) > max_bytes:
        raise DepthError(
            DepthProblem.TOO_LARGE, f"{len(png_bytes)} bytes; the limit is {max_bytes}"
        )
    if not png_bytes.startswith(b"\x89PNG\r\n\x1a\n"):
        raise DepthError(DepthProblem.NOT_PNG, "the depth map must be a PNG")
    try:
        image = Image.open(io.BytesIO(png_bytes), formats=("PNG",))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DepthError(DepthProblem.TOO_LARGE, str(exc)) from exc
    except Exception as exc:  # Pillow raises many types for damaged headers
        raise DepthError(
            DepthProblem.UNREADABLE, f"damaged PNG header ({type(exc).__name__})"
        ) from exc
    with image:
        width, height = image.size
        if width > max_side or height > max_side:
            raise DepthError(
                DepthProblem.TOO_LARGE, f"{width}x{height} px; the limit is {max_side} px per side"
            )
        if width < MIN_DEPTH_SIDE or height < MIN_DEPTH_SIDE:
            raise DepthError(
                DepthProblem.TOO_SMALL,
                f"{width}x{height} px; at least {MIN_DEPTH_SIDE} px per side are needed",
            )
        if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise DepthError(
                DepthProblem.NOT_16_BIT,
                f"PNG mode {image.mode}; a 16-bit single-channel (grayscale) PNG is needed",
            )
        _check_aspect(width, height, expected_aspect, aspect_tolerance)
        _check_complete(png_bytes)
        try:
            image.load()
            values = np.asarray(image)
        except Exception as exc:  # truncated data, bad chunks, CRC errors: all a 422
            raise DepthError(
                DepthProblem.UNREADABLE, f"the depth map cannot be decoded ({type(exc).__name__})"
            ) from exc
    if values.dtype != np.uint16:
        values = np.clip(values, 0, 65535).astype(np.uint16)
    return np.ascontiguousarray(values)


def _check_complete(png_bytes: bytes) -> None:
    """Refuse a PNG whose chunks do not run whole from the signature to ``IEND``, without
    Pillow's ``LOAD_TRUNCATED_IMAGES`` global (``faces.is_complete`` says why)."""
    if not png_is_complete(png_bytes):
        raise DepthError(DepthProblem.UNREADABLE, "the depth map is cut short (no complete IEND)")


def _check_aspect(width: int, height: int, expected_aspect: float, tolerance: float) -> None:
    if not (expected_aspect > 0 and math.isfinite(expected_aspect)):
        raise ValueError(f"expected_aspect must be a positive number, not {expected_aspect!r}")
    aspect = width / height
    if abs(aspect / expected_aspect - 1.0) > tolerance:
        raise DepthError(
            DepthProblem.WRONG_ASPECT,
            f"depth map {width}x{height} (aspect {aspect:.3f}) does not match the colour "
            f"frame's aspect {expected_aspect:.3f}",
        )


# --- 68-point landmarks ---------------------------------------------------------------------

_predictor: Any = None
_predictor_lock = threading.Lock()


def _landmark_predictor() -> Any:
    """dlib's 68-point shape predictor, loaded once per process on first use (thread-safe)."""
    global _predictor  # one model per process, loaded lazily
    if _predictor is None:
        with _predictor_lock:
            if _predictor is None:
                import dlib  # heavy native module: never imported at import time

                with warnings.catch_warnings():
                    # face_recognition_models imports the deprecated pkg_resources.
                    warnings.simplefilter("ignore", UserWarning)
                    warnings.simplefilter("ignore", DeprecationWarning)
                    import face_recognition_models as models

                _predictor = (
                    dlib,
                    dlib.shape_predictor(models.pose_predictor_model_location()),
                )
    return _predictor


def face_landmarks(image_rgb: np.ndarray, box: FaceBox) -> Landmarks:
    """dlib's 68 landmarks of the face in ``box`` (from :meth:`FaceEngine.detect`).

    ``image_rgb`` is the full-resolution ``H x W x 3`` ``uint8`` RGB frame the box refers to.
    The predictor (about 100 MB) is loaded on the first call only; calls are thread-safe.
    """
    if image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(
            f"expected an H x W x 3 uint8 RGB array, not {image_rgb.dtype} {image_rgb.shape}"
        )
    dlib, predictor = _landmark_predictor()
    rect = dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
    shape = predictor(np.ascontiguousarray(image_rgb), rect)
    points = tuple((float(p.x), float(p.y)) for p in shape.parts())
    return Landmarks(points=points, box=box)


# --- the check ------------------------------------------------------------------------------


def assess_depth(
    depth_png: bytes,
    image_rgb: np.ndarray,
    box: FaceBox,
    thresholds: DepthThresholds = DEFAULT_THRESHOLDS,
) -> LivenessResult:
    """Judge the depth upload under the face in ``box`` of the RGB frame it came with.

    Raises :class:`DepthError` when the upload is not a usable depth map.
    """
    height, width = image_rgb.shape[:2]
    return assess_loaded(load_depth(depth_png, width / height), image_rgb, box, thresholds)


def assess_loaded(
    depth_mm: np.ndarray,
    image_rgb: np.ndarray,
    box: FaceBox,
    thresholds: DepthThresholds = DEFAULT_THRESHOLDS,
) -> LivenessResult:
    """:func:`assess_depth` on a depth map already decoded by :func:`load_depth` (for the
    RGB frame's aspect): a caller may decode it beside the face search."""
    height, width = image_rgb.shape[:2]
    return check_depth(depth_mm, (width, height), face_landmarks(image_rgb, box), thresholds)


def to_depth_pixels(
    points: np.ndarray, image_size: tuple[int, int], depth_shape: tuple[int, int]
) -> np.ndarray:
    """Map colour-frame pixel coordinates to depth-map pixel coordinates (same field of view).

    ``image_size`` is the colour frame's ``(width, height)``, ``depth_shape`` the depth array's
    ``(rows, columns)``. Pixel centres map to pixel centres.
    """
    width, height = image_size
    scale = np.array([depth_shape[1] / width, depth_shape[0] / height])
    return (np.asarray(points, dtype=np.float64) + 0.5) * scale - 0.5


def check_depth(
    depth_mm: np.ndarray,
    image_size: tuple[int, int],
    landmarks: Landmarks,
    thresholds: DepthThresholds = DEFAULT_THRESHOLDS,
) -> LivenessResult:
    """Judge whether the depth under ``landmarks`` has the relief of a live face.

    ``depth_mm`` is a 2-D array of millimetres (0 = no reading), e.g. from :func:`load_depth`;
    ``image_size`` is the colour frame's ``(width, height)`` in which ``landmarks`` were found.
    Raises :class:`DepthError` (``wrong_aspect``) when the two do not share an aspect ratio.
    """
    depth = np.asarray(depth_mm)
    if depth.ndim != 2 or depth.size == 0:
        raise ValueError(f"expected a 2-D depth array, not shape {depth.shape}")
    rows, cols = depth.shape
    _check_aspect(cols, rows, image_size[0] / image_size[1], ASPECT_TOLERANCE)
    depth = depth.astype(np.float32, copy=False)
    points = to_depth_pixels(landmarks.array(), image_size, depth.shape)
    eye_px = float(np.linalg.norm(points[EYE_OUTER_RIGHT] - points[EYE_OUTER_LEFT]))
    measured: dict[str, float | None] = {"eye_px": _rounded(eye_px)}

    def refuse(reason: LivenessReason) -> LivenessResult:
        return LivenessResult(True, False, 0.0, "depth", reason, measured)

    if eye_px < 4.0:  # the face covers too few depth pixels to show any relief
        return refuse(LivenessReason.TOO_FEW_DEPTH_PIXELS)
    radius = max(1, round(SAMPLE_WINDOW * eye_px))
    # The nose tip is a peak: a window grown past it reads its flanks and would understate the
    # relief, so it may only double and must be a quarter valid; else nothing can be judged.
    nose = _sample(depth, points[NOSE_TIP], radius, 1.0, 65535.0, grows=(1, 2), sparse_last=False)
    measured["nose_mm"] = _rounded(nose)
    if nose is None:
        return refuse(LivenessReason.TOO_FEW_DEPTH_PIXELS)
    if nose < thresholds.min_distance_mm:
        return refuse(LivenessReason.TOO_CLOSE)
    if nose > thresholds.max_distance_mm:
        return refuse(LivenessReason.TOO_FAR)
    band = (max(1.0, nose - FACE_BAND_MM), nose + FACE_BAND_MM)
    region = _face_region(points)
    valid_fraction = _valid_fraction(depth, region, band)
    measured["valid_fraction"] = _rounded(valid_fraction, 3)
    if valid_fraction < thresholds.min_valid_fraction:
        return refuse(LivenessReason.TOO_FEW_DEPTH_PIXELS)

    values = _Probe(depth, points, eye_px, radius, band, nose).landmark_relief()
    surface = None if values is None else _surface(depth, region, band, points, eye_px, nose)
    for key, value in {**(values or {}), **(surface or {})}.items():
        measured[key] = _rounded(value, 2 if key.endswith("rms_mm") else 1)
    if values is None or surface is None or values["peak_mm"] is None:
        return refuse(LivenessReason.TOO_FEW_DEPTH_PIXELS)
    values.update(surface)

    t = thresholds
    checks = (
        ("relief_low", t.relief_low, "relief_mm"),
        ("relief_high", t.relief_high, "relief_mm"),
        ("cheek_low", t.cheek_low, "cheek_drop_mm"),
        ("cheek_high", t.cheek_high, "cheek_drop_mm"),
        ("temple_low", t.temple_low, "temple_drop_mm"),
        ("peak_low", t.peak_low, "peak_mm"),
        ("span_low", t.span_low, "span_mm"),
        ("span_high", t.span_high, "span_mm"),
        ("plane_rms_low", t.plane_rms_low, "plane_rms_mm"),
        ("nose_above_sheet_low", t.nose_above_sheet_low, "nose_above_sheet_mm"),
    )
    # A landmark without readings (a cheek, the temples) leaves its check out.
    scores = {
        name: ramp.score(values[key]) for name, ramp, key in checks if values[key] is not None
    }
    score = min(scores.values())
    live = score >= 0.5
    reason = None if live else _reason(scores, surface["plane_rms_mm"], surface["sheet_rms_mm"], t)
    return LivenessResult(True, live, round(score, 3), "depth", reason, measured)


class _Probe:
    """Robust depth samples at landmarks, and heights over the eye/mouth-corner plane.

    Positions are depth pixels. Fits are done in inverse depth (1/Z) over pixel coordinates
    normalised by the eye-corner distance, origin at the nose tip: under a pinhole camera a
    3-D plane is exactly linear there, whatever the (unknown) focal length and tilt.
    """

    def __init__(
        self,
        depth: np.ndarray,
        points: np.ndarray,
        eye_px: float,
        radius: int,
        band: tuple[float, float],
        nose: float,
    ) -> None:
        self.depth, self.points, self.eye_px = depth, points, eye_px
        self.radius, self.band, self.nose = radius, band, nose
        self.nose_xy = points[NOSE_TIP]
        self.across = (points[EYE_OUTER_RIGHT] - points[EYE_OUTER_LEFT]) / eye_px
        self.down = np.array([-self.across[1], self.across[0]])
        self.plane = np.zeros(3)

    def sampled(self, *positions: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """The positions that have readings, each with its depth (mm)."""
        found = [(p, _sample(self.depth, p, self.radius, *self.band)) for p in positions]
        return [(p, z) for p, z in found if z is not None]

    def heights(self, xy: np.ndarray, z: np.ndarray) -> np.ndarray:
        """How far (mm) points stand in front of the corner plane (the plane's tilt removed)."""
        uv = (np.atleast_2d(xy) - self.nose_xy) / self.eye_px
        return 1000.0 / (_linear_terms(uv) @ self.plane) - np.atleast_1d(z)

    def mean_height(self, samples: list[tuple[np.ndarray, float]]) -> float:
        xy = np.array([p for p, _ in samples])
        return float(self.heights(xy, np.array([z for _, z in samples])).mean())

    def landmark_relief(self) -> dict[str, float | None] | None:
        """Relief, cheeks, temples, midline profile and peak; None without the eye/mouth plane."""
        p = self.points
        corners = self.sampled(*p[[EYE_OUTER_LEFT, EYE_OUTER_RIGHT, MOUTH_LEFT, MOUTH_RIGHT]])
        if len(corners) < 3:  # three corners still fix the plane
            return None
        uv = (np.array([xy for xy, _ in corners]) - self.nose_xy) / self.eye_px
        self.plane = _lstsq(_linear_terms(uv), np.array([1000.0 / z for _, z in corners]))
        relief = float(self.heights(self.nose_xy, self.nose)[0])
        cheeks = self.sampled(
            (p[2] + p[3]) / 4 + p[NOSE_LEFT] / 2, (p[13] + p[14]) / 4 + p[NOSE_RIGHT] / 2
        )
        temples = self.sampled(
            p[JAW_LEFT] + 0.15 * (p[NASION] - p[JAW_LEFT]),
            p[JAW_RIGHT] + 0.15 * (p[NASION] - p[JAW_RIGHT]),
        )
        midline = self.sampled(
            (p[EYE_INNER_LEFT] + p[EYE_INNER_RIGHT]) / 2, p[list(MOUTH_CENTRE)].mean(axis=0)
        )
        profile = None
        if len(midline) == 2:
            (upper, upper_z), (lower, lower_z) = midline
            profile = relief - _on_line(
                (upper - self.nose_xy) / self.eye_px,
                float(self.heights(upper, upper_z)[0]),
                (lower - self.nose_xy) / self.eye_px,
                float(self.heights(lower, lower_z)[0]),
            )
        return {
            "corners": float(len(corners)),
            "relief_mm": relief,
            "cheek_drop_mm": relief - self.mean_height(cheeks) if cheeks else None,
            "temple_drop_mm": -self.mean_height(temples) if temples else None,
            "profile_mm": profile,
            "peak_mm": self.peak(relief),
        }

    def peak(self, relief: float) -> float | None:
        """How much the face falls away from the nose tip in the direction where it falls least.

        The nose is a peak, not a ridge: along every direction through it the face falls away.
        A fold or a cylinder through the nose has one direction (its axis) along which it does
        not. Per direction the two opposite ring points are averaged (a tilt cancels). None when
        fewer than three quarters of the directions have readings on both sides.
        """
        angles = np.arange(PEAK_DIRECTIONS) * (np.pi / PEAK_DIRECTIONS)
        unit = np.cos(angles)[:, None] * self.across + np.sin(angles)[:, None] * self.down
        unit = np.concatenate([unit, -unit])  # direction k and its opposite k + PEAK_DIRECTIONS
        ring = np.full(len(unit), np.nan)
        ring_xy = np.zeros((len(unit), 2))
        for ring_radius in PEAK_RINGS:  # a point in a hole is taken from the next ring
            missing = np.isnan(ring)
            if not missing.any():
                break
            xy = self.nose_xy + ring_radius * self.eye_px * unit[missing]
            ring[missing] = _sample_many(self.depth, xy, self.radius, self.band)
            ring_xy[missing] = xy
        for k in np.flatnonzero(np.isnan(ring)):  # still a hole: a wider window, first ring
            ring_xy[k] = self.nose_xy + PEAK_RINGS[0] * self.eye_px * unit[k]
            found = _sample(self.depth, ring_xy[k], self.radius, *self.band, grows=(2, 4))
            ring[k] = np.nan if found is None else found
        ring_height = self.heights(ring_xy, ring)
        drops = relief - (ring_height[:PEAK_DIRECTIONS] + ring_height[PEAK_DIRECTIONS:]) / 2
        drops = drops[np.isfinite(drops)]
        if len(drops) * 4 < PEAK_DIRECTIONS * 3:
            return None
        return float(drops.min())


def _surface(
    depth: np.ndarray,
    region: tuple[int, int, int, int],
    band: tuple[float, float],
    points: np.ndarray,
    eye_px: float,
    nose: float,
) -> dict[str, float] | None:
    """Fits over a grid of cell medians covering the face region: span, plane residual and tilt,
    and the nose's height over the smooth (quadric) sheet fitted without the nose.

    None when too few cells have readings.
    """
    cells = _cell_medians(depth, region, band)
    if cells is None:
        return None
    nose_xy = points[NOSE_TIP]
    cell_xy, cell_z = cells
    cell_uv = (cell_xy - nose_xy) / eye_px
    cell_w = 1000.0 / cell_z
    off_nose = ~_nose_zone(cell_uv, points, nose_xy, eye_px)
    if off_nose.sum() < 10:
        return None
    linear = _linear_terms(cell_uv)
    cell_plane = _lstsq(linear, cell_w)
    tilt_x, tilt_y = _tilts(cell_plane, nose)
    quadric = _quadratic_terms(cell_uv[off_nose])
    sheet = _lstsq(quadric, cell_w[off_nose])
    return {
        "cells": float(len(cell_z)),
        "span_mm": float(np.percentile(cell_z, 95) - np.percentile(cell_z, 5)),
        "plane_rms_mm": _rms_mm(cell_z, linear @ cell_plane),
        "tilt_x_deg": tilt_x,
        "tilt_y_deg": tilt_y,
        "sheet_rms_mm": _rms_mm(cell_z[off_nose], quadric @ sheet),
        # The quadric's constant term is its value at the origin, the nose tip.
        "nose_above_sheet_mm": float(1000.0 / sheet[0] - nose),
    }


def _reason(
    scores: dict[str, float], plane_rms: float, sheet_rms: float, t: DepthThresholds
) -> LivenessReason:
    """Name what failed: too much relief, a flat or curved sheet, or too little relief."""
    failed = {name for name, value in scores.items() if value < 0.5}
    if failed & {*_FLAT_CHECKS, *_SHEET_CHECKS}:
        curved = plane_rms >= t.curved_min_plane_rms_mm and plane_rms >= 2.0 * sheet_rms
        return LivenessReason.CURVED_SHEET if curved else LivenessReason.FLAT_SURFACE
    if failed & set(_HIGH_CHECKS):
        return LivenessReason.IMPLAUSIBLE_RELIEF
    return LivenessReason.NO_RELIEF


def _rounded(value: float | None, digits: int = 1) -> float | None:
    """A plain float rounded for the measurements (JSON-ready), or None."""
    return None if value is None else round(float(value), digits)


def _sample(
    depth: np.ndarray,
    point: np.ndarray,
    radius: int,
    low: float,
    high: float,
    *,
    grows: tuple[int, ...] = (1, 2, 4),
    sparse_last: bool = True,
) -> float | None:
    """Median of the readings within ``[low, high]`` mm in a window around ``point``.

    The window grows (by the factors in ``grows``) until at least a quarter of it holds
    readings, so a hole does not lose the landmark. With ``sparse_last`` the largest window is
    still used when at least 3 readings and a tenth of it are valid. None otherwise.
    """
    rows, cols = depth.shape
    x, y = round(float(point[0])), round(float(point[1]))
    values = np.empty(0)
    size = 0
    for grow in grows:
        r = radius * grow
        top, bottom = max(0, y - r), min(rows, y + r + 1)
        left, right = max(0, x - r), min(cols, x + r + 1)
        if top >= bottom or left >= right:
            return None
        window = depth[top:bottom, left:right]
        values = window[(window >= low) & (window <= high)]
        size = window.size
        if values.size and values.size * 4 >= size:
            return float(np.median(values))
    if sparse_last and values.size >= 3 and values.size * 10 >= size:
        return float(np.median(values))
    return None


def _sample_many(
    depth: np.ndarray, points: np.ndarray, radius: int, band: tuple[float, float]
) -> np.ndarray:
    """Median of the in-band readings in a window around each point; NaN where under a quarter
    of the window (clipped to the map) has readings. One vectorised pass for many points."""
    rows, cols = depth.shape
    centres = np.rint(points).astype(int)
    steps = np.arange(-radius, radius + 1)
    ys = centres[:, 1, None, None] + steps[None, :, None]
    xs = centres[:, 0, None, None] + steps[None, None, :]
    inside = (ys >= 0) & (ys < rows) & (xs >= 0) & (xs < cols)
    values = depth[np.clip(ys, 0, rows - 1), np.clip(xs, 0, cols - 1)].reshape(len(points), -1)
    inside = np.broadcast_to(inside, (len(points), steps.size, steps.size)).reshape(len(points), -1)
    valid = inside & (values >= band[0]) & (values <= band[1])
    counts = valid.sum(axis=1)
    ordered = np.sort(np.where(valid, values, np.inf), axis=1)
    low = np.take_along_axis(ordered, np.maximum(counts - 1, 0)[:, None] // 2, axis=1)[:, 0]
    high = np.take_along_axis(ordered, counts[:, None] // 2, axis=1)[:, 0]
    enough = (counts > 0) & (counts * 4 >= inside.sum(axis=1))
    with np.errstate(invalid="ignore"):
        return np.where(enough, (low.astype(np.float64) + high) / 2, np.nan)


def _face_region(points: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (left, top, right, bottom; depth px, may exceed the map) of brows to chin.

    The brows, eyes, nose and mouth plus the chin: all skin on a live face, whatever the
    background, so its share of valid readings measures the sensor, not the scene.
    """
    inner = points[[*range(17, 68), CHIN]]
    left, top = np.floor(inner.min(axis=0)).astype(int)
    right, bottom = np.ceil(inner.max(axis=0)).astype(int) + 1
    return int(left), int(top), int(right), int(bottom)


def _valid_fraction(
    depth: np.ndarray, region: tuple[int, int, int, int], band: tuple[float, float]
) -> float:
    """Share of the region's pixels (parts outside the map count as missing) with a reading."""
    left, top, right, bottom = region
    area = max(1, (right - left) * (bottom - top))
    rows, cols = depth.shape
    crop = depth[max(0, top) : min(rows, bottom), max(0, left) : min(cols, right)]
    return float(((crop >= band[0]) & (crop <= band[1])).sum()) / area


def _cell_medians(
    depth: np.ndarray,
    region: tuple[int, int, int, int],
    band: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray] | None:
    """Median depth of each cell of a grid over the region (cells at least 30 % valid).

    Returns the cells' centres (depth px, ``N x 2``) and medians (mm), or None when fewer than
    16 cells have readings. Medians of cells average the sensor noise away and ignore holes.
    """
    rows, cols = depth.shape
    left, top, right, bottom = region
    left, top, right, bottom = max(0, left), max(0, top), min(cols, right), min(rows, bottom)
    width, height = right - left, bottom - top
    cells_x = max(3, min(GRID_CELLS, width // 2))
    cells_y = max(3, min(GRID_CELLS, height // 2))
    cell_w, cell_h = width // cells_x, height // cells_y
    if cell_w < 1 or cell_h < 1:
        return None
    # Large faces: sample every `step`-th pixel (at most about 16x16 samples per cell).
    step = max(1, min(cell_w, cell_h) // 16)
    crop = depth[top : top + cells_y * cell_h, left : left + cells_x * cell_w]
    cells = crop.reshape(cells_y, cell_h, cells_x, cell_w)[:, ::step, :, ::step]
    cells = cells.transpose(0, 2, 1, 3).reshape(cells_y * cells_x, -1)
    valid = (cells >= band[0]) & (cells <= band[1])
    counts = valid.sum(axis=1)
    ordered = np.sort(np.where(valid, cells, np.inf), axis=1)
    keep = counts >= max(1, math.ceil(0.3 * cells.shape[1]))
    if keep.sum() < 16:
        return None
    index = ((counts[keep] - 1) // 2)[:, None]
    lower = np.take_along_axis(ordered[keep], index, axis=1)[:, 0]
    upper = np.take_along_axis(ordered[keep], counts[keep][:, None] // 2, axis=1)[:, 0]
    medians = (lower.astype(np.float64) + upper) / 2
    grid_y, grid_x = np.mgrid[0:cells_y, 0:cells_x]
    centres = np.stack(
        [left + (grid_x.ravel() + 0.5) * cell_w - 0.5, top + (grid_y.ravel() + 0.5) * cell_h - 0.5],
        axis=1,
    )[keep]
    return centres, medians


def _nose_zone(
    cell_uv: np.ndarray, points: np.ndarray, nose_xy: np.ndarray, eye_px: float
) -> np.ndarray:
    """Cells over the nose (from the nasion to below the nostrils, a quarter eye-span each side).

    In the normalised coordinates of the fits (origin at the nose tip, unit = eye-corner
    distance), along the face's own axes so a tilted head is handled.
    """
    across = (points[EYE_OUTER_RIGHT] - points[EYE_OUTER_LEFT]) / eye_px
    down = np.array([-across[1], across[0]])
    top = float((points[NASION] - nose_xy) @ down) / eye_px - 0.05
    bottom = float((points[SUBNASALE] - nose_xy) @ down) / eye_px + 0.12
    along = cell_uv @ down
    side = cell_uv @ across
    return (np.abs(side) <= 0.25) & (along >= top) & (along <= bottom)


def _linear_terms(uv: np.ndarray) -> np.ndarray:
    return np.column_stack([uv[:, 0], uv[:, 1], np.ones(len(uv))])


def _quadratic_terms(uv: np.ndarray) -> np.ndarray:
    u, v = uv[:, 0], uv[:, 1]
    return np.column_stack([np.ones(len(uv)), u, v, u * u, u * v, v * v])


def _lstsq(terms: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(terms, values, rcond=None)[0]


def _rms_mm(depth_mm: np.ndarray, fitted_w: np.ndarray) -> float:
    """RMS distance in mm between depths and a fit done in inverse depth (1000 / mm)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        fitted = 1000.0 / fitted_w
    residual = np.where(np.isfinite(fitted), depth_mm - fitted, FACE_BAND_MM)
    return float(np.sqrt(np.mean(residual**2)))


def _on_line(upper_uv: np.ndarray, upper: float, lower_uv: np.ndarray, lower: float) -> float:
    """The value interpolated from ``upper`` to ``lower`` where their line passes the origin."""
    direction = lower_uv - upper_uv
    length2 = float(direction @ direction)
    s = 0.5 if length2 <= 0 else float(np.clip(-(upper_uv @ direction) / length2, 0.0, 1.0))
    return upper + s * (lower - upper)


def _tilts(plane: np.ndarray, nose: float) -> tuple[float, float]:
    """Tilt of a fitted plane about the horizontal and vertical axes, in degrees (reported only).

    The plane is ``1000/Z = a*u + b*v + c`` over pixels normalised by the eye-corner distance,
    so near the nose dZ/du = -a * Z^2 / 1000 mm per eye-corner distance, taken as
    EYE_CORNER_WIDTH_MM.
    """
    a, b, _ = plane
    dz_du = -a * nose * nose / 1000.0 / EYE_CORNER_WIDTH_MM
    dz_dv = -b * nose * nose / 1000.0 / EYE_CORNER_WIDTH_MM
    return math.degrees(math.atan(dz_dv)), math.degrees(math.atan(dz_du))
