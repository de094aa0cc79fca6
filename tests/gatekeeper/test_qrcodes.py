"""QR codes in door-camera frames: real photos, codes drawn by ``qrcode``, JPEG as sent."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from gatekeeper import faces, qrcodes
from gatekeeper.qrcodes import Decoder
from tests.support.qrframes import encode, frame_with_codes, qr_png, scene


def token(seed: int) -> str:
    """A visitor pass token as the issuer writes it: 160 characters of unpadded base32."""
    return base64.b32encode(np.random.default_rng(seed).bytes(100)).decode().rstrip("=")


def grey(frame: bytes) -> np.ndarray:
    return qrcodes.to_grey(faces.load_image(frame))


@pytest.fixture(scope="module")
def text() -> str:
    return token(1)


@pytest.fixture(scope="module")
def basic_frame(text: str) -> bytes:
    return frame_with_codes([qr_png(text)], width=200, angle=4)


def test_token_is_uppercase_base32(text: str) -> None:
    assert len(text) == 160
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def test_straight_code(basic_frame: bytes, text: str) -> None:
    assert qrcodes.decode_frame(basic_frame) == [text]


@pytest.mark.parametrize("angle", [30, -30, 88, 180])
def test_rotated_code(text: str, angle: float) -> None:
    frame = frame_with_codes([qr_png(text)], width=180, angle=angle, seed=2)
    assert qrcodes.decode_frame(frame) == [text]


def test_small_code(text: str) -> None:
    frame = frame_with_codes([qr_png(text)], width=120, angle=10, seed=3)
    assert qrcodes.decode_frame(frame) == [text]


def test_slightly_blurred_code(text: str) -> None:
    frame = frame_with_codes([qr_png(text)], width=160, angle=8, blur=1.0, seed=4)
    assert qrcodes.decode_frame(frame) == [text]


def test_code_seen_in_perspective(text: str) -> None:
    frame = frame_with_codes([qr_png(text)], width=180, angle=-20, tilt=0.25, seed=5)
    assert qrcodes.decode_frame(frame) == [text]


def test_noisy_code(text: str) -> None:
    frame = frame_with_codes([qr_png(text)], width=160, angle=15, noise=8, seed=6)
    assert qrcodes.decode_frame(frame) == [text]


def test_light_on_dark_code(text: str) -> None:
    """A phone in dark mode may invert the code; pyzbar cannot read it, zxing-cpp can."""
    with Image.open(io.BytesIO(qr_png(text))) as drawn:
        inverted = ImageOps.invert(drawn.convert("L"))
    frame = frame_with_codes([inverted], width=180, angle=7, seed=10)
    assert qrcodes.decode_frame(frame) == [text]


def test_two_codes_both_returned_left_to_right() -> None:
    left, right = token(10), token(11)
    frame = frame_with_codes([qr_png(left), qr_png(right)], width=160, angle=12, seed=7)
    assert qrcodes.decode_frame(frame) == [left, right]


def test_the_same_code_twice_is_returned_once(text: str) -> None:
    frame = frame_with_codes([qr_png(text), qr_png(text)], width=160, seed=8)
    assert qrcodes.decode_frame(frame) == [text]


def test_frame_without_a_code() -> None:
    decoded = qrcodes.decode_frame_detailed(encode(scene()))
    assert decoded.texts == ()
    assert decoded.decoder is Decoder.NONE


def test_png_and_jpeg_frames(text: str) -> None:
    for fmt in ("PNG", "JPEG"):
        frame = frame_with_codes([qr_png(text)], width=160, angle=-5, fmt=fmt, seed=9)
        assert frame.startswith(b"\x89PNG" if fmt == "PNG" else b"\xff\xd8"), fmt
        assert qrcodes.decode_frame(frame) == [text], fmt


def test_bare_code_png(text: str) -> None:
    assert qrcodes.decode_frame(qr_png(text)) == [text]


@pytest.mark.parametrize("data", [b"", b"not an image", b"\xff\xd8\xff\xe0 truncated jpeg"])
def test_bad_bytes_raise_image_error(data: bytes) -> None:
    with pytest.raises(faces.ImageError):
        qrcodes.decode_frame(data)


# --- the decoders and the passes -------------------------------------------------------------


def test_each_decoder_reads_the_basic_frame_alone(basic_frame: bytes, text: str) -> None:
    image = grey(basic_frame)
    assert qrcodes.read_zxing(image) == [text]
    assert qrcodes.read_pyzbar(image) == [text]
    assert qrcodes.decode_grey(image) == [text]


def test_zxing_reads_first(basic_frame: bytes, text: str) -> None:
    decoded = qrcodes.decode_frame_detailed(basic_frame)
    assert (decoded.texts, decoded.decoder) == ((text,), Decoder.ZXING)
    assert decoded.ms > 0


def test_sharpened_pass_reads_a_blurred_code_zxing_misses(text: str) -> None:
    frame = frame_with_codes([qr_png(text)], width=160, angle=8, blur=1.4, seed=4)
    assert qrcodes.read_zxing(grey(frame)) == []  # the case this pass exists for
    decoded = qrcodes.decode_frame_detailed(frame)
    assert (decoded.texts, decoded.decoder) == ((text,), Decoder.ZXING_SHARPENED)


def test_pyzbar_is_the_fallback_when_zxing_finds_nothing(
    monkeypatch: pytest.MonkeyPatch, basic_frame: bytes, text: str
) -> None:
    calls = []

    def nothing(image: np.ndarray, **options: object) -> list[object]:
        calls.append(image.shape)
        return []

    monkeypatch.setattr(qrcodes.zxingcpp, "read_barcodes", nothing)
    decoded = qrcodes.decode_frame_detailed(basic_frame)
    assert (decoded.texts, decoded.decoder) == ((text,), Decoder.PYZBAR)
    assert calls == [(720, 1280), (720, 1280)]  # the plain and the sharpened pass


def test_nothing_read_by_any_pass_is_an_empty_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qrcodes, "read_zxing", lambda image: [])
    monkeypatch.setattr(qrcodes, "read_pyzbar", lambda image: [])
    assert qrcodes.decode_frame(qr_png(token(2))) == []


def test_sharpen_keeps_flat_areas_and_boosts_edges() -> None:
    image = np.full((5, 6), 100, dtype=np.uint8)
    image[:, 3:] = 200
    sharpened = qrcodes.sharpen(image)
    assert sharpened.dtype == np.uint8 and sharpened.shape == image.shape
    assert sharpened[:, 0].tolist() == [100] * 5
    assert sharpened[:, 2].tolist() == [0] * 5  # 5*100 - 3*100 - 200, clipped
    assert sharpened[:, 3].tolist() == [255] * 5  # 5*200 - 3*200 - 100, clipped


# --- frames loaded grey ------------------------------------------------------------------------


def test_a_jpeg_frame_is_decoded_straight_to_the_luma_the_rgb_path_gave(basic_frame, text) -> None:
    """libjpeg's luma plane and Pillow's ITU-R 601 conversion of the decoded RGB agree but for
    rounding (and a few steps at coloured edges, where chroma was upsampled): the readers see
    the image they saw before."""
    direct, via_rgb = faces.load_grey(basic_frame), grey(basic_frame)
    assert direct.shape == via_rgb.shape == (720, 1280)
    assert direct.dtype == np.uint8
    difference = np.abs(direct.astype(np.int16) - via_rgb.astype(np.int16))
    assert difference.mean() < 1.0, difference.mean()
    assert difference.max() <= 16, difference.max()
    assert qrcodes.decode_grey(direct) == qrcodes.decode_grey(via_rgb) == [text]


def test_a_grey_frame_keeps_its_exif_turn_and_flattens_alpha_onto_white(text) -> None:
    picture = Image.open(io.BytesIO(frame_with_codes([qr_png(text)], width=200, angle=0)))
    turned = picture.rotate(90, expand=True)  # as a sideways camera stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    buffer = io.BytesIO()
    turned.convert("RGB").save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    stored = buffer.getvalue()
    assert faces.load_grey(stored).shape == (720, 1280)
    assert qrcodes.decode_frame(stored) == [text]

    clear = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    buffer = io.BytesIO()
    clear.save(buffer, "PNG")
    assert (faces.load_grey(buffer.getvalue()) == 255).all()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_cut_frame_is_refused_before_it_is_read_grey(basic_frame, fmt) -> None:
    data = basic_frame if fmt == "JPEG" else encode(Image.open(io.BytesIO(basic_frame)), fmt)
    with pytest.raises(faces.ImageError) as caught:
        qrcodes.decode_frame(data[: len(data) - 40])
    assert caught.value.reason == faces.ImageProblem.UNREADABLE
