"""Door-camera frames holding visitors' QR codes, made from a real photo (deterministic).

A code is drawn with the ``qrcode`` library as ``server/passes/images.py`` draws passes (error
correction M, 8 px modules, 4-module quiet zone), then scaled to a camera-sized width, optionally
tilted in perspective and turned, pasted on a 1280x720 scene cut from a real photo, blurred like a
slightly defocused lens, given sensor noise and JPEG-compressed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import qrcode
from PIL import Image, ImageFilter

from tests.fetch_test_data import test_image as photo_path

# Pixels per module in the drawn code; it is resampled to the camera size afterwards.
DRAWN_BOX_SIZE = 8


def qr_png(text: str) -> bytes:
    """A QR code for ``text`` as a PNG: error correction M, the standard 4-module quiet zone."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=DRAWN_BOX_SIZE, border=4
    )
    code.add_data(text)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image().save(buffer, "PNG")
    return buffer.getvalue()


def encode(image: Image.Image, fmt: str = "JPEG", quality: int = 85) -> bytes:
    """The image as an upload carries it (JPEG at ``quality``, or PNG)."""
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buffer, fmt, quality=quality)
    else:
        image.save(buffer, fmt)
    return buffer.getvalue()


def scene(size: tuple[int, int] = (1280, 720), background: str = "obama.jpg") -> Image.Image:
    """A real photo scaled to cover ``size`` and cropped near its top (where a portrait's face
    is): the scene behind the code."""
    with Image.open(photo_path(background)) as opened:
        photo = opened.convert("RGB")
    scale = max(size[0] / photo.width, size[1] / photo.height)
    photo = photo.resize(
        (round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BICUBIC
    )
    left, top = (photo.width - size[0]) // 2, (photo.height - size[1]) // 4
    return photo.crop((left, top, left + size[0], top + size[1]))


def _perspective_coefficients(
    source: Sequence[tuple[float, float]], target: Sequence[tuple[float, float]]
) -> list[float]:
    """Pillow's PERSPECTIVE coefficients mapping output points ``target`` to input ``source``."""
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    values = np.array([coordinate for point in source for coordinate in point], dtype=float)
    return np.linalg.solve(np.array(rows, dtype=float), values).tolist()


def _placed_code(code: bytes | Image.Image, width: int, angle: float, tilt: float) -> Image.Image:
    """The code as an RGBA patch: ``width`` px wide, keystoned by ``tilt``, rotated by ``angle``.

    ``tilt`` is how much shorter the code's right edge looks than its left (0.2: 20 %), as when
    the phone is turned about its vertical axis; transparent pixels are the scene.
    """
    image = Image.open(io.BytesIO(code)) if isinstance(code, bytes) else code
    patch = image.convert("RGBA").resize((width, width), Image.Resampling.LANCZOS)
    if tilt:
        shrink = width * tilt / 2
        corners = [(0, 0), (width, 0), (width, width), (0, width)]
        seen = [(0, 0), (width, shrink), (width, width - shrink), (0, width)]
        patch = patch.transform(
            patch.size,
            Image.Transform.PERSPECTIVE,
            _perspective_coefficients(corners, seen),
            Image.Resampling.BICUBIC,
            fillcolor=(0, 0, 0, 0),
        )
    if angle:
        patch = patch.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=(0, 0, 0, 0))
    return patch


def frame_with_codes(
    codes: Sequence[bytes | Image.Image],
    *,
    size: tuple[int, int] = (1280, 720),
    width: int = 200,
    angle: float = 0.0,
    tilt: float = 0.0,
    blur: float = 0.0,
    noise: float = 0.0,
    background: str = "obama.jpg",
    fmt: str = "JPEG",
    quality: int = 85,
    seed: int = 0,
) -> bytes:
    """A door-camera frame (JPEG unless ``fmt="PNG"``) with ``codes`` placed on a real photo.

    Each code (PNG bytes or a Pillow image, quiet zone included) is ``width`` px wide, tilted
    by ``tilt`` and rotated by ``angle`` degrees; codes sit side by side in their own share of
    the frame at a position drawn from ``seed``. ``blur`` is a Gaussian radius in px applied to
    the whole frame, ``noise`` the standard deviation of added sensor noise (grey levels).
    """
    rng = np.random.default_rng(seed)
    canvas = scene(size, background)
    share = size[0] // max(1, len(codes))
    for index, code in enumerate(codes):
        patch = _placed_code(code, width, angle, tilt)
        if patch.width > share or patch.height > size[1]:
            raise ValueError(f"a {patch.width}x{patch.height} px code does not fit the frame")
        left = index * share + int(rng.integers(0, share - patch.width + 1))
        top = int(rng.integers(0, size[1] - patch.height + 1))
        canvas.paste(patch, (left, top), patch)
    if blur:
        canvas = canvas.filter(ImageFilter.GaussianBlur(blur))
    if noise:
        pixels = np.asarray(canvas, dtype=np.float32)
        pixels += rng.normal(0.0, noise, pixels.shape)
        canvas = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return encode(canvas, fmt, quality)
