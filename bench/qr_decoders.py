"""Benchmark: zxing-cpp, pyzbar and the combined strategy on QR codes in door-camera frames.

Builds ``--frames`` 1280x720 JPEG frames (quality 85) from the real test photos with one or
two visitor codes each (152-200 base32 characters, error correction M), drawn from four kinds:
plain (160-260 px, upright give or take 15 degrees), turned (any angle, some perspective), two
codes side by side, small (100-120 px, upright give or take 10 degrees) and hard (100-120 px,
any angle, blur, strong perspective, sensor noise); plus
``--empty`` frames with no code. For zxing-cpp alone, pyzbar alone and
:func:`gatekeeper.qrcodes.decode_grey` on the same grey images it prints the share of codes
read, of frames fully read, and P50/P99 per frame; then ``decode_frame`` end to end (JPEG
load, grey, decode) and which pass read each frame.

    python -m tests.fetch_test_data
    .venv/bin/python -m bench.qr_decoders [--frames 200] [--empty 20] [--force]
"""

from __future__ import annotations

import argparse
import base64
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.harness import add_load_flag, check_load
from bench.stats import percentile
from gatekeeper import faces, qrcodes
from tests.support.qrframes import encode, frame_with_codes, qr_png, scene

BACKGROUNDS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")


@dataclass(frozen=True)
class Frame:
    jpeg: bytes
    grey: np.ndarray
    texts: frozenset[str]


def token(rng: np.random.Generator) -> str:
    """A pass token as the issuer writes it: base32 of 95-125 random bytes, no padding."""
    return base64.b32encode(rng.bytes(int(rng.integers(95, 126)))).decode().rstrip("=")


def frame_options(kind: str, rng: np.random.Generator) -> dict[str, Any]:
    if kind == "plain":
        return {"width": int(rng.integers(160, 261)), "angle": float(rng.uniform(-15, 15))}
    if kind == "turned":
        return {
            "width": int(rng.integers(130, 221)),
            "angle": float(rng.uniform(-180, 180)),
            "tilt": float(rng.choice([0, 0.1, 0.2])),
            "blur": float(rng.choice([0, 0.5])),
        }
    if kind == "two":
        return {"width": int(rng.integers(130, 181)), "angle": float(rng.uniform(-30, 30))}
    if kind == "small":
        return {
            "width": int(rng.integers(100, 121)),
            "angle": float(rng.uniform(-10, 10)),
            "blur": float(rng.choice([0, 0.5])),
        }
    return {
        "width": int(rng.integers(100, 121)),
        "angle": float(rng.uniform(-180, 180)),
        "tilt": float(rng.choice([0, 0.2, 0.3])),
        "blur": float(rng.choice([0.6, 0.8, 1.0])),
        "noise": float(rng.choice([0, 4, 8])),
    }


def build_frames(count: int, empty: int) -> list[Frame]:
    rng = np.random.default_rng(2026)
    kinds = ("plain", "plain", "turned", "turned", "two", "small", "small", "hard")
    frames = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        texts = [token(rng) for _ in range(2 if kind == "two" else 1)]
        jpeg = frame_with_codes(
            [qr_png(text) for text in texts],
            background=str(rng.choice(BACKGROUNDS)),
            seed=index,
            **frame_options(kind, rng),
        )
        frames.append(Frame(jpeg, grey_of(jpeg), frozenset(texts)))
    for index in range(empty):
        jpeg = encode(scene(background=BACKGROUNDS[index % len(BACKGROUNDS)]))
        frames.append(Frame(jpeg, grey_of(jpeg), frozenset()))
    return frames


def grey_of(jpeg: bytes) -> np.ndarray:
    return faces.load_grey(jpeg)  # as decode_frame loads it


@dataclass
class Series:
    """One decoder's reads over the frames and its times, with and without a code."""

    codes_read: int = 0
    frames_read: int = 0
    wrong: int = 0
    ms: list[float] = field(default_factory=list)
    empty_ms: list[float] = field(default_factory=list)


