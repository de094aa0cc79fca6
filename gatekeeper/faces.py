"""The face engine: image loading, detection, 5-point alignment, 128-d templates, quality checks.

Stages (docs/faces.md has the measured timings and the numbers behind every threshold):

1. :func:`load_image` turns uploaded bytes into an RGB ``uint8`` array (EXIF rotation applied,
   alpha flattened, 16-bit scaled), refusing empty, oversized, unsupported or broken files with
   :class:`ImageError` before any pixel is decoded where possible.
2. :meth:`FaceEngine.detect` runs dlib's HOG frontal detector on a downscaled copy and maps the
   boxes back to full resolution.
3. :meth:`FaceEngine.align` places dlib's 5-point landmarks on the full-resolution image.
4. :meth:`FaceEngine.describe` computes the 128-d descriptor (dlib's ResNet) from the
   full-resolution image and those landmarks. Enrolment and the door probe must both use this
   5-point alignment (68-point for one and 5-point for the other moved a descriptor by 0.09-0.14
   on the test photos) and RGB input (BGR moved it by 0.19-0.28).

:func:`assess_enrolment_photo` and :func:`match_id_photo` build the enrolment checks on top;
the door's verify path reuses :func:`engine`, :meth:`FaceEngine.detect` and
:meth:`FaceEngine.encode`.

Nothing happens at import: the models load on the first call of :func:`engine`, once per process.
"""

from __future__ import annotations

import io
import logging
import math
import struct
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from PIL import Image, ImageOps

_LOGGER = logging.getLogger(__name__)

# --- limits and tuned constants (the numbers behind them are in docs/faces.md) -----------------

#: Largest upload accepted, in bytes (docs/protocol.md: images up to 8 MiB).
MAX_IMAGE_BYTES = 8 * 1024 * 1024
#: Largest width or height accepted, in pixels (docs/protocol.md: 4096 px per side).
MAX_IMAGE_SIDE = 4096
#: Container formats Pillow may try; nothing else is parsed (smaller attack surface). Phones'
#: multi-picture JPEGs (MPO) open through the JPEG plugin.
ALLOWED_IMAGE_FORMATS = ("JPEG", "PNG", "WEBP")

#: Detection runs on a copy whose longest side is at most this many pixels.
DETECT_MAX_SIDE = 640
#: HOG upsampling of that copy: 1 doubles it, so faces down to about 30 px of the copy are found.
DETECT_UPSAMPLE = 1
#: Enrolment retries detection on a larger copy when the first pass finds no face at all, so a
#: small face in a large photo is reported as ``face_too_small`` rather than ``no_face``.
ENROL_RETRY_DETECT_MAX_SIDE = 1600

#: Length of a face template (dlib's descriptor).
TEMPLATE_SIZE = 128
#: Length of a serialised template: 128 little-endian float32.
TEMPLATE_BYTES = TEMPLATE_SIZE * 4

#: Sharpness is measured on a grey square this many eye distances wide around eyes and nose...
SHARPNESS_CROP_EYE_DISTANCES = 2.0
#: ...downscaled so the eye distance is at most this (the enrolment minimum face size).
SHARPNESS_EYE_DISTANCE_PX = 32.0

#: Jitters for enrolment templates (the door probe uses 1); see docs/faces.md for why.
ENROL_NUM_JITTERS = 1

#: 1:1 person-ID match: same person when the distance is at most this. Tighter than dlib's usual
#: 0.6: simulated ID photos of the same person measured 0.32-0.50, of another person 0.75 or more.
PERSON_ID_TOLERANCE = 0.55


class ImageProblem(StrEnum):
    """Why an uploaded file is not a usable image."""

    EMPTY = "empty"
    TOO_MANY_BYTES = "too_many_bytes"
    TOO_MANY_PIXELS = "too_many_pixels"
    UNSUPPORTED_FORMAT = "unsupported_format"
    UNREADABLE = "unreadable"


