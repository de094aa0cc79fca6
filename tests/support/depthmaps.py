"""Synthetic depth maps aligned with a real photo's landmarks: a live head and the usual attacks.

A MODEL, not a measurement: it exists so the depth liveness check (:mod:`gatekeeper.liveness`)
can be tested and its error rates estimated without a depth camera. docs/liveness.md describes
it and what the numbers measured on it mean. Pure numpy; every function is deterministic for a
given ``numpy.random.Generator``.

The camera. The depth map has the colour frame's field of view at its own resolution. The
principal point is the map's centre and the focal length is implied by the face: a face whose
outer eye corners are ``e`` depth pixels apart at ``distance_mm`` has ``f = e * distance_mm /
eye_width_mm`` (``eye_width_mm`` is drawn per head, 86-98 mm). Photos and screens are rendered
by intersecting each pixel's ray with the sheet (exact pinhole); the live head is a relief in
face-aligned millimetres (weak perspective, exact enough at these distances).

The live head (:func:`live_face`), in millimetres behind the head's front, over face-aligned
coordinates ``X`` (along the outer eye corners) and ``Y`` (down):

- a super-ellipsoid skull: half-width from the jaw-line landmarks 0 and 16 (x 1.0-1.1), centred
  15 % of the nasion-to-chin distance below the nasion, half-heights from that distance (x
  1.0-1.25 above, x 1.5-1.9 below, so the chin stays forward), depth semi-axis 85-105 mm,
  exponent 2.0-2.6 across (a front flatter than an ellipse);
- a nose ridge from the nasion (landmark 27; 4-9 mm proud of the skull) to the tip (30; 16-28 mm
  proud), falling to the subnasale (33; 2-4 mm), 6-9 mm wide (sigma) at the bridge widening to
  11-15 mm at the nostrils;
- eye sockets 3-8 mm deep, a brow ridge 2-5 mm proud, lips 3-8 mm proud, a chin 2-6 mm proud;
- head pose: yaw and pitch each up to +-15 degrees (drawn unless given);
- beyond the head: a wall 1.8-4 m away or no reading (half the time each).

The attacks, with the face's landmarks where the photo's or screen's face is:

- :func:`flat_photo`: a plane through the nose point, tilted about the horizontal and vertical
  axes, extending 1.2-2 face half-widths to each side, 40-120 mm above the brows and 20-100 mm
  below the chin;
- :func:`bent_photo`: the same sheet bent into a cylinder of a given radius whose axis (vertical
  or horizontal) lies that radius behind the nose point (convex: the middle nearest the camera,
  like a face) or in front of it (concave); the paper ends a third of the way round;
- :func:`screen`: a flat, possibly tilted phone or tablet screen around the face with a bezel
  4-12 mm wide standing 1-5 mm proud, and extra drop-outs on the glass;
- :func:`folded_photo` (beyond the issue's list): a photo folded along a vertical or horizontal
  line through the nose, both halves turned back, so the nose stands in front of the rest.

Every map then gets the sensor model: Gaussian noise with sigma = ``noise_scale`` x (0.4 + 1.6 x
(Z / 1 m)^2) mm (0.5 mm at 0.3 m, 2 mm at 1 m, 4 mm at 1.5 m, as structured-light and stereo
sensors degrade with the square of the distance) plus a smooth component of a third of that;
half of the pixels at depth jumps over 50 mm dropped (shadows at silhouettes); holes covering
``hole_fraction`` of the map (5-15 % unless given), 70 % as elliptical blobs 1-4 % of the width
across and 30 % as single pixels; readings rounded to whole millimetres; nothing beyond 4.5 m.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from PIL import Image

from gatekeeper import faces, liveness
from gatekeeper.faces import FaceBox
from gatekeeper.liveness import (
    CHIN,
    EYE_OUTER_LEFT,
    EYE_OUTER_RIGHT,
    JAW_LEFT,
    JAW_RIGHT,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    NASION,
    NOSE_LEFT,
    NOSE_RIGHT,
    NOSE_TIP,
    SUBNASALE,
    Landmarks,
    to_depth_pixels,
)
from tests.fetch_test_data import FACE_PHOTOS
from tests.fetch_test_data import test_image as photo_path

#: Readings beyond this are lost (typical range of a terminal's depth sensor).
SENSOR_RANGE_MM = 4500.0
#: The door camera assumed by :func:`place_face`: horizontal field of view of a 1280x720 frame.
DOOR_CAMERA_HFOV_DEG = 70.0


class BendAxis(StrEnum):
    """The axis a bent photo curves around."""

    VERTICAL = "vertical"  # curves left-right, like a face's cheeks
    HORIZONTAL = "horizontal"  # curves top-bottom


@dataclass(frozen=True)
class Scene:
    """Where the face is: landmarks in a colour frame of ``image_size`` (width, height), and the
    ``depth_size`` (width, height) of the depth map to render (same field of view)."""

    landmarks: Landmarks
    image_size: tuple[int, int]
    depth_size: tuple[int, int]


def transformed(landmarks: Landmarks, scale: float, dx: float, dy: float) -> Landmarks:
    """The landmarks (and box) scaled about the origin, then shifted: a resized, moved face."""
    points = tuple((x * scale + dx, y * scale + dy) for x, y in landmarks.points)
    box = None
    if landmarks.box is not None:
        box = FaceBox(
            left=round(landmarks.box.left * scale + dx),
            top=round(landmarks.box.top * scale + dy),
            right=round(landmarks.box.right * scale + dx),
            bottom=round(landmarks.box.bottom * scale + dy),
        )
    return Landmarks(points=points, box=box)


def place_face(
    landmarks: Landmarks,
    distance_mm: float,
    *,
    frame_size: tuple[int, int] = (1280, 720),
    hfov_deg: float = DOOR_CAMERA_HFOV_DEG,
    centre: tuple[float, float] = (0.5, 0.45),
    eye_width_mm: float = 90.0,
) -> Landmarks:
    """Move a photo's landmarks to where a face at ``distance_mm`` would appear in a door frame.

    The face is scaled so its outer eye corners are ``eye_width_mm`` apart at that distance for a
    camera of ``hfov_deg``, and its nose tip is put at ``centre`` (fractions of the frame).
    """
    points = landmarks.array()
    focal = frame_size[0] / 2 / math.tan(math.radians(hfov_deg) / 2)
    eye_px = float(np.linalg.norm(points[EYE_OUTER_RIGHT] - points[EYE_OUTER_LEFT]))
    scale = focal * eye_width_mm / distance_mm / eye_px
    nose = points[NOSE_TIP] * scale
    return transformed(
        landmarks, scale, centre[0] * frame_size[0] - nose[0], centre[1] * frame_size[1] - nose[1]
    )


# --- the live head --------------------------------------------------------------------------


def live_face(
    scene: Scene,
    distance_mm: float,
    rng: np.random.Generator,
    *,
    yaw_deg: float | None = None,
    pitch_deg: float | None = None,
    nose_mm: float | None = None,
    noise_scale: float = 1.0,
    hole_fraction: float | None = None,
) -> np.ndarray:
    """A live head whose landmarks fall on the scene's; the nose tip at ``distance_mm``.

    ``nose_mm`` is how far the nose tip stands proud of the skull surface (16-28 mm drawn unless
    given; flatter noses test the thresholds). Returns an ``H x W`` ``uint16`` depth map in
    millimetres (0 = no reading).
    """
    frame = _FaceFrame(scene, distance_mm, rng)
    x, y = frame.grid()
    p = frame.mm_points
    mid_x = (p[JAW_LEFT, 0] + p[JAW_RIGHT, 0]) / 2
    half_width = abs(p[JAW_RIGHT, 0] - p[JAW_LEFT, 0]) / 2 * rng.uniform(1.0, 1.1)
    nasion_y, chin_y = p[NASION, 1], p[CHIN, 1]
    face_height = chin_y - nasion_y
    centre_y = nasion_y + 0.15 * face_height
    up = face_height * rng.uniform(1.0, 1.25)
    down = face_height * rng.uniform(1.5, 1.9)
    depth_axis = rng.uniform(85.0, 105.0)
    exponent = rng.uniform(2.0, 2.6)

    def skull(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dy = ys - centre_y
        r2 = np.abs((xs - mid_x) / half_width) ** exponent + (dy / np.where(dy < 0, up, down)) ** 2
        inside = r2 < 1.0
        return depth_axis * (1.0 - np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))), inside

    def features(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        return (
            _nose(xs, ys, p, rng, nose_mm)
            - _eye_sockets(xs, ys, p, rng)
            + _brow_ridge(xs, ys, p, rng)
            + _bump(xs, ys, _mouth_centre(p), (0.45 * _mouth_width(p), 9.0), rng.uniform(3, 8))
            + _bump(xs, ys, p[CHIN] - np.array([0.0, 12.0]), (12.0, 12.0), rng.uniform(2, 6))
        )

    # `features` draws its random parameters once per call, so evaluate grid and nose together.
    xs = np.concatenate([x.ravel(), [p[NOSE_TIP, 0]]])
    ys = np.concatenate([y.ravel(), [p[NOSE_TIP, 1]]])
    base, inside = skull(xs, ys)
    relief = base - features(xs, ys)
    relief -= relief[-1]
    yaw = math.radians(rng.uniform(-15, 15) if yaw_deg is None else yaw_deg)
    pitch = math.radians(rng.uniform(-15, 15) if pitch_deg is None else pitch_deg)
    relief += (xs - p[NOSE_TIP, 0]) * math.tan(yaw) + (ys - p[NOSE_TIP, 1]) * math.tan(pitch)
    z = (distance_mm + relief[:-1]).reshape(x.shape)
    inside = inside[:-1].reshape(x.shape)
    z = np.where(inside, z, _background(x.shape, rng))
    return _sensor(z, distance_mm, rng, noise_scale, hole_fraction)


def _nose(
    xs: np.ndarray,
    ys: np.ndarray,
    p: np.ndarray,
    rng: np.random.Generator,
    tip_mm: float | None,
) -> np.ndarray:
    """Height of the nose above the skull: a ridge from nasion to tip, falling to the subnasale."""
    nasion, tip, base = p[NASION], p[NOSE_TIP], p[SUBNASALE]
    h_nasion, h_tip, h_base = rng.uniform(4, 9), rng.uniform(16, 28), rng.uniform(2, 4)
    if tip_mm is not None:
        h_tip = tip_mm
        h_nasion = min(h_nasion, tip_mm / 2)
    w_bridge = rng.uniform(6, 9)
    w_wings = max(rng.uniform(11, 15), abs(p[NOSE_RIGHT, 0] - p[NOSE_LEFT, 0]) / 3)
    axis = tip - nasion
    length = float(np.linalg.norm(axis))
    unit = axis / length
    normal = np.array([-unit[1], unit[0]])
    rel_x, rel_y = xs - nasion[0], ys - nasion[1]
    t = (rel_x * unit[0] + rel_y * unit[1]) / length  # 0 at the nasion, 1 at the tip
    side = rel_x * normal[0] + rel_y * normal[1]
    t_base = 1.0 + max(float(np.linalg.norm(base - tip)), 4.0) / length
    ridge = np.where(
        t < 0,
        h_nasion * np.exp(-((t / 0.12) ** 2)),
        np.where(
            t <= 1,
            h_nasion + (h_tip - h_nasion) * np.clip(t, 0, 1) ** 1.5,
            np.where(
                t <= t_base,
                h_tip + (h_base - h_tip) * np.clip((t - 1) / (t_base - 1), 0, 1) ** 0.7,
                h_base * np.exp(-(((t - t_base) / 0.1) ** 2)),
            ),
        ),
    )
    width = w_bridge + (w_wings - w_bridge) * np.clip(t, 0, 1)
    return ridge * np.exp(-0.5 * (side / width) ** 2)


def _eye_sockets(
    xs: np.ndarray, ys: np.ndarray, p: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    depth = rng.uniform(3, 8)
    return sum(
        _bump(xs, ys, p[eye].mean(axis=0), (14.0, 9.0), depth)
        for eye in (slice(36, 42), slice(42, 48))
    )


def _brow_ridge(
    xs: np.ndarray, ys: np.ndarray, p: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    brows = p[17:27]
    mid_x = brows[:, 0].mean()
    half = (brows[:, 0].max() - brows[:, 0].min()) / 2
    beyond = np.clip(np.abs(xs - mid_x) - half, 0, None)
    return rng.uniform(2, 5) * np.exp(
        -(((ys - brows[:, 1].mean()) / 7.0) ** 2 + (beyond / 10) ** 2)
    )


def _bump(
    xs: np.ndarray,
    ys: np.ndarray,
    centre: np.ndarray,
    sigma: tuple[float, float],
    height: float,
) -> np.ndarray:
    return height * np.exp(
        -0.5 * (((xs - centre[0]) / sigma[0]) ** 2 + ((ys - centre[1]) / sigma[1]) ** 2)
    )


def _mouth_centre(p: np.ndarray) -> np.ndarray:
    return p[[51, 57, 62, 66]].mean(axis=0)


def _mouth_width(p: np.ndarray) -> float:
    return float(np.linalg.norm(p[MOUTH_RIGHT] - p[MOUTH_LEFT]))


# --- the attacks ----------------------------------------------------------------------------


def flat_photo(
    scene: Scene,
    distance_mm: float,
    rng: np.random.Generator,
    *,
    tilt_x_deg: float = 0.0,
    tilt_y_deg: float = 0.0,
    noise_scale: float = 1.0,
    hole_fraction: float | None = None,
) -> np.ndarray:
    """A printed photo (a plane) whose face lies on the scene's landmarks, nose at distance_mm.

    ``tilt_x_deg`` turns it about the horizontal axis (top away for positive values),
    ``tilt_y_deg`` about the vertical axis.
    """
    frame = _FaceFrame(scene, distance_mm, rng)
    z = _plane_depth(frame, distance_mm, tilt_x_deg, tilt_y_deg)
    z = np.where(frame.sheet_mask(rng), z, _background(z.shape, rng))
    return _sensor(z, distance_mm, rng, noise_scale, hole_fraction)


def bent_photo(
    scene: Scene,
    distance_mm: float,
    rng: np.random.Generator,
    *,
    radius_mm: float,
    axis: BendAxis = BendAxis.VERTICAL,
    convex: bool = True,
    noise_scale: float = 1.0,
    hole_fraction: float | None = None,
) -> np.ndarray:
    """A photo bent into a cylinder of ``radius_mm`` around an ``axis`` through the face centre.

    Convex bends towards the camera (the middle of the face nearest, like a real face); the
    nose point is at ``distance_mm``.
    """
    frame = _FaceFrame(scene, distance_mm, rng)
    rx, ry = frame.rays()
    nose_ray = frame.ray_at(frame.depth_points[NOSE_TIP])
    # Cylinder axis through C, parallel to the image's y (vertical) or x (horizontal) axis.
    centre = nose_ray * distance_mm + np.array([0.0, 0.0, radius_mm if convex else -radius_mm])
    across = rx if axis is BendAxis.VERTICAL else ry
    c_across = centre[0] if axis is BendAxis.VERTICAL else centre[1]
    # |t * (across, 1) - (c_across, c_z)| = R, solved for t (t is the depth Z since r_z = 1).
    a = across**2 + 1.0
    b = -2.0 * (across * c_across + centre[2])
    c = c_across**2 + centre[2] ** 2 - radius_mm**2
    disc = b * b - 4 * a * c
    hit = disc >= 0
    root = np.sqrt(np.clip(disc, 0, None))
    z = (-b - root) / (2 * a) if convex else (-b + root) / (2 * a)
    # Paper does not wrap further than about a third of the way round.
    lateral = np.abs(across * z - c_across)
    hit &= lateral <= 0.85 * radius_mm
    z = np.where(hit & frame.sheet_mask(rng), z, _background(z.shape, rng))
    return _sensor(z, distance_mm, rng, noise_scale, hole_fraction)


def folded_photo(
    scene: Scene,
    distance_mm: float,
    rng: np.random.Generator,
    *,
    fold_deg: float,
    axis: BendAxis = BendAxis.VERTICAL,
    noise_scale: float = 1.0,
    hole_fraction: float | None = None,
) -> np.ndarray:
    """A photo folded along a line through the nose (a ridge towards the camera), each half
    turned back by ``fold_deg``: the cheap way to give a photo a "nose"."""
    frame = _FaceFrame(scene, distance_mm, rng)
    if axis is BendAxis.VERTICAL:
        halves = (_plane_depth(frame, distance_mm, 0.0, a) for a in (fold_deg, -fold_deg))
    else:
        halves = (_plane_depth(frame, distance_mm, a, 0.0) for a in (fold_deg, -fold_deg))
    z = np.maximum(*tuple(halves))  # a ridge: each half is the farther of the two planes
    z = np.where(frame.sheet_mask(rng), z, _background(z.shape, rng))
    return _sensor(z, distance_mm, rng, noise_scale, hole_fraction)


def screen(
    scene: Scene,
    distance_mm: float,
    rng: np.random.Generator,
    *,
    tilt_x_deg: float = 0.0,
    tilt_y_deg: float = 0.0,
    noise_scale: float = 1.0,
    hole_fraction: float | None = None,
    glass_dropout: float = 0.05,
) -> np.ndarray:
    """A phone or tablet showing the face: a flat screen, a raised bezel, drop-outs on the glass."""
    frame = _FaceFrame(scene, distance_mm, rng)
    z = _plane_depth(frame, distance_mm, tilt_x_deg, tilt_y_deg)
    x, y = frame.grid()
    p = frame.mm_points
    half_width = abs(p[JAW_RIGHT, 0] - p[JAW_LEFT, 0]) / 2 * rng.uniform(1.1, 1.6)
    mid_x = (p[JAW_LEFT, 0] + p[JAW_RIGHT, 0]) / 2
    top = p[17:27, 1].min() - rng.uniform(20, 80)
    bottom = p[CHIN, 1] + rng.uniform(10, 60)
    bezel = rng.uniform(4, 12)
    glass = (np.abs(x - mid_x) <= half_width) & (y >= top) & (y <= bottom)
    device = (np.abs(x - mid_x) <= half_width + bezel) & (y >= top - bezel) & (y <= bottom + bezel)
    z = np.where(device & ~glass, z - rng.uniform(1, 5), z)
    z = np.where(device, z, _background(z.shape, rng))
    z = np.where(glass & (rng.random(z.shape) < glass_dropout), 0.0, z)
    return _sensor(z, distance_mm, rng, noise_scale, hole_fraction)


def _plane_depth(
    frame: _FaceFrame, distance_mm: float, tilt_x_deg: float, tilt_y_deg: float
) -> np.ndarray:
    """Depth of a plane through the nose point at ``distance_mm``, tilted, along every ray."""
    tx, ty = math.radians(tilt_x_deg), math.radians(tilt_y_deg)
    normal = np.array(
        [math.sin(ty) * math.cos(tx), -math.sin(tx), math.cos(tx) * math.cos(ty)]
    )  # (0, 0, 1) turned about x by tx, then about y by ty
    point = frame.ray_at(frame.depth_points[NOSE_TIP]) * distance_mm
    rx, ry = frame.rays()
    denominator = normal[0] * rx + normal[1] * ry + normal[2]
    return float(normal @ point) / denominator


# --- shared geometry and the sensor ---------------------------------------------------------


class _FaceFrame:
    """The scene in depth pixels, face-aligned millimetre coordinates and camera rays."""

    def __init__(self, scene: Scene, distance_mm: float, rng: np.random.Generator) -> None:
        self.width, self.height = scene.depth_size
        self.depth_points = to_depth_pixels(
            scene.landmarks.array(), scene.image_size, (self.height, self.width)
        )
        d = self.depth_points
        self.eye_px = float(np.linalg.norm(d[EYE_OUTER_RIGHT] - d[EYE_OUTER_LEFT]))
        self.eye_width_mm = rng.uniform(86.0, 98.0)
        self.mm_per_px = self.eye_width_mm / self.eye_px
        #: Focal length (depth px) that makes the face life-size at distance_mm.
        self.focal_px = self.eye_px * distance_mm / self.eye_width_mm
        self.across = (d[EYE_OUTER_RIGHT] - d[EYE_OUTER_LEFT]) / self.eye_px
        self.down = np.array([-self.across[1], self.across[0]])
        self.origin = (d[EYE_OUTER_LEFT] + d[EYE_OUTER_RIGHT]) / 2
        self.mm_points = np.stack(self.to_mm(d[:, 0], d[:, 1]), axis=1)

    def to_mm(self, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = px - self.origin[0], py - self.origin[1]
        x = (dx * self.across[0] + dy * self.across[1]) * self.mm_per_px
        y = (dx * self.down[0] + dy * self.down[1]) * self.mm_per_px
        return x, y

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Face-aligned mm coordinates of every depth pixel's centre."""
        py, px = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        return self.to_mm(px, py)

    def rays(self) -> tuple[np.ndarray, np.ndarray]:
        """x/z and y/z of each depth pixel's ray (principal point at the map's centre)."""
        py, px = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        return (px - (self.width - 1) / 2) / self.focal_px, (
            py - (self.height - 1) / 2
        ) / self.focal_px

    def ray_at(self, point: np.ndarray) -> np.ndarray:
        """The ray (x/z, y/z, 1) through a depth-pixel position."""
        return np.array(
            [
                (point[0] - (self.width - 1) / 2) / self.focal_px,
                (point[1] - (self.height - 1) / 2) / self.focal_px,
                1.0,
            ]
        )

    def sheet_mask(self, rng: np.random.Generator) -> np.ndarray:
        """Pixels on the printed sheet: a rectangle around the face, in face-aligned mm."""
        x, y = self.grid()
        p = self.mm_points
        mid_x = (p[JAW_LEFT, 0] + p[JAW_RIGHT, 0]) / 2
        half = abs(p[JAW_RIGHT, 0] - p[JAW_LEFT, 0]) / 2
        left = mid_x - half * rng.uniform(1.2, 2.0)
        right = mid_x + half * rng.uniform(1.2, 2.0)
        top = p[17:27, 1].min() - rng.uniform(40, 120)
        bottom = p[CHIN, 1] + rng.uniform(20, 100)
        return (x >= left) & (x <= right) & (y >= top) & (y <= bottom)