def measure(
    frames: list[Frame], decoders: dict[str, Callable[[np.ndarray], list[str]]]
) -> dict[str, Series]:
    """Every decoder on every frame, interleaved so that load on the machine hits them alike."""
    results = {name: Series() for name in decoders}
    for frame in frames:
        for name, decode in decoders.items():
            series = results[name]
            started = time.perf_counter()
            texts = set(decode(frame.grey))
            elapsed = (time.perf_counter() - started) * 1000
            (series.ms if frame.texts else series.empty_ms).append(elapsed)
            series.codes_read += len(texts & frame.texts)
            series.frames_read += bool(frame.texts) and frame.texts <= texts
            series.wrong += len(texts - frame.texts)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--empty", type=int, default=20)
    add_load_flag(parser)
    args = parser.parse_args()

    frames = build_frames(args.frames, args.empty)
    with_codes = [frame for frame in frames if frame.texts]
    codes = sum(len(frame.texts) for frame in with_codes)
    for frame in frames[:5]:  # warm up: libraries loaded, caches filled
        qrcodes.decode_grey(frame.grey)
        qrcodes.read_pyzbar(frame.grey)

    check_load("each decoder on the grey frames", args.force)
    print(
        f"{len(with_codes)} frames 1280x720 JPEG with {codes} codes, "
        f"{len(frames) - len(with_codes)} frames without a code; ms per frame on the grey image"
    )
    print(
        f"{'decoder':<26} {'codes read':>12} {'frames read':>12} {'wrong':>6}"
        f" {'P50':>7} {'P99':>7} {'no code P50':>12} {'P99':>7}"
    )
    decoders = {
        "zxing-cpp": qrcodes.read_zxing,
        "pyzbar": qrcodes.read_pyzbar,
        "decode_grey (combined)": qrcodes.decode_grey,
    }
    results = measure(frames, decoders)
    for name, series in results.items():
        print(
            f"{name:<26} {series.codes_read / codes:11.1%} "
            f"{series.frames_read / len(with_codes):12.1%} {series.wrong:6d}"
            f" {percentile(series.ms, 50):7.1f} {percentile(series.ms, 99):7.1f}"
            f" {percentile(series.empty_ms, 50):12.1f} {percentile(series.empty_ms, 99):7.1f}"
        )
    zxing, zbar = results["zxing-cpp"], results["pyzbar"]
    print(
        f"pyzbar / zxing-cpp time: P50 {percentile(zbar.ms, 50) / percentile(zxing.ms, 50):.1f}x,"
        f" P99 {percentile(zbar.ms, 99) / percentile(zxing.ms, 99):.1f}x"
    )

    check_load("decode_frame end to end", args.force)
    detailed = [qrcodes.decode_frame_detailed(frame.jpeg) for frame in frames]
    with_code_ms = [d.ms for d, frame in zip(detailed, frames, strict=True) if frame.texts]
    empty_ms = [d.ms for d, frame in zip(detailed, frames, strict=True) if not frame.texts]
    read_ms = [d.ms for d in detailed if d.texts]
    print(
        f"{'decode_frame (JPEG in)':<26} {'':>12} {'':>12} {'':>6}"
        f" {percentile(with_code_ms, 50):7.1f} {percentile(with_code_ms, 99):7.1f}"
        f" {percentile(empty_ms, 50):12.1f} {percentile(empty_ms, 99):7.1f}"
    )
    print(
        f"{'decode_frame, frames read':<26} {'':>12} {'':>12} {'':>6}"
        f" {percentile(read_ms, 50):7.1f} {percentile(read_ms, 99):7.1f}"
    )
    passes = Counter(d.decoder for d, frame in zip(detailed, frames, strict=True) if frame.texts)
    print(
        "frames with codes read by pass: "
        + ", ".join(f"{decoder} {passes[decoder]}" for decoder in qrcodes.Decoder)
    )


if __name__ == "__main__":
    main()
