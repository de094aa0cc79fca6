"""Benchmark and calibration of the face engine's stages on the real test photos.

Prints, for the numbers in docs/faces.md:

- ``timings`` (default): P50/P99 of each stage (decode, detect, align, quality measures,
  descriptor, the whole enrolment check) over the test photos and a 1280x720 frame;
- ``detection``: the smallest face (box width, px) the downscaled HOG detection still finds in
  1280x720, 1920x1080 and 4000x3000 frames, per detection size and upsampling, with its time;
- ``quality``: how face size, blur and darkness move the measurements and the descriptor
  (distance to the same photo's full-quality template), simulated ID-card photos, and the
  same-person / different-person distances behind the person-ID tolerance.

    python -m tests.fetch_test_data
    .venv/bin/python -m bench.face_stages [timings|detection|quality|all] [--rounds 10]
"""

from __future__ import annotations

import argparse
import io
import itertools
import time
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from bench.stats import percentile
from gatekeeper import faces
from tests.fetch_test_data import FACE_PHOTOS as PHOTOS
from tests.fetch_test_data import test_image


def person(name: str) -> str:
    return "biden" if name.startswith("biden") else "obama"


def jpeg(image: Image.Image | np.ndarray, quality: int = 92) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def load(name: str) -> tuple[bytes, np.ndarray]:
    data = test_image(name).read_bytes()
    return data, faces.load_image(data)