def _background(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray | float:
    """A wall 1.8-4 m away (slightly slanted) or no reading at all, half the time each."""
    if rng.random() < 0.5:
        return 0.0
    rows, cols = shape
    py, px = np.mgrid[0:rows, 0:cols]
    return rng.uniform(1800, 4000) + rng.uniform(-1, 1) * px + rng.uniform(-1, 1) * py


def _sensor(
    z: np.ndarray,
    distance_mm: float,
    rng: np.random.Generator,
    noise_scale: float,
    hole_fraction: float | None,
) -> np.ndarray:
    """Noise, drop-outs at depth jumps, holes, whole millimetres, range limit: a uint16 map."""
    z = np.asarray(z, dtype=np.float64)
    valid = (z > 0) & (z <= SENSOR_RANGE_MM)
    sigma = noise_scale * (0.4 + 1.6 * (np.where(valid, z, distance_mm) / 1000.0) ** 2)
    rows, cols = z.shape
    smooth = _smooth_field(rows, cols, rng)
    z = z + sigma * (rng.standard_normal(z.shape) + smooth / 3.0)
    # Shadows: half of the pixels next to a depth jump of more than 50 mm read nothing.
    jump = np.zeros(z.shape, dtype=bool)
    horizontal = np.abs(np.diff(np.where(valid, z, 0.0), axis=1)) > 50
    vertical = np.abs(np.diff(np.where(valid, z, 0.0), axis=0)) > 50
    jump[:, 1:] |= horizontal
    jump[:, :-1] |= horizontal
    jump[1:, :] |= vertical
    jump[:-1, :] |= vertical
    valid &= ~(jump & (rng.random(z.shape) < 0.5))
    valid &= ~_holes(rows, cols, rng, hole_fraction)
    out = np.where(valid, np.rint(z), 0.0)
    return np.clip(out, 0, 65535).astype(np.uint16)


def _smooth_field(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise varying smoothly over about an eighth of the map (bilinear)."""
    coarse = rng.standard_normal((9, 9))
    gy = np.linspace(0, 8, rows)
    gx = np.linspace(0, 8, cols)
    iy, ix = np.minimum(gy.astype(int), 7), np.minimum(gx.astype(int), 7)
    fy, fx = (gy - iy)[:, None], (gx - ix)[None, :]
    top = coarse[iy][:, ix] * (1 - fx) + coarse[iy][:, ix + 1] * fx
    bottom = coarse[iy + 1][:, ix] * (1 - fx) + coarse[iy + 1][:, ix + 1] * fx
    return top * (1 - fy) + bottom * fy


def _holes(rows: int, cols: int, rng: np.random.Generator, fraction: float | None) -> np.ndarray:
    """A mask of missing readings: 70 % elliptical blobs, 30 % single pixels."""
    target = rng.uniform(0.05, 0.15) if fraction is None else fraction
    mask = rng.random((rows, cols)) < 0.3 * target
    blob_target = 0.7 * target * rows * cols
    covered = 0.0
    while covered < blob_target:
        ra = rng.uniform(0.005, 0.02) * cols
        rb = ra * rng.uniform(0.5, 1.5)
        cx, cy = rng.uniform(0, cols), rng.uniform(0, rows)
        left, right = int(max(0, cx - ra)), int(min(cols, cx + ra + 1))
        top, bottom = int(max(0, cy - rb)), int(min(rows, cy + rb + 1))
        yy, xx = np.ogrid[top:bottom, left:right]
        mask[top:bottom, left:right] |= ((xx - cx) / ra) ** 2 + ((yy - cy) / rb) ** 2 <= 1.0
        covered += math.pi * ra * rb
    return mask


def to_png16(depth_mm: np.ndarray) -> bytes:
    """Encode a depth map (millimetres) as the 16-bit grayscale PNG a terminal sends."""
    values = np.clip(np.asarray(depth_mm), 0, 65535).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, "PNG")  # uint16 2-D: mode I;16
    return buffer.getvalue()


def photo_landmarks(names: tuple[str, ...] = FACE_PHOTOS) -> dict[str, Landmarks]:
    """The 68 landmarks of each test photo, found by the face engine and the liveness module."""
    found = {}
    for name in names:
        image = faces.load_image(photo_path(name).read_bytes())
        box = faces.engine().detect(image)[0].box
        found[name] = liveness.face_landmarks(image, box)
    return found
