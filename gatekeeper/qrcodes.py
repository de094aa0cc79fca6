"""QR codes in door-camera frames: every code's text, zxing-cpp first, pyzbar as the fallback.

A frame is loaded grey with :func:`gatekeeper.faces.load_grey` (same limits and errors as a
face frame; a JPEG is decoded straight to its luma plane), and read by up to three passes,
each only when the one before found nothing:

1. zxing-cpp (QR only) on the grey frame;
2. zxing-cpp on the frame sharpened with a 3x3 Laplacian kernel (about 1 ms): slightly blurred or
   small codes whose modules bleed into each other;
3. pyzbar (QR only) on the grey frame.

Measured with ``python -m bench.qr_decoders`` (docs/qrcodes.md has the full table): 200 JPEG
frames of 1280x720 holding 225 codes of 152-200 base32 characters (100-260 px wide, any angle,
perspective, blur, noise) and 20 frames without a code, on the 2-core development machine:

=========================  ==========  ==========  ==============
on the grey frame          codes read  P50 / P99   no code P50
=========================  ==========  ==========  ==============
zxing-cpp alone            89.3 %      1.4 / 2.7   1.3 ms
pyzbar alone               80.0 %      19 / 26     17 ms
the three passes           95.1 %      1.5 / 29    22 ms
=========================  ==========  ==========  ==============

zxing-cpp reads more and is ~14x faster, so it goes first. The sharpened pass read 11 of the
frames it missed for ~3 ms, pyzbar 2 (small upright codes, ~2 px per module) for ~17 ms, so the
cheap pass runs before the expensive one; pyzbar's ~17 ms is what a frame with no readable code
pays. Frames that were read took P50 4.8 ms, P99 10.8 ms from JPEG bytes to texts.

zxing-cpp options: ``try_rotate`` (a search of 90/270 degree turns) changed no read in the bench
and is off; ``try_downscale`` and ``try_invert`` cost ~0.3 ms each and stay on: the first reads
large blurred codes (1400 px wide, blur radius 8-12, in a 4096x3072 frame) the full-size pass
misses, the second light-on-dark codes (a phone in dark mode), which pyzbar does not read.

Texts come back left to right (by the code's centre), each once, so the caller can try each code
until one verifies; a frame without a code gives an empty list.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import zxingcpp
from PIL import Image
from pyzbar import pyzbar

from gatekeeper.faces import load_grey


class Decoder(StrEnum):
    """The pass that read a frame's codes (diagnostics and the bench)."""

    ZXING = "zxing"
    ZXING_SHARPENED = "zxing_sharpened"
    PYZBAR = "pyzbar"
    NONE = "none"


@dataclass(frozen=True)
class Decoded:
    """A frame's code texts, the pass that read them, and the time spent (load and decode)."""

    texts: tuple[str, ...]
    decoder: Decoder
    ms: float


def decode_frame(data: bytes) -> list[str]:
    """The texts of every QR code in an uploaded JPEG or PNG frame; ``[]`` when there is none.

    Raises :class:`gatekeeper.faces.ImageError` when the bytes are not a usable image.
    """
    return list(decode_frame_detailed(data).texts)


def decode_frame_detailed(data: bytes) -> Decoded:
    """:func:`decode_frame` with the pass that read the codes and the milliseconds it took."""
    started = time.perf_counter()
    texts, decoder = _decode(load_grey(data))
    return Decoded(tuple(texts), decoder, (time.perf_counter() - started) * 1000)


def decode_grey(grey: np.ndarray) -> list[str]:
    """The texts of every QR code in an ``H x W`` ``uint8`` grey image, by the passes above."""
    return _decode(grey)[0]


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """``H x W`` luma (ITU-R 601) of an ``H x W x 3`` RGB ``uint8`` array."""
    return np.asarray(Image.fromarray(rgb).convert("L"))


def read_zxing(grey: np.ndarray) -> list[str]:
    """One zxing-cpp pass, QR codes only."""
    found = zxingcpp.read_barcodes(
        grey,
        formats=zxingcpp.BarcodeFormat.QRCode,
        try_rotate=False,
        text_mode=zxingcpp.TextMode.Plain,
    )
    return _left_to_right((*_centre(code.position), code.text) for code in found)


def read_pyzbar(grey: np.ndarray) -> list[str]:
    """One pyzbar (zbar) pass, QR codes only."""
    found = pyzbar.decode(grey, symbols=[pyzbar.ZBarSymbol.QRCODE])
    return _left_to_right(
        (
            code.rect.left + code.rect.width / 2,
            code.rect.top + code.rect.height / 2,
            code.data.decode("utf-8", errors="replace"),
        )
        for code in found
    )


def sharpen(grey: np.ndarray) -> np.ndarray:
    """The image sharpened by the 3x3 kernel ``[0 -1 0; -1 5 -1; 0 -1 0]`` (edges repeated)."""
    padded = np.pad(grey.astype(np.int16), 1, mode="edge")
    sharpened = (
        5 * padded[1:-1, 1:-1]
        - padded[:-2, 1:-1]
        - padded[2:, 1:-1]
        - padded[1:-1, :-2]
        - padded[1:-1, 2:]
    )
    return np.clip(sharpened, 0, 255).astype(np.uint8)


def _decode(grey: np.ndarray) -> tuple[list[str], Decoder]:
    texts = read_zxing(grey)
    if texts:
        return texts, Decoder.ZXING
    texts = read_zxing(sharpen(grey))
    if texts:
        return texts, Decoder.ZXING_SHARPENED
    texts = read_pyzbar(grey)
    return texts, Decoder.PYZBAR if texts else Decoder.NONE


def _centre(position: zxingcpp.Position) -> tuple[float, float]:
    corners = (position.top_left, position.top_right, position.bottom_right, position.bottom_left)
    return sum(point.x for point in corners) / 4, sum(point.y for point in corners) / 4


def _left_to_right(found: Iterable[tuple[float, float, str]]) -> list[str]:
    """Texts ordered by their code's centre, left to right then top to bottom, each once."""
    ordered = sorted(found, key=lambda item: (item[0], item[1]))
    return list(dict.fromkeys(text for _x, _y, text in ordered))
