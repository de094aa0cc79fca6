"""Test inputs for the face engine, made from the real photos of ``tests.fetch_test_data``.

Every helper returns encoded bytes (what an upload carries) or a Pillow image; photos are read
from the cache once per process.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageFilter

from gatekeeper import faces
from tests import fetch_test_data

EXIF_ORIENTATION = 0x0112


@functools.cache
def photo_bytes(name: str) -> bytes:
    """The cached test photo's file; fails clearly when the fetch script has not run."""
    return fetch_test_data.test_image(name).read_bytes()


def upright_rgb(name: str) -> Image.Image:
    """The photo as an upright RGB Pillow image."""
    with Image.open(io.BytesIO(photo_bytes(name))) as image:
        image.load()
        return image.convert("RGB")


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        options.setdefault("quality", 92)
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def blank(size: tuple[int, int] = (640, 480)) -> bytes:
    return encode(Image.new("RGB", size, (128, 128, 128)))


def blurred(image: Image.Image, radius: float) -> bytes:
    return encode(image.filter(ImageFilter.GaussianBlur(radius)))


def scaled(image: Image.Image, factor: float) -> bytes:
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return encode(image.resize(size, Image.Resampling.LANCZOS))


def side_by_side(left: Image.Image, right: Image.Image, height: int = 600) -> bytes:
    """Two photos pasted next to each other at the same height: two faces of similar size."""
    parts = [
        image.resize((round(image.width * height / image.height), height), Image.Resampling.LANCZOS)
        for image in (left, right)
    ]
    canvas = Image.new("RGB", (parts[0].width + parts[1].width, height))
    canvas.paste(parts[0], (0, 0))
    canvas.paste(parts[1], (parts[0].width, 0))
    return encode(canvas)


def exif_rotated(image: Image.Image, with_tag: bool = True) -> bytes:
    """Pixels turned 90 degrees anticlockwise, tagged Orientation 6 so viewers turn them back."""
    turned = image.transpose(Image.Transpose.ROTATE_90)
    if not with_tag:
        return encode(turned)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # "rotate 90 CW to display"
    return encode(turned, exif=exif.tobytes())


def with_transparent_border(image: Image.Image, border: int = 80) -> bytes:
    """RGBA PNG: the photo on a fully transparent margin (black under the alpha)."""
    canvas = Image.new("RGBA", (image.width + 2 * border, image.height + 2 * border), (0, 0, 0, 0))
    canvas.paste(image.convert("RGBA"), (border, border))
    return encode(canvas, "PNG")


def grey_16bit_png(image: Image.Image) -> bytes:
    """16-bit grayscale PNG spanning the full 0-65535 range."""
    grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(grey), "PNG")


def id_card_photo(
    image: Image.Image,
    face_box: tuple[int, int, int, int],
    face_fraction: float = 0.6,
    quality: int = 75,
) -> bytes:
    """A 102x126 ID-card chip photo: a crop around the face, which takes ``face_fraction`` of the
    width, downscaled and JPEG-compressed."""
    left, top, right, bottom = face_box
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    width = (right - left) / face_fraction
    height = width * 126 / 102
    crop = image.crop(
        (
            round(centre_x - width / 2),
            round(centre_y - height * 0.45),
            round(centre_x + width / 2),
            round(centre_y + height * 0.55),
        )
    )
    return encode(crop.resize((102, 126), Image.Resampling.LANCZOS), quality=quality)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


# PNG colour types (the IHDR byte after the bit depth).
GREY, RGB = 0, 2


def png_header_claiming(
    width: int, height: int, *, bit_depth: int = 8, colour_type: int = RGB
) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a bomb when large): 8-bit
    RGB unless told otherwise."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


@functools.cache
def _photo_and_face(name: str) -> tuple[np.ndarray, faces.FaceBox]:
    image = faces.load_image(photo_bytes(name))
    return image, faces.engine().detect(image)[0].box


def door_frame(name: str, face_width: int, size: tuple[int, int] = (1280, 720)) -> np.ndarray:
    """A door camera frame (RGB, as the server decodes it): the photo's face region scaled to
    ``face_width`` px and pasted into a noisy grey scene of ``size``, JPEG-encoded once."""
    image, box = _photo_and_face(name)
    return faces.load_image(encode(door_scene(image, box, face_width, size)))


def door_scene(
    image: np.ndarray, box: faces.FaceBox, face_width: int, size: tuple[int, int] = (1280, 720)
) -> Image.Image:
    """``image``'s face region (``box``, with a face's width around it) scaled to
    ``face_width`` px and pasted into the middle of a noisy grey scene of ``size``."""
    margin = box.width
    region = Image.fromarray(image).crop(
        (box.left - margin, box.top - margin, box.right + margin, box.bottom + margin)
    )
    scale = face_width / box.width
    region = region.resize(
        (max(1, round(region.width * scale)), max(1, round(region.height * scale))),
        Image.Resampling.LANCZOS,
    )
    rng = np.random.default_rng(7)
    noise = rng.normal(120, 12, (size[1], size[0], 3)).clip(0, 255).astype(np.uint8)
    scene = Image.fromarray(noise)
    scene.paste(region, ((size[0] - region.width) // 2, (size[1] - region.height) // 2))
    return scene