def door_frame(image: np.ndarray, box: faces.FaceBox, face_width: int, size=(1280, 720)) -> bytes:
    """The photo's face region scaled to ``face_width`` and pasted into a plain grey scene."""
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
    scene = rng.normal(120, 12, (size[1], size[0], 3)).clip(0, 255).astype(np.uint8)
    frame = Image.fromarray(scene)
    frame.paste(region, ((size[0] - region.width) // 2, (size[1] - region.height) // 2))
    return jpeg(frame)


def timed(function: Callable[[], object], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def report(name: str, samples: list[float]) -> None:
    print(
        f"  {name:<38} n={len(samples):<4} P50 {percentile(samples, 50):7.1f} ms"
        f"   P99 {percentile(samples, 99):7.1f} ms"
    )


def run_timings(rounds: int) -> None:
    start = time.perf_counter()
    engine = faces.engine()
    print(f"models loaded in {(time.perf_counter() - start) * 1000:.0f} ms (once per process)")
    obama_bytes, obama = load("obama.jpg")
    inputs = [(name, *load(name)) for name in PHOTOS]
    obama_box = engine.detect(obama)[0].box
    frame_bytes = door_frame(obama, obama_box, 160)
    inputs.append(("frame 1280x720, face 160 px", frame_bytes, faces.load_image(frame_bytes)))
    stages: dict[str, list[float]] = {}
    for name, data, image in inputs:
        print(f"{name}: {image.shape[1]}x{image.shape[0]}, {len(data)} bytes")
        box = engine.detect(image)[0].box
        face = engine.align(image, box)
        per_image = {
            "decode (load_image)": lambda d=data: faces.load_image(d),
            "detect 640 px, upsample 1": lambda i=image: engine.detect(i),
            "detect 640 px, upsample 0": lambda i=image: engine.detect(i, upsample=0),
            "detect 320 px, upsample 1": lambda i=image: engine.detect(i, max_side=320),
            "align (5 landmarks, full res)": lambda i=image, b=box: engine.align(i, b),
            "quality measures": lambda i=image, f=face: faces.measure_face(i, f),
            "descriptor, 1 jitter": lambda i=image, f=face: engine.describe(i, f),
            "descriptor, 10 jitters": lambda i=image, f=face: engine.describe(i, f, num_jitters=10),
            "assess_enrolment_photo (all)": lambda d=data: faces.assess_enrolment_photo(d),
        }
        for stage, function in per_image.items():
            samples = timed(function, rounds if "10 jitters" not in stage else max(2, rounds // 4))
            report(stage, samples)
            if not name.startswith("frame"):
                stages.setdefault(stage, []).extend(samples)
    print("all four photos together:")
    for stage, samples in stages.items():
        report(stage, samples)
    del obama_bytes


def run_detection() -> None:
    engine = faces.engine()
    _, obama = load("obama.jpg")
    box = engine.detect(obama)[0].box
    widths = (24, 28, 32, 36, 40, 48, 56, 64, 72, 80, 96, 112, 128, 160, 192, 224, 256)
    settings = [(320, 1), (480, 1), (640, 0), (640, 1), (800, 0), (960, 0), (1280, 0), (1600, 1)]
    for size in ((1280, 720), (1920, 1080), (4000, 3000)):
        frames = {w: faces.load_image(door_frame(obama, box, w, size)) for w in widths}
        print(f"frame {size[0]}x{size[1]}: smallest face box found (px) and detect time")
        for max_side, upsample in settings:
            found = [
                w for w in widths if engine.detect(frames[w], max_side=max_side, upsample=upsample)
            ]
            smallest = min(found) if found else None
            samples = timed(
                lambda f=frames[160], m=max_side, u=upsample: engine.detect(
                    f, max_side=m, upsample=u
                ),
                5,
            )
            # Monotonic: every face at least as large as the smallest found is found too.
            monotonic = bool(found) and found == [w for w in widths if w >= min(found)]
            print(
                f"  max_side {max_side:>4}, upsample {upsample}: smallest {smallest!s:>4} px"
                f"  (all larger found: {monotonic})   P50 {percentile(samples, 50):6.1f} ms"
            )


def analyse(image: np.ndarray) -> tuple[faces.FaceMeasurements, np.ndarray] | None:
    """Detect as enrolment does, measure and describe the largest face."""
    engine = faces.engine()
    found = engine.detect(image)
    if not found and max(image.shape[:2]) > faces.DETECT_MAX_SIDE:
        found = engine.detect(image, max_side=faces.ENROL_RETRY_DETECT_MAX_SIDE)
    if not found:
        return None
    face = engine.align(image, found[0].box)
    return faces.measure_face(image, face), engine.describe(image, face)


def run_quality() -> None:
    base = {}
    for name in PHOTOS:
        _, image = load(name)
        measured = analyse(image)
        assert measured is not None  # noqa: S101 - the test photos all hold a face
        base[name] = (image, *measured)
        m = measured[0]
        print(
            f"{name}: eye {m.eye_distance_px} px, box {m.face_width_px} px, "
            f"sharpness {m.sharpness}, brightness {m.brightness}"
        )

    def line(label: str, name: str, data: bytes) -> None:
        result = analyse(faces.load_image(data))
        if result is None:
            print(f"  {label:<28} not detected")
            return
        m, template = result
        same = [
            faces.face_distance(template, base[o][2])
            for o in PHOTOS
            if o != name and person(o) == person(name)
        ]
        other = [
            faces.face_distance(template, base[o][2]) for o in PHOTOS if person(o) != person(name)
        ]
        print(
            f"  {label:<28} eye {m.eye_distance_px:6.1f}  sharp {m.sharpness:6.1f}"
            f"  drift {faces.face_distance(template, base[name][2]):.3f}"
            f"  same-person {' '.join(f'{d:.3f}' for d in same) or '-':<12}"
            f"  other {' '.join(f'{d:.3f}' for d in other)}"
        )

    print("\nface size: whole photo downscaled to an eye distance (px)")
    for name in PHOTOS:
        image, m, _ = base[name]
        for eye in (48, 40, 32, 28, 24, 20, 16, 12):
            scale = eye / m.eye_distance_px
            small = Image.fromarray(image).resize(
                (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                Image.Resampling.LANCZOS,
            )
            line(f"{name} eye {eye}", name, jpeg(small))
    print("\nblur: Gaussian radius (px) on the full photo")
    for name in PHOTOS:
        image, m, _ = base[name]
        for radius in (1, 1.5, 2, 2.5, 3, 4, 6):
            blurred = Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius))
            line(f"{name} r {radius} (r/eye {radius / m.eye_distance_px:.3f})", name, jpeg(blurred))
    print("\ndarkness: brightness factor")
    for name in PHOTOS:
        image, _, _ = base[name]
        for factor in (0.5, 0.3):
            dark = ImageEnhance.Brightness(Image.fromarray(image)).enhance(factor)
            line(f"{name} x{factor}", name, jpeg(dark))
    print("\nID-card photos: 102x126 crops, face = fraction of the width, JPEG quality, blur")
    for name in PHOTOS:
        for fraction, quality, blur in itertools.product((0.5, 0.6, 0.7), (50, 75), (0, 1, 2)):
            data = id_card_photo(base[name][0], base[name][1].box, fraction, quality, blur)
            line(f"{name} {fraction} q{quality} b{blur}", name, data)
    print("\nfull photos, pairwise distances")
    for a, b in itertools.combinations(PHOTOS, 2):
        print(f"  {a:<11} {b:<11} {faces.face_distance(base[a][2], base[b][2]):.3f}")


def id_card_photo(
    image: np.ndarray, box: faces.FaceBox, face_fraction: float, quality: int, blur: float = 0
) -> bytes:
    """A 102x126 'chip photo': the face takes ``face_fraction`` of the width."""
    centre_x, centre_y = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    width = box.width / face_fraction
    height = width * 126 / 102
    crop = Image.fromarray(image).crop(
        (
            round(centre_x - width / 2),
            round(centre_y - height * 0.45),
            round(centre_x + width / 2),
            round(centre_y + height * 0.55),
        )
    )
    photo = crop.resize((102, 126), Image.Resampling.LANCZOS)
    if blur:
        photo = photo.filter(ImageFilter.GaussianBlur(blur))
    return jpeg(photo, quality)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what", nargs="?", default="timings", choices=("timings", "detection", "quality", "all")
    )
    parser.add_argument("--rounds", type=int, default=10, help="repetitions per stage and photo")
    args = parser.parse_args()
    if args.what in ("timings", "all"):
        run_timings(args.rounds)
    if args.what in ("detection", "all"):
        run_detection()
    if args.what in ("quality", "all"):
        run_quality()


if __name__ == "__main__":
    main()