class ImageError(ValueError):
    """An upload that is not a usable image; ``reason`` says why (a 413 or 422, never a 500)."""

    def __init__(self, reason: ImageProblem, detail: str, photo: PhotoRole | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        #: Which photo of a person-ID match it was, when there are two.
        self.photo = photo


class FaceQualityReason(StrEnum):
    """Why a photo cannot give a face template (shown to staff, stored with the attempt)."""

    NO_FACE = "no_face"
    MULTIPLE_FACES = "multiple_faces"
    FACE_TOO_SMALL = "face_too_small"
    TOO_BLURRY = "too_blurry"


class PhotoRole(StrEnum):
    """The two photos of a person-ID match."""

    ID_PHOTO = "id_photo"
    LIVE_PHOTO = "live_photo"


class TemplateError(ValueError):
    """Bytes or an array that are not a valid 128-d face template."""


class FaceNotFound(LookupError):
    """:meth:`FaceEngine.encode` was asked to find the face itself and found none."""


# --- values --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceBox:
    """A face rectangle in full-resolution pixels; may reach past the image edge."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)


@dataclass(frozen=True)
class DetectedFace:
    """One detector hit: the box and the HOG detector's confidence score (higher is surer)."""

    box: FaceBox
    score: float


@dataclass(frozen=True)
class AlignedFace:
    """A face box with its five landmarks, in full-resolution pixels.

    ``landmarks`` follow dlib's 5-point model: the two corners of one eye, the two corners of the
    other eye, then the base of the nose.
    """

    box: FaceBox
    landmarks: tuple[tuple[int, int], ...]

    @property
    def eye_distance(self) -> float:
        """Distance between the two eye centres, the face-size measure used by the checks."""
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = self.landmarks[:4]
        return math.hypot((x0 + x1 - x2 - x3) / 2, (y0 + y1 - y2 - y3) / 2)


@dataclass(frozen=True, eq=False)
class FaceEncoding:
    """A face found, aligned and described: ``template`` is a read-only 128-d float32 array."""

    face: AlignedFace
    template: np.ndarray


@dataclass(frozen=True)
class QualityThresholds:
    """The minimum face size and sharpness a photo must reach to give a template."""

    min_eye_distance_px: float
    min_sharpness: float


#: Enrolment photos (taken at the desk or uploaded by staff). At 32 px between the eyes a
#: descriptor moved by at most 0.11 from the full-size photo's; a sharpness of 15 is reached by a
#: Gaussian blur of about 2 % of the eye distance (descriptor moved by 0.10-0.17).
ENROLMENT_THRESHOLDS = QualityThresholds(min_eye_distance_px=32.0, min_sharpness=15.0)
#: ID card chip photos: small (about 102x126 px, 19-32 px between the eyes) and soft, so both
#: minimums are lower; the ID photo is what the card holds, there is no better one to ask for.
ID_PHOTO_THRESHOLDS = QualityThresholds(min_eye_distance_px=16.0, min_sharpness=10.0)


@dataclass(frozen=True)
class FaceMeasurements:
    """What the quality check measured on the face (and the image it came from)."""

    image_width: int
    image_height: int
    box: FaceBox
    face_width_px: int
    eye_distance_px: float
    #: :func:`face_sharpness` of the grey face crop (see SHARPNESS_* constants).
    sharpness: float
    #: Mean grey level of that crop, 0-255 (reported, not checked).
    brightness: float


@dataclass(frozen=True, eq=False)
class EnrolmentResult:
    """The verdict on one photo: a template, or the reason there is none.

    ``measurements`` describe the largest face when one was found (also on a rejection, so staff
    can see by how much it failed); ``template`` is set only when ``reason`` is None.
    """

    reason: FaceQualityReason | None
    face_count: int
    measurements: FaceMeasurements | None
    template: np.ndarray | None
    thresholds: QualityThresholds

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class IdMatchResult:
    """Person-ID match: ID card photo against a live photo.

    ``distance`` is None when a photo failed its quality check; then ``reason`` and
    ``failed_photo`` say which photo and why, and ``match`` is False.
    """

    match: bool
    distance: float | None
    tolerance: float
    reason: FaceQualityReason | None = None
    failed_photo: PhotoRole | None = None
    id_measurements: FaceMeasurements | None = None
    live_measurements: FaceMeasurements | None = None


# --- image loading ---------------------------------------------------------------------------


def check_image(
    data: bytes,
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_side: int = MAX_IMAGE_SIDE,
) -> tuple[int, int]:
    """The width and height of an upload that is a JPEG, PNG or WebP within the limits,
    from its header only (no pixels decoded); :class:`ImageError` otherwise.

    For pictures only stored, such as a barrier's snapshot. A file cut short (no JPEG end
    marker, no PNG ``IEND``, a WebP shorter than its RIFF header says) is refused too: it
    would be kept as evidence nobody can open.
    """
    with _open_checked(data, max_bytes, max_side) as image:
        if not _is_complete(image.format, data):
            raise ImageError(ImageProblem.UNREADABLE, "the image file is cut short")
        return image.size


def _is_complete(image_format: str | None, data: bytes) -> bool:
    """Whether the file ends where its format says it ends (cheap: no pixels decoded).

    Checked from the structure, not by decoding: Pillow pads a cut file with grey instead of
    failing once any library in the process has set ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``
    (``face_recognition`` does, on import), and a cut frame must never be described as a face.
    A JPEG's last scan is followed by its EOI marker (``FF D9`` cannot occur inside
    entropy-coded data; a thumbnail's EOI comes before the main scan; cameras may pad or append
    after it); a PNG's chunks run whole to ``IEND``; a WebP is as long as its RIFF header says.
    """
    if image_format == "JPEG":
        return data.rfind(b"\xff\xd9") > data.rfind(b"\xff\xda") >= 0
    if image_format == "PNG":
        return png_is_complete(data)
    if image_format == "WEBP":
        return len(data) >= 8 and int.from_bytes(data[4:8], "little") + 8 <= len(data)
    return True


def _open_checked(data: bytes, max_bytes: int, max_side: int) -> Image.Image:
    """The image with its header read and checked against the limits (pixels not loaded)."""
    if not data:
        raise ImageError(ImageProblem.EMPTY, "the file is empty")
    if len(data) > max_bytes:
        raise ImageError(
            ImageProblem.TOO_MANY_BYTES, f"{len(data)} bytes; the limit is {max_bytes}"
        )
    try:
        # Only the header is read here; Pillow's own bomb check may already refuse huge sizes.
        image = Image.open(io.BytesIO(data), formats=ALLOWED_IMAGE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(ImageProblem.TOO_MANY_PIXELS, str(exc)) from exc
    except Exception as exc:  # Pillow raises many types for unknown or damaged headers.
        if _has_supported_signature(data):
            raise ImageError(
                ImageProblem.UNREADABLE, f"damaged image header ({type(exc).__name__})"
            ) from exc
        raise ImageError(
            ImageProblem.UNSUPPORTED_FORMAT, f"not a {'/'.join(ALLOWED_IMAGE_FORMATS)} image"
        ) from exc
    width, height = image.size
    if width < 1 or height < 1:
        image.close()
        raise ImageError(ImageProblem.UNREADABLE, f"empty image size {width}x{height}")
    if width > max_side or height > max_side:
        image.close()
        raise ImageError(
            ImageProblem.TOO_MANY_PIXELS,
            f"{width}x{height} px; the limit is {max_side} px per side",
        )
    return image


def load_image(
    data: bytes,
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_side: int = MAX_IMAGE_SIDE,
) -> np.ndarray:
    """Decode uploaded bytes into an ``H x W x 3`` RGB ``uint8`` array (RGB, not BGR).

    EXIF orientation is applied; alpha is flattened onto white; grayscale and 16-bit images are
    scaled to 8-bit RGB. The byte size and the pixel size are checked before decoding, so a
    decompression bomb is refused without allocating its pixels. Raises :class:`ImageError`.
    """
    with _open_checked(data, max_bytes, max_side) as image:
        if not _is_complete(image.format, data):
            raise ImageError(ImageProblem.UNREADABLE, "the image file is cut short")
        try:
            image.load()
            rgb = _to_rgb(_upright(image))
        except Exception as exc:  # truncated data, bad EXIF, corrupt chunks: all a 422
            raise ImageError(
                ImageProblem.UNREADABLE, f"the image cannot be decoded ({type(exc).__name__})"
            ) from exc
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def png_is_complete(data: bytes) -> bool:
    """Whether a PNG's chunks run whole from the signature to ``IEND``."""
    offset = 8  # after the signature
    while offset + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, offset)
        offset += 12 + length  # length, type, data, CRC
        if offset > len(data):
            return False
        if kind == b"IEND":
            return True
    return False


def load_grey(
    data: bytes,
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_side: int = MAX_IMAGE_SIDE,
) -> np.ndarray:
    """Decode uploaded bytes into an ``H x W`` luma ``uint8`` array, as a code reader needs it.

    The same checks as :func:`load_image`, but a colour JPEG is decoded to its luma plane
    directly (libjpeg skips the chroma and the colour conversion: the Y of a JPEG is ITU-R 601
    luma already), and no full-size copy is made beyond the one the array needs. EXIF
    orientation is applied; alpha is flattened onto white. Raises :class:`ImageError`.
    """
    with _open_checked(data, max_bytes, max_side) as image:
        if not _is_complete(image.format, data):
            raise ImageError(ImageProblem.UNREADABLE, "the image file is cut short")
        try:
            if image.format == "JPEG" and image.mode in ("RGB", "YCbCr", "L"):
                image.draft("L", image.size)
            image.load()
            image = _upright(image)
            if image.mode != "L":
                image = _to_rgb(image).convert("L")
            return np.asarray(image, dtype=np.uint8)
        except Exception as exc:  # truncated data, bad EXIF, corrupt chunks: all a 422
            raise ImageError(
                ImageProblem.UNREADABLE, f"the image cannot be decoded ({type(exc).__name__})"
            ) from exc


# EXIF's orientation tag (274): 1 is upright.
ORIENTATION_TAG = 0x0112


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says; itself when it is upright (Pillow's
    ``exif_transpose`` would copy a frame's megabytes to say so)."""
    if image.getexif().get(ORIENTATION_TAG, 1) in (1, None):
        return image
    return ImageOps.exif_transpose(image)


def _has_supported_signature(data: bytes) -> bool:
    """Whether the bytes start like a JPEG, PNG or WebP file (so a failure means damage)."""
    return (
        data.startswith(b"\xff\xd8\xff")
        or data.startswith(b"\x89PNG\r\n\x1a\n")
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, scaling 16/32-bit data instead of clipping it."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        # Pillow's convert("L") clips 16-bit values at 255 (a white image); scale instead.
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if mode == "F" and values.max(initial=0.0) <= 1.0 else 65535.0
        grey = np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")  # 2-D uint8: mode L
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


# --- the engine ------------------------------------------------------------------------------


class _DetectorPool:
    """dlib HOG detectors, one per concurrent caller.

    A dlib detector is not safe to share between threads (measured: concurrent calls on one
    instance return wrong boxes), and it releases the GIL, so each concurrent caller borrows its
    own. Detectors are created on demand (about 0.2 s each) and reused, so the pool grows to the
    peak concurrency and no further.
    """

    def __init__(self, dlib_module: Any) -> None:
        self._dlib = dlib_module
        self._lock = threading.Lock()
        self._idle: list[Any] = [dlib_module.get_frontal_face_detector()]
        self.created = 1

    def run(self, image: np.ndarray, upsample: int) -> tuple[Sequence[Any], Sequence[float]]:
        with self._lock:
            detector = self._idle.pop() if self._idle else None
            if detector is None:
                self.created += 1
        if detector is None:
            detector = self._dlib.get_frontal_face_detector()
        try:
            rects, scores, _ = detector.run(image, upsample, 0.0)
        finally:
            with self._lock:
                self._idle.append(detector)
        return rects, scores


class FaceEngine:
    """The dlib models of one process. Thread-safe; create it through :func:`engine`."""

    def __init__(self) -> None:
        import dlib  # heavy native module: imported on first use, never at import time

        with warnings.catch_warnings():
            # face_recognition_models imports the deprecated pkg_resources; nothing to act on.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            import face_recognition_models as models

        self._dlib = dlib
        self._detectors = _DetectorPool(dlib)
        self._shape_predictor = dlib.shape_predictor(
            models.pose_predictor_five_point_model_location()
        )
        self._net = dlib.face_recognition_model_v1(models.face_recognition_model_location())
        # The network keeps per-instance buffers; serialise its use (dlib holds the GIL here
        # anyway, so the lock costs nothing measurable).
        self._net_lock = threading.Lock()
        _LOGGER.info("face engine loaded (dlib %s)", getattr(dlib, "__version__", "?"))

    @property
    def detectors_created(self) -> int:
        """How many HOG detectors exist (the peak number of concurrent detections)."""
        return self._detectors.created

    def detect(
        self,
        image: np.ndarray,
        *,
        max_side: int = DETECT_MAX_SIDE,
        upsample: int = DETECT_UPSAMPLE,
        reducing_gap: float | None = None,
    ) -> list[DetectedFace]:
        """Find faces on a copy downscaled to ``max_side``; boxes in full-resolution pixels.

        ``reducing_gap`` is Pillow's: the copy is first reduced by a whole factor (a box
        average, several times faster than the bilinear filter over a 1280x720 frame), then
        resized; None resizes with the bilinear filter alone. Returns the faces largest first.
        """
        image = _rgb_array(image)
        height, width = image.shape[:2]
        scale = min(1.0, max_side / max(height, width))
        if scale < 1.0:
            small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = np.asarray(
                Image.fromarray(image).resize(
                    small_size, Image.Resampling.BILINEAR, reducing_gap=reducing_gap
                )
            )
        else:
            small = image
        rects, scores = self._detectors.run(small, upsample)
        faces = [
            DetectedFace(
                box=FaceBox(
                    left=round(rect.left() / scale),
                    top=round(rect.top() / scale),
                    right=round((rect.right() + 1) / scale),
                    bottom=round((rect.bottom() + 1) / scale),
                ),
                score=float(score),
            )
            for rect, score in zip(rects, scores, strict=True)
        ]
        faces.sort(key=lambda face: face.box.area, reverse=True)
        return faces

    def align(self, image: np.ndarray, box: FaceBox) -> AlignedFace:
        """Place the 5 landmarks inside ``box`` on the full-resolution image."""
        image = _rgb_array(image)
        shape = self._shape_predictor(image, self._rectangle(box))
        points = tuple((point.x, point.y) for point in shape.parts())
        return AlignedFace(box=box, landmarks=points)

    def describe(self, image: np.ndarray, face: AlignedFace, *, num_jitters: int = 1) -> np.ndarray:
        """The 128-d descriptor of an aligned face, as a read-only float32 array."""
        image = _rgb_array(image)
        shape = self._shape(face)
        with self._net_lock:
            descriptor = self._net.compute_face_descriptor(image, shape, num_jitters)
        template = np.asarray(descriptor, dtype=np.float32).reshape(TEMPLATE_SIZE)
        template.flags.writeable = False
        return template

    def encode(
        self, image_rgb: np.ndarray, box: FaceBox | None = None, *, num_jitters: int = 1
    ) -> FaceEncoding:
        """Align and describe the face in ``box`` (or the largest face found) of an RGB image.

        Raises :class:`FaceNotFound` when ``box`` is None and no face is detected.
        """
        if box is None:
            faces = self.detect(image_rgb)
            if not faces:
                raise FaceNotFound("no face detected")
            box = faces[0].box
        face = self.align(image_rgb, box)
        return FaceEncoding(
            face=face, template=self.describe(image_rgb, face, num_jitters=num_jitters)
        )

    def face_chip(
        self, image: np.ndarray, face: AlignedFace, *, size: int, padding: float
    ) -> np.ndarray:
        """The face rotated upright and scaled to ``size`` px square (dlib's alignment)."""
        return self._dlib.get_face_chip(
            _rgb_array(image), self._shape(face), size=size, padding=padding
        )

    def _rectangle(self, box: FaceBox) -> Any:
        # dlib rectangles are inclusive of right/bottom.
        return self._dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)

    def _shape(self, face: AlignedFace) -> Any:
        points = self._dlib.points([self._dlib.point(x, y) for x, y in face.landmarks])
        return self._dlib.full_object_detection(self._rectangle(face.box), points)


def _rgb_array(image: np.ndarray) -> np.ndarray:
    """The image as dlib needs it: C-contiguous ``uint8``, ``H x W x 3`` RGB (no copy if it is)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 RGB array, not {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


_engine: FaceEngine | None = None
_engine_lock = threading.Lock()


def engine() -> FaceEngine:
    """The process's face engine, created (models loaded) on first use; thread-safe."""
    global _engine  # the one engine of the process, created lazily
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = FaceEngine()
    return _engine


# --- quality and enrolment -------------------------------------------------------------------


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a 2-D grey image: higher is sharper."""
    g = grey.astype(np.float64)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def _face_grey_crop(image: np.ndarray, face: AlignedFace) -> np.ndarray:
    """The grey square around eyes and nose, downscaled (antialiased) to the reference size.

    The square is SHARPNESS_CROP_EYE_DISTANCES eye distances wide, centred between the eyes and
    the nose. Faces larger than the reference are downscaled so their eye distance is
    SHARPNESS_EYE_DISTANCE_PX; smaller faces keep their own resolution (upscaling would read as
    blur, and size has its own check).
    """
    points = np.asarray(face.landmarks, dtype=np.float64)
    centre_x, centre_y = (points[:4].mean(axis=0) + points[4]) / 2
    eye = max(face.eye_distance, 1.0)
    half = SHARPNESS_CROP_EYE_DISTANCES * eye / 2
    height, width = image.shape[:2]
    left, top = max(0, math.floor(centre_x - half)), max(0, math.floor(centre_y - half))
    right, bottom = min(width, math.ceil(centre_x + half)), min(height, math.ceil(centre_y + half))
    if right - left < 3 or bottom - top < 3:
        return np.zeros((3, 3))
    crop = Image.fromarray(image[top:bottom, left:right]).convert("L")
    scale = min(1.0, SHARPNESS_EYE_DISTANCE_PX / eye)
    size = (max(3, round(crop.width * scale)), max(3, round(crop.height * scale)))
    if size != crop.size:
        crop = crop.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(crop, dtype=np.float64)


def face_sharpness(grey: np.ndarray) -> float:
    """Contrast-normalised sharpness: Laplacian variance over grey variance, times 100.

    Dividing by the grey variance makes a dark or low-contrast photo score like a bright one
    (darkening obama.jpg to 30 % changes the score by under 5 %), so only blur lowers it.
    """
    variance = float(grey.var())
    if variance < 1e-6:
        return 0.0
    return 100.0 * laplacian_variance(grey) / variance


def measure_face(image: np.ndarray, face: AlignedFace) -> FaceMeasurements:
    """Size, sharpness and brightness of an aligned face."""
    grey = _face_grey_crop(image, face)
    height, width = image.shape[:2]
    return FaceMeasurements(
        image_width=width,
        image_height=height,
        box=face.box,
        face_width_px=face.box.width,
        eye_distance_px=round(face.eye_distance, 1),
        sharpness=round(face_sharpness(grey), 1),
        brightness=round(float(grey.mean()), 1),
    )


def assess_photo(
    image_bytes: bytes,
    thresholds: QualityThresholds,
    *,
    num_jitters: int = ENROL_NUM_JITTERS,
) -> EnrolmentResult:
    """Check one photo against ``thresholds``; a template when it passes, else the reason.

    Raises :class:`ImageError` when the bytes are not a usable image.
    """
    image = load_image(image_bytes)
    face_engine = engine()
    faces = face_engine.detect(image)
    height, width = image.shape[:2]
    if not faces and max(height, width) > DETECT_MAX_SIDE:
        faces = face_engine.detect(image, max_side=ENROL_RETRY_DETECT_MAX_SIDE)
    if not faces:
        return EnrolmentResult(FaceQualityReason.NO_FACE, 0, None, None, thresholds)
    face = face_engine.align(image, faces[0].box)
    measurements = measure_face(image, face)
    reason = None
    if len(faces) > 1:
        reason = FaceQualityReason.MULTIPLE_FACES
    elif measurements.eye_distance_px < thresholds.min_eye_distance_px:
        reason = FaceQualityReason.FACE_TOO_SMALL
    elif measurements.sharpness < thresholds.min_sharpness:
        reason = FaceQualityReason.TOO_BLURRY
    if reason is not None:
        return EnrolmentResult(reason, len(faces), measurements, None, thresholds)
    template = face_engine.describe(image, face, num_jitters=num_jitters)
    return EnrolmentResult(None, 1, measurements, template, thresholds)


def assess_enrolment_photo(image_bytes: bytes) -> EnrolmentResult:
    """Enrolment check: exactly one face, big enough, sharp enough; else a reason, no template.

    Raises :class:`ImageError` when the bytes are not a usable image.
    """
    return assess_photo(image_bytes, ENROLMENT_THRESHOLDS)


# --- templates and matching ------------------------------------------------------------------


def _as_template(value: np.ndarray, name: str = "template") -> np.ndarray:
    array = np.asarray(value, dtype=np.float32)
    if array.shape != (TEMPLATE_SIZE,):
        raise TemplateError(f"{name} must have shape ({TEMPLATE_SIZE},), not {array.shape}")
    if not np.isfinite(array).all():
        raise TemplateError(f"{name} holds NaN or infinite values")
    return array


def face_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two templates (same person: small; dlib's scale)."""
    return float(np.linalg.norm(_as_template(a, "a") - _as_template(b, "b")))


def template_to_bytes(template: np.ndarray) -> bytes:
    """Serialise a template as 128 little-endian float32 (512 bytes) for encrypted storage."""
    return _as_template(template).astype("<f4").tobytes()


def template_from_bytes(data: bytes) -> np.ndarray:
    """Read bytes written by :func:`template_to_bytes`; raises :class:`TemplateError`."""
    if len(data) != TEMPLATE_BYTES:
        raise TemplateError(f"a template is {TEMPLATE_BYTES} bytes, not {len(data)}")
    template = np.frombuffer(data, dtype="<f4").astype(np.float32)
    return _as_template(template)


def match_id_photo(
    id_photo_bytes: bytes,
    live_photo_bytes: bytes,
    tolerance: float = PERSON_ID_TOLERANCE,
) -> IdMatchResult:
    """Person-ID match: is the ID card's chip photo the person in the live photo?

    The ID photo is checked with the lower :data:`ID_PHOTO_THRESHOLDS`, the live photo with the
    enrolment thresholds. Raises :class:`ImageError` (with ``photo`` set) for unusable bytes.
    """
    results = {}
    for role, data, thresholds in (
        (PhotoRole.ID_PHOTO, id_photo_bytes, ID_PHOTO_THRESHOLDS),
        (PhotoRole.LIVE_PHOTO, live_photo_bytes, ENROLMENT_THRESHOLDS),
    ):
        try:
            results[role] = assess_photo(data, thresholds, num_jitters=1)
        except ImageError as exc:
            raise ImageError(exc.reason, exc.detail, photo=role) from exc
    id_result, live_result = results[PhotoRole.ID_PHOTO], results[PhotoRole.LIVE_PHOTO]
    common = {
        "tolerance": tolerance,
        "id_measurements": id_result.measurements,
        "live_measurements": live_result.measurements,
    }
    for role, result in results.items():
        if result.reason is not None:
            return IdMatchResult(
                match=False, distance=None, reason=result.reason, failed_photo=role, **common
            )
    distance = face_distance(_template_of(id_result), _template_of(live_result))
    return IdMatchResult(match=distance <= tolerance, distance=distance, **common)


def _template_of(result: EnrolmentResult) -> np.ndarray:
    if result.template is None:
        raise TemplateError(f"no template: {result.reason}")
    return result.template


# --- the door: one probe face per frame --------------------------------------------------------

#: Door frames are searched with cheap settings first and finer ones only when nothing was
#: found: (longest side of the detection copy, HOG upsampling). On a 720p frame the first finds
#: faces of about 320 px and up (someone at the terminal, ~20 ms), the second 160 px (~45 ms),
#: the last 56 px (~150 ms, see docs/faces.md).
DOOR_DETECT_PASSES = ((320, 0), (320, 1), (DETECT_MAX_SIDE, 1))
#: The door's detection copies are first reduced by a whole factor, then resized (Pillow's
#: ``reducing_gap``): 1280x720 to 320x180 in 2.1 ms instead of 3.5 ms with the bilinear filter
#: alone. At 2.0 the boxes, and so the templates, stayed those of the bilinear copy on 63 of 64
#: door frames (one moved by 0.031); at 1.0 (0.6 ms) two moved, one by 0.09
#: (``python -m bench.face_stages door``).
DOOR_REDUCING_GAP: float | None = 2.0
#: Several faces: the largest is the one at the door only when its box is clearly larger.
DOMINANT_AREA_RATIO = 1.6


@dataclass(frozen=True, eq=False)
class Probe:
    """The face presented at a door: its landmarks and template, or why there is none."""

    reason: FaceQualityReason | None  # None, NO_FACE or MULTIPLE_FACES
    face_count: int
    face: AlignedFace | None = None
    template: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def dominant_face(faces: list[DetectedFace]) -> DetectedFace | None:
    """The largest face when it is clearly larger than the next (faces sorted largest first)."""
    if not faces:
        return None
    if len(faces) > 1 and faces[0].box.area < DOMINANT_AREA_RATIO * faces[1].box.area:
        return None
    return faces[0]


def probe_face(image_rgb: np.ndarray) -> Probe:
    """Find the one face at the door, align it (5 points) and describe it at full resolution."""
    face_engine = engine()
    faces = _detect_door_faces(image_rgb)
    if not faces:
        return Probe(FaceQualityReason.NO_FACE, 0)
    chosen = dominant_face(faces)
    if chosen is None:
        return Probe(FaceQualityReason.MULTIPLE_FACES, len(faces))
    face = face_engine.align(image_rgb, chosen.box)
    return Probe(None, len(faces), face, face_engine.describe(image_rgb, face))


def _detect_door_faces(image_rgb: np.ndarray) -> list[DetectedFace]:
    """The door's detection passes, cheapest first, until one finds a face."""
    face_engine = engine()
    faces: list[DetectedFace] = []
    for max_side, upsample in DOOR_DETECT_PASSES:
        faces = face_engine.detect(
            image_rgb, max_side=max_side, upsample=upsample, reducing_gap=DOOR_REDUCING_GAP
        )
        if faces:
            break
    return faces
