"""QR images of tokens: PNG for phones and printing, SVG for pages (``qrcode``).

Error correction M (15 %): a phone screen with glare or a crease on paper still reads.
Tokens are base32, so ``qrcode`` stores them in alphanumeric mode (5.5 bits a character).
"""

from __future__ import annotations

import io

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from qrcode.image.svg import SvgPathImage

# Pixels per module in the PNG and the quiet zone in modules (the standard asks for 4).
_BOX_PX = 8
_BORDER = 4


def _code(text: str) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=_BOX_PX, border=_BORDER)
    code.add_data(text)
    code.make(fit=True)
    return code


def version(text: str) -> int:
    """The QR version (1-40) ``text`` needs at error correction M."""
    return _code(text).version


def png(text: str) -> bytes:
    buffer = io.BytesIO()
    _code(text).make_image().save(buffer, format="PNG")
    return buffer.getvalue()


def svg(text: str) -> bytes:
    buffer = io.BytesIO()
    _code(text).make_image(image_factory=SvgPathImage).save(buffer)
    return buffer.getvalue()
